"""What every model family shares: embed the vector set, run a backbone, apply the head."""
from __future__ import annotations

from flax import nnx

from attn_research.nn.heads import InputEmbedding, OutputHead


def is_causal(task_info) -> bool:
  """Sequence outputs are produced decoder-only: position t may only see positions <= t."""
  return task_info.output_kind == "sequence"


class SequenceModel(nnx.Module):
  """embed -> backbone(x, mask, train) -> head. Subclasses build self.backbone_layers."""

  def __init__(self, cfg, task_info, d_model, *, rngs, pooling="mean"):
    if getattr(task_info, "seq2seq", False):
      raise ValueError(f"{type(self).__name__} maps one vector set to outputs over it "
                       "(decoder-only for sequences); this task is seq2seq (source -> target "
                       "with decoder_inputs): use --config.model.name=encoder_decoder")
    self.embed = InputEmbedding(task_info.input_kind, task_info.input_size, d_model, rngs=rngs)
    self.head = OutputHead(d_model, task_info.num_classes, task_info.output_kind, pooling,
                           rngs=rngs)

  def backbone(self, x_BTD, mask_BT, *, train):
    raise NotImplementedError

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    h_BTD, mask_BT = self.backbone(self.embed(inputs), mask_BT, train=train)
    return self.head(h_BTD, mask_BT)
