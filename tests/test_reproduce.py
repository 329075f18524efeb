"""Reproductions: every one runs its tiny-tier code path at a smoke size and writes every
file it promises, its results hold a relation its claim depends on, and its report shows
the numbers results.json holds; the Cordonnier construction reproduces a convolution."""
import fnmatch
import json
import math
import re

import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.reproduce import REPRODUCTIONS, reproduce
from attn_research.reproduce import cordonnier2020
from attn_research.reproduce.__main__ import main as reproduce_main
from attn_research.reproduce.protocol import VERDICTS
from tests.conftest import make_config
from tests.conftest import require_source

# reproduction -> the task whose data it needs
NEEDS_SOURCE = {"truncated_speech": "spoken_digits", "bert2019_transfer": "kjv_books",
                "floater2020_lm": "kjv"}


def test_cordonnier_construction_matches_convolution():
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.standard_normal((2, 5, 5, 2)), jnp.float32)
  for k in (3, 5):
    w = jnp.asarray(rng.standard_normal((k, k, 2, 3)), jnp.float32)
    assert cordonnier2020.max_error(images, w, 50.0) < 1e-4
    # Far from the limit the heads blur over neighbours: the construction is not exact.
    assert cordonnier2020.max_error(images, w, 0.5) > 1e-2


@pytest.mark.slow  # every reproduction's smoke tier: ~90 s of compiling on 2 cores
@pytest.mark.parametrize("name", REPRODUCTIONS.names())
def test_reproduction_smoke_writes_its_files(name, tmp_path):
  if name in NEEDS_SOURCE:
    require_source(NEEDS_SOURCE[name])
  out = reproduce(name, "smoke", tmp_path)
  report = (out / "report.md").read_text()
  results = json.loads((out / "results.json").read_text())
  assert results["name"] == name and results["tier"] == "smoke"
  # The protocol: a verdict from a criterion written before the run, both in the report.
  assert results["verdict"] in VERDICTS and results["criterion"], results["verdict"]
  assert f"**Verdict: {results['verdict']}.**" in report and results["criterion"] in report
  assert "## The paper" in report and "## What differs and why" in report
  # A string that lost its f prefix shows its placeholder, e.g. "{ci_pct(stats)}".
  placeholders = re.findall(r"\{[A-Za-z_][\w.\[\]'\"]*(?:\([^{}]*\))?(?::[^{}]*)?\}", report)
  assert not placeholders, f"{name}: unformatted placeholders in report.md: {placeholders}"
  figures = [line[line.index("(") + 1:-1] for line in report.splitlines()
             if line.startswith("![")]
  assert figures, "every reproduction draws at least one figure"
  for fig in figures:
    assert (out / fig).stat().st_size > 1000, fig
  RELATIONS[name](results["results"], report)
  exempt = NOT_IN_REPORT.get(name, {})
  paths = [path for path, _ in flat_numbers(results["results"])]
  for pattern in exempt:  # an exemption that matches nothing is stale
    assert any(fnmatch.fnmatchcase(p, pattern) for p in paths), (name, pattern)
  missing = [f"{path} = {value!r}" for path, value in missing_numbers(results["results"], report)
             if not any(fnmatch.fnmatchcase(path, pattern) for pattern in exempt)]
  assert not missing, f"{name}: numbers in results.json that report.md does not show: {missing}"


@pytest.mark.slow  # two smoke reproductions: ~8 s
def test_other_tier_report_is_archived_not_lost(tmp_path):
  out = tmp_path / "cordonnier2020"
  out.mkdir()
  (out / "results.json").write_text(json.dumps({"tier": "full", "results": {"x": 1}}))
  (out / "report.md").write_text("the full report")
  reproduce("cordonnier2020", "smoke", tmp_path)
  archived = list((out / "archive").glob("full-*/report.md"))
  assert len(archived) == 1 and archived[0].read_text() == "the full report"


def test_unknown_reproduction_and_tier_are_refused(capsys):
  with pytest.raises(SystemExit) as e:
    reproduce_main(["nosuchpaper"])
  assert e.value.code == 2
  assert "cordonnier2020" in capsys.readouterr().err
  with pytest.raises(ValueError, match="--tier='huge'"):
    reproduce("cordonnier2020", "huge")


# ------------------------------------------------------------ numbers in the report

# How a number of results.json may appear in report.md. The scaled value y is x times
# one of SCALES (as is; x 100 for percentages; x 1000 for seconds shown in ms; / 1e6 for
# FLOPs shown in millions; / 2**20 for bytes shown in MiB) and a rendering of y is
#   - for integer-valued y: the integer, with or without thousands commas;
#   - for any y: fixed-point with 0-4 decimals (with or without commas), or e-notation with
#     1-3 decimals, keeping at least two significant digits unless it is exact (so a loss
#     of 2.44 is not found in any "2" of the text, but 0.0625 is found as "0.062", 92.8
#     as "93" and 0.0005 s as "0.5" ms).
# A rendering is found when it stands alone: no digit or "." before it, and no digit or
# "." followed by a digit after it. Booleans and strings are not numbers here.
SCALES = (1, 100, 1e3, 1e-6, 2.0 ** -20)


def flat_numbers(tree, path=""):
  """[(dotted path, number)] of every int or float in a JSON tree (list items by index)."""
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, list):
    items = enumerate(tree)
  else:
    ok = isinstance(tree, (int, float)) and not isinstance(tree, bool)
    return [(path, tree)] if ok else []
  return [pair for key, value in items
          for pair in flat_numbers(value, f"{path}.{key}" if path else str(key))]


def significant_digits(text: str) -> int:
  mantissa = text.split("e")[0].replace(",", "").replace("-", "").replace(".", "")
  return len(mantissa.lstrip("0"))


def renderings(x) -> set:
  out = set()
  for scale in SCALES:
    y = x * scale
    if not math.isfinite(y):
      continue
    if float(y).is_integer():
      out |= {str(int(y)), f"{int(y):,}"}
    candidates = {f"{y:.{p}f}" for p in range(5)} | {f"{y:,.{p}f}" for p in range(5)}
    candidates |= {f"{y:.{p}e}" for p in range(1, 4)}
    out |= {c for c in candidates if significant_digits(c) >= 2
            or math.isclose(float(c.replace(",", "")), y, rel_tol=1e-9)}
  return out


def shown(x, report: str) -> bool:
  return any(re.search(rf"(?<![\d.]){re.escape(r)}(?!\d|\.\d)", report)
             for r in renderings(x))


def missing_numbers(results, report: str):
  """[(path, number)] of results' numbers that report.md shows in no rendering."""
  return [(path, x) for path, x in flat_numbers(results) if not shown(x, report)]


def test_number_rendering_rule():
  report = "| 0.062 | 4,040 | 93 | 18.8% | 2.68e-07 | 0.5 ms | 1.5 MiB | 2L = 20 |"
  results = {"acc": 0.0625, "params": 4040, "speed": 92.76, "pct": 0.1875,
             "err": 2.682209e-07, "bytes": 1.5 * 2**20, "flag": True, "name": "x",
             "rows": [{"seconds": 0.0005}, {"loss": 2.4397}, {"count": 204}]}
  assert flat_numbers(results)[-3:] == [("rows.0.seconds", 0.0005), ("rows.1.loss", 2.4397),
                                        ("rows.2.count", 204)]
  # 0.0005 s shows as "0.5 ms" (one digit of an exact value is enough); 2.4397 is in no
  # "2", 204 is not inside "2,04x"-like text, and "20" is not 204.
  assert missing_numbers(results, report) == [("rows.1.loss", 2.4397), ("rows.2.count", 204)]


# Numbers a report does not show, each with the reason (the lead's list of report gaps;
# a pattern that matches nothing fails the test, so the list cannot go stale).
NOT_IN_REPORT = {
    "detr2020": {
        "paired.*.differences.*": "per-seed differences: shown as mean ± 95 % CI and p; the "
                                  "per-seed table holds each arm's values",
    },
    "cordonnier2020": {
        "learned.rates.majority_class": "the majority rate is shown, not which class",
    },
    "floater2020": {
        "runs.*.*.test_loss.*": "the tables show accuracy only",
        "runs.*.*.steps_per_second": "shown with one decimal (a slow smoke run has one digit)",
    },
    "floater2020_lm": {
        "runs.*.*.accuracy.*": "shown as mean ± 95 % CI in the first table",
        "accuracy.*": "per-seed accuracies: shown as mean ± 95 % CI (losses decide)",
        "runs.*.*.loss.*": "shown per seed (three decimals) in the second table",
        "runs.*.*.steps_per_second": "shown with one decimal (a slow smoke run has one digit)",
    },
    "gat_karate": {
        "*.runs.*": "per-split / per-seed accuracies: the tables show their mean ± 95 % CI "
                    "(gat_karate_relation checks the karate means) and the figures plot them",
        "*.paired.*.differences.*": "per-seed differences: shown as mean ± 95 % CI and p",
    },
    "katharopoulos2020_generation": {
        "rows.*.ms_per_token": "shown as tokens/s = 1000 / ms_per_token (generation_relation)",
        "rows.*.compile_s": "compile times are printed, not reported",
        "min_time": "a timing setting, not shown",
        "recompute_budget": "a timing setting, not shown",
    },
    "katharopoulos2020_scaling": {
        "kernels.*.seconds.*": "shown in ms with one decimal: sub-ms smoke times keep one digit",
        "kernels.*.bytes.*": "shown in whole MiB: the smoke tier's sizes round to 0 MiB",
        "max_gib": "the memory cap, not shown",
        "log2_lengths.*": "shown as the lengths 2^k",
    },
    "lra2020": {"speed.kernels.*.bytes.*": "shown in whole MiB (one digit at smoke size)"},
    "mnist1d2020": {"models.*.wall_time_s.*": "shown in whole seconds"},
}


# ------------------------------------------------------- relations the claims rest on

def scored_eval_count(spec: str) -> int:
  """How many targets the eval set of spec's data scores (its target_mask)."""
  from attn_research.data import get_task
  config = make_config(spec)
  return int(sum(b["target_mask"].sum() for b in get_task(config.data).eval_batches(64)))


def assert_counts(accuracy: float, count: int, what: str):
  """An accuracy over `count` scored targets is k / count: padding and unscored targets
  in the denominator would break that (the claims compare such accuracies)."""
  k = accuracy * count
  assert abs(k - round(k)) < 1e-6 * count, (
      f"accuracy {accuracy} is not a whole number of the {count} scored {what}")


def cordonnier_relation(results, report):
  """The construction's error falls with alpha to below 1e-4 (Theorem 1's limit); the
  learned part's checks follow from the centres; the verdict is the criterion applied."""
  from attn_research.reproduce.cordonnier2020 import centre_checks, verdict_label
  assert results["below_target"] is True
  for kernel, errors in results["max_abs_error"].items():
    assert errors[-1] < 1e-4 < errors[0], (kernel, errors)
  learned = results["learned"]
  for seed, centres in zip(learned["seeds"], learned["centres"]):
    assert len(centres[0]) == len(learned["alpha"][learned["centres"].index(centres)][0]) >= 2
    checks = centre_checks(centres[0])
    assert (checks["spread"], checks["surround"]) == (seed["spread"], seed["surround"])
    assert seed["min_gap"] == pytest.approx(checks["min_gap"], abs=2e-3)
    assert_counts(seed["accuracy"], learned["rates"]["examples"], "test images")
  assert results["verdict_label"] == verdict_label(results["below_target"], learned["seeds"])


def floater_relation(results, report):
  """Every encoding is scored at every length factor x L, each accuracy is k of that
  length's scored queries, per-seed lists agree with the runs, and the verdict is the
  criterion applied to the accuracies at L and 2L."""
  from attn_research.reproduce.floater2020 import verdict
  refs, L = results["references"], results["train_length"]
  assert refs["1"]["length"] == L and all(r["length"] == int(f) * L for f, r in refs.items())
  for name, by_factor in results["accuracy"].items():
    assert sorted(by_factor) == sorted(refs), (name, sorted(by_factor))
    for f, values in by_factor.items():
      assert values == [r["test"][f] for r in results["runs"][name]], (name, f)
      for accuracy in values:
        assert_counts(accuracy, refs[f]["scored"], f"test queries at {f}L ({name})")
  acc = results["accuracy"]
  label, _ = verdict({n: a["1"] for n, a in acc.items()},
                     {n: a["2"] for n, a in acc.items() if "2" in a},
                     {n: [r["plateau"] for r in rs] for n, rs in results["runs"].items()})
  assert results["verdict_label"] == label and f"**Verdict: {label}.**" in report


def floater_lm_relation(results, report):
  """Every encoding is scored at every length factor x L with L x the number of windows
  characters, per-seed lists agree with the runs, loss at L is below the unigram rate only
  for a trained model, and the verdict is the criterion applied to the losses at L and 2L."""
  from attn_research.reproduce.floater2020_lm import verdict
  refs, L = results["references"], results["train_length"]
  assert refs["1"]["length"] == L and all(r["length"] == int(f) * L for f, r in refs.items())
  windows = refs["1"]["scored"] // L
  for f, r in refs.items():
    assert r["scored"] == windows * r["length"] and 0 < r["unigram"] < np.log(256), (f, r)
  for name, by_factor in results["loss"].items():
    assert sorted(by_factor) == sorted(refs), (name, sorted(by_factor))
    for f, values in by_factor.items():
      assert values == [r["loss"][f] for r in results["runs"][name]], (name, f)
      for accuracy in results["accuracy"][name][f]:
        assert_counts(accuracy, refs[f]["scored"], f"test characters at {f}L ({name})")
  loss = results["loss"]
  label, _ = verdict({n: a["1"] for n, a in loss.items()},
                     {n: a["2"] for n, a in loss.items() if "2" in a}, refs["1"]["unigram"],
                     {n: [r["plateau"] for r in rs] for n, rs in results["runs"].items()})
  assert results["verdict_label"] == label and f"**Verdict: {label}.**" in report


def gat_karate_relation(results, report):
  """Accuracies are whole numbers of the scored test nodes; every paired difference is GAT
  minus the other model on the same split or seed; the verdict is the criterion applied."""
  from attn_research.reproduce.gat_karate import verdict
  karate, csbm = results["karate"], results["csbm"]
  assert karate["test_nodes"] == 34 - 2 * (4 + 3)
  for name, values in karate["runs"].items():
    assert len(values) == karate["splits"], name
    for accuracy in values:
      assert_counts(accuracy, karate["test_nodes"], f"karate members ({name})")
    assert karate["accuracy"][name]["mean"] == pytest.approx(float(np.mean(values)))
  levels = [f"{h:g}" for h in csbm["homophily"]]
  assert list(csbm["runs"]) == levels
  for level in levels:
    runs = csbm["runs"][level]
    for name, values in runs.items():
      assert len(values) == len(csbm["seeds"]), (level, name)
      for accuracy in values:
        assert_counts(accuracy, csbm["test_nodes"], f"CSBM test nodes ({name})")
    for pair, test in csbm["paired"][level].items():
      arm, other = pair.split("-")
      diffs = [a - b for a, b in zip(runs[arm], runs[other])]
      assert test["differences"] == pytest.approx(diffs), (level, pair)
  assert f"**Verdict: {verdict(results)}.**" in report


def copy_relation(results, report):
  """Test accuracy is k of the second-copy tokens of the test sequences, which come from
  another generator seed than training and validation (their count recomputed here);
  steps to the threshold are eval steps within the budget; the verdict is the criterion
  applied to those steps."""
  from attn_research.data import get_task
  from attn_research.reproduce.katharopoulos2020_copy import mean_ratio, verdict
  config = make_config("experiments/repro/katharopoulos2020_copy.py:tiny,smoke")
  test = results["test_set"]
  assert test["generator_seed"] != config.data.seed
  data = dict(config.data.to_dict(), seed=test["generator_seed"], num_eval=test["sequences"])
  count = int(sum(b["target_mask"].sum() for b in get_task(data).eval_batches(64)))
  assert test["scored_tokens"] == count
  for name, r in results["models"].items():
    for accuracy in r["test_accuracy"]:
      assert_counts(accuracy, count, f"second-copy test tokens ({name})")
    assert all(loss > 0 for loss in r["test_loss"] + r["final_val_loss"])
    assert all(s is None or 0 < s <= results["steps"] for s in r["steps_to_threshold"])
  steps = {name: r["steps_to_threshold"] for name, r in results["models"].items()}
  assert results["verdict_label"] == verdict(steps)
  ratio = mean_ratio(steps.get("softmax"), steps.get("linear", []))
  assert results["mean_ratio"] == (None if ratio is None else pytest.approx(ratio))


def generation_relation(results, report):
  """Every method ran at every context, and tokens/s is 1000 / (ms per token)."""
  ran = {(r["method"], r["context"]) for r in results["rows"]}
  methods = {m for m, _ in ran}
  assert {"linear-state", "softmax-cache"} <= methods
  assert ran == {(m, c) for m in methods for c in results["lengths"]}
  for r in results["rows"]:
    assert r["tokens_per_s"] * r["ms_per_token"] == pytest.approx(1000, rel=1e-6), r
  # The verdict is the criterion applied to the rows.
  from attn_research.reproduce.katharopoulos2020_generation import verdict_label
  rate = {(r["method"], r["context"]): r["tokens_per_s"] for r in results["rows"]}
  linear = [rate["linear-state", c] for c in results["lengths"]]
  longest = results["lengths"][-1]
  assert results["verdict_label"] == verdict_label(
      max(linear) / min(linear), rate["linear-state", longest] / rate["softmax-cache", longest])
  assert report.count(results["verdict_label"]) >= 1


def scaling_relation(results, report):
  """Softmax's (materialised) memory grows quadratically, linear attention's linearly:
  XLA's compiled estimates, deterministic unlike the times."""
  ref, lin = results["kernels"]["softmax (reference)"], results["kernels"]["linear (chunked)"]
  assert ref["memory_slope"] > lin["memory_slope"] + 0.5, (ref["memory_slope"],
                                                           lin["memory_slope"])
  assert ref["bytes"][-1] / ref["bytes"][-2] > 3.0 > 2.0 > lin["bytes"][-1] / lin["bytes"][-2]
  from attn_research.reproduce.katharopoulos2020_scaling import verdict_label
  assert results["verdict_label"] == verdict_label(ref, lin)


def lra_relation(results, report):
  """Test accuracies are whole counts of the test expressions; speeds and memory are
  relative to softmax (1 for itself); the verdict is the criterion applied to the stored
  accuracies, majority rate and speeds."""
  from attn_research.reproduce.lra2020 import verdict
  count = results["rates"]["examples"]
  assert count == scored_eval_count("experiments/repro/lra2020.py:tiny,smoke")
  for name, m in results["models"].items():
    for accuracy in m["test_accuracy"]:
      assert_counts(accuracy, count, f"ListOps test expressions ({name})")
  assert results["rates"]["majority"] >= results["rates"]["chance"] == 0.1
  kernels = results["speed"]["kernels"]
  assert kernels["softmax"]["relative_speed"] == [1.0] * len(results["speed"]["lengths"])
  for name, k in kernels.items():
    assert all(b > 0 for b in k["bytes"]), name
    for e, r, e0 in zip(k["examples_per_second"], k["relative_speed"],
                        kernels["softmax"]["examples_per_second"]):
      assert r == pytest.approx(e / e0), name
  accuracy = {n: m["test_accuracy"] for n, m in results["models"].items()}
  speed = {n: k["relative_speed"][-1] for n, k in kernels.items()}
  plateau = {n: m["plateau"] for n, m in results["models"].items()}
  assert verdict(accuracy, results["rates"]["majority"], speed,
                 plateau)["label"] == results["verdict_label"]


def mnist1d_relation(results, report):
  """Test accuracies are whole numbers of the paper's 1,000 test signals, one per seed;
  each mean is its seeds' mean and its distance the mean minus the claim's number
  (logistic regression 32 %); the verdict is the criterion applied to the means and CIs."""
  from attn_research.reproduce.mnist1d2020 import PAPER, verdict
  assert results["rates"]["examples"] == 1000 and results["rates"]["chance"] == 0.1
  for name, r in results["models"].items():
    assert len(r["test_accuracy"]) == r["n"] == len(results["seeds"]), name
    for accuracy in r["test_accuracy"]:
      assert_counts(accuracy, 1000, f"test signals ({name})")
    assert r["mean"] == pytest.approx(float(np.mean(r["test_accuracy"])))
    assert r["paper"] == PAPER.get(name)
    if r["paper"] is not None:
      assert r["distance"] == pytest.approx(r["mean"] - r["paper"])
  if "logistic" in results["models"]:
    assert results["models"]["logistic"]["paper"] == 0.32
  assert results["verdict_label"] == verdict(results["models"])
  assert results["criterion"].startswith("Judged on the test accuracy")


def speech_relation(results, report):
  """Frame accuracies are whole numbers of the test frames; a paired difference is the
  window's minus full attention's test accuracy on the same seed; at the longest length
  measured every window costs fewer forward FLOPs than full attention; the verdict is the
  criterion applied."""
  from attn_research.reproduce.truncated_speech import verdict
  models, count = results["models"], results["rates"]["examples"]
  assert models["full_attention"]["window"] == 0 and len(models) >= 2
  for name, r in models.items():
    assert len(r["test_accuracy"]) == len(results["seeds"]), name
    for accuracy in r["test_accuracy"]:
      assert_counts(accuracy, count, f"test frames ({name})")
  full = models["full_attention"]
  for name, t in results["paired"].items():
    assert models[name]["window"] > 0
    assert t["differences"] == pytest.approx(
        [a - b for a, b in zip(models[name]["test_accuracy"], full["test_accuracy"])]), name
    longest = results["flops_by_length"][str(max(map(int, results["flops_by_length"])))]
    assert longest[name] < longest["full_attention"], name
  assert results["verdict_label"] == verdict(results)
  assert results["criterion"].startswith("Judged on test frame accuracy")


def vit_datasize_relation(results, report):
  """Every run is scored once on the same 1,000 test signals; a fitted slope is the mean
  of the per-seed slopes; a gap is the ViT's minus the CNN's accuracy of the same seeds;
  the verdict is the criterion applied to the numbers."""
  from attn_research.reproduce.vit2020_datasize import verdict
  sizes, seeds = [str(n) for n in results["sizes"]], results["seeds"]
  for name, by_size in results["accuracy"].items():
    assert sorted(by_size, key=int) == sizes
    for n, values in by_size.items():
      assert len(values) == len(seeds) and results["runs"][name][n]["test"] == values
      assert results["runs"][name][n]["test_examples"] == [1000] * len(seeds)
      for accuracy in values:
        assert_counts(accuracy, 1000, f"test signals ({name})")
    fit = results["fits"][name]
    assert fit["slope"] == pytest.approx(float(np.mean(fit["seed_slopes"])), abs=1e-9)
  for name, gaps in results["gaps"].items():
    for n in sizes:
      diffs = [a - b for a, b in zip(results["accuracy"][name][n], results["accuracy"]["cnn"][n])]
      assert gaps[n]["mean"] == pytest.approx(sum(diffs) / len(diffs)), (name, n)
  assert results["verdict_label"] == verdict(results)


def transfer_relation(results, report):
  """Test accuracies are whole numbers of the test verses; a paired difference is the
  fine-tuned minus the scratch accuracy of the same seed; more labels, more examples;
  the verdict is the criterion applied to the paired differences."""
  from attn_research.reproduce.bert2019_transfer import verdict
  count = results["test_rates"]["examples"]
  cells = results["cells"]
  for arm, by_fraction in cells.items():
    fractions = sorted(by_fraction, key=float)
    assert [by_fraction[f]["labels"] for f in fractions] == sorted(
        {by_fraction[f]["labels"] for f in fractions}), arm
    for cell in by_fraction.values():
      for accuracy in cell["test_accuracy"]:
        assert_counts(accuracy, count, f"test verses ({arm})")
  for fraction, t in results["paired_finetune"].items():
    ft, scratch = cells["finetune"][fraction], cells["scratch"][fraction]
    assert ft["seeds"] == scratch["seeds"]
    assert t["differences"] == pytest.approx(
        [a - b for a, b in zip(ft["test_accuracy"], scratch["test_accuracy"])])
  assert results["verdict_label"] == verdict(results["paired_finetune"])
  assert results["criterion"].startswith("Supported if")


def detr_relation(results, report):
  """Count accuracies are whole numbers of the test scenes; a paired difference is
  matching minus fixed order of the same seed; the verdict is the criterion applied."""
  from attn_research.reproduce.detr2020 import verdict
  arms, n = results["arms"], results["test_scenes"]
  for name, cell in arms.items():
    assert len(cell["ap50"]) == len(results["seeds"]), name
    for count, ap50, ap in zip(cell["count_accuracy"], cell["ap50"], cell["ap"]):
      assert_counts(count, n, f"test scenes ({name})")
      assert 0 <= ap <= 1 and 0 <= ap50 <= 1, (name, ap, ap50)
  for key, d in results["paired"].items():
    diffs = [a - b for a, b in zip(arms["hungarian"][key], arms["fixed_order"][key])]
    assert d["mean"] == pytest.approx(sum(diffs) / len(diffs)), key
  assert results["verdict_label"] == verdict(results)
  assert results["criterion"].startswith("Supported if")


def sagan_relation(results, report):
  """Each variant's mean and n are those of its per-seed FDs; attention variants report a
  gamma per seed; the verdict is the criterion applied to the means and intervals."""
  from attn_research.reproduce.sagan2019 import verdict
  for name, v in results["variants"].items():
    assert v["n"] == len(v["fd"]) == len(results["seeds"]), name
    assert v["mean"] == pytest.approx(float(np.mean(v["fd"])))
    assert all(fd >= 0 for fd in v["fd"])
    assert len(v["gamma_g"]) == (len(v["fd"]) if v["attention_res"] else 0)
  assert results["verdict_label"] == verdict(results["variants"],
                                             results["fd_plateau"]["plateau"])
  assert results["criterion"].startswith("Judged on the final")


RELATIONS = {
    "bert2019_transfer": transfer_relation,
    "detr2020": detr_relation,
    "cordonnier2020": cordonnier_relation,
    "floater2020": floater_relation,
    "floater2020_lm": floater_lm_relation,
    "gat_karate": gat_karate_relation,
    "katharopoulos2020_copy": copy_relation,
    "katharopoulos2020_generation": generation_relation,
    "katharopoulos2020_scaling": scaling_relation,
    "lra2020": lra_relation,
    "mnist1d2020": mnist1d_relation,
    "sagan2019": sagan_relation,
    "truncated_speech": speech_relation,
    "vit2020_datasize": vit_datasize_relation,
}


def test_every_reproduction_has_a_relation():
  assert sorted(RELATIONS) == sorted(REPRODUCTIONS.names())
