"""The ViT data-size reproduction's analysis on synthetic numbers (lines in log10 N, slopes
over seeds, crossovers, the verdict), its run lengths, and MNIST-1D's validation split."""
import math

import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.reproduce import datasize_fit as fit
from attn_research.reproduce import vit2020_datasize as repro

SIZES = [1000, 4000, 16000, 32000]


def curves(intercept, slope, noise, seeds=3, rng=None):
  """{size: [per-seed accuracy]} on a line in log10 N, plus seeded noise."""
  rng = rng or np.random.default_rng(0)
  return {n: [intercept + slope * math.log10(n) + noise * rng.standard_normal()
              for _ in range(seeds)] for n in SIZES}


def test_fit_line_recovers_slope_per_decade():
  line = fit.fit_line(SIZES, [0.5 + 0.1 * math.log10(n) for n in SIZES])
  assert line["slope"] == pytest.approx(0.1) and line["intercept"] == pytest.approx(0.5)
  with pytest.raises(ValueError, match="distinct sizes"):
    fit.fit_line([1000, 1000], [0.1, 0.2])


def test_slope_difference_and_gaps_pair_seeds():
  rng = np.random.default_rng(1)
  vit, cnn = curves(-0.1, 0.2, 0.005, rng=rng), curves(0.5, 0.05, 0.005, rng=rng)
  d = fit.slope_difference(vit, cnn, SIZES)
  assert d["mean"] == pytest.approx(0.15, abs=0.02) and d["p_one_sided"] < 0.01 and d["n"] == 3
  # The mean line's slope is the mean of the per-seed slopes (least squares is linear).
  assert fit.mean_line(vit, SIZES)["slope"] == pytest.approx(np.mean(fit.seed_slopes(vit, SIZES)))
  gaps = fit.gap_tests(vit, cnn, SIZES)
  assert gaps[1000]["mean"] == pytest.approx(np.mean(vit[1000]) - np.mean(cnn[1000]))
  with pytest.raises(ValueError, match="same number of seeds"):
    fit.seed_slopes({1000: [0.1, 0.2], 4000: [0.3]}, [1000, 4000])


@pytest.mark.parametrize("vit, position, gains, leader, n", [
    (dict(intercept=-0.3, slope=0.2), "inside", True, None, 1e4),
    (dict(intercept=0.0, slope=0.1), "above", True, "cnn leads", 1e6),
    (dict(intercept=0.35, slope=0.0), "below", False, "cnn leads", 1e1),
    (dict(intercept=0.9, slope=0.0), "above", False, "vit leads", 1e12),
    (dict(intercept=0.4, slope=0.05), "parallel", False, None, None),
])
def test_crossover_positions(vit, position, gains, leader, n):
  """The CNN's line is 0.3 + 0.05 log10 N; the ViT's meets it at N = n."""
  c = fit.crossover(vit, dict(intercept=0.3, slope=0.05), SIZES)
  assert c["position"] == position and c["a_gains"] == gains
  sentence = fit.describe_crossover(c, "vit", "cnn", SIZES)
  if n is None:
    assert c["n"] is None and "never cross" in sentence
  else:
    assert c["n"] == pytest.approx(n, rel=1e-6) and c["log10_n"] == pytest.approx(math.log10(n))
  if leader:
    assert leader in sentence and "no crossover" in sentence
  if position == "inside":
    assert "crosses" in sentence and "vit is ahead above it" in sentence


def test_split_and_steps_follow_epochs_and_cap():
  assert repro.split_sizes(1000) == (800, 200)
  assert repro.split_sizes(32000) == (31000, 1000)
  small = repro.steps_for(1000, "tiny", "cnn", 100)
  assert not small["capped"] and small["steps"] % repro.SCHEDULE["tiny"]["evals"] == 0
  assert small["epochs"] == pytest.approx(repro.SCHEDULE["tiny"]["epochs"], rel=0.05)
  big = repro.steps_for(32000, "tiny", "cnn", 100)
  assert big["capped"] and big["steps"] == pytest.approx(big["cap"], rel=0.05)
  assert repro.steps_for(32000, "tiny", "vit_samples", 100)["cap"] < big["cap"]


def results_for(vit, cnn, plateau=True):
  acc = {"vit_patches": vit, "cnn": cnn}
  flags = {a: {n: [plateau] * 3 for n in SIZES} for a in acc}
  return repro.analyse(acc, flags, SIZES)


def test_verdict_follows_the_criterion():
  rng = np.random.default_rng(2)
  catching_up = (curves(-0.1, 0.2, 0.003, rng=rng), curves(0.5, 0.05, 0.003, rng=rng))
  a = results_for(*catching_up)
  assert a["cnn_lead_smallest"]["vit_patches"]["mean"] == pytest.approx(
      -a["gaps"]["vit_patches"][1000]["mean"])
  assert repro.verdict(a) == "supported"
  # Too short to judge: the same numbers without a plateau are inconclusive.
  assert repro.verdict(results_for(*catching_up, plateau=False)) == "inconclusive"
  # The ViT ahead at the smallest size: not supported.
  assert repro.verdict(results_for(curves(0.6, 0.05, 0.003, rng=rng),
                                   curves(0.3, 0.05, 0.003, rng=rng))) == "not supported"
  # The gap widening: not supported.
  assert repro.verdict(results_for(curves(0.3, 0.02, 0.003, rng=rng),
                                   curves(0.4, 0.1, 0.003, rng=rng))) == "not supported"
  # Noise far larger than the effect: inconclusive (or, by chance, a mean <= 0).
  noisy = repro.verdict(results_for(curves(0.3, 0.06, 0.2, rng=rng),
                                    curves(0.35, 0.05, 0.2, rng=rng)))
  assert noisy in ("inconclusive", "not supported")


def test_mnist1d_validation_is_carved_from_the_training_signals():
  base = dict(task_defaults("mnist1d"), train_size=1000)
  plain = get_task(base)
  carved = get_task(dict(base, validation_fraction=0.2))
  validation = get_task(dict(base, validation_fraction=0.2, eval_split="validation"))
  assert carved.info.train_size == 800 and len(validation.evaluation["targets"]) == 200
  np.testing.assert_array_equal(carved.train["inputs"], plain.train["inputs"][:800])
  np.testing.assert_array_equal(validation.evaluation["inputs"], plain.train["inputs"][800:])
  # The test split stays the fixed 1,000 whatever the validation share.
  np.testing.assert_array_equal(carved.evaluation["targets"], plain.evaluation["targets"])
  for bad, match in ((dict(validation_fraction=0.7), "validation_fraction"),
                     (dict(eval_split="dev"), "eval_split"),
                     (dict(eval_split="validation"), "validation_fraction > 0")):
    with pytest.raises(ValueError, match=match):
      get_task(dict(base, **bad))
