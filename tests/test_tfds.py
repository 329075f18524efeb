"""tfds:<name> through tfds.testing.mock_data (random values, no TensorFlow, no network),
and the fast failure for an unprepared dataset."""
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attn_research.data import get_task, task_defaults
from attn_research.data.images import image_to_vectors, vectors_to_image
from attn_research.data.text import PAD_BYTE


@pytest.mark.parametrize("name,kind,length,size,classes", [
    ("mnist", "patches", 49, 16, 10), ("cifar10", "patches", 64, 48, 10),
    ("imdb_reviews", "tokens", 512, 257, 2)])
def test_mock_datasets_become_vector_sets(name, kind, length, size, classes, tmp_path):
  with tfds.testing.mock_data(num_examples=10):
    task = get_task(dict(task_defaults(f"tfds:{name}"), dir=str(tmp_path)))
  info = task.info
  assert (info.input_kind, info.max_length, info.input_size, info.num_classes) == (
      kind, length, size, classes)
  batch = task.train_batch(0, 4, seed=0)
  assert batch["inputs"].shape[:2] == (4, length) and batch["targets"].shape == (4,)
  assert batch["targets"].max() < classes
  if kind == "tokens":
    assert batch["inputs"].max() < size and (batch["inputs"][~batch["mask"]] == PAD_BYTE).all()
    example = {k: v[0] for k, v in batch.items()}
    assert task.render(example, tmp_path).startswith(f"label {int(example['targets'])}: ")
  else:
    assert 0.0 <= batch["inputs"].min() and batch["inputs"].max() <= 1.0


def test_colour_patches_round_trip():
  rng = np.random.default_rng(0)
  image = rng.random((8, 8, 3)).astype(np.float32)
  vectors = np.concatenate([image_to_vectors(image[None, ..., c], 4) for c in range(3)], -1)[0]
  np.testing.assert_array_equal(vectors_to_image(vectors, (8, 8, 3), 4), image)


def test_unprepared_dataset_fails_fast_with_instructions(tmp_path):
  start = time.perf_counter()
  with pytest.raises(ValueError) as err:
    get_task(dict(task_defaults("tfds:mnist"), dir=str(tmp_path)))
  assert time.perf_counter() - start < 5.0
  message = str(err.value)
  assert "'mnist' is not prepared in" in message and "never downloads" in message
  assert "tfds build mnist" in message and "digits" in message


def test_tfds_needs_a_dataset_name():
  with pytest.raises(ValueError, match="names no dataset; write tfds:<name>"):
    get_task(dict(task_defaults("tfds")))
