"""FLOATER positions (nn/positions/floater.py): the ODE's fixed point, continuity, any length,
causality, a model from a config, and refused settings.

Compiling dominates: everything runs under one jit per program (eager ops would each
compile apart), and the smoke model's parameter shapes serve three tests.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.models import get_model
from attn_research.nn.positions.floater import FloaterPosition
from conftest import make_config

D, N = 8, 2


def floater(settings):
  return nnx.jit(lambda: FloaterPosition(D, 6, 2, rngs=nnx.Rngs(0), num_layers=N,
                                         settings=settings))()


def encode(pos, positions):
  return np.asarray(nnx.jit(lambda p: p.encode(positions))(pos))


def build(config):
  task = get_task(config.data)
  return config, task, nnx.jit(lambda: get_model(config.model, task.info))()


@pytest.fixture(scope="module")
def smoke():
  """experiments/base.py:smoke (digits as 16 patch vectors) with FLOATER positions."""
  return build(make_config("experiments/base.py:smoke", model__position="floater"))


@pytest.fixture(scope="module")
def smoke_run(smoke):
  """One compiled program: the smoke model on two digits read as 4 x 16 patch vectors
  (each image four times in a row: 4 x the task's length), and its encodings at that
  length and at 6 positions."""
  _, task, model = smoke
  x_BTF = np.tile(task.train_batch(0, 2, 0)["inputs"], (1, 4, 1))
  T = x_BTF.shape[1]

  @nnx.jit
  def run(model, x_BTF):
    return (model(x_BTF, jnp.ones(x_BTF.shape[:2], bool)), model.position.layer_encodings(T),
            model.position.layer_encodings(6))

  return (task, *run(model, jnp.asarray(x_BTF)))


def test_zero_dynamics_keep_the_initial_encoding_at_every_position():
  pos = floater("solver=euler")  # init=sinusoidal: layer 1 adds the sinusoidal encoding
  pos.w2[...] = jnp.zeros_like(pos.w2[...])
  pos.b2[...] = jnp.zeros_like(pos.b2[...])
  p0_ND = np.asarray(jax.random.normal(jax.random.key(1), (N, D)))
  pos.p0_ND[...] = jnp.asarray(p0_ND)
  got_NTD = encode(pos, np.arange(6))
  # Layer 2 is the pure ODE encoding (init=zeros is that at every layer): its initial
  # value everywhere; layer 1 adds the sinusoidal warm start.
  np.testing.assert_allclose(got_NTD[1], np.broadcast_to(p0_ND[1], (6, D)), atol=1e-6)
  np.testing.assert_allclose(
      got_NTD[0], p0_ND[0] + np.asarray(sinusoidal_encoding(np.arange(6), D)), atol=1e-6)


def test_encodings_are_continuous_in_position_and_move_with_it():
  pos = floater("init=zeros,solver=euler")
  p_NTD = encode(pos, np.array([0.0, 1e-3, 1.0, 3.0, 3.001, 4.0]))  # pairs 1e-3 and 1 apart
  near = np.abs(p_NTD[:, [1, 4]] - p_NTD[:, [0, 3]]).max()
  far = np.abs(p_NTD[:, [2, 5]] - p_NTD[:, [0, 3]]).max()
  assert 0 < near < 1e-3 and far > 100 * near, (near, far)


def test_base_smoke_model_with_floater_is_finite(smoke_run):
  task, out, _, _ = smoke_run
  assert out.shape == (2, task.info.num_classes) and bool(jnp.all(jnp.isfinite(out)))


def test_there_is_no_maximum_length(smoke_run):
  # smoke_run's model ran on 4 x the task's length; no position has a limit.
  _, _, long_NTD, short_NTD = smoke_run
  # A position's encoding does not depend on how long the sequence is, and goes on.
  np.testing.assert_allclose(long_NTD[:, :6], short_NTD, atol=1e-5)
  assert float(jnp.abs(long_NTD[:, 6:] - long_NTD[:, 5:6]).min()) > 0


def test_causal_linear_attention_model_does_not_see_the_future(smoke):
  # The smoke model's shapes (its parameters compile from the cache), run decoder-only
  # with linear attention; the smoke model above runs softmax attention.
  config, task, _ = smoke
  info = dataclasses.replace(task.info, output_kind="sequence")
  model = nnx.jit(lambda: get_model(dict(config.model, attention="linear"), info))()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  mask = jnp.ones((1, 8), bool)

  def out_2(x_BTF):
    return nnx.merge(graphdef, params, rest)(x_BTF, mask)[0, 2].sum()

  x = jax.random.normal(jax.random.key(0), (1, 8, task.info.input_size))
  g_T = np.abs(np.asarray(jax.jit(jax.grad(out_2))(x)[0])).sum(-1)
  assert np.all(g_T[3:] == 0.0) and np.all(g_T[:3] > 0.0), g_T


@pytest.mark.parametrize("position,message", [
    ("floater:solver=rk99", "floater solver='rk99' is not valid; choose from"),
    ("floater:dt=0", "floater dt=0.0 must be a positive number"),
    ("floater:delta=-1", "floater delta=-1.0 must be a positive number"),
    ("floater:hidden=many", "hidden an int; got .*hidden='many'"),
    ("floater:init=ones", "floater init='ones' is not valid; choose from"),
    ("floater:speed=3", "floater setting 'speed=3' is not KEY=VALUE with KEY in"),
    ("rotary:floater", "'rotary' takes no settings"),
])
def test_bad_settings_are_named(position, message):
  config = make_config("experiments/base.py:smoke", model__position=position)
  with pytest.raises(ValueError, match=message):
    build(config)
