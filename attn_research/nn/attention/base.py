"""What an attention kernel module is, and the registry that finds one by name.

The kernels (attn_research.kernels) are pure functions; a kernel module owns whatever
parameters its score function needs (the additive score's vector) and maps the call of
MultiHeadSelfAttention onto the pure function:

  __call__(q, k, v, *, mask, bias, causal, window, return_weights)    a whole sequence

and, for generation one position at a time (models/generate.py), its decoding mode:

  decode_mode         "cache": keys and values of earlier positions in a preallocated
                      [B, T_max, H, D] pair, written at t with lax.dynamic_update_slice;
                      query t attends the filled part through a validity mask (keys
                      j <= t). Static shapes, so a loop over t compiles once. Per token:
                      time O(T_max H D) (the whole buffer is read, masked), memory
                      O(T_max H D) per layer (CachedKernel below: softmax, additive).
                      "state": an RNN state of constant size ("Transformers are RNNs",
                      Katharopoulos et al. 2020, arXiv 2006.16236, section 3.4): linear.
                      None: the kernel cannot decode one position at a time.
  init_decode_cache(batch, capacity, num_heads, head_dim, dtype)     the empty cache
  decode_step(cache, q_BHD, k_BHD, v_BHD, *, t, bias_fn)             (cache, out_BHD)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research import args
from attn_research.registry import Registry

ATTENTION_KERNELS = Registry("model.attention")
register_attention = ATTENTION_KERNELS.register


def decodable_kernels():
  """The registered kernels that decode one position at a time, sorted."""
  return [name for name in ATTENTION_KERNELS.names()
          if ATTENTION_KERNELS.get(name).decode_mode is not None]


class AttentionKernel(nnx.Module):
  """The base of every kernel module: what MultiHeadSelfAttention may ask of one.

  Class attributes a kernel may set:
    accepts_bias      False when it never forms the score matrix, so position encodings
                      that add a bias to the scores (alibi, relative) are refused.
    setting_defaults  the typed settings read after its name (attn_research.args
                      grammar, e.g. performer:64); the constructor then takes
                      `settings`, the text. Empty: the kernel takes no settings.
    needs_max_length  True when it sizes parameters by the longest sequence; the
                      constructor then takes `max_length`.
    decode_mode       "cache", "state" or None (see the module docstring).
  """
  accepts_bias = True
  setting_defaults: dict = {}
  needs_max_length = False
  decode_mode: str | None = None

  def init_decode_cache(self, batch: int, capacity: int, num_heads: int, head_dim: int,
                        dtype=jnp.float32):
    """The empty cache or state of one layer (decode_mode "cache" or "state")."""
    raise NotImplementedError(f"{type(self).__name__} does not decode one position at a time")

  def decode_step(self, cache, q_BHD, k_BHD, v_BHD, *, t, bias_fn):
    """Position t's output from query t, key t and value t and the cache of positions
    < t: (cache holding positions <= t, out_BHD). bias_fn(capacity) is query t's bias
    over the cache's capacity slots, [1, H, 1, capacity], or None."""
    raise NotImplementedError(f"{type(self).__name__} does not decode one position at a time")


class CachedKernel(AttentionKernel):
  """A kernel that decodes through a KV cache: subclasses say how one query row attends
  the cache (attend_row); writing the cache and masking its empty slots is done here."""
  decode_mode = "cache"

  def init_decode_cache(self, batch, capacity, num_heads, head_dim, dtype=jnp.float32):
    if capacity < 1:
      raise ValueError(f"a KV cache needs capacity >= 1 positions; got {capacity}")
    zeros = jnp.zeros((batch, capacity, num_heads, head_dim), dtype)
    return zeros, zeros

  def decode_step(self, cache, q_BHD, k_BHD, v_BHD, *, t, bias_fn):
    k_cache, v_cache = cache
    at_t = (0, t, 0, 0)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k_BHD[:, None].astype(k_cache.dtype), at_t)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v_BHD[:, None].astype(v_cache.dtype), at_t)
    capacity = k_cache.shape[1]
    valid_11S = (jnp.arange(capacity) <= t)[None, None, None, :]  # filled: positions 0..t
    out_B1HD = self.attend_row(q_BHD[:, None], k_cache, v_cache, mask=valid_11S,
                               bias=bias_fn(capacity))
    return (k_cache, v_cache), out_B1HD[:, 0]

  def attend_row(self, q_B1HD, k_BSHD, v_BSHD, *, mask, bias):
    """One query row over the whole cache, [B, 1, H, D]."""
    raise NotImplementedError


def key_padding_mask(mask, k_BSHD, name):
  """The [B, S] key padding mask inside a [B, 1, 1, S] mask; kernels that never form the
  score matrix cannot take any other pattern (a graph's adjacency, [B, 1, T, S])."""
  if mask is None:
    return None
  if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
    raise ValueError(f"attention={name!r} takes a key padding mask only ([B, 1, 1, S]); got "
                     f"a mask of shape {mask.shape} (e.g. a graph's adjacency): use "
                     "attention='softmax' or 'gat' for arbitrary masks")
  return jnp.broadcast_to(mask[:, 0, 0, :], (k_BSHD.shape[0], k_BSHD.shape[1]))


def positive_int_setting(kernel_cls, name, settings, meaning):
  """The one setting of a kernel whose setting_defaults hold one int (or (None, int)):
  the value `NAME:VALUE` gives, its default without one; ValueError naming it otherwise."""
  where = (f"model.attention={name}:{settings}: the argument is {meaning}, a positive int "
           f"(e.g. {name}:64)")
  (value,) = args.parse_arg(settings, where=where, what=f"{name} setting",
                            **kernel_cls.setting_defaults).values()
  if value is not None and value < 1:
    raise ValueError(f"{where}; got {settings!r}")
  return value


def refuse_window_and_weights(name, window, return_weights, why):
  if window is not None:
    raise ValueError(f"{name} attention has no window (got window={window}); "
                     "use attention='softmax' for truncated attention")
  if return_weights:
    raise ValueError(f"{name} attention {why}; return_weights needs attention='softmax' "
                     "(or 'additive', 'gat')")
