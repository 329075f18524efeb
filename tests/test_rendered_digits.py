"""The font-rendered digit set: seeded and cached, in [0, 1] with bright strokes on a dark
background, counters left open, both views the same images, bad settings refused."""
import numpy as np
import pytest

from attn_research.data import get_task
from attn_research.data.images import vectors_to_image
from attn_research.data.rendered_digits import glyph_template, rendered_arrays
from tests.conftest import make_config

SMALL = dict(num_train=300, num_eval=100)


def task(**settings):
  config = make_config("experiments/base.py:smoke", data__name="rendered_digits",
                       **{f"data__{k}": v for k, v in dict(SMALL, **settings).items()})
  return get_task(config.data), config


def test_glyphs_keep_their_counters():
  zero, eight = glyph_template("DejaVuSans", 0), glyph_template("DejaVuSerif-Bold", 8)
  n = zero.shape[0]
  # Through the middle row, a 0 is ink, hole, ink: the hole is not filled.
  row = zero[n // 2]
  ink = np.nonzero(row > 0.5)[0]
  assert len(ink) and row[(ink.min() + ink.max()) // 2] < 0.1, row
  column = eight[:, n // 2]
  assert (column > 0.5).sum() > 4 and (column < 0.1)[n // 4: 3 * n // 4].any()


@pytest.mark.parametrize("size", [8, 32])
def test_images_seeded_cached_and_in_range(size):
  t, config = task(image_size=size, view="pixels")
  assert t.info.image_shape == (size, size, 1) and t.info.max_length == size * size
  x = t.train["inputs"]
  assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
  images = x.reshape(-1, size, size)
  # Dark background, bright strokes: the border is darker than the middle.
  border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
  middle = images[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4]
  assert border.mean() < 0.5 * middle.mean()
  assert set(np.unique(t.train["targets"])) == set(range(10))
  again, _ = task(image_size=size, view="pixels")  # read back from the cache
  np.testing.assert_array_equal(again.train["inputs"], x)
  other, _ = task(image_size=size, view="pixels", seed=1)
  assert not np.array_equal(other.train["inputs"], x)
  # train and eval come from different streams
  assert not np.array_equal(t.evaluation["inputs"][:10], x[:10])


def test_views_hold_the_same_images():
  pixels, _ = task(image_size=16, view="pixels")
  patches, _ = task(image_size=16, view="patches", patch_size=4)
  assert patches.info.max_length == 16 and patches.info.input_size == 16
  a = vectors_to_image(pixels.train["inputs"][0], (16, 16, 1), 1)
  b = vectors_to_image(patches.train["inputs"][0], (16, 16, 1), 4)
  np.testing.assert_array_equal(a, b)


def test_cache_key_holds_every_drawing_setting():
  _, config = task(image_size=8)
  a = rendered_arrays(dict(config.data))
  b = rendered_arrays(dict(config.data, noise=0.0))
  assert not np.array_equal(a["train_images"], b["train_images"])


@pytest.mark.parametrize("setting, value, message", [
    ("image_size", 12, "data.image_size=12 must be one of"),
    ("fonts", "sans,comic", "unknown: \\['comic'\\]"),
    ("patch_size", 3, "data.patch_size=3 must divide data.image_size=16"),
    ("noise", 0.9, "data.noise=0.9"),
])
def test_bad_settings_are_refused(setting, value, message):
  with pytest.raises(ValueError, match=message):
    task(**dict(dict(image_size=16), **{setting: value}))
