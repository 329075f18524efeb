"""The one training loop: run(config, workdir) -> summary dict.

Everything that can reject the config (task, model, objective, optimizer, devices,
workdir rules) runs before anything is written or compiled. The run then checkpoints on
an interval and at the end, and a workdir that holds a checkpoint is resumed.

What is trained and how (the state, the steps, the metrics) belongs to the run's
objective (attn_research/objectives/, `config.objective`); this loop only drives it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from attn_research.data import get_task
from attn_research.data.base import bucket_boundaries, trim_to_bucket
from attn_research.models import count_params, get_model
from attn_research.objectives import get_objective
from attn_research.workdir import checkpoint as ckpt_lib
from attn_research.train import init_from
from attn_research.train import sequence as sequence_lib
from attn_research.train.parallel import Parallel, maybe_initialize_distributed
from attn_research.measure import forward_flops, peak_bytes, provenance, utilisation_fields
from attn_research.train.writer import MetricWriter
from attn_research.workdir import (CHECKPOINTS, CHECKPOINTS_BEST, CONFIG, SUMMARY, DirectoryLock,
                                   check_writable, write_json)
from attn_research.workdir.best import BestCheckpoint, check_keep_best


def _check_train_config(tc):
  for key in ("batch_size", "eval_batch_size", "num_steps", "log_every", "eval_every",
              "checkpoint_every", "length_buckets"):
    if not (isinstance(tc[key], int) and tc[key] >= 1):
      raise ValueError(f"train.{key}={tc[key]!r} must be a positive int")


def _prepare_workdir(config, workdir):
  """Applies the resume rules; returns the workdir to use (maybe a fresh sibling)."""
  workdir = pathlib.Path(workdir)
  if ckpt_lib.has_checkpoint(workdir):
    if not config.resume:
      fresh = ckpt_lib.next_free_workdir(workdir)
      print(f"{workdir} holds checkpoints and resume=False: starting afresh in {fresh}")
      workdir = fresh
    else:
      ckpt_lib.check_resumable(workdir, config.to_dict())
  return workdir


class _Window:
  """Train metrics since the last flush, kept on device until then (no per-step sync)."""

  def __init__(self):
    self.steps, self.metrics = [], []

  def add(self, step, metrics):
    self.steps.append(step)
    self.metrics.append(metrics)

  def flush(self, writer, latest_ckpt, finite_metrics=("loss", "grad_norm")):
    """Writes the window's mean; raises FloatingPointError at the first step where one
    of finite_metrics is not finite."""
    if not self.steps:
      return None
    steps, host = self.steps, self.metrics
    self.steps, self.metrics = [], []  # taken first: an interrupt below cannot log twice
    host = jax.device_get(host)
    for step, m in zip(steps, host):
      bad = [k for k in finite_metrics if k in m and not np.isfinite(m[k])]
      if bad:
        writer.write(step, "train", m)
        values = ", ".join(f"{k} {m[k]}" for k in finite_metrics if k in m)
        raise FloatingPointError(
            f"non-finite training {' and '.join(bad)} ({values}) at step {step}; "
            f"the run stopped without saving; last good checkpoint: step {latest_ckpt}")
    mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    writer.write(steps[-1], "train", mean)
    return mean


def _train_step_peak_bytes(train_step, state, batch_specs, rng):
  """The largest compiled memory estimate over the batch shapes the run used. Lowering
  the same jitted step at shapes it already ran hits jit's cache: nothing recompiles."""
  peaks = [peak_bytes(train_step.lower(state, spec, rng).compile())
           for spec in batch_specs.values()]
  return None if not peaks or None in peaks else max(peaks)


def prepare(config, workdir, *, max_length=None):
  """Builds task, model, optimizer and devices and applies the workdir rules, writing
  nothing: every bad setting raises here, before any compilation. max_length builds the
  model for sequences longer than the task's (length extrapolation, modes/extrapolation.py)."""
  tc = config.train
  _check_train_config(tc)
  maybe_initialize_distributed()  # multi-host: before anything touches a device
  check_writable(workdir)  # an unwritable --workdir ends here, before compiling
  check_keep_best(tc.get("keep_best", ""))  # "" (off), "accuracy" or "loss"
  task = get_task(config.data)
  info = task.info if max_length is None else dataclasses.replace(task.info,
                                                                 max_length=max_length)
  workdir = _prepare_workdir(config, workdir)
  # --config.init_from (train/init_from.py): a run with checkpoints resumes from its own.
  load_source = bool(config.get("init_from")) and not ckpt_lib.has_checkpoint(workdir)
  if load_source:
    init_from.check(config)  # the source's files, family and width, before compiling
  elif config.get("init_from"):
    print(f"[init_from] {workdir} resumes from its own checkpoints; {config.init_from} "
          "is not read again")
  # The mesh (train/parallel.py): bad sizes, batches or head counts end here.
  dp = Parallel(tc.batch_size, config.get("mesh"), eval_batch_size=tc.eval_batch_size)
  sequence_lib.check(config, info, dp.sizes)  # ring attention on a sequence axis, or neither
  sequence_lib.avoid_cached_rings(dp.sizes)
  model = _build_model(config, info, dp)
  if load_source:  # before the objective splits the model
    init_from.apply(config, model)
  objective = get_objective(config, model)
  return types.SimpleNamespace(config=config, workdir=workdir,
                               task=task, model=model, objective=objective, dp=dp)


def _build_model(config, info, dp):
  """The run's model, built under one jit (eager initialisation would compile every
  initializer apart). On a mesh that splits parameters its state is constrained to the
  rules' shardings inside that jit, so each device computes only its own part and the
  whole model never sits on one device; the rules are checked first, on shapes alone."""
  def build():
    return get_model(config.model, info,
                     rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1))

  if not dp.sharded:
    return nnx.jit(build)()
  dp.check_params(nnx.state(nnx.eval_shape(build), nnx.Param),
                  f"model {config.model.name}")

  def build_sharded():
    model = build()
    state = nnx.state(model)
    nnx.update(model, jax.lax.with_sharding_constraint(state, dp.state_shardings(state)))
    return model

  return nnx.jit(build_sharded)()


def initial_state(p):
  """The objective's fresh state of a prepared run, placed on the mesh by the sharding
  rules (replicated on the default mesh). Optax's zeros_like keeps each parameter's
  sharding, so the optimizer state is born split too."""
  return p.dp.place(p.objective.initial_state())


def state_shardings(p, state=None):
  """The shardings of the run's state (a pytree prefix: one sharding when replicated)."""
  return p.dp.state_shardings(state if state is not None else p.objective.abstract_state())


def jit_steps(p, state=None):
  """(train_step, eval_step) of the run's objective, jitted once with the run's
  shardings; train_step donates the state it is given. state: the state (or its
  abstract skeleton) when at hand, else the objective's abstract state. On a mesh with a
  sequence axis both are traced with the mesh current (impl="ring" reads it there)."""
  dp = p.dp
  state_sh = state_shardings(p, state) if dp.sharded else dp.replicated
  train_step = jax.jit(dp.in_mesh(p.objective.train_step),
                       in_shardings=(state_sh, dp.batch_in_sharding, dp.replicated),
                       out_shardings=(state_sh, dp.replicated), donate_argnums=(0,))
  eval_step = jax.jit(dp.in_mesh(p.objective.eval_step),
                      in_shardings=(state_sh, dp.batch_in_sharding), out_shardings=dp.replicated)
  return train_step, eval_step


def evaluate(p, eval_step, state, task=None, buckets=None) -> dict:
  """The objective's metrics over the evaluation set of task (default: the run's)."""
  totals = None
  for batch in (task or p.task).eval_batches(p.config.train.eval_batch_size):
    if buckets is not None:
      batch = trim_to_bucket(batch, buckets)
    sums = eval_step(state, p.dp.shard_batch(batch))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return p.objective.reduce_eval(jax.device_get(totals))


def _postfix(objective, train, evaluation):
  shown = {k: f"{train[k]:.3f}" for k in objective.progress_metrics if k in (train or {})}
  shown.update({f"eval_{k}": f"{evaluation[k]:.3f}" for k in objective.progress_metrics
                if k in (evaluation or {})})
  return shown


def run(config, workdir, *, progress: bool = True, desc: str | None = None,
        prepared=None) -> dict:
  """Trains config.model on config.data as config.train says; returns the summary.
  The workdir is locked for the run (workdir/lock.py): a second process is refused."""
  p = prepared or prepare(config, workdir)
  # Several processes of one multi-host run share the workdir: process 0 holds the lock.
  lock = DirectoryLock(p.workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock:  # held to the end, released however run ends
    return _run_locked(config, p.workdir, progress=progress, desc=desc, prepared=p)


def _run_locked(config, workdir, *, progress: bool = True, desc: str | None = None,
                prepared=None) -> dict:
  """run()'s body, with the workdir's lock held."""
  p = prepared or prepare(config, workdir)
  tc, task, model, objective, dp, workdir = (config.train, p.task, p.model, p.objective,
                                             p.dp, p.workdir)
  state = initial_state(p)
  num_params = count_params(model)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpointer = ckpt_lib.Checkpointer(workdir / CHECKPOINTS, tc.keep_checkpoints)
  start = None
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(dp.abstract(state))  # skips unreadable steps
    start = checkpointer.restored_step
    if int(state["step"]) != start:
      raise RuntimeError(f"checkpoint {start} holds step {int(state['step'])}")
  writes = jax.process_index() == 0  # multi-host: the other processes write no files
  if writes:
    write_json(workdir / CONFIG, config.to_dict())  # atomic: a crash leaves the old or the new
  start = start or 0
  summary_path = workdir / SUMMARY
  if start >= tc.num_steps and summary_path.exists():
    checkpointer.close()
    print(f"{workdir}: already trained to step {start}; summary unchanged")
    return json.loads(summary_path.read_text())
  writer = MetricWriter(workdir, resume_step=start)

  best = (BestCheckpoint(workdir / CHECKPOINTS_BEST, tc.keep_best)
          if tc.get("keep_best") else None)
  train_step, eval_step = jit_steps(p, state)
  base_key = jax.random.key(config.seed)
  buckets = bucket_boundaries(task.info.max_length, tc.length_buckets)

  window, last_train, last_eval = _Window(), None, None
  bar = tqdm(total=tc.num_steps, initial=start, desc=desc or config.model.name,
             disable=not progress or not writes, dynamic_ncols=True, leave=True)
  t_begin, t_first, eval_seconds, step = time.perf_counter(), None, 0.0, start

  batch_specs = {}  # one per batch shape the step was compiled for (several with buckets)

  def load(step):
    batch = dp.shard_batch(trim_to_bucket(task.train_batch(step, tc.batch_size, config.seed),
                                          buckets))
    shapes = tuple((k, v.shape) for k, v in batch.items())
    if shapes not in batch_specs:
      batch_specs[shapes] = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), batch)
    return batch

  try:
    batch = load(start)
    for step in range(start, tc.num_steps):
      state, metrics = train_step(state, batch, base_key)
      if step + 1 < tc.num_steps:  # the device runs this step while the host loads the next
        batch = load(step + 1)
      window.add(step + 1, metrics)
      if t_first is None:  # everything after the first (compiling) step is timed
        jax.block_until_ready(state)
        t_first = time.perf_counter()
      bar.update(1)
      done = step + 1
      last = done == tc.num_steps
      do_eval, do_ckpt = last or done % tc.eval_every == 0, last or done % tc.checkpoint_every == 0
      if last or done % tc.log_every == 0 or do_eval or do_ckpt:
        last_train = (window.flush(writer, checkpointer.latest_step(), objective.finite_metrics)
                      or last_train)
        bar.set_postfix(_postfix(objective, last_train, None))
      if do_eval:
        t0 = time.perf_counter()
        last_eval = evaluate(p, eval_step, state, buckets=buckets)
        eval_seconds += time.perf_counter() - t0
        writer.write(done, "eval", last_eval)
        if best is not None:
          best.offer(done, state, last_eval)
        writer.write_params(done, state["params"])  # TensorBoard: parameter norms
        bar.set_postfix(_postfix(objective, last_train, last_eval))
      if do_ckpt:
        checkpointer.save(done, state)
    jax.block_until_ready(state)
  except KeyboardInterrupt:
    done = int(state["step"])
    latest = checkpointer.latest_step()
    if latest is None or done > latest:
      window.flush(writer, latest, objective.finite_metrics)  # refuses a non-finite state
      checkpointer.save(done, state)
    print(f"\ninterrupted at step {done}; checkpoint saved in {workdir}/checkpoints; "
          "run the same command again to resume")
    raise
  finally:
    bar.close()
    checkpointer.close()  # waits for saves in flight, whatever stopped the loop
    if best is not None:
      best.close()
    writer.close()  # writes out the TensorBoard events still queued
  t_end = time.perf_counter()
  timed_steps = tc.num_steps - start - 1
  train_seconds = (t_end - t_first - eval_seconds) if t_first is not None else 0.0
  steps_per_s = timed_steps / train_seconds if timed_steps > 0 and train_seconds > 0 else None
  example = task.train_batch(0, 1, config.seed)
  flops_per_example = forward_flops(sequence_lib.counting_forward(p) or objective.forward,
                                    state["params"], example)
  summary = {
      "model": config.model.name, "task": config.data.name,
      "objective": config.get("objective", "classification"), "step": tc.num_steps,
      "resumed_from_step": start, "final_eval": last_eval, "final_train": last_train,
      "best_eval": best.best if best is not None else None,
      "params": num_params,
      "flops_per_example": flops_per_example,
      "train_step_peak_bytes": _train_step_peak_bytes(train_step, state, batch_specs, base_key),
      "steps_per_second": steps_per_s,
      "train_examples_per_second": None if steps_per_s is None else steps_per_s * tc.batch_size,
      "wall_time_s": t_end - t_begin,
      "train_step_compilations": train_step._cache_size(),
      **objective.summary_fields(state),
      **provenance(dp.num_devices),
  }
  # Precision (models/registry.py), model FLOPs per step, achieved FLOP/s and MFU
  # against the device's peak for the computation dtype (measure/utilisation.py).
  dtype = getattr(model, "compute_dtype", "float32")
  summary.update(dtype=dtype, param_dtype=getattr(model, "param_dtype_name", "float32"))
  summary.update(utilisation_fields(summary["flops_per_example"], tc.batch_size, steps_per_s,
                                    dtype=dtype, num_devices=dp.num_devices))
  summary.update(mesh=dict(p.dp.sizes), processes=jax.process_count())
  if writes:
    write_json(summary_path, summary)  # atomic: a sweep takes its existence as "finished"
  return summary
