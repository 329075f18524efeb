"""Looking inside a model: its logits on a batch and the attention weights of every layer.

Attention weights come from each layer's kernel through its reference (matrix) form,
whatever form trained the model: softmax, additive and gat return the softmax matrix,
linear and performer their row-normalised phi(q) . phi(k) matrix (the parallel form);
linformer refuses (its weights are over k projected keys, mixtures of positions).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_research.nn.attention import MultiHeadSelfAttention


def predict_logits(model, batch):
  """The model's logits on a batch (eval mode), passing the adjacency to graph models and
  the decoder inputs to encoder-decoder models."""
  extra = {key: jnp.asarray(batch[key]) for key, flag in (("adjacency", "uses_adjacency"),
                                                          ("decoder_inputs", "uses_decoder_inputs"))
           if getattr(model, flag, False)}
  return model(jnp.asarray(batch["inputs"]), jnp.asarray(batch["mask"]), train=False, **extra)


def attention_layers(model):
  """The model's MultiHeadSelfAttention modules, in the order they were built."""
  return [m for _, m in nnx.iter_graph(model) if isinstance(m, MultiHeadSelfAttention)]


def attention_weights(model, batch) -> list:
  """[B, H, T, S] numpy weights of every self-attention layer, first layer first."""
  layers = attention_layers(model)
  if not layers:
    raise ValueError(f"model {type(model).__name__} has no self-attention layer "
                     "(attention maps need a transformer, vit or graph_attention model)")
  for layer in layers:
    layer.record_weights = True
  try:
    predict_logits(model, batch)
    weights = []
    for layer in layers:
      sown = layer.attention_weights
      weights.append(np.asarray(sown.value[0] if hasattr(sown, "value") else sown[0]))
      del layer.attention_weights
  finally:
    for layer in layers:
      layer.record_weights = False
  return weights
