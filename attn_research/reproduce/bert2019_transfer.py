"""Pretraining on unlabelled text makes a self-attention encoder more data-efficient
(BERT, Devlin et al. 2019, arXiv 1810.04805): masked-token pretraining on the King
James Bible, then book-group classification from 1 %, 5 %, 20 % and 100 % of the labels.

Config: experiments/pretrain.py (the tier is its argument; run mode `transfer`,
attn_research/modes/transfer.py), so `./launch.sh run experiments/pretrain.py` makes the
same runs. The criterion below is fixed before any run; the verdict is computed from it.
"""
from __future__ import annotations

from attn_research.reproduce import common
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.reproduce.protocol import format_p, paired_test
from attn_research.report.transfer import (ARM_LABELS, by_cell, paired_differences,
                                           plot_transfer, transfer_table)

# Where the claim is judged: the label shares at which pretraining should matter most.
JUDGED_FRACTIONS = (0.01, 0.05)
CRITERION = (
    "Supported if, at 1 % and at 5 % of the labels, the encoder pretrained and then "
    "fine-tuned beats the same model trained from scratch on the test split: the mean over "
    "seeds of the paired difference (fine-tuned minus scratch, same seed, so the same label "
    "subset, head initialisation and batch order) is > 0 and a one-sided paired t-test over "
    "the seeds gives p < 0.05. Not supported if at 1 % or at 5 % the mean paired difference "
    "is <= 0. Inconclusive otherwise. Checkpoints are chosen on validation accuracy; each "
    "run's test split is scored once.")


def verdict(tests: dict) -> str:
  """The criterion applied to {fraction (as "0.01"): paired_test(...)}."""
  judged = [tests.get(f"{f:g}") for f in JUDGED_FRACTIONS]
  if any(t is None or t["mean"] is None for t in judged):
    return "inconclusive"
  if any(t["mean"] <= 0 for t in judged):
    return "not supported"
  if all(t["p_one_sided"] is not None and t["p_one_sided"] < 0.05 for t in judged):
    return "supported"
  return "inconclusive"


def _pts(x) -> str:
  """A difference of accuracies in percentage points, signed, two decimals."""
  return "n/a" if x is None else f"{100 * x:+.2f}"


def _diff(t) -> str:
  ci = "" if t["ci95"] is None else f" ± {100 * t['ci95']:.2f}"
  per_seed = ", ".join(_pts(d) for d in t["differences"])
  return f"{_pts(t['mean'])}{ci} (n={t['n']}; per seed {per_seed})"


def _p(t) -> str:
  return format_p(t["p_one_sided"])


def cells_of(data) -> dict:
  """{arm: {"0.01": {labels, seeds, test_accuracy [per seed], validation_accuracy}}}."""
  out = {}
  for (arm, fraction), runs in by_cell(data).items():
    out.setdefault(arm, {})[f"{fraction:g}"] = dict(
        labels=runs[0]["labels"], steps=runs[0].get("steps"), seeds=[r["seed"] for r in runs],
        test_accuracy=[r["test"]["accuracy"] for r in runs],
        validation_accuracy=[r["validation"]["accuracy"] for r in runs],
        chosen_step=[r["test"]["step"] for r in runs])
  return out


def per_seed_table(cells) -> str:
  rows = []
  for arm, by_fraction in cells.items():
    for fraction, c in sorted(by_fraction.items(), key=lambda kv: float(kv[0])):
      for seed, test, val, step in zip(c["seeds"], c["test_accuracy"],
                                       c["validation_accuracy"], c["chosen_step"]):
        rows.append((f"{float(fraction):.0%}", ARM_LABELS.get(arm, arm), f"seed {seed}",
                     f"{test:.4f}", f"{val:.4f}", f"{step} of {c['steps']}"))
  return markdown_table(("labels", "encoder", "seed", "test accuracy",
                         "best validation accuracy", "chosen step"), rows)


def tiny_judged_only(config) -> tuple:
  """The tiny tier trains only the label shares the criterion reads (JUDGED_FRACTIONS):
  at the others 150 steps are under one pass over the labels (compute-limited, not
  judged), and their 18 runs cost a third of the tier's time. Returns the shares dropped."""
  t = config.transfer
  keep = [i for i, f in enumerate(t.label_fractions) if f in JUDGED_FRACTIONS]
  dropped = tuple(f for i, f in enumerate(t.label_fractions) if i not in keep)
  with config.unlocked():
    t.num_steps = tuple(t.num_steps[i] for i in keep)
    t.label_fractions = tuple(t.label_fractions[i] for i in keep)
  return dropped


@register_reproduction("bert2019_transfer")
def run(tier, out_dir):
  from attn_research.config import load_config
  from attn_research.data.kjv_transfer import verbatim_overlap
  from attn_research.modes.transfer import run_transfer
  arg = "tiny,smoke" if tier == "smoke" else tier
  config = load_config(f"{common.ROOT / 'experiments' / 'pretrain.py'}:{arg}")
  dropped = tiny_judged_only(config) if tier == "tiny" else ()
  data = run_transfer(config, common.runs_dir(out_dir, tier), progress=False)
  plot_transfer(data, out_dir / "transfer.png")
  tests = {f"{f:g}": paired_test(d) for f, d in paired_differences(data, "finetune").items()}
  probe = {f"{f:g}": paired_test(d) for f, d in paired_differences(data, "probe").items()}
  label = verdict(tests)
  rates, cells, pre = data["test_rates"], cells_of(data), data["pretrain"]
  diff_table = markdown_table(
      ("labels", "labelled examples", "fine-tuned - scratch (points, mean ± 95 % CI)",
       "one-sided paired p", "probe - scratch (points, mean ± 95 % CI)"),
      [(f"{float(f):.0%}", f"{cells['finetune'][f]['labels']:,}", _diff(t), _p(t),
        _diff(probe[f]) if f in probe else "n/a")
       for f, t in sorted(tests.items(), key=lambda kv: float(kv[0]))])
  overlap = verbatim_overlap({k: config.data[k] for k in ("heldout_chapters", "split_seed",
                                                          "source", "dir")})
  masked_accuracy = (pre["final_eval"] or {}).get("accuracy")
  judged = "; ".join(f"{f:.0%}: {_pts(tests[f'{f:g}']['mean'])} points, p = "
                     f"{_p(tests[f'{f:g}'])}" for f in JUDGED_FRACTIONS if f"{f:g}" in tests)
  tc = config.transfer.pretrain.train
  t = config.transfer
  steps = tuple(t.get("num_steps", ()) or ()) or (config.train.num_steps,) * len(
      t.label_fractions)
  steps_text = " / ".join(str(n) for n in steps)
  fractions_text = " / ".join(f"{f:.0%}" for f in t.label_fractions)
  limited = [f"{f:.0%}" for f, n in zip(t.label_fractions, steps)
             if n * config.train.batch_size < cells["scratch"][f"{f:g}"]["labels"]]
  return Report(
      claim="Pretraining a self-attention encoder on unlabelled text (masked tokens: 15 % of "
            "the tokens selected, 80 % of those replaced by [MASK], 10 % by a random token, "
            "10 % kept) makes it far more data-efficient on a downstream task than the same "
            "model trained from scratch (Devlin et al. 2019, BERT).",
      tables=[f"Test accuracy of each run's best-on-validation checkpoint on the "
              f"{rates['examples']:,} test verses (held-out chapters; chance "
              f"{rates['chance']:.3f}, majority {rates['majority']:.3f}: always "
              f"'{rates['majority_class']}'). Encoder pretrained for {pre['steps']} steps of "
              f"{tc.batch_size} pieces ({pre['params']:,} parameters with the masked-token "
              f"head, {pre['wall_time_s']:.3g} s; masked-token accuracy on validation "
              f"pieces {masked_accuracy:.3f}); every arm fine-tuned for "
              f"{steps_text} steps of {config.train.batch_size} verses at "
              f"{fractions_text} of the labels:\n\n"
              f"{transfer_table(data)}",
              f"Paired differences, the criterion's numbers (pairs share the seed):\n\n"
              f"{diff_table}",
              f"Every run:\n\n{per_seed_table(cells)}"],
      paper="BERT's Table 1 (GLUE) and its ablations compare pretrained models with "
            "task-specific baselines rather than one model with and without pretraining at "
            "several label counts; BERT-Tiny (2 layers, 128 wide) scores GLUE 64.2 and SST-2 "
            "83.2 (ANCHORS.md). No paper number applies to this task.",
      differences="Bytes instead of WordPiece tokens (258 ids: 256 bytes, [PAD], [MASK]), so "
                  "the encoder must first learn words from characters; random replacements "
                  "drawn uniformly from the 256 bytes (BERT: from its WordPiece vocabulary; "
                  "most bytes never occur in the KJV, so a random replacement is easy to "
                  "spot); no next-sentence prediction and no [CLS] token: the classifier "
                  "mean-pools the encoder's vectors; rotary positions instead of learned ones "
                  "(see experiments/pretrain.py); one pretraining corpus, the KJV's "
                  f"training chapters ({overlap['train']['bytes']:,} bytes in "
                  f"{overlap['train']['verses']:,} verses), instead of 3.3 G words; "
                  f"{config.model.num_layers} layers of width {config.model.d_model} and "
                  f"{pre['steps']} pretraining steps instead of BERT's 1 M; verses cut to "
                  f"their first {config.data.max_length} bytes; one pretrained encoder shared "
                  "by all seeds (a seed varies the fine-tuning: label subset, head, batch "
                  "order); the linear probe is a LayerNorm and a linear map on the mean-pooled "
                  "frozen vectors. Overlap of pretraining and evaluation text: pretraining "
                  "reads the training chapters, which hold the labelled training verses (their "
                  "text, never their labels), and no validation or test verse; "
                  f"{overlap['validation']['verbatim_in_train']} of the "
                  f"{overlap['validation']['verses']:,} validation and "
                  f"{overlap['test']['verbatim_in_train']} of the {overlap['test']['verses']:,} "
                  "test verses have a verbatim twin in a training chapter (parallel "
                  "passages)."
                  + (f" Training length: at {' and '.join(limited)} of the labels the "
                     f"fine-tuning steps ({steps_text} at {fractions_text}) are less than one "
                     "pass over the labelled verses, so those shares are compute-limited at "
                     "this tier and the criterion does not read them; at 1 % and 5 % the "
                     "chosen (best-on-validation) steps in the last table show whether "
                     "training reached its plateau." if limited else "")
                  + (f" The tiny tier trains only the shares the criterion reads: "
                     f"{' and '.join(f'{f:.0%}' for f in dropped)} of the labels run at the "
                     "full tier (and in `./launch.sh run experiments/pretrain.py`), where a "
                     "2-core CPU could give them only a fraction of one pass over their "
                     "labels." if dropped else ""),
      results=dict(criterion=CRITERION, verdict_label=label, test_rates=rates,
                   pretrain=dict(steps=pre["steps"], params=pre["params"],
                                 masked_accuracy=masked_accuracy,
                                 wall_time_s=pre["wall_time_s"]),
                   cells=cells, paired_finetune=tests, paired_probe=probe, overlap=overlap),
      figures=["transfer.png"],
      verdict=f"{label} ({judged}; criterion: the fine-tuned encoder beats scratch at 1 % and "
              "5 % of the labels, mean paired difference > 0 with one-sided p < 0.05).",
      criterion=CRITERION, verdict_label=label)
