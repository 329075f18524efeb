"""Multi-head self-attention: W^q, W^k, W^v, W^o around a kernel chosen by name.

The kernels (attn_research.kernels) are pure functions; a kernel module here owns
whatever parameters its score function needs (the additive score's vector) and
maps the module call onto the pure function.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research import kernels
from attn_research.kernels import graph as graph_lib
from attn_research.kernels import linear as linear_lib
from attn_research.kernels import linformer as linformer_lib
from attn_research.kernels import performer as performer_lib
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
    key_mask = _key_padding_mask(mask, k, "linear")
    if return_weights:  # attention maps: the parallel (reference) form's matrix
      out = linear_lib.linear_attention(q, k, v, mask=key_mask, causal=causal, impl="parallel")
      return out, linear_lib.linear_attention_weights(q, k, mask=key_mask, causal=causal)
    return linear_lib.linear_attention(q, k, v, mask=key_mask, causal=causal, impl=self.impl)


def _key_padding_mask(mask, k_BSHD, name):
  """The [B, S] key padding mask inside a [B, 1, 1, S] mask; kernels that never form the
  score matrix cannot take any other pattern (a graph's adjacency, [B, 1, T, S])."""
  if mask is None:
    return None
  if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
    raise ValueError(f"attention={name!r} takes a key padding mask only ([B, 1, 1, S]); got "
                     f"a mask of shape {mask.shape} (e.g. a graph's adjacency): use "
                     "attention='softmax' or 'gat' for arbitrary masks")
  return jnp.broadcast_to(mask[:, 0, 0, :], (k_BSHD.shape[0], k_BSHD.shape[1]))


def _positive_int_arg(name, arg, meaning):
  """NAME:ARG's ARG as a positive int, or a ValueError naming it."""
  try:
    value = int(arg)
  except ValueError:
    value = 0
  if value < 1 or str(value) != arg.strip():
    raise ValueError(f"model.attention={name}:{arg}: the argument is {meaning}, a positive "
                     f"int (e.g. {name}:64); got {arg!r}")
  return value


def _refuse_window_and_weights(name, window, return_weights, why):
  if window is not None:
    raise ValueError(f"{name} attention has no window (got window={window}); "
                     "use attention='softmax' for truncated attention")
  if return_weights:
    raise ValueError(f"{name} attention {why}; return_weights needs attention='softmax' "
                     "(or 'additive', 'gat')")


@register_attention("performer")
class PerformerKernel(nnx.Module):
  """Performer / FAVOR+ (Choromanski et al. 2020): softmax attention estimated with M
  positive orthogonal random features, computed as linear attention in O(T M D).

  `performer:M` sets M (default 256). The projection [M, head_dim] is drawn once, at
  construction, from rngs.params() and shared by the heads of the layer; it is stored as
  a non-trainable nnx.Variable (not an nnx.Param: no gradient, not counted as a
  parameter, not in checkpoints; the same seed draws the same features on resumption).
  Features are fixed: never redrawn during training (the paper's redrawing is not done).
  """
  accepts_bias = False
  takes_arg = True

  def __init__(self, num_heads, head_dim, impl, *, arg=None, rngs):
    del num_heads
    if impl not in linear_lib.LINEAR_IMPLS:
      raise ValueError(f"model.attention_impl={impl!r} is not a linear attention form "
                       f"(performer runs as linear attention); valid: {linear_lib.LINEAR_IMPLS}")
    self.impl = impl
    num_features = (performer_lib.DEFAULT_FEATURES if arg is None else
                    _positive_int_arg("performer", arg, "the number of random features"))
    self.projection_MD = nnx.Variable(performer_lib.orthogonal_gaussian(
        rngs.params(), num_features, head_dim))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    _refuse_window_and_weights("performer", window, False, "")
    key_mask = _key_padding_mask(mask, k, "performer")
    if return_weights:  # attention maps: the parallel (reference) form's estimated matrix
      out = performer_lib.performer_attention(q, k, v, self.projection_MD[...], mask=key_mask,
                                              causal=causal, impl="parallel")
      return out, performer_lib.performer_weights(q, k, self.projection_MD[...], mask=key_mask,
                                                  causal=causal)
    return performer_lib.performer_attention(
        q, k, v, self.projection_MD[...], mask=key_mask, causal=causal, impl=self.impl)


@register_attention("linformer")
class LinformerKernel(nnx.Module):
  """Linformer (Wang et al. 2020): keys and values projected along the length axis to k
  positions by learned E, F [k, max_length] shared by the layer's heads ("headwise"
  sharing), then softmax attention over the k projected keys: O(T k) time and memory.

  `linformer:K` sets k (default min(64, max_length)). Non-causal only; needs the model's
  max_length; takes a key padding mask only (zeroed before the projection).
  """
  accepts_bias = False
  takes_arg = True
  needs_max_length = True

  def __init__(self, num_heads, head_dim, impl, *, arg=None, max_length=None, rngs):
    del num_heads, head_dim
    kernels.check_impl(impl)
    if impl == "local":
      raise ValueError("model.attention_impl='local' needs a window, which linformer "
                       f"attention has none of; valid: {kernels.IMPLS}")
    if isinstance(max_length, bool) or not (isinstance(max_length, int) and max_length >= 1):
      raise ValueError(f"linformer attention needs max_length (the longest sequence) to size "
                       f"its [k, max_length] projections; got max_length={max_length!r}")
    self.impl = impl
    k = (min(64, max_length) if arg is None else
         _positive_int_arg("linformer", arg, "the projected length k"))
    init = nnx.initializers.xavier_uniform()  # variance 2 / (k + max_length)
    self.e_KN = nnx.Param(init(rngs.params(), (k, max_length)))
    self.f_KN = nnx.Param(init(rngs.params(), (k, max_length)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    _refuse_window_and_weights("linformer", window, return_weights,
                               "weighs k projected keys (mixtures of positions), not positions")
    return linformer_lib.linformer_attention(
        q, k, v, self.e_KN[...], self.f_KN[...], mask=_key_padding_mask(mask, k, "linformer"),
        causal=causal, impl=self.impl)


@register_attention("gat")
class GATKernel(nnx.Module):
  """GAT's additive scores (Velickovic et al. 2018): LeakyReLU(a_q . q_i + a_k . k_j), slope
  0.2, softmax over the allowed keys (a graph's neighbours through the mask), one pair
  (a_q, a_k) of score vectors per head. Materialises the [T, S] scores."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    if impl not in ("auto", "reference"):
      raise ValueError(f"model.attention_impl={impl!r}: gat attention materialises its "
                       "scores; valid: ('auto', 'reference')")
    init = nnx.initializers.normal(head_dim ** -0.5)
    self.a_q_HD = nnx.Param(init(rngs.params(), (num_heads, head_dim)))
    self.a_k_HD = nnx.Param(init(rngs.params(), (num_heads, head_dim)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    return graph_lib.gat_attention(q, k, v, self.a_q_HD[...], self.a_k_HD[...], mask=mask,
                                   bias=bias, causal=causal, window=window,
                                   return_weights=return_weights)


def _kernel_options(kernel, kernel_cls, max_length):
  """The constructor options a kernel declares: arg (takes_arg) and max_length
  (needs_max_length); an argument given to a kernel that takes none is refused."""
  name, sep, arg = kernel.partition(":")
  options = {}
  if getattr(kernel_cls, "takes_arg", False):
    options["arg"] = arg if sep else None
  elif sep:
    raise ValueError(f"model.attention={kernel!r}: {name!r} takes no argument after ':'")
  if getattr(kernel_cls, "needs_max_length", False):
    options["max_length"] = max_length
  return options


class MultiHeadSelfAttention(nnx.Module):
  """y = W^o concat_h attention(W^q_h x, W^k_h x, W^v_h x).

  Args:
    d_model: width of the input and output vectors.
    num_heads: number of heads; must divide d_model.
    kernel: a name in ATTENTION_KERNELS, or NAME:ARG for a kernel that takes an argument
      (performer:M random features, linformer:K projected length).
    impl: the kernels' implementation ("auto", "reference", "chunked", "xla", "cudnn").
    causal / window: restrict which vectors each vector may attend.
    position: an nn.positional module whose in_attention acts on queries and keys
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
