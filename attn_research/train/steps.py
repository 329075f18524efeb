"""The pure train and eval steps, jitted once per run.

State is a plain pytree {step, params, opt_state}; the model's graph definition and
its non-parameter state (dropout RNG streams) are closed over as constants, so a
step is a pure function of (state, batch, rng).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def target_weights(batch, logits):
  """Which targets count: target_mask if given, else the input mask for per-vector
  outputs, else every example."""
  if "target_mask" in batch:
    return batch["target_mask"].astype(jnp.float32)
  if logits.ndim == 3:
    return batch["mask"].astype(jnp.float32)
  return jnp.ones(batch["targets"].shape, jnp.float32)


def loss_sums(logits, batch):
  """Summed cross-entropy, summed correct predictions and the count of scored targets."""
  w = target_weights(batch, logits)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                       batch["targets"])
  correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
  return {"loss": (ce * w).sum(), "accuracy": (correct * w).sum(), "count": w.sum()}


def means(sums):
  count = jnp.maximum(sums["count"], 1.0)
  return {"loss": sums["loss"] / count, "accuracy": sums["accuracy"] / count}


def apply_model(graphdef, params, rest, batch, *, train):
  """The model's logits for batch: a pure function of its split state."""
  # Copy the state's Variables into the current trace: flax refuses to let a module
  # advance an RNG count (dropout, RNN carry init) created at another trace level.
  rest = jax.tree.map(lambda x: x, rest)
  model = nnx.merge(graphdef, params, rest)
  graph = {"adjacency": batch["adjacency"]} if getattr(model, "uses_adjacency", False) else {}
  if getattr(model, "uses_decoder_inputs", False):  # seq2seq: the decoder's teacher forcing
    graph["decoder_inputs"] = batch["decoder_inputs"]
  return model(batch["inputs"], batch["mask"], train=train, **graph)


def make_steps(graphdef, rest, tx, schedule):
  """Returns (train_step, eval_step, forward), all pure and unjitted."""
  apply = functools.partial(apply_model, graphdef)

  def seeded_rest(rng):
    """The non-parameter state with every RNG stream (dropout) keyed by this step's rng,
    stream i getting fold_in(rng, i): a pure replacement, nothing is mutated."""
    leaves, treedef = jax.tree.flatten(rest)
    is_key = [jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) for x in leaves]
    leaves = [jax.random.fold_in(rng, i) if k else x
              for i, (x, k) in enumerate(zip(leaves, is_key))]
    return jax.tree.unflatten(treedef, leaves)

  def train_step(state, batch, rng):
    """rng is the run's key; this step's randomness is fold_in(rng, step), so a resumed
    run draws exactly what an uninterrupted one would."""
    step_rest = seeded_rest(jax.random.fold_in(rng, state["step"]))

    def loss_fn(params):
      sums = loss_sums(apply(params, step_rest, batch, train=True), batch)
      return means(sums)["loss"], sums

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = dict(means(sums), grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params),
                   learning_rate=jnp.asarray(schedule(state["step"]), jnp.float32))
    new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
    return new_state, metrics

  def eval_step(params, batch):
    return loss_sums(apply(params, rest, batch, train=False), batch)

  def forward(params, batch):
    return apply(params, rest, batch, train=False)

  return train_step, eval_step, forward
