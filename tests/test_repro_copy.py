"""The copy reproduction (katharopoulos2020_copy): its configs follow the paper's
optimiser and schedule, its test sequences are not its validation sequences, and its
verdict follows the criterion."""
import numpy as np
import pytest

from attn_research.data import get_task
from attn_research.objectives.optim import make_optimizer, make_schedule
from attn_research.reproduce import katharopoulos2020_copy as copy_repro
from tests.conftest import make_config

SPEC = "experiments/repro/katharopoulos2020_copy.py"


def test_full_tier_is_the_papers_schedule_and_setup():
  """RAdam 1e-3, weight decay 0.01, 1e-4 after 3,000 of 10,000 updates (the official
  code's 30 of 100 epochs of 100 updates), no warm-up, no clipping; the paper's model."""
  config = make_config(f"{SPEC}:full")
  tc = config.train
  assert (tc.optimizer, tc.weight_decay, tc.grad_clip, tc.warmup_steps) == ("radam", 0.01, 0, 0)
  assert (tc.num_steps, tc.batch_size) == (10000, 64)
  lr = make_schedule(tc)
  assert float(lr(0)) == pytest.approx(1e-3)
  assert float(lr(2999)) == pytest.approx(1e-3)
  assert float(lr(3001)) == pytest.approx(1e-4)
  assert float(lr(9999)) == pytest.approx(1e-4)
  d = config.data
  assert (d.min_symbols, d.max_symbols, d.num_symbols, d.max_length) == (32, 63, 10, 128)
  for name, m in config.models.items():
    assert (m.d_model, m.num_layers, m.num_heads, m.dropout) == (256, 4, 8, 0.1), name
  assert config.models.local.window == 32 and not config.models.linear.window


def test_tiny_tier_drops_the_rate_tenfold_halfway_with_radam():
  tc = make_config(f"{SPEC}:tiny").train
  lr = make_schedule(tc)
  half = tc.num_steps // 2
  assert float(lr(half - 1)) == pytest.approx(1e-3)
  assert float(lr(half + 1)) == pytest.approx(1e-4)
  tx, _ = make_optimizer(tc)  # the radam chain builds and updates
  params = {"w": np.ones(3, np.float32)}
  updates, _ = tx.update({"w": np.ones(3, np.float32)}, tx.init(params), params)
  assert np.all(np.asarray(updates["w"]) < 0)


def test_test_sequences_come_from_another_generator_seed():
  data = make_config(f"{SPEC}:tiny").data.to_dict()
  assert copy_repro.TEST_DATA_SEED != data["seed"]
  val = next(get_task(dict(data, num_eval=64)).eval_batches(64))
  test = next(get_task(dict(data, num_eval=64, seed=copy_repro.TEST_DATA_SEED)).eval_batches(64))
  assert not np.array_equal(val["inputs"], test["inputs"])
  # Same distribution: scored tokens are symbols 1..10 of the second copy in both.
  for batch in (val, test):
    scored = batch["targets"][batch["target_mask"]]
    assert scored.min() >= 1 and scored.max() <= data["num_symbols"]


@pytest.mark.parametrize("steps, want", [
    ({"softmax": [300, 400, 500], "linear": [600, 900, 1100]}, "supported"),
    ({"softmax": [300, 400, 500], "linear": [1000, 1300, 1700]}, "not supported"),  # > 3x
    ({"softmax": [300, 400, 500], "linear": [None, None, 1100]}, "not supported"),
    ({"softmax": [300, 400, 500], "linear": [None, 900, 1100]}, "inconclusive"),
    ({"softmax": [None, None, 500], "linear": [None, None, None]}, "inconclusive"),
    ({"linear": [600, 900, 1100]}, "inconclusive"),
])
def test_verdict_follows_the_criterion(steps, want):
  assert copy_repro.verdict(steps) == want


def test_mean_ratio_is_paired_by_seed():
  assert copy_repro.mean_ratio([100, 200], [300, 200]) == pytest.approx(2.0)
  assert copy_repro.mean_ratio([100, None], [300, 200]) is None
