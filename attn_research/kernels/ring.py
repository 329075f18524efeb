"""Ring attention: exact softmax attention with the sequence split over a mesh axis.

Sequence (context) parallelism for lengths whose activations do not fit one device
(Liu, Zaharia & Abbeel 2023, arXiv 2310.01889). Layout [B, T, H, D] as in every kernel;
q, k, v are global arrays split along T over the mesh axis `axis` ("sequence") of size n.
Inside jax.shard_map each device keeps its block of queries and passes its key/value
block to the next device (lax.ppermute, i -> i + 1) after each of n steps, so every
query block meets every key block once (the n-th transfer, which brings each block home,
is wasted in the forward; see `ring` for why it is kept); the blocks are combined with
an online softmax (running max, denominator and accumulator, all float32), as the
chunked kernel combines key chunks.

Backward (jax.custom_vjp): the forward keeps only its output and the row log-sum-exp, so
residuals are O(T / n) per device. The backward runs the ring again: each device keeps
its queries and dq, while k, v travel together with their gradient accumulators dk, dv;
after the last step one more ppermute hands every dk, dv to the device that owns that
block. Autodiff through the scan would instead store every visiting key/value block and
every running accumulator, O(T) per device whatever n is.

Causal load balancing (layout="zigzag"). Cut T into 2n chunks of c = T / (2n) positions.
Device d holds chunks d and 2n - 1 - d (one from the front, one from the back), so the
zigzag sequence is the chunks in the order [0, 2n-1, 1, 2n-2, ..., n-1, n]
(zigzag_order); to_zigzag / from_zigzag move a [B, T, ...] array to and from that order.
A device's queries and the visiting keys are each two chunks, so a step has four c x c
sub-blocks; a sub-block is computed (under lax.cond) only when its key chunk index is at
most its query chunk index, else it is skipped. With the zigzag layout every device
computes exactly 2 sub-blocks at each step after the first (3 at the first, where two
are on the diagonal): equal work everywhere. What is saved: the skipped sub-blocks' two
matmuls, softmax and, in the backward, four matmuls; the communication is not saved
(every key block still travels the full ring). With layout="contiguous" (device d holds
chunks 2d, 2d + 1) causal is also exact but unbalanced: device d computes 4d + 3
sub-blocks in all against 2n + 1 on every device with zigzag, so the last device (4n - 1:
1.67x the average at n = 4, approaching 2x) sets the pace.

A model with causal self-attention can keep its tokens in zigzag order from the input
onwards: every layer but attention is position-wise, so only position ids (and the
targets) need the same permutation, and ring_attention(..., layout="zigzag") is then
called directly. dot_product_attention(impl="ring") instead takes and returns natural
order and permutes inside (two extra all-to-all-like transfers of q, k, v, out per call).

How a model uses it: build a mesh with a "sequence" axis (e.g. Mesh(devices.reshape(d, s),
("data", "sequence"))), shard the batch's token axis over it (inputs and mask
P("data", "sequence")), make it current with jax.set_mesh(mesh) while the train step is
traced, and set the attention's impl to "ring": every dot_product_attention call then
runs this kernel (ring_from_context; "data"/"fsdp" axes of the mesh split the batch and
"tensor" the heads). Everything else in the model is position-wise or a reduction that
XLA partitions by itself.

Padding: key_mask [B, T] (True = real key) travels the ring with its keys. Rows whose keys
are all masked return zeros, as in the other kernels. No bias, no window, a fixed Python
scale (it is baked into the custom gradient); first-order gradients are what is tested.
Memory per device: its q, k, v, out blocks plus one visiting k, v block, and the scores of
one sub-block, [B, H, T/n, T/n] (non-causal) or [B, H, T/2n, T/2n] (causal), materialised.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from attn_research.kernels import masks as masks_lib
from attn_research.kernels.checks import check_qkv
from attn_research.kernels.scores import dot_scores
from attn_research.kernels.softmax import masked_softmax_parts

LAYOUTS = ("contiguous", "zigzag")
BATCH_AXES = ("data", "fsdp")  # context mesh axes impl="ring" splits the batch over
HEAD_AXIS = "tensor"  # and the heads over, when present


# --------------------------------------------------------------------------- layout

def zigzag_order(num_devices: int) -> np.ndarray:
  """The chunk (of 2n) at each position of the zigzag sequence: [0, 2n-1, 1, 2n-2, ...]."""
  n = num_devices
  return np.asarray([c for d in range(n) for c in (d, 2 * n - 1 - d)])


def _permute_chunks(x, order, axis):
  length = x.shape[axis]
  if length % len(order):
    raise ValueError(f"length {length} along axis {axis} is not divisible into "
                     f"{len(order)} chunks (2 per device)")
  shape = x.shape[:axis] + (len(order), length // len(order)) + x.shape[axis + 1:]
  return jnp.take(x.reshape(shape), order, axis=axis).reshape(x.shape)


def to_zigzag(x, num_devices: int, axis: int = 1):
  """Natural order -> zigzag order along `axis` (see the module docstring)."""
  return _permute_chunks(x, zigzag_order(num_devices), axis)


def from_zigzag(x, num_devices: int, axis: int = 1):
  """Zigzag order -> natural order along `axis`; inverse of to_zigzag."""
  return _permute_chunks(x, np.argsort(zigzag_order(num_devices)), axis)


def _chunk_ids(layout, device, n):
  """The global chunk indices (of 2n) of a device's two local halves."""
  if layout == "zigzag":
    return device, 2 * n - 1 - device
  return 2 * device, 2 * device + 1


# --------------------------------------------------------------------------- blocks

def _allowed(valid_BK, q_pos, k_pos, causal):
  return masks_lib.combine(
      None if valid_BK is None else valid_BK[:, None, None, :],
      masks_lib.positional_allowed(q_pos, k_pos, causal=True) if causal else None)


def _fwd_block(state, q, k, v, allowed, scale):
  """One key block into the running (acc [B,H,Q,Dv], max [B,H,Q], sum [B,H,Q])."""
  acc, m, l = state
  p, m_blk, l_blk = masked_softmax_parts(dot_scores(q, k, scale), allowed)
  m_new = jnp.maximum(m, m_blk)
  m_new_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
  old = jnp.exp(m - m_new_safe)
  blk = jnp.exp(jnp.where(jnp.isfinite(m_blk), m_blk, 0.0) - m_new_safe)
  pv = jnp.einsum("bhqk,bkhd->bhqd", p.astype(v.dtype), v, preferred_element_type=jnp.float32)
  return acc * old[..., None] + pv * blk[..., None], m_new, l * old + l_blk * blk


def _bwd_block(grads, q, k, v, do, lse, delta, allowed, scale):
  """Gradients of one (query, key) block from the saved log-sum-exp (FlashAttention-2)."""
  dq, dk, dv = grads
  p = jnp.exp(dot_scores(q, k, scale) - lse[..., None])
  if allowed is not None:
    p = jnp.where(allowed, p, 0.0)
  f32 = jnp.float32
  dv = dv + jnp.einsum("bhqk,bqhd->bkhd", p, do, preferred_element_type=f32)
  dp = jnp.einsum("bqhd,bkhd->bhqk", do, v, preferred_element_type=f32)
  ds = p * (dp - delta[..., None]) * scale
  dq = dq + jnp.einsum("bhqk,bkhd->bqhd", ds, k, preferred_element_type=f32)
  dk = dk + jnp.einsum("bhqk,bqhd->bkhd", ds, q, preferred_element_type=f32)
  return dq, dk, dv


def _halves(x, parts, axis=1):
  if x is None:
    return (None,) * parts
  return tuple(jnp.split(x, parts, axis=axis)) if parts > 1 else (x,)


# ----------------------------------------------------------------------- the ring

def _make_ring(axis, n, causal, layout, scale):
  """The per-device function (inside shard_map): (q, k, v, valid) -> out, differentiable."""
  parts = 2 if causal else 1
  perm = [(j, (j + 1) % n) for j in range(n)]
  shift = lambda tree: jax.tree.map(lambda x: jax.lax.ppermute(x, axis, perm), tree)

  def pairs(step, c):
    """(q half, k half, visible or None, q positions, k positions) for this ring step."""
    device = jax.lax.axis_index(axis)
    if not causal:
      return [(0, 0, None, None, None)]
    q_ids = _chunk_ids(layout, device, n)
    k_ids = _chunk_ids(layout, (device - step) % n, n)
    return [(a, b, k_ids[b] <= q_ids[a], q_ids[a] * c + jnp.arange(c), k_ids[b] * c + jnp.arange(c))
            for a in range(parts) for b in range(parts)]

  def visit(step, c, carry, apply):
    """carry <- apply(carry, q half a, k half b, positions) for every sub-block some
    query may see; the others are skipped by lax.cond, which runs one branch only."""
    for a, b, visible, q_pos, k_pos in pairs(step, c):
      fn = lambda cr, a=a, b=b, q_pos=q_pos, k_pos=k_pos: apply(cr, a, b, q_pos, k_pos)
      carry = fn(carry) if visible is None else jax.lax.cond(visible, fn, lambda cr: cr, carry)
    return carry

  def ring(first, moving, compute):
    """compute(step, carry, moving) -> (carry, moving) at each of n steps, `moving` going
    one device on (ppermute) after each: n transfers, so after the last one a block is
    back home (the backward's dk, dv need that; the forward's last transfer is wasted
    bandwidth). Peeling the last step off the loop would save that transfer, but it was
    measured to let XLA hold two steps' score blocks at once (compiled memory at T 4096
    over 2 devices: 530 MiB fwd+bwd peeled, 280 MiB in one loop)."""
    def body(state, step):
      carry, moving = compute(step, *state)
      return (carry, shift(moving)), None
    (carry, moving), _ = jax.lax.scan(body, (first, moving), jnp.arange(n))
    return carry, moving

  def forward(q, k, v, valid):
    B, T, H, _ = q.shape
    c, Dv = T // parts, v.shape[-1]
    qs = _halves(q, parts)
    init = tuple((jnp.zeros((B, H, c, Dv), jnp.float32), jnp.full((B, H, c), -jnp.inf),
                  jnp.zeros((B, H, c), jnp.float32)) for _ in range(parts))

    def compute(step, states, kv):
      ks, vs, valids = _halves(kv[0], parts), _halves(kv[1], parts), _halves(kv[2], parts)

      def apply(states, a, b, q_pos, k_pos):
        new = _fwd_block(states[a], qs[a], ks[b], vs[b],
                         _allowed(valids[b], q_pos, k_pos, causal), scale)
        return states[:a] + (new,) + states[a + 1:]
      return visit(step, c, states, apply), kv

    states, _ = ring(init, (k, v, valid), compute)
    outs, lses = [], []
    for acc, m, l in states:
      outs.append(acc / jnp.where(l == 0, 1.0, l)[..., None])
      lses.append(jnp.where(l == 0, jnp.inf, m + jnp.log(jnp.where(l == 0, 1.0, l))))
    out = jnp.transpose(jnp.concatenate(outs, axis=2), (0, 2, 1, 3)).astype(v.dtype)
    return out, jnp.concatenate(lses, axis=2)

  @jax.custom_vjp
  def attend(q, k, v, valid):
    return forward(q, k, v, valid)[0]

  def attend_fwd(q, k, v, valid):
    out, lse = forward(q, k, v, valid)
    return out, (q, k, v, valid, out, lse)

  def attend_bwd(res, do):
    q, k, v, valid, out, lse_BHT = res
    T = q.shape[1]
    c = T // parts
    delta_BHT = jnp.einsum("bthd,bthd->bht", do.astype(jnp.float32), out.astype(jnp.float32))
    qs, dos = _halves(q, parts), _halves(do, parts)
    lses, deltas = _halves(lse_BHT, parts, 2), _halves(delta_BHT, parts, 2)
    zeros = lambda x: jnp.zeros(x.shape, jnp.float32)

    def compute(step, dqs, moving):
      k_, v_, valid_, dk, dv = moving
      ks, vs, valids = _halves(k_, parts), _halves(v_, parts), _halves(valid_, parts)
      dks, dvs = _halves(dk, parts), _halves(dv, parts)

      def apply(carry, a, b, q_pos, k_pos):
        dqs, dks, dvs = carry
        dq, dk, dv = _bwd_block((dqs[a], dks[b], dvs[b]), qs[a], ks[b], vs[b], dos[a], lses[a],
                                deltas[a], _allowed(valids[b], q_pos, k_pos, causal), scale)
        put = lambda t, i, x: t[:i] + (x,) + t[i + 1:]
        return put(dqs, a, dq), put(dks, b, dk), put(dvs, b, dv)
      dqs, dks, dvs = visit(step, c, (dqs, dks, dvs), apply)
      cat = lambda t: jnp.concatenate(t, axis=1) if parts > 1 else t[0]
      return dqs, (k_, v_, valid_, cat(dks), cat(dvs))

    first = (tuple(zeros(x) for x in qs), (k, v, valid, zeros(k), zeros(v)))
    dqs, (_, _, _, dk, dv) = ring(*first, compute)  # dk, dv are back on their owner
    dq = jnp.concatenate(dqs, axis=1) if parts > 1 else dqs[0]
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None

  attend.defvjp(attend_fwd, attend_bwd)
  return attend


# --------------------------------------------------------------------------- public

def _mesh_axes(mesh):
  return dict(mesh.shape)


def _check(q, k, v, mesh, axis, causal, layout, key_mask, batch_axis, head_axis):
  """ValueError naming the bad value; shapes are static, so this runs before compiling."""
  B, T, S, H, _ = check_qkv(q, k, v)
  sizes = _mesh_axes(mesh)
  if axis not in sizes:
    raise ValueError(f"ring attention runs over mesh axis {axis!r}, which the mesh lacks; "
                     f"mesh axes: {sizes or 'none (no mesh given and none set by jax.set_mesh)'}")
  if layout not in LAYOUTS:
    raise ValueError(f"layout={layout!r} is not a ring layout; valid: {LAYOUTS}")
  n = sizes[axis]
  per = 2 * n if causal else n
  if T % per or S % per:
    why = "2 chunks per device (causal load balancing)" if causal else "one block per device"
    raise ValueError(f"ring attention over {n} devices needs queries T={T} and keys S={S} "
                     f"divisible by {per} ({why})")
  if causal and T != S:
    raise ValueError(f"causal ring attention is self-attention: queries T={T} != keys S={S}")
  if key_mask is not None and (key_mask.shape != (B, S) or key_mask.dtype != jnp.bool_):
    raise ValueError(f"key_mask must be a boolean [batch, keys] = {(B, S)} padding mask; "
                     f"got shape {key_mask.shape}, dtype {key_mask.dtype}")
  for what, names, size in (("batch", batch_axis, B), ("heads", head_axis, H)):
    names = () if names is None else (names,) if isinstance(names, str) else tuple(names)
    if not set(names) <= set(sizes) or axis in names:
      raise ValueError(f"{what} axis {names} must name mesh axes other than {axis!r}; "
                       f"mesh axes: {sizes}")
    split = math.prod(sizes[a] for a in names)
    if size % split:
      raise ValueError(f"{what}={size} is not divisible by mesh axes {names} of total size {split}")
  return n


def ring_attention(q, k, v, *, mesh=None, axis="sequence", causal=False, layout=None,
                   key_mask=None, scale=None, batch_axis=None, head_axis=None):
  """softmax(scale * Q K^T, masked) V with the sequence split over mesh axis `axis`.

  Args:
    q: [B, T, H, D]; k: [B, S, H, D]; v: [B, S, H, Dv]: global arrays, split along T (S)
      over `axis` in `layout` order (other shardings are resharded by shard_map).
    mesh: a jax.sharding.Mesh; None: the mesh set by jax.set_mesh.
    causal: query i attends keys j <= i, i and j being positions in natural order.
    layout: "zigzag" (default when causal: load balanced, see the module docstring) or
      "contiguous" (default otherwise). Inputs and output are in this order.
    key_mask: [B, S] bool, True = real key, in the same order as k.
    scale: score scale; default 1 / sqrt(D).
    batch_axis, head_axis: mesh axes (a name or a tuple) that also split B and H.
  Returns:
    [B, T, H, Dv] in v's dtype, in `layout` order, split like q.
  """
  mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
  layout = ("zigzag" if causal else "contiguous") if layout is None else layout
  n = _check(q, k, v, mesh, axis, causal, layout, key_mask, batch_axis, head_axis)
  if scale is None:
    scale = 1.0 / math.sqrt(q.shape[-1])
  if not (isinstance(scale, (int, float, np.number)) and scale > 0):
    raise ValueError(f"ring attention needs scale to be a positive Python number or None "
                     f"(it is fixed in the custom gradient); got {scale!r}")
  scale = float(scale)
  attend = _make_ring(axis, n, causal, layout, scale)
  spec = P(batch_axis, axis, head_axis, None)
  args, specs = (q, k, v), (spec, spec, spec)
  if key_mask is not None:
    args, specs = args + (key_mask,), specs + (P(batch_axis, axis),)
  body = (lambda q, k, v, m: attend(q, k, v, m)) if key_mask is not None else (
      lambda q, k, v: attend(q, k, v, None))
  return jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=spec, check_vma=False)(*args)


def ring_from_context(q, k, v, *, key_mask=None, causal=False, scale=None, axis="sequence"):
  """dot_product_attention(impl="ring"): natural order in and out, over the mesh set by
  jax.set_mesh; its "data"/"fsdp" axes also split the batch and "tensor" the heads."""
  mesh = jax.sharding.get_abstract_mesh()
  sizes = _mesh_axes(mesh)
  if axis not in sizes:
    raise ValueError(f"impl='ring' needs a mesh with a {axis!r} axis set by jax.set_mesh(mesh); "
                     f"the current mesh axes are {sizes or 'none'}")
  batch_axis = tuple(a for a in BATCH_AXES if a in sizes) or None
  head_axis = HEAD_AXIS if HEAD_AXIS in sizes else None
  if not causal:
    return ring_attention(q, k, v, axis=axis, key_mask=key_mask, scale=scale,
                          batch_axis=batch_axis, head_axis=head_axis)
  n = sizes[axis]
  _check(q, k, v, mesh, axis, causal, "zigzag", key_mask, batch_axis, head_axis)
  z = lambda x: None if x is None else to_zigzag(x, n)
  out = ring_attention(z(q), z(k), z(v), axis=axis, causal=True, layout="zigzag",
                       key_mask=z(key_mask), scale=scale, batch_axis=batch_axis,
                       head_axis=head_axis)
  return from_zigzag(out, n)
