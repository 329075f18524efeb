"""Multi-head self-attention: W^q, W^k, W^v, W^o around a kernel module chosen by name.

The layer owns the projections and the position encoding's place inside attention; the
kernel module (this package's other modules) owns the scores. The same split holds one
position at a time (decode_step): the position rotates query and key t and gives query
t's bias, the kernel keeps the cache or state of earlier positions.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
from flax import nnx

from attn_research import args, kernels
from attn_research.nn.attention.base import ATTENTION_KERNELS, decodable_kernels
from attn_research.nn.positions.base import decodable_positions


def _kernel_options(kernel, kernel_cls, max_length):
  """The constructor options a kernel declares: settings (setting_defaults, the text
  after NAME:) and max_length (needs_max_length). ATTENTION_KERNELS.get refuses NAME:ARG
  for a kernel that takes no settings."""
  options = {}
  if kernel_cls.setting_defaults:
    options["settings"] = args.split(kernel)[1]
  if kernel_cls.needs_max_length:
    options["max_length"] = max_length
  return options


class MultiHeadSelfAttention(nnx.Module):
  """y = W^o concat_h attention(W^q_h x, W^k_h x, W^v_h x).

  Args:
    d_model: width of the input and output vectors.
    num_heads: number of heads; must divide d_model.
    kernel: a name in ATTENTION_KERNELS, or NAME:SETTINGS for a kernel that takes settings
      (performer:M random features, linformer:K projected length).
    impl: the kernels' implementation ("auto", "reference", "chunked", "xla", "cudnn").
    causal / window: restrict which vectors each vector may attend.
    position: an nn.positions module whose in_attention acts on queries and keys
      (rotary) or adds a bias to the scores (alibi, relative); shared across layers.
    max_length: the longest sequence it will see; kernels with `needs_max_length`
      (linformer) size their parameters by it.
  """

  def __init__(self, d_model: int, num_heads: int, *, kernel: str = "softmax",
               impl: str = "auto", causal: bool = False, window=None, position=None,
               max_length: int | None = None, rngs: nnx.Rngs):
    if num_heads < 1 or d_model % num_heads:
      raise ValueError(f"num_heads={num_heads} must be a positive divisor of d_model={d_model}")
    kernel_cls = ATTENTION_KERNELS.get(kernel)
    if position is not None and position.needs_bias and not kernel_cls.accepts_bias:
      raise ValueError(f"model.position={type(position).__name__} adds a bias to the attention "
                       f"scores, which attention={kernel!r} never forms; use position "
                       "'rotary', 'sinusoidal', 'learned' or 'none' with it")
    self.position = position
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    self.causal, self.window = causal, None if window is None else tuple(window)
    shape = (num_heads, self.head_dim)
    self.query = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.key = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.value = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.out = nnx.LinearGeneral(shape, d_model, axis=(-2, -1), rngs=rngs)
    # True while models/inspect.py collects attention maps (the weights are then formed
    # through each kernel's reference form and sown as nnx.Intermediate).
    self.record_weights = False
    self.kernel = kernel_cls(num_heads, self.head_dim, impl, rngs=rngs,
                             **_kernel_options(kernel, kernel_cls, max_length))

  def __call__(self, x_BTD, mask_BT=None, *, attn_mask_BTT=None, return_weights: bool = False):
    """mask_BT: which vectors are real; attn_mask_BTT: optionally, which vector may
    attend which (e.g. a graph's adjacency with self loops)."""
    q, k, v = self.query(x_BTD), self.key(x_BTD), self.value(x_BTD)
    bias = None
    if self.position is not None:
      q, k, bias = self.position.in_attention(q, k, causal=self.causal)
    mask = kernels.combine(None if mask_BT is None else kernels.padding_mask(mask_BT),
                           None if attn_mask_BTT is None else attn_mask_BTT[:, None])
    want_weights = return_weights or self.record_weights
    res = self.kernel(q, k, v, mask=mask, bias=bias, causal=self.causal, window=self.window,
                      return_weights=want_weights)
    out_BTHD, weights = res if want_weights else (res, None)
    if self.record_weights:  # attention maps (models/inspect.py): kept as an intermediate
      self.sow(nnx.Intermediate, "attention_weights", weights)
    y_BTD = self.out(out_BTHD)
    return (y_BTD, weights) if return_weights else y_BTD

  # ------------------------------------------------- one position at a time (generation)

  def decode_mode(self) -> str:
    """The kernel's decode_mode, "cache" or "state"; ValueError for a kernel, position
    encoding or window that token-by-token decoding cannot run (before any compiling)."""
    mode = getattr(self.kernel, "decode_mode", None)
    if mode is None:
      raise ValueError(f"token-by-token decoding supports model.attention in "
                       f"{decodable_kernels()}; got kernel {type(self.kernel).__name__} "
                       "(method='recompute' runs any causal model)")
    if not self.causal:
      raise ValueError("token-by-token decoding needs a causal (decoder-only) attention layer; "
                       "this one is bidirectional")
    if self.window is not None:
      raise ValueError(f"token-by-token decoding does not support windowed attention "
                       f"(window={self.window}); use window=None")
    if self.position is not None:
      why = getattr(self.position, "cannot_decode", "it defines no decode_* methods")
      if why is not None:
        raise ValueError(f"token-by-token decoding supports model.position in "
                         f"{decodable_positions()}; got {type(self.position).__name__}: {why}")
    return mode

  def init_decode_cache(self, batch: int, capacity: int, dtype=jnp.float32):
    """The empty cache (decode_mode "cache": room for capacity positions) or state."""
    self.decode_mode()
    return self.kernel.init_decode_cache(batch, capacity, self.num_heads, self.head_dim, dtype)

  def decode_step(self, cache, x_BD, t):
    """Self-attention output of position t (a scalar int; x_BD the layer's input there),
    given the cache of positions < t: (cache holding positions <= t, y_BD)."""
    q_BHD, k_BHD, v_BHD = self.query(x_BD), self.key(x_BD), self.value(x_BD)
    bias_fn = lambda capacity: None  # noqa: E731
    if self.position is not None:
      q_BHD, k_BHD = self.position.decode_rotate(q_BHD, t), self.position.decode_rotate(k_BHD, t)
      bias_fn = functools.partial(self.position.decode_bias, t)
    cache, out_BHD = self.kernel.decode_step(cache, q_BHD, k_BHD, v_BHD, t=t, bias_fn=bias_fn)
    return cache, self.out(out_BHD)
