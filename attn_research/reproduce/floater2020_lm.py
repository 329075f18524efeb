"""FLOATER's length extrapolation in a character language model: the ALiBi paper's
protocol (train on windows of L characters, score held-out text in windows of L, 2L, 4L).

Liu et al. 2020 (FLOATER, arXiv 2003.09229) claim that positions modelled as a continuous
dynamical system generalise to longer sequences better than sinusoidal or learned
absolute encodings. floater2020 tests that on associative recall with filler; this
reproduction tests it where extrapolation is the standard question, a causal language
model (Press et al. 2022, ALiBi, measure perplexity at lengths beyond training). Config:
experiments/positions_lm.py; every encoding is trained over protocol.seeds_for(tier)
seeds, each run's checkpoint chosen on validation books and scored once on the test books
at every length (modes/extrapolation.train_and_test_lengths). The criterion below is
fixed before any run; verdict() applies it.
"""
from __future__ import annotations

import math

import numpy as np

from attn_research.config import load_config
from attn_research.reproduce import common, protocol
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.reproduce.floater2020 import (FLOATER, LEARNED, SINUSOIDAL, plot_by_length,
                                                 test_streams)
from attn_research.report.stats import summarize

ARGS = {"smoke": "smoke", "tiny": None, "full": "full"}
DECIDING = (FLOATER, SINUSOIDAL, LEARNED)
PLATEAU_TOLERANCE = 0.02  # relative gain of validation loss over the last quarter of evals
CRITERION = (
    "Claim: FLOATER's continuous positions extrapolate better than sinusoidal and learned "
    "absolute positions. Judged on a causal character language model of the King James "
    "Bible trained on windows of L characters: test loss per character (nats) on held-out "
    "books read in windows of 2L, paired over seeds (one-sided paired t-test of each "
    "baseline's loss minus FLOATER's). A comparison needs trained models: each of FLOATER, "
    "sinusoidal and learned must have a mean test loss at L below the unigram rate (the "
    "loss of predicting every character by its training-text frequency), and every one of "
    "their runs must have plateaued on validation loss (the best of the last quarter of "
    f"evaluations improved on the earlier best by less than {PLATEAU_TOLERANCE:.0%} of it); "
    "otherwise the verdict is 'inconclusive' (compute-limited at this tier). Supported if "
    "FLOATER's loss at 2L is below both sinusoidal's and learned's with p < 0.05 each. Not "
    "supported if FLOATER's mean loss at 2L is not below sinusoidal's or not below "
    "learned's. Inconclusive otherwise. ALiBi, the protocol's own method, is shown as the "
    "reference and does not decide.")


def verdict(loss_at_L: dict, loss_at_2L: dict, unigram: float,
            plateau: dict | None = None) -> tuple[str, dict]:
  """The criterion on per-seed test losses {encoding: [per seed]} at L and 2L (seeds in
  one order for every encoding), the unigram rate and {encoding: [plateaued per seed]}
  (None: unknown, counts as not plateaued): (label, {baseline: paired_test})."""
  tests = {b: protocol.paired_test([x - f for x, f in zip(loss_at_2L[b], loss_at_2L[FLOATER])])
           for b in (SINUSOIDAL, LEARNED) if b in loss_at_2L and FLOATER in loss_at_2L}
  if len(tests) < 2 or any(e not in loss_at_L for e in DECIDING):
    return "inconclusive", tests
  trained = all(summarize(loss_at_L[e]).mean < unigram for e in DECIDING)
  flat = all(p is True for e in DECIDING for p in (plateau or {}).get(e, [None]))
  if not (trained and flat):
    return "inconclusive", tests
  return protocol.all_paired_verdict(tests.values()), tests


def tier_config(tier: str):
  arg = ARGS[tier]
  return load_config(str(common.ROOT / "experiments" / "positions_lm.py")
                     + (f":{arg}" if arg else ""), [])


def reference_rates(config, factors) -> dict:
  """Per factor: the test windows' length, scored characters and unigram rate (nats per
  character when every character is predicted by its training-text frequency, add-one
  smoothed so that an unseen character costs a finite amount)."""
  streams = test_streams(config, factors)
  task = streams[factors[0]][0]  # every factor reads the same training text
  counts = np.bincount(task.train_ids, minlength=task.info.num_classes) + 1.0
  log_p = np.log(counts / counts.sum())
  out = {}
  for f, (task, batch) in streams.items():
    targets = batch["targets"][batch["target_mask"]]
    out[f] = dict(length=task.info.max_length, scored=int(targets.size),
                  unigram=float(-log_p[targets].mean()))
  return out


def per_run(r) -> dict:
  rows = r["eval_rows"]
  flat = protocol.plateaued(rows, "loss", higher_is_better=False, relative=True,
                            tolerance=PLATEAU_TOLERANCE)
  return dict(seed=r["seed"], loss={e["factor"]: e["loss"] for e in r["evals"]},
              accuracy={e["factor"]: e["accuracy"] for e in r["evals"]},
              best_step=r["evals"][0]["step"], params=r["summary"]["params"],
              plateau=flat["plateau"], gain_last=flat["gain_last"],
              final_val=rows[-1]["loss"] if rows else None,
              steps_per_second=r["summary"].get("steps_per_second"))


@register_reproduction("floater2020_lm")
def run(tier, out_dir):
  from attn_research.modes.extrapolation import train_and_test_lengths
  config = tier_config(tier)
  seeds = protocol.seeds_for(tier)
  factors = tuple(config.extrapolation.factors)
  raw = train_and_test_lengths(config, common.runs_dir(out_dir, tier), seeds)
  runs = {name: [per_run(r) for r in rs] for name, rs in raw.items()}
  rates = reference_rates(config, factors)
  loss = {n: {f: [r["loss"][f] for r in rs] for f in factors} for n, rs in runs.items()}
  acc = {n: {f: [r["accuracy"][f] for r in rs] for f in factors} for n, rs in runs.items()}
  unigram = rates[1]["unigram"]
  label, tests = verdict({n: v[1] for n, v in loss.items()},
                         {n: v[2] for n, v in loss.items() if 2 in v}, unigram,
                         {n: [r["plateau"] for r in rs] for n, rs in runs.items()})
  lengths = [rates[f]["length"] for f in factors]
  plot_by_length(out_dir / "extrapolation.png",
                 {n: [v[f] for f in factors] for n, v in loss.items()}, lengths,
                 {"unigram rate": [rates[f]["unigram"] for f in factors]},
                 ylabel="test loss (nats per character)",
                 title="character LM, trained at L, read in windows of L, 2L, 4L")

  def head(f):
    return f"{'' if f == 1 else f}L = {rates[f]['length']}"

  def ppl(values):
    m = summarize(values).mean
    return "n/a" if m is None else f"{math.exp(m):.2f}"

  loss_table = markdown_table(
      ["position"] + [f"loss at {head(f)}" for f in factors]
      + [f"perplexity at {head(f)}" for f in factors]
      + [f"accuracy at {head(f)}" for f in factors],
      [[n] + [protocol.format_ci(loss[n][f]) for f in factors]
       + [ppl(loss[n][f]) for f in factors]
       + [protocol.format_ci(acc[n][f]) for f in factors] for n in runs]
      + [["(reference: unigram rate)"] + [f"{rates[f]['unigram']:.3f}" for f in factors]
         + [f"{math.exp(rates[f]['unigram']):.2f}" for f in factors] + ["-"] * len(factors)])
  seed_table = markdown_table(
      ["position", "seeds"] + [f"loss at {head(f)}" for f in factors],
      [[n, ", ".join(str(r["seed"]) for r in runs[n])]
       + [", ".join(f"{v:.3f}" for v in loss[n][f]) for f in factors] for n in runs])
  ref_speed = summarize([r["steps_per_second"] for r in runs.get(LEARNED, [])]).mean

  def cost(rs):
    mine = summarize([r["steps_per_second"] for r in rs]).mean
    return "n/a" if not ref_speed or not mine else f"{ref_speed / mine:.2f}x"

  learn_table = markdown_table(
      ("position", "params", "best step (per seed)", "last validation loss (per seed)",
       f"plateau (last 25 % of evals gained < {PLATEAU_TOLERANCE:.0%})", "train steps/s",
       "time per step vs learned"),
      [(n, f"{rs[0]['params']:,}", ", ".join(str(r["best_step"]) for r in rs),
        ", ".join("n/a" if r["final_val"] is None else f"{r['final_val']:.3f}" for r in rs),
        ", ".join("n/a" if r["plateau"] is None else
                  f"{'yes' if r['plateau'] else 'no'} ({100 * r['gain_last']:.1f} %)" for r in rs),
        ", ".join("n/a" if r["steps_per_second"] is None else f"{r['steps_per_second']:.1f}"
                  for r in rs), cost(rs))
       for n, rs in runs.items()])
  test_table = markdown_table(
      ("baseline's loss at 2L minus FLOATER's", "mean ± 95 % CI", "n", "one-sided p",
       "per seed"),
      [(b, f"{t['mean']:+.3f} ± {t['ci95'] or 0:.3f}" if t["mean"] is not None else "n/a",
        t["n"], protocol.format_p(t["p_one_sided"]),
        ", ".join(f"{d:+.3f}" for d in t["differences"] if d is not None))
       for b, t in tests.items()])
  rising = [n for n, rs in runs.items() if not all(r["plateau"] for r in rs)]
  above_unigram = [n for n in loss if summarize(loss[n][1]).mean >= unigram]
  caveats = (f"Still improving at the end (validation loss fell by {PLATEAU_TOLERANCE:.0%} or "
             f"more over the last 25 % of evaluations on some seed): "
             f"{', '.join(rising) or 'none'}. At or above the unigram rate at L (not "
             f"trained): {', '.join(above_unigram) or 'none'}.")
  if all(e in loss and 2 in loss[e] for e in DECIDING):
    verdict_text = (
        f"{label}: test loss at 2L (nats per character) FLOATER "
        f"{protocol.format_ci(loss[FLOATER][2])}, sinusoidal "
        f"{protocol.format_ci(loss[SINUSOIDAL][2])}, learned "
        f"{protocol.format_ci(loss[LEARNED][2])} (at L: "
        + ", ".join(f"{n.split(':')[0]} {summarize(loss[n][1]).mean:.3f}" for n in DECIDING)
        + f"; unigram rate {unigram:.3f}); "
        + "; ".join(f"{b.split(':')[0]} minus FLOATER {t['mean']:+.3f}, p = "
                    f"{protocol.format_p(t['p_one_sided'])}" for b, t in tests.items())
        + (f"; the comparison needs plateaued runs, and still improving: "
           f"{', '.join(n for n in rising if n in DECIDING)}"
           if any(n in rising for n in DECIDING) else "") + ".")
  else:
    verdict_text = f"{label}: the smoke tier does not train FLOATER, sinusoidal and learned."
  tc, mc, dc = config.train, config.model, config.data
  return Report(
      claim="FLOATER's continuous dynamical model gives position encodings at any position "
            "and is claimed to generalise to longer sequences better than fixed or learned "
            "absolute encodings (Liu et al. 2020, arXiv 2003.09229); tested with the "
            "ALiBi paper's protocol (Press et al. 2022): a language model trained on "
            "windows of L tokens, its perplexity on windows of 2L and 4L.",
      tables=["Causal character language model of kjv (test characters scored at "
              + ", ".join(f"{head(f)}: {rates[f]['scored']:,}" for f in factors)
              + f", from the books {dc.eval_books}; checkpoint chosen on "
              f"{dc.validation_books}), trained on random windows of L = {dc.max_length} "
              f"characters ({tc.num_steps:,} steps of batch {tc.batch_size}, lr "
              f"{tc.learning_rate:g} {tc.schedule}; Transformer d_model {mc.d_model}, "
              f"{mc.num_layers} layers, {mc.num_heads} heads), scored once at every length "
              "with every position of a window counted; mean ± 95 % CI over seeds, "
              "perplexity = exp(mean loss). Reference: the unigram rate (no context).\n\n"
              + loss_table,
              "The same test losses per seed:\n\n" + seed_table,
              f"Training at L (validation loss every {tc.eval_every} steps):\n\n"
              + learn_table + "\n\n" + caveats,
              "The deciding comparison, paired over seeds:\n\n"
              + (test_table if tests else "(not run at this tier)")],
      paper="FLOATER reports BLEU and GLUE/SQuAD gains over sinusoidal and learned "
            "encodings, and better behaviour on longer test sentences; ALiBi (Press et al. "
            "2022) shows sinusoidal positions' perplexity rising quickly past the training "
            "length on WikiText-103 while ALiBi's keeps falling. Neither reports this "
            "corpus, so no number is put beside ours.",
      differences="A character-level model of the King James Bible (about 4 million "
                  "characters) instead of FLOATER's translation and GLUE tasks or ALiBi's "
                  "WikiText-103 and books; a small model trained from scratch "
                  f"(L = {dc.max_length} characters; ALiBi trains at 512-3,072 tokens); "
                  "non-overlapping windows (ALiBi's 'nonoverlapping' evaluation, not its "
                  "sliding window). Encodings at the scale a model can use them: tokens x "
                  "sqrt(d_model) for sinusoidal and FLOATER, the learned table at the "
                  "tokens' std (its rows past L are never trained, so they stay at their "
                  "initial values), ALiBi in its causal form. Our FLOATER shares one ODE "
                  "across layers with a learned start per layer, added to the sinusoidal "
                  "term at the first layer. No warm start from a trained sinusoidal model "
                  "at this tier (FLOATER's fine-tuning recipe is floater2020's full tier).",
      results=dict(train_length=rates[1]["length"], steps=tc.num_steps,
                   plateau_tolerance=PLATEAU_TOLERANCE,
                   loss={n: {str(f): v for f, v in a.items()} for n, a in loss.items()},
                   accuracy={n: {str(f): v for f, v in a.items()} for n, a in acc.items()},
                   references={str(f): r for f, r in rates.items()},
                   runs=runs, paired_tests=tests, verdict_label=label),
      figures=["extrapolation.png"], verdict=verdict_text, criterion=CRITERION,
      verdict_label=label)
