"""Tasks: the batch contract, determinism by (seed, step), the copy task's layout."""
import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.data.images import image_to_vectors
from attn_research.data.synthetic import make_copy_batch


def digits(**settings):
  return get_task(dict(task_defaults("digits"), **settings))


@pytest.mark.parametrize("view,length,features", [("pixels", 64, 1), ("patches", 16, 4)])
def test_digits_views(view, length, features):
  task = digits(view=view)
  assert (task.info.max_length, task.info.input_size) == (length, features)
  batch = task.train_batch(0, 5, seed=0)
  assert batch["inputs"].shape == (5, length, features) and batch["inputs"].dtype == np.float32
  assert batch["mask"].all() and batch["targets"].shape == (5,)
  assert 0.0 <= batch["inputs"].min() and batch["inputs"].max() <= 1.0
  assert task.info.train_size + sum(b["target_mask"].sum() for b in task.eval_batches(100)) == 1797


def test_patches_are_the_image_blocks():
  image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
  patches = image_to_vectors(image, 2)
  np.testing.assert_array_equal(patches[0, 0], [0, 1, 4, 5])
  np.testing.assert_array_equal(patches[0, 3], [10, 11, 14, 15])
  with pytest.raises(ValueError, match="patch_size=3 must divide the image size 4x4"):
    image_to_vectors(image, 3)


def test_training_stream_is_a_pure_function_of_seed_and_step():
  task = digits()
  a, b = task.train_batch(7, 32, seed=1), digits().train_batch(7, 32, seed=1)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a["inputs"], task.train_batch(7, 32, seed=2)["inputs"])


def test_each_epoch_visits_every_training_example_once():
  task = digits()
  n = task.info.train_size
  # Identify examples by their pixels; one epoch = n consecutive stream positions.
  batch = task.train_batch(0, n, seed=3)
  seen = {row.tobytes() for row in batch["inputs"]}
  every = {row.tobytes() for row in task.train["inputs"]}
  assert len(every) > 0.95 * n  # digits holds a few duplicate images
  assert seen == every


def test_eval_batches_are_padded_to_one_shape():
  task = digits(eval_fraction=0.1)
  batches = list(task.eval_batches(64))
  assert {b["inputs"].shape for b in batches} == {(64, 16, 4)}
  n_eval = round(0.1 * 1797)
  assert sum(b["target_mask"].sum() for b in batches) == n_eval
  assert not batches[-1]["target_mask"][n_eval % 64:].any()


def test_copy_task_follows_the_paper_layout():
  rng = np.random.default_rng(0)
  batch = make_copy_batch(rng, 50, min_symbols=32, max_symbols=63, num_symbols=10,
                          max_length=128)
  for inputs, targets, mask, target_mask in zip(batch["inputs"], batch["targets"],
                                                batch["mask"], batch["target_mask"]):
    full = np.concatenate([inputs[:1], targets])  # the whole token sequence
    n = (full[1:] == 0).argmax()  # the second separator sits at index n + 1
    x = full[1:n + 1]
    assert 32 <= n < 63 and full[0] == 0 and full[n + 1] == 0
    assert ((1 <= x) & (x <= 10)).all()
    np.testing.assert_array_equal(full[n + 2:2 * n + 2], x)  # `0 x 0 x`
    assert (full[2 * n + 2:] == 11).all()  # padding
    assert mask.sum() == 2 * n + 2
    scored = np.nonzero(target_mask)[0]
    np.testing.assert_array_equal(targets[scored], x)  # loss on the second copy only
  assert batch["inputs"].shape == (50, 128)


def test_copy_task_info_and_bad_settings():
  task = get_task(dict(task_defaults("copy")))
  assert (task.info.output_kind, task.info.input_size, task.info.max_length) == ("sequence", 12, 128)
  with pytest.raises(ValueError, match="max_length=20 is too short for data.max_symbols=63"):
    get_task(dict(task_defaults("copy"), max_length=20))


def test_unknown_task_and_setting_are_named():
  with pytest.raises(ValueError, match="data.name='mnist' is not registered; valid: .*digits"):
    get_task({"name": "mnist"})
  with pytest.raises(ValueError, match=r"data 'digits' does not use \['patch'\]"):
    get_task(dict(task_defaults("digits"), patch=2))
  with pytest.raises(ValueError, match="data.view='voxels' must be 'pixels' or 'patches'"):
    digits(view="voxels")


# Every task with held-out splits words a wrong data.eval_split the same way
# (data/base.check_eval_split); tfds's eval_split names a TFDS split instead.
HELD_OUT_SPLIT_TASKS = ["associative_recall_filler", "csbm", "digits", "fortunes", "karate",
                        "kjv", "kjv_books", "listops", "mnist1d", "spoken_digit_strings"]


def test_every_task_with_held_out_splits_is_listed_here():
  from attn_research.data.base import TASKS
  with_splits = {name for name in TASKS.names() if "eval_split" in task_defaults(name)}
  assert with_splits - {"tfds"} == set(HELD_OUT_SPLIT_TASKS)


@pytest.mark.parametrize("name", HELD_OUT_SPLIT_TASKS)
def test_a_wrong_eval_split_is_named_with_the_valid_ones(name):
  with pytest.raises(ValueError, match=r"data\.eval_split='dev' is not valid; choose from \("):
    get_task(dict(task_defaults(name), eval_split="dev"))
