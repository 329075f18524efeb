"""Image families (vit, cnn2d, sagan_cnn): the grid read back from either digits view,
shapes, hand-counted parameters, budgets, SAGAN's identity start, bad settings."""
import dataclasses
import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task, task_defaults
from attn_research.data.images import image_to_vectors
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.models import get_model, model_defaults
from attn_research.models.budget import param_count, solve_width, width_step
from attn_research.models.image_grid import vectors_to_grid
from attn_research.models.sagan import FeatureMapAttention
from attn_research.models.vit import sinusoidal_2d

TINY = {
    "vit": dict(d_model=8, num_heads=2, num_layers=1, mlp_ratio=2),
    "cnn2d": dict(d_model=8, norm_groups=2),
    "sagan_cnn": dict(d_model=8, norm_groups=2),
}


def tiny(name, **settings):
  return dict(model_defaults(name), **dict(TINY[name], **settings))


@functools.partial(jax.jit, static_argnums=(0, 1))
def both_views(graph_pixels, graph_patches, state, pixels, patches):
  """Logits of one set of parameters read as a model of each view's task."""
  return (nnx.merge(graph_pixels, state)(pixels, None),
          nnx.merge(graph_patches, state)(patches, None))


@pytest.fixture(scope="module")
def views():
  """The same two training images as 64 pixel vectors and as 16 2x2-patch vectors."""
  out = {}
  for view in ("pixels", "patches"):
    task = get_task(dict(task_defaults("digits"), view=view))
    out[view] = (task.info, task.train_batch(0, 2, seed=0))
  return out


def test_grid_read_back_equals_the_image():
  rng = np.random.default_rng(0)
  images_BHWC = rng.normal(size=(2, 8, 12, 3)).astype(np.float32)
  for p in (1, 2, 4):
    # tfds's layout: each channel's patches, concatenated channel-major
    vectors = np.concatenate([image_to_vectors(images_BHWC[..., c], p) for c in range(3)], -1)
    np.testing.assert_array_equal(np.asarray(vectors_to_grid(vectors, (8, 12, 3), p)),
                                  images_BHWC)


def test_both_digits_views_give_the_same_grid(views):
  (pix_info, pix), (pat_info, pat) = views["pixels"], views["patches"]
  assert pix_info.image_shape == pat_info.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(pix["targets"], pat["targets"])
  grid_pix = np.asarray(vectors_to_grid(pix["inputs"], (8, 8, 1), 1))
  grid_pat = np.asarray(vectors_to_grid(pat["inputs"], (8, 8, 1), 2))
  np.testing.assert_array_equal(grid_pix, grid_pat)
  assert grid_pix.std() > 0.1  # real images, not zeros
  # patch 1 (row 0, columns 2-3) holds pixels [0, 2], [0, 3], [1, 2], [1, 3]
  np.testing.assert_array_equal(pat["inputs"][:, 1], grid_pix[:, 0:2, 2:4, 0].reshape(2, 4))


def filled(abstract_model):
  """(graph, state) with every parameter drawn by numpy from a seed made of its path, so
  two families share the values of the parameters they share. (Compiling the models'
  own initialisers costs a minute on a cold cache; the values do not matter here.)"""
  graph, params, rest = nnx.split(abstract_model, nnx.Param, ...)

  def draw(path, x):
    rng = np.random.default_rng(zlib.crc32(jax.tree_util.keystr(path).encode()))
    return jnp.asarray(rng.normal(0.0, 0.5, x.shape), x.dtype)

  def rng_state(x):  # dropout's key and counter (unused at eval)
    is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.random.key(0) if is_key else jnp.zeros(x.shape, x.dtype)

  model = nnx.merge(graph, jax.tree_util.tree_map_with_path(draw, params),
                    jax.tree.map(rng_state, rest))
  return nnx.split(model)


@pytest.fixture(scope="module")
def models(views):
  """Per family: (graph for the pixels task, graph for the patches task, parameters)."""
  out = {}
  for name in sorted(TINY):
    graph_pix, _ = nnx.split(nnx.eval_shape(lambda: get_model(tiny(name), views["pixels"][0])))  # noqa: B023
    graph_pat, state = filled(nnx.eval_shape(lambda: get_model(tiny(name),  # noqa: B023
                                                               views["patches"][0])))
    out[name] = (graph_pix, graph_pat, state)
  return out


def logits(model, views, state=None):
  graph_pix, graph_pat, default_state = model
  state = default_state if state is None else state
  return [np.asarray(o) for o in both_views(graph_pix, graph_pat, state,
                                            views["pixels"][1]["inputs"],
                                            views["patches"][1]["inputs"])]


@pytest.mark.parametrize("name", sorted(TINY))
def test_logits_are_finite_and_agree_across_views(name, views, models):
  out_pix, out_pat = logits(models[name], views)
  for out in (out_pix, out_pat):
    assert out.shape == (2, 10) and np.isfinite(out).all()
  # the model sees the same image whichever view it is given
  np.testing.assert_allclose(out_pix, out_pat, rtol=1e-5, atol=1e-5)
  assert np.abs(out_pix[0] - out_pix[1]).max() > 1e-4


def test_vit_patch_size_sets_the_sequence_length(views):
  info, batch = views["patches"]
  for p, n in ((1, 64), (2, 16), (4, 4), (8, 1)):
    shape = jax.eval_shape(lambda x: get_model(tiny("vit", patch_size=p), info).embed_patches(x),  # noqa: B023
                           batch["inputs"]).shape
    assert shape == (2, n, 8), p


def test_sinusoidal_2d_encodes_row_then_column():
  pe = np.asarray(sinusoidal_2d(3, 4, 8))
  rows, cols = np.asarray(sinusoidal_encoding(jnp.arange(3), 4)), np.asarray(
      sinusoidal_encoding(jnp.arange(4), 4))
  assert pe.shape == (12, 8)
  np.testing.assert_allclose(pe[1 * 4 + 2], np.concatenate([rows[1], cols[2]]))
  np.testing.assert_allclose(pe[2 * 4 + 0], np.concatenate([rows[2], cols[0]]))


def test_parameter_counts_match_a_hand_count(views):
  info = views["patches"][0]
  d, C, K = 8, 1, 10
  # ViT, patch 2 -> 16 patches of 4 numbers; 1 block, mlp_ratio 2, learned positions, cls
  block = 2 * 2 * d + 4 * (d * d + d) + (d * 2 * d + 2 * d) + (2 * d * d + d)
  vit = (C * 4 * d + d) + 16 * d + d + block + (2 * d + d * K + K)
  assert param_count(tiny("vit"), info) == vit == 882
  # ResNet: stem 3x3 (no bias) + GN; stage 0: block d->d; stage 1: block d->2d, stride 2,
  # with a 1x1 projection + GN; GN has a scale and a bias per channel; linear head
  gn = lambda c: 2 * c  # noqa: E731
  stem = 9 * C * d + gn(d)
  stage0 = 2 * (9 * d * d + gn(d))
  stage1 = 9 * d * 2 * d + gn(2 * d) + 9 * 2 * d * 2 * d + gn(2 * d) + d * 2 * d + gn(2 * d)
  cnn = stem + stage0 + stage1 + (2 * d * K + K)
  assert param_count(tiny("cnn2d"), info) == cnn == 5122
  # SAGAN block after stage 0 (C = 8): f, g 1x1 to 8 // 8 = 1 channel, h 1x1 to 8, gamma
  attention = 2 * (d * 1 + 1) + (d * d + d) + 1
  assert param_count(tiny("sagan_cnn"), info) == cnn + attention == 5213


@pytest.mark.parametrize("name,settings", [("vit", dict(num_heads=2)), ("cnn2d", {}),
                                           ("sagan_cnn", {})])
def test_budget_solver_lands_within_5_percent(name, settings, views):
  info = views["patches"][0]
  cfg = dict(model_defaults(name), **settings)
  width, n = solve_width(cfg, info, 30_000, max_width=64)
  assert abs(n / 30_000 - 1) <= 0.05, (name, width, n)
  assert width % width_step(cfg) == 0


def test_width_step_includes_the_family_multiple():
  assert width_step(dict(model_defaults("vit"), num_heads=2, position="sinusoidal2d")) == 4
  assert width_step(dict(model_defaults("vit"), num_heads=2, position="learned")) == 2
  assert width_step(dict(model_defaults("cnn2d"), norm_groups=3)) == 6


def test_sagan_starts_as_the_cnn_and_its_block_is_softmax_attention(views, models):
  assert float(FeatureMapAttention(8, 8, "auto", rngs=nnx.Rngs(0)).gamma[...]) == 0.0
  _, graph_pat, state = models["sagan_cnn"]
  sagan = nnx.merge(graph_pat, state)  # a copy: its gamma is changed below
  sagan.attention.gamma[...] = jnp.float32(0.0)
  # same parameters as the cnn2d model (filled() draws by path), plus the block
  out_cnn = logits(models["cnn2d"], views)[1]
  out_sagan = logits(models["sagan_cnn"], views, nnx.state(sagan))[1]
  np.testing.assert_allclose(out_sagan, out_cnn, rtol=1e-6, atol=1e-6)
  # the oracle: y = x + gamma softmax(g(x) f(x)^T) h(x), written out in numpy
  block = sagan.attention
  block.gamma[...] = jnp.float32(0.7)
  x = np.random.default_rng(1).normal(size=(2, 4, 4, 8)).astype(np.float32)
  f, g, h = (np.asarray(conv(x)).reshape(2, 16, -1) for conv in (block.f, block.g, block.h))
  s = np.einsum("bjc,bic->bji", g, f)
  beta = np.exp(s - s.max(-1, keepdims=True))
  beta /= beta.sum(-1, keepdims=True)
  expected = x + 0.7 * np.einsum("bji,bic->bjc", beta, h).reshape(x.shape)
  np.testing.assert_allclose(np.asarray(block(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-5)
  out_sagan = logits(models["sagan_cnn"], views, nnx.state(sagan))[1]
  assert np.abs(out_sagan - out_cnn).max() > 1e-5


@pytest.mark.parametrize("name,settings,message", [
    ("vit", dict(patch_size=3), r"patch_size=3 must divide the image size 8x8; valid: "
                                r"\[1, 2, 4, 8\]"),
    ("vit", dict(d_model=6, num_heads=2, position="sinusoidal2d"), "divisible by 4"),
    ("vit", dict(position="rotary"), "model.position='rotary' is not valid"),
    ("vit", dict(num_heads=3), "num_heads=3 must divide model.d_model=8"),
    ("cnn2d", dict(norm_groups=3), "d_model=8 must be a positive multiple of model.norm_groups=3"),
    ("cnn2d", dict(stage_stride=3), "stage_stride=3 must be 1"),
    ("cnn2d", dict(num_stages=0), "num_stages=0 must be an int >= 1"),
    ("sagan_cnn", dict(attention_stage=2), r"attention_stage=2 must be a stage index in \[0, 1\]"),
    ("sagan_cnn", dict(attention_impl="local"), "attention_impl='local'"),
    ("sagan_cnn", dict(attention_reduction=0), "attention_reduction=0 must be an int >= 1"),
])
def test_bad_settings_raise(name, settings, message, views):
  with pytest.raises(ValueError, match=message):
    get_model(tiny(name, **settings), views["patches"][0])


@pytest.mark.parametrize("name", sorted(TINY))
def test_tasks_without_an_image_or_one_label_are_refused(name, views):
  info = views["patches"][0]
  signal = dataclasses.replace(info, input_kind="frames", input_size=1, max_length=40,
                               image_shape=None)  # what mnist1d's TaskInfo looks like
  with pytest.raises(ValueError, match="input kind 'frames'.* has no image shape"):
    get_model(tiny(name), signal)
  with pytest.raises(ValueError, match="this task's output kind is 'per_vector'"):
    get_model(tiny(name), dataclasses.replace(info, output_kind="per_vector"))
  with pytest.raises(ValueError, match="are not the p x p patches"):
    get_model(tiny(name), dataclasses.replace(info, input_size=3))
