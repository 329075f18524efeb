"""Efficient attention kernels: Performer / FAVOR+ (kernels/performer.py), Linformer
(kernels/linformer.py), GAT-style graph scores (kernels/graph.py), and their modules.

Performer: its random features are unbiased for the softmax kernel and its attention
converges to softmax attention as the features grow; its causal forms agree and are causal
by gradients; padded keys are ignored. Linformer: with k = n and E = F = I it is softmax
attention; with ragged lengths and padding it matches a numpy formula; it refuses causal
and too-long inputs. GAT: a hand-written loop over nodes; a node ignores non-neighbours.
Each name builds a tiny model through the config path and runs with finite outputs.

Shapes are tiny, lengths are not multiples of chunk sizes, and jitted entry points are
shared so identical calls compile once.
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_config
from flax import nnx

from attn_research.data import TaskInfo
from attn_research.kernels import dot_product_attention, linear_attention
from attn_research.kernels.graph import gat_attention
from attn_research.kernels.linformer import linformer_attention
from attn_research.kernels.performer import orthogonal_gaussian, performer_attention
from attn_research.models import count_params, get_model

perf = jax.jit(performer_attention, static_argnames=("causal", "impl", "chunk"))
linf = jax.jit(linformer_attention, static_argnames=("causal", "impl", "return_weights"))
gat = jax.jit(gat_attention, static_argnames=("causal", "window", "return_weights"))
dpa = jax.jit(dot_product_attention, static_argnames=("impl",))


@functools.cache
def projections():
  """Three independent [2048, 8] FAVOR+ projections in one compile (on first use, not at
  collection); each holds 256 orthogonal blocks of 8 rows, so its first m rows (m a
  multiple of 8, or a block cut short) are an m-feature draw for head dim 8."""
  return np.asarray(jax.jit(jax.vmap(lambda key: orthogonal_gaussian(key, 2048, 8)))(
      jax.random.split(jax.random.key(0), 3)))


@pytest.fixture(autouse=True)
def full_float32_matmuls():
  """Forms are compared at 1e-5: no TF32/bfloat16 matmul rounding on accelerators."""
  with jax.default_matmul_precision("float32"):
    yield


def random_qkv(seed, B, T, H, D, scale=1.0):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(s * rng.standard_normal((B, T, H, D)), jnp.float32)
               for s in (scale, scale, 1.0))


def close(got, want, tol, what=""):
  np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                             atol=tol, rtol=0, err_msg=what)


VALID = np.array([[True] * 11, [True] * 7 + [False] * 4])  # B = 2, T = 11, 4 padded keys


# -------------------------------------------------------------------------- Performer

def test_random_features_are_orthogonal_blocks_and_unbiased():
  """Rows within a block of D are orthogonal; the unstabilised estimate
  mean_m exp(w_m.q' - |q'|^2/2) exp(w_m.k' - |k'|^2/2) averages to exp(q'.k') =
  exp(q.k / sqrt(D)) over independent blocks (the paper's unbiasedness), within 4 standard
  errors; unit-norm rows (no chi norms) would be biased."""
  D = 8
  w = projections().astype(np.float64).reshape(-1, D, D)  # 768 independent blocks [M = D, D]
  gram = np.einsum("nid,njd->nij", w, w)
  assert np.abs(gram * (1 - np.eye(D))).max() < 1e-3 and np.diagonal(gram, 0, 1, 2).min() > 0
  assert not np.allclose(projections()[0], projections()[1])  # draws differ
  rng = np.random.default_rng(1)
  q, k = (rng.standard_normal(D) * 0.6 for _ in range(2))  # q' = q D^-1/4, k' likewise

  def estimates(w):
    return np.mean(np.exp(w @ q - q @ q / 2) * np.exp(w @ k - k @ k / 2), axis=1)
  est = estimates(w)
  se = est.std() / np.sqrt(len(est))
  assert abs(est.mean() - np.exp(q @ k)) < 4 * se, (est.mean(), np.exp(q @ k), se)
  biased = estimates(w / np.linalg.norm(w, axis=-1, keepdims=True))
  assert abs(biased.mean() - np.exp(q @ k)) > 4 * biased.std() / np.sqrt(len(biased))


def test_performer_converges_to_softmax_as_features_grow():
  q, k, v = random_qkv(2, 2, 11, 2, 8, scale=0.5)
  mask = jnp.asarray(VALID)
  want = np.asarray(dpa(q, k, v, mask=mask[:, None, None, :], impl="reference"))
  errors = {m: np.mean([np.abs(np.asarray(perf(q, k, v, jnp.asarray(w[:m]), mask=mask))
                               - want).mean() for w in projections()])
            for m in (16, 256, 2048)}
  assert errors[16] > errors[256] > errors[2048], errors
  assert errors[2048] < errors[16] / 3 and errors[2048] < 0.02, errors


def test_linear_attention_takes_callable_feature_maps():
  """linear.py accepts a callable (the same map as a name gives the same result) or a
  (query map, key map) pair, and refuses maps whose widths disagree."""
  q, k, v = random_qkv(12, 1, 5, 1, 3)
  elu = lambda x: jax.nn.elu(x) + 1.0
  close(linear_attention(q, k, v, feature_map=elu), linear_attention(q, k, v), 1e-6)
  # Keys mapped to constant features weigh every value alike: out_i = mean_j v_j.
  uniform = linear_attention(q, k, v, feature_map=(elu, jnp.ones_like), eps=0.0)
  close(uniform, jnp.broadcast_to(v.mean(1, keepdims=True), v.shape), 1e-6)
  with pytest.raises(ValueError, match=re.escape("query features (1, 5, 1, 3) and key "
                                                 "features (1, 5, 1, 2)")):
    linear_attention(q, k, v, feature_map=(elu, lambda x: elu(x)[..., :2]))


def test_causal_performer_forms_agree():
  B, T, H, D = 2, 11, 2, 8
  q, k, v = random_qkv(3, B, T, H, D)
  w = jnp.asarray(projections()[0, :12])  # M = 12 > D: a block and a partial block
  mask = jnp.asarray(VALID)
  want = perf(q, k, v, w, mask=mask, causal=True, impl="parallel")
  close(want[:, 0], v[:, 0], 1e-5, "position 0 sees only itself")
  for impl in ("chunked", "recurrent"):
    close(perf(q, k, v, w, mask=mask, causal=True, impl=impl, chunk=4), want, 1e-5, impl)
  full = perf(q, k, v, w, mask=mask)
  assert np.abs(np.asarray(full - want))[:, :-1].max() > 1e-2  # causal is not ignored


def test_causal_performer_is_causal_by_gradients():
  """d out_i / d {k, v}_j is exactly 0 for j > i and nonzero for j <= i; d out_i / d q_j
  only for j = i; out_0 = v_0 depends on nothing else (T = 7, chunks of 3)."""
  T = 7
  q, k, v = random_qkv(4, 1, T, 1, 8)
  w = jnp.asarray(projections()[1, :16])
  f = lambda q, k, v: performer_attention(q, k, v, w, causal=True, impl="chunked", chunk=3)
  jacs = jax.jit(jax.jacrev(f, argnums=(0, 1, 2)))(q, k, v)
  past = np.tril(np.ones((T, T), bool))
  for name, jac in zip("qkv", jacs):
    influence = np.abs(np.asarray(jac)[0, :, 0, :, 0, :, 0, :]).sum(axis=(1, 3))  # [i, j]
    allowed = np.eye(T, dtype=bool) if name == "q" else past
    assert (influence[~allowed] == 0).all(), f"d out / d {name}:\n{influence}"
    # out_0 = v_0 whatever q_0 and k_0 are (up to rounding): skip that entry there.
    seen = influence[allowed] if name == "v" else influence[allowed][1:]
    assert (seen > 1e-3).all(), f"d out / d {name}:\n{influence}"


def test_performer_ignores_padded_keys():
  """Garbage in padded keys changes nothing, and a padded sequence equals the same
  sequence cut to its real keys (the key stabiliser is taken over real keys only)."""
  q, k, v = random_qkv(5, 2, 11, 2, 8)
  w = jnp.asarray(projections()[2, :16])
  mask = jnp.asarray(VALID)
  got = perf(q, k, v, w, mask=mask)
  junk = lambda x: jnp.where(mask[:, :, None, None], x, 30.0)
  close(perf(q, junk(k), junk(v), w, mask=mask), got, 1e-6, "padded keys leak")
  close(perf(q[1:], k[1:, :7], v[1:, :7], w)[0], got[1], 1e-5, "cut vs padded")


# -------------------------------------------------------------------------- Linformer

def test_linformer_with_identity_projections_is_softmax():
  q, k, v = random_qkv(6, 2, 11, 2, 8)
  eye, everyone = jnp.eye(11), jnp.ones((2, 1, 1, 11), bool)
  close(linf(q, k, v, eye, eye), dpa(q, k, v, mask=everyone, impl="reference"), 1e-5)


def test_linformer_matches_numpy_with_ragged_length_and_padding():
  """T = 11 < n_max = 13, k = 5: softmax(Q (E[:, :T] K0)^T / sqrt(D)) F[:, :T] V0, K0 and
  V0 the keys and values with padded positions zeroed."""
  q, k, v = random_qkv(7, 2, 11, 2, 4)
  rng = np.random.default_rng(7)
  e, f = (jnp.asarray(rng.standard_normal((5, 13)) / 4, jnp.float32) for _ in range(2))
  got, weights = linf(q, k, v, e, f, mask=jnp.asarray(VALID), return_weights=True)
  assert weights.shape == (2, 2, 11, 5)
  keep = VALID[:, :, None, None]
  k0, v0 = np.where(keep, k, 0.0), np.where(keep, v, 0.0)
  kp = np.einsum("kn,bnhd->bkhd", np.asarray(e)[:, :11], k0)
  vp = np.einsum("kn,bnhd->bkhd", np.asarray(f)[:, :11], v0)
  s = np.einsum("bthd,bkhd->bhtk", np.asarray(q, np.float64), kp) / 2.0
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  close(got, np.einsum("bhtk,bkhd->bthd", p, vp), 1e-5)
  close(weights, p, 1e-5)
  junk = lambda x: jnp.where(keep, x, 30.0)
  close(linf(q, junk(k), junk(v), e, f, mask=jnp.asarray(VALID), return_weights=True)[0], got,
        1e-5, "padding leaks")


def test_linformer_refuses_causal_and_too_long_inputs():
  q, k, v = random_qkv(8, 1, 6, 1, 4)
  e = jnp.ones((3, 5))
  with pytest.raises(ValueError, match="cannot be causal"):
    linformer_attention(q[:, :5], k[:, :5], v[:, :5], e, e, causal=True)
  with pytest.raises(ValueError, match=re.escape("n_max=5 positions; got a sequence of 6")):
    linformer_attention(q, k, v, e, e)
  with pytest.raises(ValueError, match=re.escape("(3, 5) and (3, 6)")):
    linformer_attention(q, k, v, e, jnp.ones((3, 6)))


# -------------------------------------------------------------------------------- GAT

# Two graphs of 5 nodes: a path 0-1-2 and an edge 3-4; node 4 of graph 1 is padding.
ADJ = np.zeros((2, 5, 5), bool)
for i, j in [(0, 1), (1, 2), (3, 4)]:
  ADJ[:, i, j] = ADJ[:, j, i] = True
ADJ |= np.eye(5, dtype=bool)
NODES = np.array([[True] * 5, [True] * 4 + [False]])
GAT_MASK = jnp.asarray(ADJ & NODES[:, None, :])[:, None]  # [B, 1, T, S]


def test_gat_matches_a_loop_over_nodes():
  B, T, H, D = 2, 5, 2, 3
  q, k, v = random_qkv(9, B, T, H, D)
  rng = np.random.default_rng(9)
  a_q, a_k = (jnp.asarray(rng.standard_normal((H, D)), jnp.float32) for _ in range(2))
  got, weights = gat(q, k, v, a_q, a_k, mask=GAT_MASK, return_weights=True)
  q, k, v, a_q, a_k = (np.asarray(x, np.float64) for x in (q, k, v, a_q, a_k))
  want, want_w = np.zeros((B, T, H, D)), np.zeros((B, H, T, T))
  for b in range(B):
    for h in range(H):
      for i in range(T):
        nbrs = [j for j in range(T) if ADJ[b, i, j] and NODES[b, j]]
        e = np.array([a_q[h] @ q[b, i, h] + a_k[h] @ k[b, j, h] for j in nbrs])
        e = np.where(e > 0, e, 0.2 * e)
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        want[b, i, h] = alpha @ v[b, nbrs, h]
        want_w[b, h, i, nbrs] = alpha
  close(got, want, 1e-5)
  close(weights, want_w, 1e-6)


def test_gat_node_ignores_non_neighbours():
  q, k, v = random_qkv(10, 2, 5, 2, 3)
  a = jnp.asarray(np.random.default_rng(10).standard_normal((2, 2, 3)), jnp.float32)
  base = gat(q, k, v, a[0], a[1], mask=GAT_MASK, return_weights=True)[0]
  moved = gat(q, k.at[0, 3].add(5.0), v.at[0, 3].add(5.0), a[0], a[1], mask=GAT_MASK,
              return_weights=True)[0]
  close(moved[0, :3], base[0, :3], 1e-6, "nodes 0-2 are not 3's neighbours")
  assert np.abs(np.asarray(moved[0, 4] - base[0, 4])).max() > 1e-2  # 4 is


# ---------------------------------------------------------------------- through models

def tiny_model(attention, output_kind="per_sequence", max_length=11, seed=0):
  """The smoke config's tiny transformer (d_model 16, 2 heads, 1 layer) on a frames task.
  Built eagerly: after the first model, the initializers' small programs are compiled
  already, where a jitted constructor would compile each model's whole init anew."""
  cfg = make_config("experiments/base.py:smoke", model__attention=attention)
  info = TaskInfo(input_kind="frames", input_size=3, output_kind=output_kind, num_classes=3,
                  max_length=max_length)
  return get_model(cfg.model, info, rngs=nnx.Rngs(seed))


forward = nnx.jit(lambda model, x, mask: model(x, mask, train=False))
X = jnp.asarray(np.random.default_rng(11).standard_normal((2, 11, 3)), jnp.float32)


@pytest.mark.parametrize("attention,output_kind", [("performer:8", "sequence"),
                                                    ("linformer:4", "per_sequence")])
def test_each_kernel_runs_in_a_transformer_and_ignores_padding(attention, output_kind):
  """Finite outputs; padded inputs change nothing; a change at position 6 changes the
  outputs, and for the causal (sequence output) performer none before position 6."""
  model = tiny_model(attention, output_kind)
  mask = jnp.asarray(VALID)
  x = jnp.concatenate([X, jnp.where(mask[..., None], X, 100.0), X.at[:, 6].add(3.0)])
  out = forward(model, x, jnp.concatenate([mask, mask, mask]))
  assert out.shape[0] == 6 and bool(jnp.all(jnp.isfinite(out)))
  real = VALID if output_kind == "sequence" else np.ones(2, bool)  # per-vector or pooled
  close(np.asarray(out[2:4])[real], np.asarray(out[:2])[real], 1e-5, "padding leaks")
  delta = np.abs(np.asarray(out[4:] - out[:2]))
  if output_kind == "sequence":  # [2, T, classes]; up to rounding, since performer's key
    # stabiliser is a max over the whole sequence (kernels/performer.py)
    assert delta[:, :6].max() < 1e-5 and delta[:, 6].min() > 1e-3, delta.max(-1)
  else:
    assert delta.max() > 1e-3


def test_performer_projection_is_fixed_state_not_a_parameter():
  model = tiny_model("performer:8", "sequence")
  projection = model.blocks[0].attn.kernel.projection_MD
  assert type(projection) is nnx.Variable and projection[...].shape == (8, 8)  # head_dim 8
  assert not jax.tree.leaves(nnx.state(model.blocks[0].attn.kernel, nnx.Param))
  softmax = nnx.eval_shape(lambda: get_model(
      make_config("experiments/base.py:smoke").model,
      TaskInfo("frames", 3, "sequence", 3, 11)))
  assert count_params(model) == count_params(softmax)  # the projection is not counted
  # Drawn from the params seed: the same seed (a resumed run) draws the same features.
  again, other = tiny_model("performer:8", "sequence"), tiny_model("performer:8", "sequence",
                                                                    seed=1)
  close(again.blocks[0].attn.kernel.projection_MD[...], projection[...], 0)
  assert not np.allclose(other.blocks[0].attn.kernel.projection_MD[...], projection[...])


def test_graph_attention_model_accepts_gat():
  """gat in the graph_attention model: finite; one layer, so nodes 0-2 ignore node 3 of
  the other component and node 4 sees it; graph 1's padded node 4 changes nothing."""
  cfg = make_config("experiments/base.py:smoke", model__name="graph_attention",
                    model__attention="gat")
  model = get_model(cfg.model, TaskInfo("graph_nodes", 3, "per_vector", 2, 5))
  assert type(model.blocks[0].attn.kernel).__name__ == "GATKernel"
  x = X[:, :5]
  x = jnp.concatenate([x, x.at[0, 3].add(5.0), x.at[1, 4].add(100.0)])
  run = nnx.jit(lambda m, x: m(x, jnp.asarray(np.tile(NODES, (3, 1))),
                               adjacency=jnp.asarray(np.tile(ADJ, (3, 1, 1)))))
  out = run(model, x)
  assert out.shape == (6, 5, 2) and bool(jnp.all(jnp.isfinite(out)))
  close(out[2, :3], out[0, :3], 1e-6, "nodes 0-2 do not see node 3")
  assert np.abs(np.asarray(out[2, 4] - out[0, 4])).max() > 1e-4
  close(out[5, :4], out[1, :4], 1e-5, "a padded node leaks")


@pytest.mark.parametrize("attention,settings,output_kind,message", [
    ("performer:abc", {}, "per_sequence", "performer:abc: the argument is the number"),
    ("performer:0", {}, "per_sequence", "got '0'"),
    ("linformer:-2", {}, "per_sequence", "the projected length k, a positive int"),
    ("softmax:4", {}, "per_sequence", "'softmax' takes no argument"),
    ("performer", dict(model__attention_impl="reference"), "per_sequence",
     "attention_impl='reference' is not a linear attention form"),
    ("gat", dict(model__attention_impl="chunked"), "per_sequence", "gat attention materialises"),
    ("linformer", dict(model__position="alibi"), "per_sequence", "adds a bias"),
    ("performer", dict(model__window=2), "per_sequence", "performer attention has no window"),
    ("linformer", {}, "sequence", "linformer attention cannot be causal"),
])
def test_bad_settings_are_refused_by_name(attention, settings, output_kind, message):
  cfg = make_config("experiments/base.py:smoke", model__attention=attention, **settings)
  info = TaskInfo("frames", 3, output_kind, 3, 11)
  with pytest.raises(ValueError, match=re.escape(message)):  # abstract: nothing compiles
    nnx.eval_shape(lambda: get_model(cfg.model, info)(X, None, train=False))


def test_kernels_that_never_form_scores_refuse_other_masks_and_weights():
  cfg = make_config("experiments/base.py:smoke", model__attention="linformer:4",
                    model__position="none")
  model = nnx.eval_shape(lambda: get_model(cfg.model, TaskInfo("frames", 3, "per_sequence", 3, 5)))
  attn, x = model.blocks[0].attn, jnp.ones((2, 5, 16))
  with pytest.raises(ValueError, match="takes a key padding mask only"):
    nnx.eval_shape(lambda a: a(x, attn_mask_BTT=jnp.asarray(ADJ)), attn)
  with pytest.raises(ValueError, match="return_weights needs attention='softmax'"):
    nnx.eval_shape(lambda a: a(x, return_weights=True), attn)
  with pytest.raises(ValueError, match=re.escape("n_max=5 positions; got a sequence of 11")):
    nnx.eval_shape(lambda m: m(X, None, train=False), model)
