"""Truncated self-attention on long speech labelled per frame: accuracy and compute
against the window (the lecture's speech slide; e.g. Yeh et al. 2019, arXiv 1910.12977,
and Zhang et al. 2020, arXiv 2002.02562, for streaming speech recognition).

Task: spoken_digit_strings (data/speech_strings.py): strings of spoken digits, every 10 ms
frame labelled with the digit being spoken or silence, validation and test voices never
heard in training. Models: the same Transformer with full attention and with windows of
4, 16 and 64 frames on each side (model.window), several seeds each; every run keeps its
best checkpoint on the validation voices, which alone is scored on the test voices, once
(common.train_and_test). Compute: XLA's FLOPs per example of each forward (the windows
run the block-banded local kernel on CPU, kernels/local.py) at the trained length and at
longer ones, and the measured training examples per second (on a shared machine).
Config: experiments/repro/truncated_speech.py. The criterion below is fixed before any
run; the verdict is computed from it.
"""
from __future__ import annotations

import numpy as np

from attn_research.data.speech_strings import split_voices
from attn_research.reproduce import common, protocol
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.report.plotting import pyplot, save

MARGIN = 0.01           # one point of frame accuracy
LEARNED_OVER_MAJORITY = 0.10
DECIDING = ("window_16", "window_64")
FLOPS_LENGTHS = (1024, 2048)  # longer inputs than the tiny tier trains on, for the cost curve
CRITERION = (
    "Judged on test frame accuracy (the best-on-validation checkpoint, test voices never "
    "heard), each window paired with full attention on the same seed (window minus full, "
    "protocol.paired_test: mean and 95 % CI over seeds). If full attention's mean test frame "
    "accuracy is not at least 10 points above the test majority-class rate, inconclusive "
    "(nothing learned to compare). Supported if window 16 or window 64 has a mean difference "
    "whose 95 % CI lies entirely above -1 point and costs fewer forward FLOPs per example "
    "than full attention at the trained length. Not supported if every window's difference "
    "has its 95 % CI entirely below -1 point. Inconclusive otherwise.")


def verdict(results: dict) -> str:
  """The criterion applied to results: {"models": {name: {"test_accuracy": [...],
  "flops_per_example"}}, "paired": {window name: paired_test}, "rates": {"majority"}}."""
  models, paired = results["models"], results["paired"]
  full = models.get("full_attention", {}).get("test_accuracy") or []
  majority = results["rates"]["majority"]
  if not full or np.mean(full) < majority + LEARNED_OVER_MAJORITY:
    return "inconclusive"

  def bounds(name):
    test = paired.get(name) or {}
    if test.get("mean") is None or test.get("ci95") is None or test.get("n", 0) < 2:
      return None
    return test["mean"] - test["ci95"], test["mean"] + test["ci95"]

  full_flops = models["full_attention"].get("flops_per_example")
  for name in DECIDING:
    b = bounds(name)
    flops = models.get(name, {}).get("flops_per_example")
    if (b is not None and b[0] > -MARGIN and flops is not None and full_flops is not None
        and flops < full_flops):
      return "supported"
  windows = [name for name in paired]
  if windows and all((b := bounds(name)) is not None and b[1] < -MARGIN for name in windows):
    return "not supported"
  return "inconclusive"


def window_of(config, name) -> int:
  return int(config.models[name].window)


def flops_at_lengths(config, lengths) -> dict:
  """{length: {model: forward FLOPs per example}} of each model over one string padded to
  each length (lowered, not run): how the cost grows with the input."""
  import copy
  from attn_research.data import get_task
  from attn_research.modes.comparison import model_flops
  out = {}
  for length in lengths:
    data = copy.deepcopy(config.data)
    with data.unlocked():
      data.update(max_frames=int(length), num_validation=1)
    task = get_task(data)
    example = task.train_batch(0, 1, 0)
    out[str(length)] = {name: model_flops(dict(m), task.info, example)
                        for name, m in config.models.items()}
  return out


def plot(path, names, windows, models, rates, flops_by_length, lengths):
  plt = pyplot()
  fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
  xs = np.arange(len(names))
  for i, name in enumerate(names):
    values = models[name]["test_accuracy"]
    ax.plot([i] * len(values), values, "o", color="C0", alpha=0.5)
  ax.plot(xs, [np.mean(models[n]["test_accuracy"]) for n in names], "s-", color="C0",
          label="mean over seeds")
  ax.axhline(rates["majority"], ls=":", color="gray", label="majority class (silence)")
  ax.axhline(rates["chance"], ls="--", color="gray", label="chance")
  ax.set_xticks(xs, [f"window {w}" if w else "full" for w in windows])
  ax.set(ylabel="test frame accuracy (unheard voices)", ylim=(0, 1),
         title="frame accuracy against the window")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  for name, w in zip(names, windows):
    ys = [flops_by_length[str(n)][name] for n in lengths]
    if all(y is not None for y in ys):
      bx.plot(lengths, [y / n / 1e6 for y, n in zip(ys, lengths)], "o-",
              label=f"window {w}" if w else "full attention")
  bx.set(xscale="log", xlabel="frames per string", ylabel="forward MFLOPs per frame",
         title="compute per frame against the length")
  bx.grid(alpha=0.3)
  bx.legend(fontsize=8)
  save(fig, path, dpi=120)


def num(x) -> str:
  """A number with at least two significant digits (the report shows every measured one)."""
  if x is None:
    return "n/a"
  return "0" if x == 0 else (f"{x:.4f}" if abs(x) >= 0.01 else f"{x:.2e}")


def summary_row(name, r, rates, paired):
  diff = paired.get(name)
  minus_full = "-" if diff is None else (
      f"{num(diff['mean'] * 100)} ± {num((diff['ci95'] or 0) * 100)} (n={diff['n']}, one-sided "
      f"p = {protocol.format_p(diff['p_one_sided'])})")
  return (name, f"{r['window']} (all)" if r["window"] == 0 else r["window"],
          protocol.format_ci(r["test_accuracy"], ".4f"),
          protocol.format_ci(r["validation_accuracy"], ".4f"), minus_full,
          num(r["flops_per_example"] / 1e6) if r["flops_per_example"] else "n/a",
          f"{r['params']:,}", f"{num(rates['chance'])} / {num(rates['majority'])}")


def seed_rows(name, r, paired, seeds):
  diffs = (paired.get(name) or {}).get("differences") or [None] * len(r["test_accuracy"])
  return [(name, seeds[i], num(r["test_accuracy"][i]), num(r["validation_accuracy"][i]),
           r["best_step"][i], "-" if diffs[i] is None else num(diffs[i] * 100),
           num(r["train_examples_per_second"][i]), r["plateau"][i], num(r["gain_last"][i]))
          for i in range(len(r["test_accuracy"]))]


@register_reproduction("truncated_speech")
def run(tier, out_dir):
  from attn_research.data import get_task
  from attn_research.modes.comparison import run_dir
  from attn_research.modes.transfer import test_data
  from attn_research.workdir import read_metrics
  config = common.repro_config("truncated_speech", tier)
  seeds = protocol.seeds_for(tier)
  with config.unlocked():
    config.num_seeds = len(seeds)
  if tier == "smoke":
    with config.unlocked():
      for name in [n for n in config.models if n not in ("full_attention", "window_4")]:
        del config.models[name]
  runs = common.train_and_test(config, common.runs_dir(out_dir, tier))
  names = sorted(runs, key=lambda n: (window_of(config, n) == 0, window_of(config, n)))
  names = ["full_attention"] + [n for n in names if n != "full_attention"]
  windows = [window_of(config, n) for n in names]
  test_task = get_task(test_data(config.data, 0))
  targets = np.where(test_task.evaluation["target_mask"], test_task.evaluation["targets"], -1)
  rates = protocol.label_rates(targets, test_task.info.num_classes)
  models, curves = {}, {}
  for name in names:
    rs = runs[name]
    s0 = rs[0]["summary"]
    eval_rows = [read_metrics(run_dir(common.runs_dir(out_dir, tier) / name, r["seed"], len(rs)),
                              "eval") for r in rs]
    plateaus = [protocol.plateaued(rows, "accuracy") for rows in eval_rows]
    curves[name] = eval_rows
    models[name] = dict(
        window=window_of(config, name), params=s0["params"],
        flops_per_example=s0["flops_per_example"],
        test_accuracy=[r["test"]["accuracy"] for r in rs],
        validation_accuracy=[(r["summary"]["best_eval"] or r["summary"]["final_eval"])["accuracy"]
                             for r in rs],
        best_step=[r["test"]["step"] for r in rs],
        train_examples_per_second=[r["summary"]["train_examples_per_second"] or 0.0 for r in rs],
        plateau=[p["plateau"] for p in plateaus],
        gain_last=[p["gain_last"] for p in plateaus])
  full_by_seed = dict(zip([r["seed"] for r in runs["full_attention"]],
                          models["full_attention"]["test_accuracy"]))
  paired = {}
  for name in names[1:]:
    diffs = [r["test"]["accuracy"] - full_by_seed[r["seed"]] for r in runs[name]]
    paired[name] = protocol.paired_test(diffs)
  lengths = (config.data.max_frames, *[n for n in FLOPS_LENGTHS if n > config.data.max_frames])
  if tier == "smoke":
    lengths = (config.data.max_frames,)
  flops_by_length = flops_at_lengths(config, lengths)
  results = dict(models=models, paired=paired, rates=rates, flops_by_length=flops_by_length,
                 seeds=list(seeds), num_steps=config.train.num_steps,
                 max_frames=config.data.max_frames)
  label = protocol.check_verdict(verdict(results))
  results.update(verdict_label=label, criterion=CRITERION)
  plot(out_dir / "accuracy_and_compute.png", names, windows, models, rates, flops_by_length,
       lengths)
  plot_curves(out_dir / "validation_curves.png", names, curves)
  return make_report(tier, config, names, windows, models, paired, rates, flops_by_length,
                     lengths, results, label, test_task)


def plot_curves(path, names, curves):
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for i, name in enumerate(names):
    for j, rows in enumerate(curves[name]):
      ax.plot([r["step"] for r in rows], [r["accuracy"] for r in rows], "-", color=f"C{i}",
              alpha=0.7, label=name if j == 0 else None)
  ax.set(xlabel="step", ylabel="validation frame accuracy", title="validation voices, per seed")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  save(fig, path, dpi=120)


def observations(names, models, paired, flops_by_length, lengths) -> str:
  """What the tables show, in words computed from them: the spread over seeds, the
  plateau, and from which length each window is cheaper than full attention."""
  diffs = [d * 100 for n in names[1:] for d in paired[n]["differences"]]
  runs = [(n, p, g) for n in names for p, g in zip(models[n]["plateau"], models[n]["gain_last"])]
  still = [g for _, p, g in runs if p is False]
  cheaper = []
  for n in names[1:]:
    first = next((length for length in lengths
                  if (flops_by_length[str(length)][n] or float("inf"))
                  < (flops_by_length[str(length)]["full_attention"] or 0)), None)
    cheaper.append(f"{n} from {first:,} frames" if first else f"{n} at none of {list(lengths)}")
  full_test = models["full_attention"]["test_accuracy"]
  return (f"Reading the tables: full attention's test accuracy ranges over "
          f"{(max(full_test) - min(full_test)) * 100:.1f} points across seeds, and the per-seed "
          f"differences from it over {min(diffs):.1f} to {max(diffs):.1f} points, so with "
          f"{len(full_test)} seeds the intervals are several points wide. "
          f"{len(runs) - len(still)} of {len(runs)} runs had plateaued on validation (gain below "
          f"1 point in the last quarter of the evaluations)"
          + (f"; the others were still gaining up to {max(still) * 100:.1f} points" if still else "")
          + f". Forward FLOPs below full attention's: {'; '.join(cheaper)} (the local kernel "
          f"computes whole blocks of keys around each block of queries, which at short lengths "
          f"costs as much as the dense form).")


def make_report(tier, config, names, windows, models, paired, rates, flops_by_length,
                lengths, results, label, test_task):
  del tier, windows
  table = markdown_table(("model", "window (frames each side)", "test frame accuracy",
                          "best validation accuracy",
                          "minus full attention (points, mean ± 95 % CI)", "MFLOPs/example",
                          "parameters", "chance / majority"),
                         [summary_row(n, models[n], rates, paired) for n in names])
  per_seed = markdown_table(("model", "seed", "test accuracy", "best validation accuracy",
                             "chosen step", "minus full (points)", "train examples/s",
                             "plateaued", "validation gain in the last quarter"),
                            [row for n in names for row in seed_rows(n, models[n], paired,
                                                                    results["seeds"])])
  cost = markdown_table(("frames", *[f"{m} MFLOPs" for m in names]),
                        [(f"{n:,}", *[num(None if flops_by_length[str(n)][m] is None
                                          else flops_by_length[str(n)][m] / 1e6) for m in names])
                         for n in lengths])
  meta, d, full = test_task.meta, config.data, models["full_attention"]
  m = config.models["full_attention"]
  notes = observations(names, models, paired, flops_by_length, lengths)
  voices = {k: ", ".join(d.voices[i] for i in v) for k, v in split_voices(d).items()}
  best = max(names[1:], key=lambda n: paired[n]["mean"])
  parts = [f"{n} {num(paired[n]['mean'] * 100)} ± {num((paired[n]['ci95'] or 0) * 100)} points "
           f"at {models[n]['flops_per_example'] / full['flops_per_example']:.0%} of its FLOPs"
           for n in names[1:]]
  detail = (f"full attention {np.mean(full['test_accuracy']):.1%} test frame accuracy (majority "
            f"{rates['majority']:.1%}, chance {rates['chance']:.1%}); against it " + "; ".join(parts)
            + f" (best window: {best}; n = {len(results['seeds'])} seeds).")
  return Report(
      claim="Speech is a long sequence of frames and what one frame says is decided by the "
            "frames around it, so restricting self-attention to a window around each frame "
            "(truncated self-attention) costs little accuracy while its cost grows with the "
            "window instead of the length (the lecture's speech slide).",
      tables=[f"spoken_digit_strings: {d.min_digits}-{d.max_digits} digits per string; the "
              f"{len(meta['lengths'])} test strings (voices never heard) have "
              f"{int(meta['lengths'].min())}-{int(meta['lengths'].max())} frames (mean "
              f"{meta['lengths'].mean():.0f}), padded to {results['max_frames']}; "
              f"{results['num_steps']} steps of {config.train.batch_size} strings; seeds "
              f"{results['seeds']}. Accuracy over the test strings' {rates['examples']:,} "
              f"frames, 11 classes (majority: class {rates['majority_class']}, "
              f"{test_task.class_names[rates['majority_class']]}). Test voices: "
              f"{voices['test']}; validation voices: {voices['validation']}."
              f"\n\n{table}",
              f"Per seed (the checkpoint chosen on the validation voices, scored on the test "
              f"voices once; plateau: protocol.plateaued on the validation curve):\n\n{per_seed}",
              f"Forward FLOPs per example against the padded length (XLA's count of the "
              f"lowered forward; the windows run the block-banded local kernel):\n\n{cost}",
              notes],
      paper="The lecture states the idea without a number; truncated-attention speech "
            "recognisers (Yeh et al. 2019; Zhang et al. 2020, Transformer Transducer) report "
            "word error rates on LibriSpeech, which does not exist here. Zhang et al. find "
            "limited left and right context close to full attention's accuracy.",
      differences="Synthesized digits (eSpeak NG) joined by silent gaps instead of recorded, "
                  "coarticulated speech; frame classification (digit or silence) instead of "
                  f"transcription; a small encoder ({m.num_layers} layers, d_model {m.d_model}, "
                  f"{m.num_heads} heads, rotary positions) whose layers stack the window: "
                  f"with w frames per layer each frame sees {m.num_layers} x w frames on each "
                  "side. FLOPs are XLA's count of the forward "
                  "at the padded length; examples/s were measured on a CPU shared with other "
                  "jobs and are only indicative.",
      results=results, figures=["accuracy_and_compute.png", "validation_curves.png"],
      criterion=CRITERION, verdict=detail, verdict_label=label)
