"""The objective contract and what most objectives share.

An objective is built from the run's config and its (already built) model, before
anything compiles, so every bad setting raises there. The loop then asks it for:

  initial_state()              a pytree {"step": int32 scalar, ...}: everything that is
                               checkpointed (parameters, optimizer states, extra state)
  train_step(state, batch, rng) -> (state, metrics)   pure; jitted once by the loop
  eval_step(state, batch) -> sums                     pure; summed over eval batches
  reduce_eval(sums) -> {name: float}                  on the host, after the last batch
  summary_fields(state) -> dict                        extra summary.json fields

The base class implements the common case: one parameter group (the model's
nnx.Param leaves), one optax optimizer from config.train, and a loss given by
`loss_and_sums` that subclasses write. State is {step, params, opt_state}; the model's
graph definition and its non-parameter state (dropout RNG streams) are closed over,
so the steps are pure functions of (state, batch, rng).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attn_research.objectives.optim import make_optimizer
from attn_research.registry import Registry

OBJECTIVES = Registry("objective")


def register_objective(name: str):
  """Class decorator: an Objective subclass selectable as config.objective=NAME."""
  return OBJECTIVES.register(name)


def get_objective(config, model):
  """The objective config.objective names (default classification), built for model."""
  return OBJECTIVES.get(config.get("objective", "classification"))(config, model)


def apply_model(graphdef, params, rest, batch, *, train):
  """The model's output for batch: a pure function of its split state."""
  # Copy the state's Variables into the current trace: flax refuses to let a module
  # advance an RNG count (dropout, RNN carry init) created at another trace level.
  rest = jax.tree.map(lambda x: x, rest)
  model = nnx.merge(graphdef, params, rest)
  graph = {"adjacency": batch["adjacency"]} if getattr(model, "uses_adjacency", False) else {}
  if getattr(model, "uses_decoder_inputs", False):  # seq2seq: the decoder's teacher forcing
    graph["decoder_inputs"] = batch["decoder_inputs"]
  return model(batch["inputs"], batch["mask"], train=train, **graph)


def seeded(rest, rng):
  """The non-parameter state with every RNG stream (dropout) keyed by rng, stream i
  getting fold_in(rng, i): a pure replacement, nothing is mutated."""
  leaves, treedef = jax.tree.flatten(rest)
  is_key = [jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) for x in leaves]
  leaves = [jax.random.fold_in(rng, i) if k else x
            for i, (x, k) in enumerate(zip(leaves, is_key))]
  return jax.tree.unflatten(treedef, leaves)


class Objective:
  """One parameter group, one optimizer, a loss from `loss_and_sums` (see the module
  docstring). Subclasses that train several networks override the state and steps."""

  # Train metrics whose non-finite value stops the run (the NaN stop names the step).
  finite_metrics = ("loss", "grad_norm")
  # Metrics shown on the progress bar, first train then eval (absent ones are skipped).
  progress_metrics = ("loss", "accuracy")

  def __init__(self, config, model):
    self.config = config
    self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
    self.tx, self.schedule = make_optimizer(config.train)

  def apply(self, params, rest, batch, *, train):
    return apply_model(self.graphdef, params, rest, batch, train=train)

  # What subclasses write -------------------------------------------------------------
  def loss_and_sums(self, output, batch):
    """(scalar loss to minimise, {name: summed value, ..., "count": n}) for one batch."""
    raise NotImplementedError

  def reduce_eval(self, sums) -> dict:
    """Summed eval values -> metrics (means over the scored count)."""
    count = max(float(sums["count"]), 1.0)
    return {k: float(v) / count for k, v in sums.items() if k != "count"}

  # The common case -------------------------------------------------------------------
  def init_state(self, params):
    """The checkpointed state that starts from params."""
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "opt_state": self.tx.init(params)}

  def initial_state(self):
    return self.init_state(self.params)

  def abstract_state(self):
    """Shapes and dtypes of the state (an orbax restore target); nothing is computed."""
    return jax.eval_shape(self.init_state, self.params)

  def train_step(self, state, batch, rng):
    """rng is the run's key; this step's randomness is fold_in(rng, step), so a resumed
    run draws exactly what an uninterrupted one would."""
    step_rest = seeded(self.rest, jax.random.fold_in(rng, state["step"]))

    def loss_fn(params):
      return self.loss_and_sums(self.apply(params, step_rest, batch, train=True), batch)

    (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    count = jnp.maximum(sums["count"], 1.0)
    metrics = {k: v / count for k, v in sums.items() if k != "count"}
    metrics.update(grad_norm=optax.tree.norm(grads), param_norm=optax.tree.norm(params),
                   learning_rate=jnp.asarray(self.schedule(state["step"]), jnp.float32))
    new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
    return new_state, metrics

  def eval_step(self, state, batch):
    return self.loss_and_sums(self.apply(state["params"], self.rest, batch, train=False),
                              batch)[1]

  def forward(self, params, batch):
    """The eval-mode output of the model (FLOPs counting, inspection)."""
    return self.apply(params, self.rest, batch, train=False)

  def summary_fields(self, state) -> dict:
    return {}
