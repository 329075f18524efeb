"""Multi-head self-attention: W^q, W^k, W^v, W^o around a kernel chosen by name.

The kernels (attn_research.kernels) are pure functions; a kernel module here owns
whatever parameters its score function needs (the additive score's vector) and
maps the module call onto the pure function.
"""
from __future__ import annotations

from flax import nnx

from attn_research import kernels
from attn_research.kernels import linear as linear_lib
from attn_research.registry import Registry

ATTENTION_KERNELS = Registry("model.attention")
register_attention = ATTENTION_KERNELS.register


@register_attention("softmax")
class SoftmaxKernel(nnx.Module):
  """Scaled dot-product scores, softmax, weighted sum of values."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    del num_heads, head_dim, rngs
    kernels.check_impl(impl)
    self.impl = impl

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    impl = "reference" if return_weights else self.impl
    return kernels.dot_product_attention(q, k, v, mask=mask, bias=bias, causal=causal,
                                         window=window, impl=impl,
                                         return_weights=return_weights)


@register_attention("additive")
class AdditiveKernel(nnx.Module):
  """Bahdanau's additive scores w . tanh(q_i + k_j), one score vector w per head."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    kernels.check_impl(impl)
    self.impl = impl
    self.w_HD = nnx.Param(nnx.initializers.normal(head_dim ** -0.5)(
        rngs.params(), (num_heads, head_dim)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    impl = "reference" if return_weights else self.impl
    return kernels.additive_attention(q, k, v, self.w_HD[...], mask=mask, bias=bias,
                                      causal=causal, window=window, impl=impl,
                                      return_weights=return_weights)


@register_attention("linear")
class LinearKernel(nnx.Module):
  """Linear attention (Katharopoulos et al. 2020): softmax replaced by the feature map
  elu(x) + 1, so causal attention is an RNN with a d x d state and costs O(T)."""
  accepts_bias = False

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    del num_heads, head_dim, rngs
    if impl not in linear_lib.LINEAR_IMPLS:
      raise ValueError(f"model.attention_impl={impl!r} is not a linear attention form; "
                       f"valid: {linear_lib.LINEAR_IMPLS}")
    self.impl = impl

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    if window is not None:
      raise ValueError(f"linear attention has no window (got window={window}); "
                       "use attention='softmax' for truncated attention")
    if return_weights:
      raise ValueError("linear attention never forms the attention matrix; "
                       "return_weights needs attention='softmax'")
    key_mask = None if mask is None else mask[:, 0, 0, :]  # [B, 1, 1, S] padding mask
    return linear_lib.linear_attention(q, k, v, mask=key_mask, causal=causal, impl=self.impl)


class MultiHeadSelfAttention(nnx.Module):
  """y = W^o concat_h attention(W^q_h x, W^k_h x, W^v_h x).

  Args:
    d_model: width of the input and output vectors.
    num_heads: number of heads; must divide d_model.
    kernel: a name in ATTENTION_KERNELS.
    impl: the kernels' implementation ("auto", "reference", "chunked", "xla", "cudnn").
    causal / window: restrict which vectors each vector may attend.
    position: an nn.positional module whose in_attention acts on queries and keys
      (rotary) or adds a bias to the scores (alibi, relative); shared across layers.
  """

  def __init__(self, d_model: int, num_heads: int, *, kernel: str = "softmax",
               impl: str = "auto", causal: bool = False, window=None, position=None,
               rngs: nnx.Rngs):
    if num_heads < 1 or d_model % num_heads:
      raise ValueError(f"num_heads={num_heads} must be a positive divisor of d_model={d_model}")
    kernel_cls = ATTENTION_KERNELS.get(kernel)
    if position is not None and position.needs_bias and not getattr(kernel_cls, "accepts_bias", True):
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
    self.kernel = kernel_cls(num_heads, self.head_dim, impl, rngs=rngs)

  def __call__(self, x_BTD, mask_BT=None, *, attn_mask_BTT=None, return_weights: bool = False):
    """mask_BT: which vectors are real; attn_mask_BTT: optionally, which vector may
    attend which (e.g. a graph's adjacency with self loops)."""
    q, k, v = self.query(x_BTD), self.key(x_BTD), self.value(x_BTD)
    bias = None
    if self.position is not None:
      q, k, bias = self.position.in_attention(q, k, causal=self.causal)
    mask = kernels.combine(None if mask_BT is None else kernels.padding_mask(mask_BT),
                           None if attn_mask_BTT is None else attn_mask_BTT[:, None])
    res = self.kernel(q, k, v, mask=mask, bias=bias, causal=self.causal, window=self.window,
                      return_weights=return_weights)
    out_BTHD, weights = res if return_weights else (res, None)
    y_BTD = self.out(out_BTHD)
    return (y_BTD, weights) if return_weights else y_BTD
