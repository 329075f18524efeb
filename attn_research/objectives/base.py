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

Gradient accumulation (config.train.accumulate_steps = N > 1) splits the batch into N
microbatches inside the jitted step (a lax.scan over [N, B/N, ...]) so a batch N times
larger than fits in memory trains as one. It differentiates the SUMMED loss of each
microbatch, sums["loss"], adds the gradients and divides by the total scored count,
sums["count"]: the loss it minimises is therefore sums["loss"] / sums["count"] over the
whole batch, exactly what loss_and_sums's own loss is for the common objectives
(classification), so N microbatches give one large batch's update within float
tolerance. An objective whose loss is not that ratio, or that overrides train_step,
cannot accumulate and is refused (accumulates = False). N = 1 runs the step unchanged.
Each microbatch draws its own dropout masks (fold_in of the step's key), so with
dropout N > 1 is a different, equally valid, draw than N = 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attn_research.objectives.optim import make_optimizer, stop_frozen
from attn_research.registry import Registry

OBJECTIVES = Registry("objective")


def register_objective(name: str):
  """Class decorator: an Objective subclass selectable as config.objective=NAME."""
  return OBJECTIVES.register(name)


def get_objective(config, model):
  """The objective config.objective names (default classification), built for model."""
  return OBJECTIVES.get(config.get("objective", "classification"))(config, model)


def settings_block(config, name: str, defaults: dict) -> dict:
  """An objective's optional config block (config.NAME) over its defaults; a key the
  defaults lack is refused, naming the valid ones. Values are the objective's to check."""
  given = dict(config.get(name) or {})
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ValueError(f"{name} {unknown} is not a {name} setting; valid: {sorted(defaults)}")
  return dict(defaults, **given)


def check_one_network(objective_name: str, what: str):
  """Refuses an objective whose state is not one model's parameters, for `what` (a
  feature that reads a run's parameters back as one model)."""
  cls = OBJECTIVES.get(objective_name)
  if not cls.one_network:
    valid = sorted(n for n in OBJECTIVES.names() if OBJECTIVES.get(n).one_network)
    raise ValueError(f"{what}: objective {objective_name!r} trains several networks, which "
                     f"cannot be read back as one model; objectives that can: {valid}")


def check_accumulate_steps(config, objective_cls) -> int:
  """config.train.accumulate_steps (default 1), refused before compiling when it is not a
  positive int, does not divide the batch each device gets, or the objective cannot
  accumulate (see the module docstring)."""
  tc = config.train
  n = tc.get("accumulate_steps", 1)
  if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
    raise ValueError(f"train.accumulate_steps={n!r} must be a positive int (1 = no "
                     "accumulation)")
  if n == 1:
    return n
  devices = jax.device_count()
  per_device = tc.batch_size // devices if tc.batch_size % devices == 0 else None
  if per_device is None or per_device % n:
    raise ValueError(f"train.accumulate_steps={n} must divide the batch each device gets: "
                     f"train.batch_size={tc.batch_size} over {devices} device(s) is "
                     f"{tc.batch_size / devices:g} per device; valid: "
                     f"{[d for d in range(1, (per_device or 0) + 1) if per_device % d == 0]}")
  overrides_step = objective_cls.train_step is not Objective.train_step
  if overrides_step or not objective_cls.accumulates:
    raise ValueError(f"train.accumulate_steps={n}: objective "
                     f"{config.get('objective', 'classification')!r} "
                     + ("writes its own train step" if overrides_step else
                        "minimises a loss other than sums['loss'] / sums['count']")
                     + ", so it cannot split a batch into microbatches; set "
                     "train.accumulate_steps=1")
  return n


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

  # False: the loss to minimise is not sums["loss"] / sums["count"] (or train_step is
  # overridden), so the step cannot split a batch into microbatches.
  accumulates = True
  # False: the state holds several networks (a GAN's generator and discriminator), so a
  # run's parameters cannot be read back as one model's (init_from, load_trained).
  one_network = True

  def __init__(self, config, model):
    self.config = config
    self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
    self.tx, self.schedule = make_optimizer(config.train, self.params)
    self.accumulate_steps = check_accumulate_steps(config, type(self))

  def apply(self, params, rest, batch, *, train):
    params = stop_frozen(params, self.config.train.get("frozen", ""))  # objectives/optim.py
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

  def grads_and_sums(self, params, batch, key):
    """(gradient of the loss to minimise, the batch's summed values) for one batch; key
    seeds dropout. With accumulate_steps = N > 1 the batch runs as N microbatches (see
    the module docstring); N = 1 differentiates loss_and_sums's loss directly."""
    n = self.accumulate_steps

    def loss_fn(params, micro, rest):
      return self.loss_and_sums(self.apply(params, rest, micro, train=True), micro)

    if n == 1:
      (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, batch, seeded(self.rest, key))
      return grads, sums

    def summed_loss(params, micro, rest):
      _, sums = loss_fn(params, micro, rest)
      return sums["loss"], sums

    # Microbatch i holds rows i, i + N, i + 2N, ...: each device's rows stay on it
    # (the batch is split over devices in contiguous blocks of a multiple of N rows).
    micro_NB = jax.tree.map(
        lambda x: jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1), batch)

    def one(carry, xs):
      i, micro = xs
      (_, sums), grads = jax.value_and_grad(summed_loss, has_aux=True)(
          params, micro, seeded(self.rest, jax.random.fold_in(key, i)))
      return jax.tree.map(jnp.add, carry, (grads, sums)), None

    (_, sums_shape), grads_shape = jax.eval_shape(
        jax.value_and_grad(summed_loss, has_aux=True), params,
        jax.tree.map(lambda x: x[0], micro_NB), self.rest)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), (grads_shape, sums_shape))
    (grads, sums), _ = jax.lax.scan(one, zeros, (jnp.arange(n), micro_NB))
    count = jnp.maximum(sums["count"], 1.0)
    return jax.tree.map(lambda g: g / count.astype(g.dtype), grads), sums

  def train_step(self, state, batch, rng):
    """rng is the run's key; this step's randomness is fold_in(rng, step), so a resumed
    run draws exactly what an uninterrupted one would."""
    grads, sums = self.grads_and_sums(state["params"], batch,
                                      jax.random.fold_in(rng, state["step"]))
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
