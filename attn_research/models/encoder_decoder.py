"""Encoder-decoder Transformer for source -> target tasks (Vaswani et al. 2017, arXiv 1706.03762).

The encoder (bidirectional pre-LN blocks) reads the source once; each decoder block runs
causal self-attention over the target prefix, cross-attention to the encoder output and
an MLP. Trained with teacher forcing: called as model(inputs, mask, train=,
decoder_inputs=) it returns next-token logits [B, T', V] for every target position.
Cost per example: O(S^2 d) encoder, O(T'^2 d + T' S d) decoder attention, plus the MLPs.
"""
from __future__ import annotations

from flax import nnx

from attn_research.models.registry import register_model
from attn_research.nn.cross_attention import DecoderBlock
from attn_research.nn.heads import InputEmbedding, OutputHead
from attn_research.nn.positions import get_positional
from attn_research.nn.transformer import EncoderBlock, check_remat, run_blocks
from attn_research.registry import check_choice

DEFAULTS = dict(d_model=64, encoder_layers=2, decoder_layers=2, num_heads=4, mlp_ratio=4,
                dropout=0.0, attention_impl="auto", position="learned",
                # Rematerialisation in training, per stack: none, block or full
                # (nn/transformer.py).
                remat="none")
# Absolute encodings only: one added to each side's embeddings. Relative ones (rotary,
# alibi) have no meaning between a target and a source position.
POSITIONS = ("learned", "sinusoidal", "none")


def check_seq2seq_task(task_info):
  if not getattr(task_info, "seq2seq", False):
    raise ValueError(
        "model.name='encoder_decoder' needs a seq2seq task (source -> target with "
        f"decoder_inputs, TaskInfo.seq2seq=True); got a task with output kind "
        f"{task_info.output_kind!r} (input kind {task_info.input_kind!r}): use "
        "'transformer' for it, or a seq2seq task such as data.name='reverse'")


@register_model("encoder_decoder", DEFAULTS)
class EncoderDecoder(nnx.Module):
  """Source embedding + position -> N encoder blocks -> LN = memory; target embedding +
  position -> M decoder blocks (reading memory) -> head (LN, linear to the vocabulary)."""
  uses_decoder_inputs = True

  def __init__(self, cfg, task_info, rngs):
    check_seq2seq_task(task_info)
    check_choice("model.position", cfg["position"], POSITIONS)
    self.remat = check_remat(cfg["remat"])
    d, heads = cfg["d_model"], cfg["num_heads"]
    if heads < 1 or d % heads:
      raise ValueError(f"model.num_heads={heads} must divide model.d_model={d}")
    for key in ("encoder_layers", "decoder_layers"):
      if not isinstance(cfg[key], int) or cfg[key] < 1:
        raise ValueError(f"model.{key}={cfg[key]!r} must be an int >= 1")
    block = dict(mlp_ratio=cfg["mlp_ratio"], dropout=cfg["dropout"])
    self.source_embed = InputEmbedding(task_info.input_kind, task_info.input_size, d, rngs=rngs)
    self.target_embed = nnx.Embed(task_info.num_classes, d, rngs=rngs)
    self.source_position, self.target_position = (
        get_positional(cfg["position"], d, task_info.max_length, heads, rngs=rngs)
        for _ in range(2))
    self.encoder = nnx.List([
        EncoderBlock(d, heads, impl=cfg["attention_impl"], rngs=rngs, **block)
        for _ in range(cfg["encoder_layers"])])
    self.encoder_norm = nnx.LayerNorm(d, rngs=rngs)
    self.decoder = nnx.List([
        DecoderBlock(d, heads, impl=cfg["attention_impl"], rngs=rngs, **block)
        for _ in range(cfg["decoder_layers"])])
    self.head = OutputHead(d, task_info.num_classes, "sequence", rngs=rngs)

  def encode(self, x_BSD, mask_BS, *, train: bool = False):
    """Embedded source [B, S, d] -> memory [B, S, d] (the encoder's output)."""
    x_BSD = self.source_position(x_BSD)
    x_BSD = run_blocks(self.encoder, x_BSD, lambda block, x: block(x, mask_BS, train=train),
                       remat=self.remat, train=train)
    return self.encoder_norm(x_BSD)

  def decode(self, y_BTD, memory_BSD, mask_BS, *, train: bool = False):
    """Embedded decoder inputs [B, T', d] and memory -> logits [B, T', V]."""
    y_BTD = self.target_position(y_BTD)
    y_BTD = run_blocks(self.decoder, y_BTD,
                       lambda block, y: block(y, memory_BSD, mask_BS, train=train),
                       remat=self.remat, train=train)
    return self.head(y_BTD, None)

  def __call__(self, inputs, mask_BS, *, train: bool = False, decoder_inputs=None):
    if decoder_inputs is None:
      raise ValueError("EncoderDecoder needs the batch's decoder_inputs [B, T'] (a start "
                       "token then the target shifted right)")
    memory_BSD = self.encode(self.source_embed(inputs), mask_BS, train=train)
    return self.decode(self.target_embed(decoder_inputs), memory_BSD, mask_BS, train=train)
