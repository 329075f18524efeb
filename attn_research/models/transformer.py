"""Transformer encoder (or decoder-only, for sequence outputs) over any vector set."""
from __future__ import annotations

from flax import nnx

from attn_research.models.common import SequenceModel, is_causal
from attn_research.models.registry import register_model
from attn_research.nn.heads import POOLINGS, ClsToken
from attn_research.nn.positions import get_positional
from attn_research.nn.transformer import DecoderOnlyBlock, EncoderBlock, check_remat, run_blocks
from attn_research.registry import check_choice

DEFAULTS = dict(d_model=64, num_layers=2, num_heads=4, mlp_ratio=4, dropout=0.0,
                attention="softmax", attention_impl="auto", position="learned", pooling="mean",
                # > 0: truncated attention, each vector sees `window` neighbours on each
                # side (only the past when causal); 0: full attention.
                window=0,
                # Rematerialisation in training: none, block or full (nn/transformer.py).
                remat="none")


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
    self.remat = check_remat(cfg["remat"])
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
    if per_layer_NTD is not None:  # each block adds its layer's encoding first
      blocks = list(zip(self.blocks, per_layer_NTD))
      call = lambda bp, x: bp[0](x + bp[1].astype(x.dtype), mask_BT,  # noqa: E731
                                 attn_mask_BTT=attn_mask_BTT, train=train)
    else:
      blocks = self.blocks
      call = lambda block, x: block(x, mask_BT, attn_mask_BTT=attn_mask_BTT,  # noqa: E731
                                    train=train)
    return run_blocks(blocks, x_BTD, call, remat=self.remat, train=train), mask_BT
