"""1D temporal CNN: self-attention with a fixed, small receptive field.

Each residual block: LayerNorm, convolution over the sequence axis (kernel_size,
dilation), GELU, dropout. Padded vectors are zeroed before every convolution so
they never leak into real ones. Sequence outputs use causal (left) padding, so
position t sees only positions <= t.
"""
from __future__ import annotations

import jax
from flax import nnx

from attn_research.models.common import SequenceModel, is_causal
from attn_research.models.registry import register_model

DEFAULTS = dict(d_model=64, num_layers=3, kernel_size=5, dilation=1, dropout=0.0)


class ConvBlock(nnx.Module):
  def __init__(self, d, kernel_size, dilation, dropout, causal, *, rngs):
    self.norm = nnx.LayerNorm(d, rngs=rngs)
    self.conv = nnx.Conv(d, d, (kernel_size,), kernel_dilation=(dilation,),
                         padding="CAUSAL" if causal else "SAME", rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x_BTD, mask_BT, *, train):
    h = self.norm(x_BTD) * mask_BT[..., None]
    return x_BTD + self.dropout(jax.nn.gelu(self.conv(h)), deterministic=not train)


@register_model("cnn", DEFAULTS)
class CNN(SequenceModel):
  """Stacked residual 1D convolutions; receptive field 1 + num_layers * (kernel_size - 1) * dilation."""

  def __init__(self, cfg, task_info, rngs):
    for key in ("kernel_size", "dilation", "num_layers"):
      if cfg[key] < 1:
        raise ValueError(f"model.{key}={cfg[key]} must be >= 1")
    super().__init__(cfg, task_info, cfg["d_model"], rngs=rngs)
    self.blocks = nnx.List([
        ConvBlock(cfg["d_model"], cfg["kernel_size"], cfg["dilation"], cfg["dropout"],
                  is_causal(task_info), rngs=rngs)
        for _ in range(cfg["num_layers"])])

  def backbone(self, x_BTD, mask_BT, *, train):
    for block in self.blocks:
      x_BTD = block(x_BTD, mask_BT, train=train)
    return x_BTD, mask_BT
