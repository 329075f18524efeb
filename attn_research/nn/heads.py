"""Inputs in, outputs out: the lecture's vector sets and its three output kinds.

InputEmbedding turns any vector set into [B, T, d_model]: token ids (words,
characters) through an embedding table, real vectors (pixels, patches, speech
frames, node features) through a linear map.

OutputHead gives one of the three output kinds:
  "per_vector"    a label for every vector             logits [B, T, C]
  "per_sequence"  one label for the whole set          logits [B, C]  (mean or cls pooling)
  "sequence"      a new sequence (decoder-only seq2seq) logits [B, T, V], model run causally
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

OUTPUT_KINDS = ("per_vector", "per_sequence", "sequence")
POOLINGS = ("mean", "cls")


class InputEmbedding(nnx.Module):
  def __init__(self, input_kind: str, input_size: int, d_model: int, *, rngs: nnx.Rngs):
    """input_kind "tokens": input_size is the vocabulary; otherwise the feature size."""
    self.tokens = input_kind == "tokens"
    if self.tokens:
      self.embed = nnx.Embed(input_size, d_model, rngs=rngs)
    else:
      self.embed = nnx.Linear(input_size, d_model, rngs=rngs)

  def __call__(self, inputs):
    return self.embed(inputs if self.tokens else inputs.astype(jnp.float32))


class ClsToken(nnx.Module):
  """A learned vector prepended to the set; its output summarises the set (BERT, ViT)."""

  def __init__(self, d_model: int, *, rngs: nnx.Rngs):
    self.cls_D = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), (d_model,)))

  def __call__(self, x_BTD, mask_BT):
    B = x_BTD.shape[0]
    cls = jnp.broadcast_to(self.cls_D[...].astype(x_BTD.dtype), (B, 1, x_BTD.shape[-1]))
    return (jnp.concatenate([cls, x_BTD], axis=1),
            jnp.concatenate([jnp.ones((B, 1), bool), mask_BT], axis=1))


def masked_mean(h_BTD, mask_BT):
  w_BT = mask_BT.astype(h_BTD.dtype)
  return (h_BTD * w_BT[..., None]).sum(1) / jnp.maximum(w_BT.sum(1), 1.0)[:, None]


class OutputHead(nnx.Module):
  def __init__(self, d_model: int, num_classes: int, kind: str, pooling: str = "mean", *,
               rngs: nnx.Rngs):
    if kind not in OUTPUT_KINDS:
      raise ValueError(f"output kind {kind!r} is not one of {OUTPUT_KINDS}")
    if pooling not in POOLINGS:
      raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
    self.kind, self.pooling = kind, pooling
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.proj = nnx.Linear(d_model, num_classes, rngs=rngs)

  def __call__(self, h_BTD, mask_BT):
    h_BTD = self.norm(h_BTD)
    if self.kind == "per_sequence":
      h_BD = h_BTD[:, 0] if self.pooling == "cls" else masked_mean(h_BTD, mask_BT)
      return self.proj(h_BD)
    return self.proj(h_BTD)
