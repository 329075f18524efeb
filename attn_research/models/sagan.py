"""A CNN with a self-attention block over its feature map (Zhang et al. 2018,
"Self-Attention Generative Adversarial Networks", arXiv 1805.08318), here in a classifier.

The backbone is models/cnn2d's ResNet; after stage `attention_stage` the feature map
x (N = H' W' positions of C channels) goes through SAGAN's attention block:
  f(x) = W_f x, g(x) = W_g x   1x1 convolutions to C/k channels (k = attention_reduction,
                               the paper's 8; at least 1 channel): keys and queries
  h(x) = W_h x                 a 1x1 convolution to C channels: the values
  beta_j = softmax_i(f(x_i) . g(x_j))   over all N positions, unscaled as in the paper
  o_j = sum_i beta_j,i h(x_i);  y = x + gamma o,  gamma a learned scalar initialised at 0
so the block starts as the identity and the network first relies on the local
convolutions, then learns how much non-local evidence to add. (The paper's later
version also factors h through C/k channels and a fourth 1x1 convolution W_v; this
is the first version, as in the common reference implementations.) The attention runs
through the project's kernels (attn_research.kernels.dot_product_attention, one head of
C/k dimensions, impl = attention_impl). Cost: O(N^2 C / k) for the scores.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research import kernels
from attn_research.models.cnn2d import DEFAULTS as CNN2D_DEFAULTS
from attn_research.models.cnn2d import CNN2D
from attn_research.models.registry import register_model
from attn_research.nn.spectral_norm import SNConv

DEFAULTS = dict(CNN2D_DEFAULTS, attention_stage=0, attention_reduction=8,
                attention_impl="auto")


def check_global_impl(impl):
  """A kernel implementation that can attend every position (not 'local')."""
  kernels.check_impl(impl)
  if impl == "local":
    raise ValueError("model.attention_impl='local' computes windowed attention; SAGAN's "
                     "block attends every position: use 'auto', 'reference', 'chunked', "
                     "'xla' or 'cudnn'")


class FeatureMapAttention(nnx.Module):
  """y = x + gamma * softmax(g(x) f(x)^T) h(x) over all positions of x [B, H, W, C].

  pool=True max-pools keys and values over 2x2 windows (the SAGAN paper's released
  generator and discriminator do, which cuts the scores by 4: N x N/4); every query
  still sees the whole map. spectral=True spectrally normalises the three 1x1
  convolutions (nn/spectral_norm.py), as SAGAN does for every layer of G and D; the
  classifier keeps plain convolutions (pool=False, spectral=False, its defaults).
  """

  def __init__(self, channels: int, reduction: int, impl: str, *, pool: bool = False,
               spectral: bool = False, rngs: nnx.Rngs):
    check_global_impl(impl)
    self.impl, self.key_channels, self.pool = impl, max(1, channels // reduction), pool
    if spectral:
      one_by_one = lambda c_out: SNConv(channels, c_out, 1, rngs=rngs)  # noqa: E731
    else:
      one_by_one = lambda c_out: nnx.Conv(channels, c_out, (1, 1), rngs=rngs)  # noqa: E731
    self.spectral = spectral
    self.f = one_by_one(self.key_channels)   # keys
    self.g = one_by_one(self.key_channels)   # queries
    self.h = one_by_one(channels)            # values
    self.gamma = nnx.Param(jnp.zeros((), jnp.float32))

  def _qkv(self, x_BHWC, train: bool):
    """(queries [B, N, 1, C/k], keys and values [B, N', 1, .]) with N' = N / 4 pooled."""
    conv = (lambda layer: layer(x_BHWC, train=train)) if self.spectral else (  # noqa: E731
        lambda layer: layer(x_BHWC))
    q, k, v = conv(self.g), conv(self.f), conv(self.h)
    if self.pool:
      if x_BHWC.shape[1] % 2 or x_BHWC.shape[2] % 2:
        raise ValueError(f"attention pooling halves the feature map; {x_BHWC.shape[1]}x"
                         f"{x_BHWC.shape[2]} is not even")
      # A reshape and a max, not nnx.max_pool: XLA's CPU gradient of reduce_window
      # (select-and-scatter) made the 16x16 GAN's train step several times slower.
      k, v = (y.reshape(y.shape[0], y.shape[1] // 2, 2, y.shape[2] // 2, 2,
                        y.shape[3]).max(axis=(2, 4)) for y in (k, v))
    as_heads = lambda y: y.reshape(y.shape[0], -1, 1, y.shape[-1])  # noqa: E731
    return as_heads(q), as_heads(k), as_heads(v)

  def __call__(self, x_BHWC, *, train: bool = False):
    B, H, W, C = x_BHWC.shape
    q, k, v = self._qkv(x_BHWC, train)
    o_BN1C = kernels.dot_product_attention(q, k, v, scale=1.0, impl=self.impl)
    return x_BHWC + self.gamma[...] * o_BN1C.reshape(B, H, W, C)

  def attention_weights(self, x_BHWC):
    """[B, N, N'] the softmax weights each query position gives the (pooled) key positions
    (evaluation mode; for figures: where a query pixel looks)."""
    q, k, _ = self._qkv(x_BHWC, False)
    return jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", q[:, :, 0], k[:, :, 0]), axis=-1)


@register_model("sagan_cnn", DEFAULTS)
class SAGANCNN(CNN2D):
  """cnn2d with FeatureMapAttention after stage attention_stage; with gamma = 0 (its
  initial value) it computes exactly what cnn2d with the same parameters computes."""
  family = "sagan_cnn"

  def __init__(self, cfg, task_info, rngs):
    stage, reduction = cfg["attention_stage"], cfg["attention_reduction"]
    if not isinstance(stage, int) or not 0 <= stage < cfg["num_stages"]:
      raise ValueError(f"model.attention_stage={stage!r} must be a stage index in "
                       f"[0, {cfg['num_stages'] - 1}] (model.num_stages={cfg['num_stages']})")
    if not isinstance(reduction, int) or reduction < 1:
      raise ValueError(f"model.attention_reduction={reduction!r} must be an int >= 1 "
                       "(the paper's k = 8: keys and queries get C/k channels)")
    check_global_impl(cfg["attention_impl"])
    super().__init__(dict((k, cfg[k]) for k in CNN2D_DEFAULTS), task_info, rngs)
    # Built after the backbone, so the backbone's parameters are drawn exactly as
    # cnn2d draws them from the same seed.
    self.attention_stage = stage
    self.attention = FeatureMapAttention(self.widths[stage], reduction, cfg["attention_impl"],
                                         rngs=rngs)

  def after_stage(self, s, x_BHWC, *, train):
    del train
    return self.attention(x_BHWC) if s == self.attention_stage else x_BHWC
