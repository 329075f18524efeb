"""The learned quadratic encoding (models/quadratic_attention.py) and the checks the
cordonnier2020 reproduction applies to its learned centres."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.models.quadratic_attention import QuadraticAttention, pixel_offsets
from attn_research.reproduce.cordonnier2020 import centre_checks, head_offsets, verdict_label


def test_a_head_attends_where_its_centre_points():
  """With a sharp bump centred one pixel to the right, every query copies its right
  neighbour's value (the construction's limit, from the layer's own parameters)."""
  layer = QuadraticAttention(4, 1, (3, 3), centre_init_std=0.0, alpha_init=50.0,
                             rngs=nnx.Rngs(0))
  layer.centre_H2[...] = jnp.array([[0.0, 1.0]])
  weights = np.asarray(jnp.exp(layer.bias()[0, 0]) / jnp.exp(layer.bias()[0, 0]).sum(-1,
                                                                                  keepdims=True))
  for q in range(9):
    row, col = divmod(q, 3)
    if col < 2:
      assert weights[q].argmax() == q + 1 and weights[q].max() > 0.99, (q, weights[q])
  assert pixel_offsets(2, 2)[0, 3].tolist() == [1.0, 1.0]


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="num_heads=9 must divide"):
    QuadraticAttention(32, 9, (3, 3), centre_init_std=0.1, alpha_init=1.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="alpha_init=0"):
    QuadraticAttention(9, 9, (3, 3), centre_init_std=0.1, alpha_init=0, rngs=nnx.Rngs(0))


def test_centre_checks_and_verdict():
  grid = centre_checks(head_offsets(3))                 # a convolution's taps
  assert grid["spread"] and grid["surround"] and grid["min_gap"] == pytest.approx(1.0)
  clumped = centre_checks(np.full((9, 2), 0.01) + np.arange(9)[:, None] * 0.01)
  assert not clumped["spread"] and not clumped["surround"]   # collinear: no hull
  one_side = centre_checks(head_offsets(3) + np.array([3.0, 0.0]))
  assert one_side["spread"] and not one_side["surround"]
  good = dict(spread=True, surround=True, accuracy=0.9, majority=0.11)
  bad = dict(good, surround=False)
  assert verdict_label(True, [good, good, good]) == "supported"
  assert verdict_label(True, [good, bad, good]) == "inconclusive"
  assert verdict_label(True, [bad, bad, bad]) == "not supported"
  assert verdict_label(False, [good, good, good]) == "not supported"
  assert verdict_label(True, [dict(good, accuracy=0.2)] * 3) == "inconclusive"
