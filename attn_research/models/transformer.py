"""Transformer encoder (or decoder-only, for sequence outputs) over any vector set."""
from __future__ import annotations

from flax import nnx

from attn_research.models.common import SequenceModel, is_causal
from attn_research.models.registry import register_model
from attn_research.nn.heads import POOLINGS, ClsToken
from attn_research.nn.positions import get_positional
from attn_research.nn.transformer import DecoderOnlyBlock, EncoderBlock
from attn_research.registry import check_choice

DEFAULTS = dict(d_model=64, num_layers=2, num_heads=4, mlp_ratio=4, dropout=0.0,
                attention="softmax", attention_impl="auto", position="learned", pooling="mean",
                # > 0: truncated attention, each vector sees `window` neighbours on each
                # side (only the past when causal); 0: full attention.
                window=0)


def _window(width):
  if not isinstance(width, int) or width < 0:
    raise ValueError(f"model.window={width!r} must be an int >= 0 (0 = full attention)")
  return (width, width) if width else None


@register_model("transformer", DEFAULTS)
class Transformer(SequenceModel):
  """Pre-LN Transformer: embed + position, N blocks of multi-head self-attention + MLP, head.

  Sequence outputs run it causally (a GPT-style decoder); per-sequence outputs pool by
  mean or through a CLS vector.
  """

  def __init__(self, cfg, task_info, rngs):
    check_choice("model.pooling", cfg["pooling"], POOLINGS)
    d = cfg["d_model"]
    if cfg["num_heads"] < 1 or d % cfg["num_heads"]:
      raise ValueError(f"model.num_heads={cfg['num_heads']} must divide model.d_model={d}")
    super().__init__(cfg, task_info, d, rngs=rngs, pooling=cfg["pooling"])
    self.cls = (ClsToken(d, rngs=rngs)
                if cfg["pooling"] == "cls" and task_info.output_kind == "per_sequence" else None)
    self.position = get_positional(cfg["position"], d, task_info.max_length, cfg["num_heads"],
                                   rngs=rngs, num_layers=cfg["num_layers"])
    block_cls = DecoderOnlyBlock if is_causal(task_info) else EncoderBlock
    self.blocks = nnx.List([
        block_cls(d, cfg["num_heads"], cfg["mlp_ratio"], cfg["dropout"],
                  kernel=cfg["attention"], impl=cfg["attention_impl"], position=self.position,
                  window=_window(cfg["window"]),
                  max_length=task_info.max_length + (1 if self.cls is not None else 0),
                  rngs=rngs)
        for _ in range(cfg["num_layers"])])

  def backbone(self, x_BTD, mask_BT, *, train, attn_mask_BTT=None):
    x_BTD = self.position(x_BTD)
    if self.cls is not None:
      x_BTD, mask_BT = self.cls(x_BTD, mask_BT)
    per_layer_NTD = self.position.layer_encodings(x_BTD.shape[1])  # None but for floater
    for i, block in enumerate(self.blocks):
      if per_layer_NTD is not None:
        x_BTD = x_BTD + per_layer_NTD[i].astype(x_BTD.dtype)
      x_BTD = block(x_BTD, mask_BT, attn_mask_BTT=attn_mask_BTT, train=train)
    return x_BTD, mask_BT
