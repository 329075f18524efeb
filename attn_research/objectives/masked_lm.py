"""Masked-token pretraining (BERT, Devlin et al. 2019): hide some tokens, predict them.

Of the real tokens of a batch (mask True and a byte, not a special token), each is
selected with probability masking.rate; a selected token is replaced by [MASK] with
probability masking.mask, by a token drawn uniformly from the 256 bytes with probability
masking.random, and otherwise left as it is. The loss and the accuracy count the
selected positions only, against the original tokens: an unselected position changes
nothing, whatever the model predicts there. Padding and special tokens are never
selected. The tokens are those of the shared byte vocabulary (data/vocab.py), so the
model must read that vocabulary and give a label per vector over it (task kjv_mlm).

The draw happens inside the jitted train step from fold_in(fold_in(rng, step), MASK_KEY):
a resumed run masks exactly what an uninterrupted one would. Evaluation is deterministic:
each eval batch's draw is keyed by the batch's own tokens, so the same parameters give the
same eval metrics, and different batches get independent draws.

config.masking (optional; BERT's values by default): rate, mask, random.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.data import vocab
from attn_research.objectives.base import Objective, register_objective, settings_block
from attn_research.objectives.classification import loss_sums

MASKING_DEFAULTS = dict(rate=0.15, mask=0.8, random=0.1)
MASK_KEY = 0x6D61736B  # "mask": the stream of the masking draws, apart from dropout's
EVAL_KEY = 0x6576616C  # "eval"


def masking_settings(config) -> dict:
  """config.masking over MASKING_DEFAULTS, refused when a key is unknown or a share is
  outside its range."""
  m = settings_block(config, "masking", MASKING_DEFAULTS)
  if not (isinstance(m["rate"], (int, float)) and 0 < m["rate"] < 1):
    raise ValueError(f"masking.rate={m['rate']!r} must be in (0, 1): the share of real "
                     "tokens selected for prediction (BERT: 0.15)")
  for key in ("mask", "random"):
    if not (isinstance(m[key], (int, float)) and 0 <= m[key] <= 1):
      raise ValueError(f"masking.{key}={m[key]!r} must be in [0, 1] (BERT: "
                       f"{MASKING_DEFAULTS[key]})")
  if m["mask"] + m["random"] > 1:
    raise ValueError(f"masking.mask={m['mask']} + masking.random={m['random']} = "
                     f"{m['mask'] + m['random']:g} must be <= 1: they are shares of the "
                     "selected tokens (the rest stay unchanged)")
  return m


def mask_tokens(key, tokens_BT, real_BT, *, rate, mask, random):
  """(corrupted tokens, selected [B, T] bool): the draw of the module docstring; only
  positions where real_BT is True and the token is a byte can be selected."""
  k_select, k_how, k_token = jax.random.split(key, 3)
  eligible = real_BT & (tokens_BT < vocab.NUM_BYTES)
  selected = eligible & (jax.random.uniform(k_select, tokens_BT.shape) < rate)
  u = jax.random.uniform(k_how, tokens_BT.shape)
  to_mask = selected & (u < mask)
  to_random = selected & (u >= mask) & (u < mask + random)
  random_tokens = jax.random.randint(k_token, tokens_BT.shape, 0, vocab.NUM_BYTES,
                                     tokens_BT.dtype)
  out = jnp.where(to_mask, jnp.asarray(vocab.MASK, tokens_BT.dtype),
                  jnp.where(to_random, random_tokens, tokens_BT))
  return out, selected


def check_model(config, model):
  """Refuses a model that does not read and predict the shared byte vocabulary per vector."""
  head = getattr(model, "head", None)
  table = getattr(getattr(model, "embed", None), "embed", None)
  data = config.data.get("name") if "data" in config else None
  if head is None or getattr(head, "kind", None) != "per_vector" or not isinstance(table,
                                                                                  nnx.Embed):
    raise ValueError(f"objective='masked_lm' predicts tokens with a label per vector: it needs "
                     f"a token task with per-vector outputs such as data.name='kjv_mlm' and a "
                     f"model with an output head; got data.name={data!r}, model "
                     f"{type(model).__name__} with output kind {getattr(head, 'kind', None)!r}")
  sizes = (table.num_embeddings, head.proj.out_features)
  if sizes != (vocab.SIZE, vocab.SIZE):
    raise ValueError(f"objective='masked_lm' needs the shared byte vocabulary of {vocab.SIZE} "
                     f"tokens (data/vocab.py) in and out; data.name={data!r} gives "
                     f"{sizes[0]} input tokens and {sizes[1]} classes (use kjv_mlm, or "
                     "data.vocabulary='shared' where a task offers it)")


@register_objective("masked_lm")
class MaskedLM(Objective):
  """Cross-entropy and accuracy on the selected tokens only (see the module docstring)."""

  def __init__(self, config, model):
    self.masking = masking_settings(config)
    check_model(config, model)
    super().__init__(config, model)

  def masked(self, batch, key):
    """The batch the model sees: corrupted inputs, the original tokens as targets,
    scored where selected."""
    inputs, selected = mask_tokens(key, batch["inputs"], batch["mask"], **self.masking)
    return dict(batch, inputs=inputs, targets=batch["inputs"], target_mask=selected)

  def loss_and_sums(self, logits, batch):
    sums = loss_sums(logits, batch)
    return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums

  def grads_and_sums(self, params, batch, key):
    # key is fold_in(rng, step) (Objective.train_step): masking drawn from it is resumable.
    return super().grads_and_sums(params, self.masked(batch, jax.random.fold_in(key, MASK_KEY)),
                                  key)

  def eval_step(self, state, batch):
    T = batch["inputs"].shape[1]
    digest = jnp.sum(batch["inputs"].astype(jnp.int32) * (jnp.arange(T, dtype=jnp.int32) + 1))
    key = jax.random.fold_in(jax.random.key(EVAL_KEY), digest)
    return super().eval_step(state, self.masked(batch, key))
