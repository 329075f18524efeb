"""Linear attention: "Transformers are RNNs" (Katharopoulos et al. 2020, arXiv 2006.16236).

Softmax attention weighs value j for query i by exp(q_i . k_j). Replace that similarity
by a kernel phi(q_i) . phi(k_j) with a positive feature map phi (the paper's is
elu(x) + 1) and the sums over keys factor out of the query:

  out_i = sum_j phi(q_i)^T phi(k_j) v_j^T / sum_j phi(q_i)^T phi(k_j)
        = phi(q_i)^T S / phi(q_i)^T z,     S = sum_j phi(k_j) v_j^T  [Dk, Dv],  z = sum_j phi(k_j)  [Dk].

S and z do not depend on i, so they are built once. Under a causal mask the sums run over
j <= i, and S_i = S_{i-1} + phi(k_i) v_i^T, z_i = z_{i-1} + phi(k_i): causal attention with
a kernel feature map is an RNN whose hidden state is the matrix S (and the vector z).
Generation then costs O(Dk Dv) per token with a constant-size state, where softmax costs
O(t D) per token and a KV cache that grows with t.

Forms, per batch element and head, T queries, S keys, head dims Dk and Dv:
  "direct"     non-causal: S and z once, then every query. Time O((T + S) Dk Dv),
               memory O((T + S) (Dk + Dv) + Dk Dv).
  "parallel"   the masked quadratic form A = phi(Q) phi(K)^T (lower-triangular when causal),
               out = A V / rowsum(A). Time O(T S (Dk + Dv)), memory O(T S). The oracle.
  "chunked"    causal: quadratic inside chunks of C positions, the state (S, z) carried
               between chunks by lax.scan; every step is a matmul. Time O(T C (Dk + Dv)
               + T Dk Dv), memory O(T (Dk + Dv) + (T / C) Dk Dv + C^2) with gradients: each
               chunk step is under jax.checkpoint, so the backward pass keeps only the
               carried states, one per chunk.
  "recurrent"  causal: lax.scan over positions with the RNN step (linear_attention_step).
               Time O(T Dk Dv), memory O(Dk Dv) state forward, O(T Dk Dv) with gradients
               (the state at every step is saved); T sequential matrix-vector steps.
  "auto"       chunked when causal, direct when not.

The output is out_i = phi(q_i)^T S / (phi(q_i)^T z + eps) in every form (phi >= 0); a
query that sees no key (all-zero relu features, or only padded keys) returns exactly 0.
Accumulation is in float32; outputs come back in v's dtype. A key padding mask zeroes
the features of padded keys, so they add nothing to S or z.

The feature map is a name, or callables passed in: kernels/performer.py runs these forms
on FAVOR+ random features (Choromanski et al. 2020), with Dk replaced by the number of
features M in the costs above.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.kernels.checks import check_key_mask, check_qkv

FEATURE_MAPS = {
    "elu": lambda x: jax.nn.elu(x) + 1.0,  # the paper's: positive, smooth, exp-like for x < 0
    "relu": jax.nn.relu,  # non-negative; a query whose features are all zero returns 0
}
LINEAR_IMPLS = ("auto", "direct", "parallel", "chunked", "recurrent")
CAUSAL_IMPLS = ("parallel", "chunked", "recurrent")
NON_CAUSAL_IMPLS = ("direct", "parallel")
DEFAULT_CHUNK = 64


# ----------------------------------------------------------------------------- checks

def _check_feature_map(feature_map):
  if isinstance(feature_map, str) and feature_map in FEATURE_MAPS:
    return
  if callable(feature_map) or (isinstance(feature_map, tuple) and len(feature_map) == 2
                               and all(map(callable, feature_map))):
    return
  raise ValueError(f"feature_map={feature_map!r} is not a linear attention feature map; "
                   f"valid: a name in {tuple(FEATURE_MAPS)}, a callable, or a pair of "
                   "callables (query map, key map)")


def _check_eps(eps):
  if isinstance(eps, (bool, np.bool_)) or (
      isinstance(eps, (int, float, np.number)) and not eps >= 0):
    raise ValueError(f"eps must be a non-negative number; got {eps!r}")


def _check_floating(**arrays):
  for name, x in arrays.items():
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be a floating-point array; got dtype {x.dtype}")


def _check_features(q, k, phq, phk):
  """A callable feature map must keep [B, length, H] and give queries and keys one width."""
  if phq.shape[:3] != q.shape[:3] or phk.shape[:3] != k.shape[:3] or (
      phq.ndim != 4 or phk.ndim != 4 or phq.shape[-1] != phk.shape[-1]):
    raise ValueError(f"feature_map gave query features {phq.shape} and key features "
                     f"{phk.shape} for q {q.shape}, k {k.shape}; need [B, T, H, M] and "
                     "[B, S, H, M]")


def choose_linear_impl(*, causal: bool) -> str:
  """The implementation impl="auto" runs: chunked when causal, direct when not."""
  return "chunked" if causal else "direct"


def _check_args(q, k, v, mask, causal, feature_map, impl, chunk, eps):
  """Raises ValueError naming the bad value; runs at trace time (static shapes)."""
  if impl not in LINEAR_IMPLS:
    raise ValueError(f"impl={impl!r} is not a linear attention implementation; "
                     f"valid: {LINEAR_IMPLS}")
  _check_feature_map(feature_map)
  B, T, S, H, D = check_qkv(q, k, v)
  _check_floating(q=q, k=k, v=v)
  if causal and T != S:
    raise ValueError(f"causal linear attention needs as many queries as keys; got T={T} "
                     f"(q {q.shape}) and S={S} (k {k.shape})")
  if causal and impl not in CAUSAL_IMPLS + ("auto",):
    raise ValueError(f"impl={impl!r} is the non-causal form; causal=True runs with "
                     f"impl in {CAUSAL_IMPLS + ('auto',)}")
  if not causal and impl not in NON_CAUSAL_IMPLS + ("auto",):
    raise ValueError(f"impl={impl!r} is a causal form; causal=False runs with "
                     f"impl in {NON_CAUSAL_IMPLS + ('auto',)}")
  if isinstance(chunk, (bool, np.bool_)) or not (
      isinstance(chunk, (int, np.integer)) and chunk >= 1):
    raise ValueError(f"chunk must be a positive int; got {chunk!r}")
  _check_eps(eps)
  check_key_mask(mask, B, S)


# ---------------------------------------------------------------------- implementations

def _features(feature_map, x, is_query):
  """phi(x) in float32; a pair of callables is (query map, key map)."""
  if isinstance(feature_map, str):
    feature_map = FEATURE_MAPS[feature_map]
  elif isinstance(feature_map, tuple):
    feature_map = feature_map[0] if is_query else feature_map[1]
  return feature_map(x.astype(jnp.float32))


def _normalise(num, den, eps):
  """num / (den + eps); a row that sees no key (den = 0, so num = 0) gives exactly 0, also
  with eps = 0 and also in its gradient (the padded rows of the last chunk are such rows)."""
  den = den + eps
  return num / jnp.where(den == 0, 1.0, den)[..., None]


def _direct(phq_BTHD, phk_BSHD, v_BSHE, eps):
  kv_BHDE = jnp.einsum("bshd,bshe->bhde", phk_BSHD, v_BSHE)
  z_BHD = jnp.sum(phk_BSHD, axis=1)
  num_BTHE = jnp.einsum("bthd,bhde->bthe", phq_BTHD, kv_BHDE)
  den_BTH = jnp.einsum("bthd,bhd->bth", phq_BTHD, z_BHD)
  return _normalise(num_BTHE, den_BTH, eps)


def _parallel(phq_BTHD, phk_BSHD, v_BSHE, causal, eps):
  a_BHTS = jnp.einsum("bthd,bshd->bhts", phq_BTHD, phk_BSHD)
  if causal:
    T, S = a_BHTS.shape[-2:]
    a_BHTS = jnp.where(jnp.tril(jnp.ones((T, S), bool)), a_BHTS, 0.0)
  num_BTHE = jnp.einsum("bhts,bshe->bthe", a_BHTS, v_BSHE)
  den_BTH = jnp.transpose(jnp.sum(a_BHTS, axis=-1), (0, 2, 1))
  return _normalise(num_BTHE, den_BTH, eps)


def _chunked(phq_BTHD, phk_BTHD, v_BTHE, chunk, eps):
  B, T, H, D = phq_BTHD.shape
  E = v_BTHE.shape[-1]
  C = max(min(chunk, T), 1)  # T = 0 gives a scan over no chunks
  N = -(-T // C)

  def blocks(x):  # [B, T, H, F] -> [N, B, H, C, F]; padded positions have zero features
    x = jnp.pad(x, ((0, 0), (0, N * C - T), (0, 0), (0, 0)))
    return jnp.transpose(x.reshape(B, N, C, H, x.shape[-1]), (1, 0, 3, 2, 4))

  within_CC = jnp.tril(jnp.ones((C, C), bool))

  @jax.checkpoint
  def chunk_step(state, blk):
    s_BHDE, z_BHD = state
    q, k, v = blk  # [B, H, C, D], [B, H, C, D], [B, H, C, E]
    a_BHCC = jnp.where(within_CC, jnp.einsum("bhcd,bhed->bhce", q, k), 0.0)
    num = (jnp.einsum("bhce,bhef->bhcf", a_BHCC, v)  # this chunk, causally
           + jnp.einsum("bhcd,bhde->bhce", q, s_BHDE))  # every earlier chunk
    den = jnp.sum(a_BHCC, axis=-1) + jnp.einsum("bhcd,bhd->bhc", q, z_BHD)
    state = (s_BHDE + jnp.einsum("bhcd,bhce->bhde", k, v), z_BHD + jnp.sum(k, axis=2))
    return state, _normalise(num, den, eps)

  init = (jnp.zeros((B, H, D, E), jnp.float32), jnp.zeros((B, H, D), jnp.float32))
  _, out_NBHCE = jax.lax.scan(chunk_step, init,
                              (blocks(phq_BTHD), blocks(phk_BTHD), blocks(v_BTHE)))
  out_BTHE = jnp.transpose(out_NBHCE, (1, 0, 3, 2, 4)).reshape(B, N * C, H, E)
  return out_BTHE[:, :T]


def _step(state, phq_BHD, phk_BHD, v_BHE, eps):
  """One RNN step on features (float32): add key t to the state, then read query t."""
  s_BHDE, z_BHD = state
  s_BHDE = s_BHDE + phk_BHD[..., :, None] * v_BHE[..., None, :]
  z_BHD = z_BHD + phk_BHD
  num_BHE = jnp.einsum("bhd,bhde->bhe", phq_BHD, s_BHDE)
  den_BH = jnp.einsum("bhd,bhd->bh", phq_BHD, z_BHD)
  return (s_BHDE, z_BHD), _normalise(num_BHE, den_BH, eps)


def _recurrent(phq_BTHD, phk_BTHD, v_BTHE, eps):
  B, _, H, D = phq_BTHD.shape
  E = v_BTHE.shape[-1]

  def time_step(state, xs):
    return _step(state, *xs, eps)

  time_major = lambda x: jnp.swapaxes(x, 0, 1)  # [B, T, ...] <-> [T, B, ...]
  init = (jnp.zeros((B, H, D, E), jnp.float32), jnp.zeros((B, H, D), jnp.float32))
  _, out_TBHE = jax.lax.scan(time_step, init,
                             tuple(map(time_major, (phq_BTHD, phk_BTHD, v_BTHE))))
  return time_major(out_TBHE)


# ----------------------------------------------------------------------------- public

def linear_attention(q, k, v, *, mask=None, causal=False, feature_map="elu", impl="auto",
                     chunk=DEFAULT_CHUNK, eps=1e-6):
  """phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1 + eps), causally masked when asked.

  Args:
    q: [B, T, H, Dk] queries; k: [B, S, H, Dk] keys; v: [B, S, H, Dv] values.
    mask: [B, S] bool key padding mask (True = real key) or None; padded keys add nothing.
    causal: query i attends keys j <= i (needs T == S).
    feature_map: a name in FEATURE_MAPS ("elu": elu(x) + 1, the paper's; "relu"), a
      callable [..., Dk] -> [..., M] (float32 in, non-negative features out; M may differ
      from Dk) applied to queries and keys, or a pair (query map, key map) of such
      callables (the Performer's, kernels/performer.py, stabilise the two differently).
    impl: one of LINEAR_IMPLS (see the module docstring); "auto" is chunked when causal,
      direct when not.
    chunk: positions per chunk of impl="chunked" (any T works; the last chunk is padded).
    eps: added to the normaliser.
  Returns:
    [B, T, H, Dv] in v's dtype.
  """
  if mask is not None:
    mask = jnp.asarray(mask)
  _check_args(q, k, v, mask, causal, feature_map, impl, chunk, eps)
  if impl == "auto":
    impl = choose_linear_impl(causal=causal)
  phq, phk = _features(feature_map, q, True), _features(feature_map, k, False)
  _check_features(q, k, phq, phk)
  if mask is not None:
    phk = jnp.where(mask[:, :, None, None], phk, 0.0)
  v32 = v.astype(jnp.float32)
  if impl == "direct":
    out = _direct(phq, phk, v32, eps)
  elif impl == "parallel":
    out = _parallel(phq, phk, v32, causal, eps)
  elif impl == "chunked":
    out = _chunked(phq, phk, v32, chunk, eps)
  else:
    out = _recurrent(phq, phk, v32, eps)
  return out.astype(v.dtype)


def linear_attention_weights(q, k, *, mask=None, causal=False, feature_map="elu", eps=1e-6):
  """[B, H, T, S] float32: the attention matrix the parallel form uses, row-normalised,
  A_ij = phi(q_i) . phi(k_j) / (sum_j' phi(q_i) . phi(k_j') + eps) (zero where masked).
  Linear attention never needs it; attention maps do. Arguments as in linear_attention."""
  v = jnp.zeros(k.shape[:3] + (1,), jnp.float32)
  if mask is not None:
    mask = jnp.asarray(mask)
  _check_args(q, k, v, mask, causal, feature_map, "parallel", DEFAULT_CHUNK, eps)
  phq, phk = _features(feature_map, q, True), _features(feature_map, k, False)
  _check_features(q, k, phq, phk)
  if mask is not None:
    phk = jnp.where(mask[:, :, None, None], phk, 0.0)
  a_BHTS = jnp.einsum("bthd,bshd->bhts", phq, phk)
  if causal:
    T, S = a_BHTS.shape[-2:]
    a_BHTS = jnp.where(jnp.tril(jnp.ones((T, S), bool)), a_BHTS, 0.0)
  den_BHT = jnp.sum(a_BHTS, axis=-1) + eps
  return a_BHTS / jnp.where(den_BHT == 0, 1.0, den_BHT)[..., None]


def init_state(batch: int, heads: int, dk: int, dv: int, dtype=jnp.float32):
  """The empty RNN state: (S [batch, heads, dk, dv], z [batch, heads, dk]), zeros."""
  for name, n in (("batch", batch), ("heads", heads), ("dk", dk), ("dv", dv)):
    if isinstance(n, (bool, np.bool_)) or not (isinstance(n, (int, np.integer)) and n >= 1):
      raise ValueError(f"{name} must be a positive int; got {n!r}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating-point dtype; got {dtype!r}")
  return (jnp.zeros((batch, heads, dk, dv), dtype), jnp.zeros((batch, heads, dk), dtype))


def linear_attention_step(state, q_t, k_t, v_t, *, feature_map="elu", eps=1e-6):
  """One position of causal linear attention as an RNN: (state, out_t).

  state: (S [B, H, Dk, Dv], z [B, H, Dk]) from init_state or the previous step;
  q_t, k_t: [B, H, Dk]; v_t: [B, H, Dv]. Key t is added to the state before query t reads
  it (a position attends to itself), so stepping through t = 0..T-1 from init_state gives
  linear_attention(..., causal=True) at every position. The state is accumulated in
  float32 and returned in its own dtype; out_t [B, H, Dv] is in v_t's dtype.
  """
  _check_feature_map(feature_map)
  _check_eps(eps)
  if not (isinstance(state, (tuple, list)) and len(state) == 2):
    raise ValueError(f"state must be the pair (S, z) from init_state; got {type(state)}")
  s, z = state
  for name, x in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
    if x.ndim != 3:
      raise ValueError(f"{name} must be [batch, heads, head_dim]; got shape {x.shape}")
  _check_floating(q_t=q_t, k_t=k_t, v_t=v_t, S=s, z=z)
  B, H, D = q_t.shape
  E = v_t.shape[-1]
  if k_t.shape != (B, H, D) or v_t.shape[:2] != (B, H):
    raise ValueError("q_t, k_t, v_t shapes disagree: need q_t [B, H, D], k_t [B, H, D], "
                     f"v_t [B, H, Dv]; got q_t {q_t.shape}, k_t {k_t.shape}, v_t {v_t.shape}")
  if s.shape != (B, H, D, E) or z.shape != (B, H, D):
    raise ValueError(f"state shapes S {s.shape}, z {z.shape} do not match the inputs: need "
                     f"S {(B, H, D, E)} and z {(B, H, D)}")
  (s32, z32), out = _step((s.astype(jnp.float32), z.astype(jnp.float32)),
                          _features(feature_map, q_t, True),
                          _features(feature_map, k_t, False),
                          v_t.astype(jnp.float32), eps)
  return (s32.astype(s.dtype), z32.astype(z.dtype)), out.astype(v_t.dtype)
