"""Many small full-graph runs of one model as one vmapped computation, with the protocol's
checkpoint choice: the best-on-validation parameters, scored on the test split once.

Node classification on one graph (karate, csbm) trains on the whole graph every step, so
a run is a few hundred steps of a tiny model, and the loop's fixed costs (compiling,
checkpoints, summaries; about 10 s a run on 2 CPU cores) would dwarf the training of 30
label splits x several models. Here every member (a seed with its own data settings: a
label split, a generated graph) is one slice of a jax.vmap over the objective's own pure
steps (objectives/base.py train_step and eval_step), compiled once per model:

  member k   data = config.data updated by overrides[k], seed = seeds[k]: parameters from
             nnx.Rngs(params=seed) and dropout from jax.random.key(seed) folded with the
             step, exactly as train/loop.py would draw them for config.seed = seed
  training   train.num_steps steps on the task's one training batch (the whole graph,
             its training nodes scored); every train.eval_every steps the validation
             split (data.eval_split="validation") is scored
  choice     the parameters of the eval step with the best validation accuracy (a tie
             keeps the earlier step), as train.keep_best="accuracy" keeps them in
             checkpoints_best/ (held in memory here, not written)
  test       those parameters scored once on data.eval_split="test"

The same member trained by train/loop.py reaches the same parameters up to float
round-off (tests/test_repro_gat.py compares them).
"""
from __future__ import annotations

import copy
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_research.data import get_task
from attn_research.models import count_params, get_model
from attn_research.objectives import get_objective


@dataclasses.dataclass
class MemberResult:
  seed: int
  overrides: dict
  best_step: int
  best_validation: dict          # the objective's eval metrics at best_step
  curve: list                    # [{"step", "accuracy", "loss", "train_loss"}] per eval
  test: dict                     # metrics of the best-on-validation parameters on test
  test_examples: int             # scored test targets


def data_settings(config, overrides: dict, split: str):
  data = copy.deepcopy(config.data)
  with data.unlocked():
    data.update(overrides)
    data.eval_split = split
  return data


def _stack(batches):
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _one_batch(task, split_name):
  batches = list(task.eval_batches(1))
  if len(batches) != 1:
    raise ValueError(f"vmapped runs need a one-graph task; its {split_name} split has "
                     f"{len(batches)} examples")
  return batches[0]


class VmappedRuns:
  """Trains members of one config (model, optimizer, steps) together; build once per
  model and call run() for each group of members of equal shapes (one compile)."""

  def __init__(self, config):
    tc = config.train
    if tc.get("keep_best", "accuracy") not in ("", "accuracy"):
      raise ValueError(f"vmapped runs keep the best validation accuracy; got "
                       f"train.keep_best={tc.keep_best!r}")
    if tc.num_steps % tc.eval_every:
      raise ValueError(f"train.num_steps={tc.num_steps} must be a multiple of "
                       f"train.eval_every={tc.eval_every} (the last step is an eval step)")
    if tc.batch_size != 1 or tc.get("accumulate_steps", 1) != 1:
      raise ValueError("vmapped runs train on the one graph per step: train.batch_size=1 and "
                       f"accumulate_steps=1 (got {tc.batch_size}, {tc.get('accumulate_steps')})")
    self.config = config
    task = get_task(data_settings(config, {}, "validation"))
    if task.info.train_size != 1:
      raise ValueError(f"vmapped runs need a one-graph task (train_size 1); data.name="
                       f"{config.data.name!r} has {task.info.train_size}")
    self.info = task.info
    model = get_model(config.model, self.info, rngs=nnx.Rngs(params=0, dropout=1))
    self.num_params = count_params(model)
    self.objective = get_objective(config, model)
    self._chunk = jax.jit(self._chunk_fn, static_argnums=(4,), donate_argnums=(0, 1))
    self._init = jax.jit(jax.vmap(self._init_fn))
    self._eval = jax.jit(jax.vmap(self.objective.eval_step))

  def _init_fn(self, key):
    model = get_model(self.config.model, self.info, rngs=nnx.Rngs(params=key, dropout=key))
    return self.objective.init_state(nnx.state(model, nnx.Param))

  def _chunk_fn(self, states, best, batches, keys, num_steps):
    step = jax.vmap(self.objective.train_step)

    def body(s, _):
      s, metrics = step(s, batches["train"], keys)
      return s, metrics["loss"]

    states, losses = jax.lax.scan(body, states, None, length=num_steps)
    sums = jax.vmap(self.objective.eval_step)(states, batches["validation"])
    accuracy = sums["accuracy"] / jnp.maximum(sums["count"], 1.0)
    improved = accuracy > best["accuracy"]

    def keep(new, old):
      return jnp.where(improved.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    best = {"accuracy": jnp.where(improved, accuracy, best["accuracy"]),
            "step": jnp.where(improved, states["step"], best["step"]),
            "params": jax.tree.map(keep, states["params"], best["params"])}
    return states, best, sums, losses.mean(0)

  def run(self, seeds, overrides=None) -> list[MemberResult]:
    """Trains one member per seed (overrides[k]: its data settings) and scores each
    member's best-on-validation parameters on test."""
    overrides = overrides or [{}] * len(seeds)
    if len(overrides) != len(seeds):
      raise ValueError(f"{len(seeds)} seeds but {len(overrides)} data overrides")
    split_batches = {"train": [], "validation": [], "test": []}
    for seed, extra in zip(seeds, overrides):
      val_task = get_task(data_settings(self.config, extra, "validation"))
      test_task = get_task(data_settings(self.config, extra, "test"))
      if val_task.info != self.info:
        raise ValueError(f"member {extra} changes the task's shape: {val_task.info} vs "
                         f"{self.info}")
      split_batches["train"].append(val_task.train_batch(0, 1, int(seed)))
      split_batches["validation"].append(_one_batch(val_task, "validation"))
      split_batches["test"].append(_one_batch(test_task, "test"))
    batches = {k: jax.device_put(_stack(v)) for k, v in split_batches.items()}
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    states = self._init(keys)
    k = len(seeds)
    best = {"accuracy": jnp.full((k,), -jnp.inf), "step": jnp.zeros((k,), jnp.int32),
            "params": jax.tree.map(jnp.copy, states["params"])}
    tc = self.config.train
    curves = [[] for _ in seeds]
    for _ in range(tc.num_steps // tc.eval_every):
      states, best, sums, train_loss = self._chunk(states, best, batches, keys, tc.eval_every)
      sums, train_loss, step = jax.device_get((sums, train_loss, states["step"]))
      for i in range(k):
        metrics = self.objective.reduce_eval({n: v[i] for n, v in sums.items()})
        curves[i].append(dict(step=int(step[i]), train_loss=float(train_loss[i]), **metrics))
    test_sums = jax.device_get(self._eval({"params": best["params"]}, batches["test"]))
    best_step = jax.device_get(best["step"])
    results = []
    for i, seed in enumerate(seeds):
      # No finite validation accuracy ever: step 0 (the initial parameters), no metrics.
      chosen = next((c for c in curves[i] if c["step"] == int(best_step[i])), {})
      sums_i = {n: v[i] for n, v in test_sums.items()}
      results.append(MemberResult(
          seed=int(seed), overrides=dict(overrides[i]), best_step=int(best_step[i]),
          best_validation={n: v for n, v in chosen.items() if n not in ("step", "train_loss")},
          curve=curves[i], test=self.objective.reduce_eval(sums_i),
          test_examples=int(sums_i["count"])))
    return results


def timed(fn, *args, **kwargs):
  """(fn's result, wall seconds)."""
  t0 = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - t0
