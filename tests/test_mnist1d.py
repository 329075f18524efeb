"""MNIST-1D, generated offline: the paper's split by default, one eval set for every
train_size, nested training sets, cached chunks, the global RNG left alone."""
import sys

# A hard dependency (setup.py install_requires): without it these tests fail, not skip.
import mnist1d  # noqa: F401
import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.data import mnist1d as task_module


@pytest.fixture(scope="module")
def tasks():
  """Tasks of 500 and 4,500 training signals (chunks 0 and 1), in the session's data
  directory (tests/conftest.py: fresh per session, shared with the smoke runs)."""
  small = get_task(dict(task_defaults("mnist1d"), train_size=500))
  big = get_task(dict(task_defaults("mnist1d"), train_size=4500))
  return {"small": small, "big": big}


def test_batches_follow_task_info(tasks):
  task = tasks["small"]
  info = task.info
  assert (info.input_kind, info.input_size, info.output_kind) == ("frames", 1, "per_sequence")
  assert (info.num_classes, info.max_length, info.train_size) == (10, 40, 500)
  batch = task.train_batch(0, 32, seed=0)
  assert batch["inputs"].shape == (32, 40, 1) and batch["inputs"].dtype == np.float32
  assert batch["mask"].shape == (32, 40) and batch["mask"].all()
  assert batch["targets"].dtype == np.int32 and set(batch["targets"]) <= set(range(10))
  assert np.isfinite(batch["inputs"]).all() and batch["inputs"].std() > 0.5


def test_eval_set_is_the_same_for_every_train_size(tasks):
  small, big = tasks["small"], tasks["big"]
  assert len(small.evaluation["targets"]) == 1000
  for key in ("inputs", "targets", "mask"):
    np.testing.assert_array_equal(small.evaluation[key], big.evaluation[key])
  batches = list(small.eval_batches(256))
  assert sum(b["target_mask"].sum() for b in batches) == 1000


def test_training_sets_are_nested_and_sized(tasks):
  small, big = tasks["small"], tasks["big"]
  assert len(big.train["targets"]) == big.info.train_size == 4500
  np.testing.assert_array_equal(small.train["inputs"], big.train["inputs"][:500])
  np.testing.assert_array_equal(small.train["targets"], big.train["targets"][:500])
  # No training signal is an eval signal.
  train_rows = {row.tobytes() for row in big.train["inputs"]}
  assert not train_rows & {row.tobytes() for row in big.evaluation["inputs"]}


def test_default_seed_gives_the_papers_split(tasks):
  """Chunk 0 with seed 42 is make_dataset with the package's default arguments:
  4,000 training signals (our first 4,000), 1,000 test signals (our eval set)."""
  import mnist1d.data
  state = np.random.get_state()
  reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
  np.random.set_state(state)
  big = tasks["big"]
  np.testing.assert_allclose(big.evaluation["inputs"][..., 0], reference["x_test"], atol=1e-6)
  np.testing.assert_array_equal(big.evaluation["targets"], reference["y_test"])
  np.testing.assert_allclose(big.train["inputs"][:4000, :, 0], reference["x"], atol=1e-6)
  assert not np.allclose(big.train["inputs"][4000:4010, :, 0], reference["x"][:10], atol=1e-3)


def test_class_balance_within_stated_bounds(tasks):
  small = np.bincount(tasks["small"].train["targets"], minlength=10) / 500
  big = np.bincount(tasks["big"].train["targets"], minlength=10) / 4500
  evaluation = np.bincount(tasks["big"].evaluation["targets"], minlength=10) / 1000
  assert 0.08 <= small.min() and small.max() <= 0.12  # docstring: 8.2 % to 12.0 %
  assert 0.09 <= big.min() and big.max() <= 0.11
  assert 0.085 <= evaluation.min() and evaluation.max() <= 0.11  # 89 to 106 of 1,000


def test_batches_are_a_pure_function_of_seed_and_step(tasks):
  task = tasks["small"]
  a, b = task.train_batch(9, 64, seed=1), task.train_batch(9, 64, seed=1)
  np.testing.assert_array_equal(a["inputs"], b["inputs"])
  assert not np.array_equal(a["inputs"], task.train_batch(9, 64, seed=2)["inputs"])
  assert not np.array_equal(a["inputs"], task.train_batch(10, 64, seed=1)["inputs"])


def test_chunks_are_cached(tasks, monkeypatch):
  def fail(seed):
    raise AssertionError(f"chunk {seed} regenerated instead of read from the cache")

  monkeypatch.setattr(task_module, "generate_chunk", fail)
  again = get_task(dict(task_defaults("mnist1d"), train_size=4500))
  np.testing.assert_array_equal(again.train["inputs"], tasks["big"].train["inputs"])
  assert task_module.chunk_seed(42, 0) == 42
  assert task_module.chunk_seed(42, 1) not in (42, 43, task_module.chunk_seed(43, 1))


def test_generation_leaves_the_global_generators_alone(monkeypatch):
  """make_dataset seeds numpy's and Python's global generators; generate_chunk puts
  their states back (checked with a stand-in make_dataset that only seeds and draws)."""
  import random

  import mnist1d.data

  def stand_in(args):
    mnist1d.utils.set_seed(args.seed)
    x = np.random.rand(args.num_samples, 40)
    y = np.arange(args.num_samples) % 10
    return {"x": x[:4], "x_test": x[4:], "y": y[:4], "y_test": y[4:]}

  monkeypatch.setattr(mnist1d.data, "make_dataset", stand_in)
  np.random.seed(7)
  random.seed(7)
  expected = (np.random.rand(), random.random())
  np.random.seed(7)
  random.seed(7)
  chunk = task_module.generate_chunk(123)
  assert (np.random.rand(), random.random()) == expected
  assert chunk["x"].shape == (5000, 40) and chunk["x"].dtype == np.float32
  np.testing.assert_array_equal(chunk["y"], np.arange(5000) % 10)  # train then test part


def test_bad_settings_and_missing_package_are_named(monkeypatch):
  for size in (499, 100_001):
    with pytest.raises(ValueError, match=rf"data.train_size={size} must be an int in \[500, 100000\]"):
      get_task(dict(task_defaults("mnist1d"), train_size=size))
  with pytest.raises(ValueError, match=r"data.seed=-1 must be in \[0, 2\*\*32\)"):
    get_task(dict(task_defaults("mnist1d"), seed=-1))
  monkeypatch.setitem(sys.modules, "mnist1d", None)  # import mnist1d now fails
  with pytest.raises(ImportError, match="pip install mnist1d"):
    task_module.generate_chunk(0)


def test_render_plots_the_signal(tasks, tmp_path):
  task = tasks["small"]
  path = task.render({k: v[0] for k, v in task.train.items()}, tmp_path / "render")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_patches_group_consecutive_samples():
  from tests.conftest import make_config
  whole = get_task(make_config("experiments/mnist1d.py:smoke").data)
  patched = get_task(make_config("experiments/mnist1d.py:smoke", data__patch=4).data)
  assert patched.info.max_length == 10 and patched.info.input_size == 4
  np.testing.assert_array_equal(patched.train["inputs"][:, 2], whole.train["inputs"][:, 8:12, 0])
  with pytest.raises(ValueError, match="data.patch=3"):
    get_task(make_config("experiments/mnist1d.py:smoke", data__patch=3).data)
