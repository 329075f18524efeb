"""Fair-comparison reporting: FLOPs that count every loop iteration, FLOPs budgets, peak
memory in the summary, several seeds per model and their mean ± std in the report."""
import json
import re

import jax
import jax.numpy as jnp
import pytest

from attn_research.report.comparison import write_comparison
from attn_research.modes.comparison import apply_budget, model_run_config, run_comparison, run_dir
from attn_research.measure import unrolled_flops
from tests.conftest import make_config


def test_unrolled_flops_count_every_scan_iteration():
  w = jnp.ones((16, 16))

  def looped(x):
    return jax.lax.scan(lambda c, _: (c @ w, None), x, length=8)[0]

  one_matmul = unrolled_flops(lambda x: x @ w, jnp.ones((16, 16)))
  assert one_matmul == 2 * 16**3
  assert unrolled_flops(looped, jnp.ones((16, 16))) == 8 * one_matmul
  # A while loop's trip count is unknown: no number rather than an undercount.
  assert unrolled_flops(lambda x: jax.lax.while_loop(lambda c: c.sum() < 1e6, lambda c: c @ w,
                                                     x), jnp.ones((16, 16))) is None


def test_flops_budget_lands_within_tolerance_for_two_targets(capsys):
  widths = {}
  for target in (1_000_000, 3_000_000):
    config = make_config("experiments/compare.py:smoke", budget__flops=target)
    apply_budget(config)
    table = capsys.readouterr().out.split("FLOPs per example:")[1]
    rows = re.findall(r"(\w+)\s+[\d,]+\s+\(([-+][\d.]+)% of", table)
    shares = {name: float(pct) for name, pct in rows}
    assert set(shares) == {"cnn", "rnn", "transformer"}
    assert all(abs(pct) <= 5.0 for pct in shares.values()), (target, shares)
    widths[target] = {name: m.d_model for name, m in config.models.items()}
  # The solved widths were written into the config (and grow with the budget).
  assert all(16 < widths[1_000_000][n] < widths[3_000_000][n] for n in widths[1_000_000])


def test_params_and_flops_budgets_together_are_refused():
  config = make_config("experiments/compare.py:smoke", budget__params=5000,
                       budget__flops=1_000_000)
  with pytest.raises(ValueError, match=r"budget.params=5,000 and budget.flops=1,000,000 are "
                                       r"both set.*one free width"):
    apply_budget(config)


def test_two_seeds_two_run_dirs_peak_memory_and_flops_budget_end_to_end(tmp_path):
  config = make_config("experiments/compare.py:smoke", num_seeds=2, budget__flops=500_000,
                       train__num_steps=2, train__eval_every=2, train__checkpoint_every=2)
  with config.unlocked():  # one model keeps this test cheap
    for name in ("rnn", "transformer"):
      del config.models[name]
  summaries, (table, _) = run_comparison(config, tmp_path, progress=False)
  assert set(summaries) == {("cnn", 0), ("cnn", 1)}
  for seed in (0, 1):
    run = tmp_path / "cnn" / f"seed_{seed}"
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads((run / "config.json").read_text())["seed"] == seed
    assert summary["train_step_peak_bytes"] > 0
    # The budget solved from an abstract model matches what the trained run measured.
    assert abs(summary["flops_per_example"] / 500_000 - 1) <= 0.05
  assert "±" in table and "(n=2)" in table
  assert (tmp_path / "comparison.png").stat().st_size > 0


def _fake_run(run, *, accuracy, examples_per_s, wall, flops, peak, seed=0, mfu=None):
  run.mkdir(parents=True)
  (run / "config.json").write_text(json.dumps({"seed": seed}))
  (run / "summary.json").write_text(json.dumps({
      "task": "fake", "step": 10, "params": 1234, "flops_per_example": flops,
      "train_step_peak_bytes": peak, "train_examples_per_second": examples_per_s,
      "wall_time_s": wall, "final_eval": {"accuracy": accuracy, "loss": 1.0},
      "device": {"kind": "cpu", "count": 1},
      **({} if mfu is None else {"mfu": mfu})}))
  rows = [{"step": s, "split": split, "loss": 1.0 / s, "accuracy": accuracy}
          for s in (5, 10) for split in ("train", "eval")]
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_aggregates_seeds_to_the_exact_mean_and_std(tmp_path):
  runs = {"a": [], "b": tmp_path / "b"}
  for seed, (acc, speed, wall) in enumerate([(0.80, 100.0, 10.0), (0.90, 200.0, 20.0),
                                             (0.85, 600.0, 60.0)]):
    runs["a"].append(tmp_path / "a" / f"seed_{seed}")
    _fake_run(runs["a"][-1], accuracy=acc, examples_per_s=speed, wall=wall, flops=2.5e6,
              peak=3 * 2**20, seed=seed, mfu=(0.01, 0.02, 0.03)[seed])
  _fake_run(runs["b"], accuracy=0.5, examples_per_s=50.0, wall=5.0, flops=None, peak=None)
  write_comparison(tmp_path, runs)
  md = (tmp_path / "comparison.md").read_text()
  # std over 0.80, 0.90, 0.85 with n - 1: sqrt(((-0.05)^2 + 0.05^2 + 0) / 2) = 0.05.
  # MFU: mean over the seeds that recorded one (b's summary predates it: n/a).
  assert "| a | 1,234 | 2.50 | 3.0 | 300 | 2.00 | 0.8500 ± 0.0500 (n=3) | 30.0 |" in md
  assert "| b | 1,234 | n/a | n/a | 50 | n/a | 0.5000 (n=1) | 5.0 |" in md
  assert "seeds 0, 1, 2" in md
  assert (tmp_path / "comparison.png").exists()


def test_run_dirs_keep_single_seed_workdirs(tmp_path):
  legacy = tmp_path / "cnn"  # a run made before seeds: WORKDIR/<model>/ of seed 0
  legacy.mkdir()
  (legacy / "config.json").write_text(json.dumps({"seed": 0, "budget": {"params": 0}}))
  assert run_dir(legacy, 0, 1) == legacy
  assert run_dir(legacy, 0, 2) == legacy  # reused for its own seed, never moved
  assert run_dir(legacy, 1, 2) == legacy / "seed_1"
  fresh = tmp_path / "rnn"
  assert run_dir(fresh, 0, 1) == fresh and run_dir(fresh, 3, 2) == fresh / "seed_3"
  (fresh / "seed_3").mkdir(parents=True)
  assert run_dir(fresh, 3, 1) == fresh / "seed_3"  # back to one seed: found again
  config = make_config("experiments/compare.py:smoke")
  assert "budget" not in model_run_config(config, "cnn", 1)  # a comparison setting
  kept = model_run_config(config, "cnn", 0, stored={"budget": {"params": 0}})
  assert kept.budget.to_dict() == {"params": 0} and kept.seed == 0
  assert model_run_config(config, "cnn", 5).seed == 5
