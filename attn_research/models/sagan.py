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

import jax.numpy as jnp
from flax import nnx

from attn_research import kernels
from attn_research.models.cnn2d import DEFAULTS as CNN2D_DEFAULTS
from attn_research.models.cnn2d import CNN2D
from attn_research.models.registry import register_model

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
  """y = x + gamma * softmax(g(x) f(x)^T) h(x) over all positions of x [B, H, W, C]."""

  def __init__(self, channels: int, reduction: int, impl: str, *, rngs: nnx.Rngs):
    check_global_impl(impl)
    self.impl, self.key_channels = impl, max(1, channels // reduction)
    one_by_one = lambda c_out: nnx.Conv(channels, c_out, (1, 1), rngs=rngs)  # noqa: E731
    self.f = one_by_one(self.key_channels)   # keys
    self.g = one_by_one(self.key_channels)   # queries
    self.h = one_by_one(channels)            # values
    self.gamma = nnx.Param(jnp.zeros((), jnp.float32))

  def __call__(self, x_BHWC):
    B, H, W, C = x_BHWC.shape
    as_heads = lambda y: y.reshape(B, H * W, 1, y.shape[-1])  # noqa: E731  [B, N, 1 head, D]
    o_BN1C = kernels.dot_product_attention(as_heads(self.g(x_BHWC)), as_heads(self.f(x_BHWC)),
                                           as_heads(self.h(x_BHWC)), scale=1.0, impl=self.impl)
    return x_BHWC + self.gamma[...] * o_BN1C.reshape(B, H, W, C)


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
