"""A multilayer perceptron on the flattened vector set; num_layers=0 is logistic regression.

The baseline that ignores the set structure: the T x F inputs (zero-padded to the task's
max_length; token ids one-hot) are concatenated into one vector, so every position has
its own weights. MNIST-1D's paper (Greydanus and Kobak 2020, arXiv 2011.14439) reports
logistic regression and an MLP on its 40-sample signals beside CNNs and RNNs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.models.registry import register_model

DEFAULTS = dict(d_model=100, num_layers=2, dropout=0.0)


@register_model("mlp", DEFAULTS)
class MLP(nnx.Module):
  """flatten -> num_layers x (Linear(d_model), ReLU, dropout) -> Linear(classes)."""

  def __init__(self, cfg, task_info, rngs):
    if task_info.output_kind != "per_sequence":
      raise ValueError(f"model 'mlp' gives one label per set; the task's output kind is "
                       f"{task_info.output_kind!r} (needs 'per_sequence')")
    if not isinstance(cfg["num_layers"], int) or cfg["num_layers"] < 0:
      raise ValueError(f"model.num_layers={cfg['num_layers']!r} must be an int >= 0 "
                       "(0 = logistic regression)")
    self.tokens = task_info.input_kind == "tokens"
    self.vocab, self.max_length = task_info.input_size, task_info.max_length
    width = task_info.max_length * task_info.input_size
    self.hidden = nnx.List([])
    for _ in range(cfg["num_layers"]):
      self.hidden.append(nnx.Linear(width, cfg["d_model"], rngs=rngs))
      width = cfg["d_model"]
    self.dropout = nnx.Dropout(cfg["dropout"], rngs=rngs)
    self.out = nnx.Linear(width, task_info.num_classes, rngs=rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    x = (jax.nn.one_hot(inputs, self.vocab) if self.tokens
         else inputs.astype(jnp.float32))
    x = x * mask_BT[..., None]
    if x.shape[1] > self.max_length:
      raise ValueError(f"inputs of length {x.shape[1]} exceed the task's max_length "
                       f"{self.max_length}")
    x = jnp.pad(x, ((0, 0), (0, self.max_length - x.shape[1]), (0, 0)))
    h = x.reshape(x.shape[0], -1)
    for layer in self.hidden:
      h = self.dropout(jax.nn.relu(layer(h)), deterministic=not train)
    return self.out(h)
