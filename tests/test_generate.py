"""Autoregressive generation (models/generate.py, modules' decode_step): every generated step's
logits equal the full causal forward's at that position, greedy tokens equal those of
the recompute baseline, and bad requests fail before anything compiles."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import TaskInfo
from attn_research.models import generate as gen
from attn_research.models import get_model, model_defaults

V, MAX_LEN, B, T, N = 12, 16, 2, 5, 8
TOL = 1e-5


def _draw(path, x, rng):
  name = jax.tree_util.keystr(path)
  if "bias" in name or "scale" in name:  # LayerNorms and linear layers: as initialised
    value = np.full(x.shape, float("scale" in name))
  else:  # weights ~ 1/sqrt(d_model); embeddings and position tables 1
    value = (0.3 if "kernel" in name else 1.0) * rng.standard_normal(x.shape)
  return jnp.asarray(value, x.dtype)


def build(attention, position, layers=1, output_kind="sequence"):
  """A tiny Transformer whose weights numpy draws: no JAX initialiser runs (compiling
  them costs seconds), and position tables are far from their initial values (learned
  0.02, relative 0), so a wrong position shows in the logits."""
  cfg = dict(model_defaults("transformer"), d_model=16, num_layers=layers, num_heads=2,
             mlp_ratio=2, attention=attention, position=position)
  info = TaskInfo("tokens", V, output_kind, V, MAX_LEN)
  graphdef, params, rest = nnx.split(nnx.eval_shape(lambda: get_model(cfg, info)),
                                     nnx.Param, ...)
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map_with_path(lambda p, x: _draw(p, x, rng), params)
  rest = jax.tree.map(  # the dropout modules' random streams (dropout is off when decoding)
      lambda x: (jax.random.key(0) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                 else jnp.asarray(np.zeros(x.shape, x.dtype))), rest)
  return nnx.merge(graphdef, params, rest)


PROMPT = jnp.asarray(np.random.default_rng(0).integers(0, V, (B, T)), jnp.int32)
# name: (attention, position, layers). Every decodable position encoding and kernel; the
# two-layer models (one per decoding mode) are also checked against method="recompute".
CONFIGS = {
    "softmax-learned": ("softmax", "learned", 2), "linear-rotary": ("linear", "rotary", 2),
    "additive-sinusoidal": ("additive", "sinusoidal", 1), "softmax-alibi": ("softmax", "alibi", 1),
    "softmax-relative": ("softmax", "relative", 1)}
WITH_RECOMPUTE = ("softmax-learned", "linear-rotary")


@functools.partial(jax.jit, static_argnames=("graphdefs", "recompute"))
def _every_method(graphdefs, states, prompt_BT, recompute):
  """For each model: greedy tokens and logits of its own method (and of recompute where
  asked), and the full causal forward's logits over the tokens generated. One program
  for all: compiling dominates these tests' run time."""
  results = []
  for graphdef, state, with_recompute in zip(graphdefs, states, recompute):
    model = nnx.merge(graphdef, state)
    runs = {}
    for method in (gen.resolve_method(model, "auto"),) + (("recompute",) if with_recompute else ()):
      decoding = gen._prefill(model, prompt_BT, N, method)
      decoding, _, logits_BNV = gen._decode(model, decoding, N, True, 1.0, jax.random.key(0))
      runs[method] = (decoding.tokens_BL, logits_BNV)
    tokens_BL = runs[gen.resolve_method(model, "auto")][0]
    mask_BT = jnp.ones((B, T + N - 1), bool)
    # Logits of step i come from position T-1+i; the forward sees the tokens generated.
    runs["forward"] = model(tokens_BL[:, :-1], mask_BT, train=False)[:, T - 1:]
    results.append(runs)
  return results


@pytest.fixture(scope="module")
def decoded():
  models = {name: build(*cfg) for name, cfg in CONFIGS.items()}
  graphdefs, states = zip(*(nnx.split(m) for m in models.values()))
  recompute = tuple(name in WITH_RECOMPUTE for name in models)
  # XLA's backend optimisations off: compiling this program takes half the time, and
  # both sides of every comparison come from the same program.
  compiled = _every_method.lower(graphdefs, states, PROMPT, recompute).compile(
      compiler_options={"xla_backend_optimization_level": 0})
  return dict(zip(models, compiled(states, PROMPT)))


@pytest.mark.parametrize("name", CONFIGS)
def test_decoding_matches_forward_and_recompute(decoded, name):
  runs = decoded[name]
  method = "state" if name.startswith("linear") else "cache"
  tokens_BL, logits_BNV = runs[method]
  assert tokens_BL.shape == (B, T + N) and logits_BNV.shape == (B, N, V)
  np.testing.assert_array_equal(tokens_BL[:, :T], PROMPT)
  np.testing.assert_allclose(logits_BNV, runs["forward"], atol=TOL, rtol=0)
  if name in WITH_RECOMPUTE:
    np.testing.assert_array_equal(tokens_BL, runs["recompute"][0])
    np.testing.assert_allclose(runs["recompute"][1], runs["forward"], atol=TOL, rtol=0)
  np.testing.assert_array_equal(tokens_BL[:, T:], jnp.argmax(logits_BNV, -1))  # greedy
  assert len(set(np.asarray(tokens_BL[:, T:]).ravel().tolist())) > 1  # not one repeated token


def test_auto_picks_state_for_linear_and_cache_otherwise():
  assert [gen.resolve_method(build(a, "none"), "auto") for a in ("softmax", "additive", "linear")
          ] == ["cache", "cache", "state"]


def test_public_prefill_and_decode_in_pieces(decoded):
  model = build(*CONFIGS["linear-rotary"])
  decoding = gen.prefill(model, PROMPT, N)
  decoding, first, logits = gen.decode(model, decoding, N // 2)
  decoding, rest, _ = gen.decode(model, decoding, N // 2)
  expected_BL, expected_logits = decoded["linear-rotary"]["state"]
  np.testing.assert_array_equal(jnp.concatenate([first, rest], 1), expected_BL[:, T:])
  np.testing.assert_array_equal(decoding.tokens_BL, expected_BL)
  np.testing.assert_allclose(logits, expected_logits[:, :N // 2], atol=TOL, rtol=0)
  with pytest.raises(ValueError, match="num_steps"):
    gen.decode(model, decoding, 1)  # no room left


def test_sampling_uses_rng_and_compiles_once(decoded):
  model = build(*CONFIGS["linear-rotary"])  # as in the test above: prefill compiled once
  sample = functools.partial(gen.generate, model, num_new_tokens=N, temperature=1.0)
  a = sample(PROMPT, rng=jax.random.key(0))
  compiled = (gen._prefill_jit._cache_size(), gen._decode_jit._cache_size())
  again = sample(PROMPT, rng=jax.random.key(0))
  other = sample(PROMPT, rng=jax.random.key(1))
  shifted = sample((PROMPT + 1) % V, rng=jax.random.key(0))
  assert (gen._prefill_jit._cache_size(), gen._decode_jit._cache_size()) == compiled
  np.testing.assert_array_equal(a, again)
  assert not np.array_equal(a[:, T:], other[:, T:])
  assert not np.array_equal(a[:, T:], shifted[:, T:])
  assert int(a.min()) >= 0 and int(a.max()) < V
  greedy_BL = decoded["linear-rotary"]["state"][0]
  assert not np.array_equal(a[:, T:], greedy_BL[:, T:])


@pytest.fixture(scope="module")
def softmax_model():
  return build("softmax", "learned")


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="beam"), "method='beam'.*valid"),
    (dict(method="state"), "method='state' does not fit.*'cache'"),
    (dict(temperature=0.7), "pass rng"),
    (dict(temperature=-1.0), "temperature"),
    (dict(num_new_tokens=0), "num_new_tokens"),
    (dict(num_new_tokens=MAX_LEN), "learned positions cover 16"),
    (dict(prompt_BT=PROMPT + V), r"\[0, 12\)"),
    (dict(prompt_BT=PROMPT[0]), "prompt must be"),
    (dict(prompt_BT=PROMPT.astype(jnp.float32)), "integer tokens"),
])
def test_bad_requests_fail_before_compiling(softmax_model, kwargs, match):
  args = dict(prompt_BT=PROMPT, num_new_tokens=N) | kwargs
  before = (gen._prefill_jit._cache_size(), gen._decode_jit._cache_size())
  with pytest.raises(ValueError, match=match):
    gen.generate(softmax_model, **args)
  assert (gen._prefill_jit._cache_size(), gen._decode_jit._cache_size()) == before


class Unknown(nnx.Module):
  """Stands in for a kernel or position encoding that decoding does not know (performer,
  linformer, gat, floater are refused the same way)."""


def test_unsupported_models_are_refused():
  with pytest.raises(ValueError, match="causal.*'per_vector'"):
    gen.generate(build("softmax", "learned", output_kind="per_vector"), PROMPT, N)
  model = build("linear", "learned")
  with pytest.raises(ValueError, match="method='cache' does not fit.*'state'"):
    gen.generate(model, PROMPT, N, method="cache")
  attn = model.blocks[0].attn
  attn.window = (2, 0)
  with pytest.raises(ValueError, match="window"):
    gen.generate(model, PROMPT, N)
  attn.window, learned, attn.position = None, attn.position, Unknown()
  with pytest.raises(ValueError, match=r"'rotary', 'sinusoidal'\]; got Unknown"):
    gen.generate(model, PROMPT, N)
  attn.position, attn.kernel = learned, Unknown()
  with pytest.raises(ValueError, match=r"'linear', 'softmax'\]; got kernel Unknown"):
    gen.generate(model, PROMPT, N)
