"""The one training loop: run(config, workdir) -> summary dict.

Everything that can reject the config (task, model, optimizer, devices, workdir
rules) runs before anything is written or compiled. The run then checkpoints on an
interval and at the end, and a workdir that holds a checkpoint is resumed.
"""
from __future__ import annotations

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
from attn_research.train import checkpoint as ckpt_lib
from attn_research.train.optim import make_optimizer
from attn_research.train.parallel import DataParallel
from attn_research.train.provenance import forward_flops, peak_bytes, provenance
from attn_research.train.steps import make_steps
from attn_research.train.writer import MetricWriter


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

  def flush(self, writer, latest_ckpt):
    """Writes the window's mean; raises FloatingPointError at the first non-finite step."""
    if not self.steps:
      return None
    steps, host = self.steps, self.metrics
    self.steps, self.metrics = [], []  # taken first: an interrupt below cannot log twice
    host = jax.device_get(host)
    for step, m in zip(steps, host):
      if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
        writer.write(step, "train", m)
        raise FloatingPointError(
            f"non-finite training loss {m['loss']} (grad norm {m['grad_norm']}) at step {step}; "
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
  model for sequences longer than the task's (length extrapolation, extrapolate.py)."""
  tc = config.train
  _check_train_config(tc)
  task = get_task(config.data)
  info = task.info if max_length is None else dataclasses.replace(task.info,
                                                                 max_length=max_length)
  # Built under one jit: eager initialisation would compile every initializer apart.
  model = nnx.jit(lambda: get_model(config.model, info,
                                    rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1)))()
  tx, schedule = make_optimizer(tc)
  dp = DataParallel(tc.batch_size)
  if tc.eval_batch_size % dp.num_devices:
    raise ValueError(f"train.eval_batch_size={tc.eval_batch_size} must be a multiple of "
                     f"the {dp.num_devices} devices")
  return types.SimpleNamespace(config=config, workdir=_prepare_workdir(config, workdir),
                               task=task, model=model, tx=tx, schedule=schedule, dp=dp)


def initial_state(p):
  """(graphdef, rest, state) of a prepared run: the model split, and its parameters and
  fresh optimiser state replicated on the devices as {step, params, opt_state}."""
  graphdef, params, rest = nnx.split(p.model, nnx.Param, ...)
  state = p.dp.replicate({"step": jnp.zeros((), jnp.int32), "params": params,
                          "opt_state": p.tx.init(params)})
  return graphdef, rest, state


def jit_steps(p, graphdef, rest):
  """(train_step, eval_step) jitted once with the run's shardings; train_step donates
  the state it is given."""
  train_fn, eval_fn, _ = make_steps(graphdef, rest, p.tx, p.schedule)
  dp = p.dp
  train_step = jax.jit(train_fn, in_shardings=(dp.replicated, dp.batch_sharding, dp.replicated),
                       out_shardings=(dp.replicated, dp.replicated), donate_argnums=(0,))
  eval_step = jax.jit(eval_fn, in_shardings=(dp.replicated, dp.batch_sharding),
                      out_shardings=dp.replicated)
  return train_step, eval_step


def run(config, workdir, *, progress: bool = True, desc: str | None = None,
        prepared=None) -> dict:
  """Trains config.model on config.data as config.train says; returns the summary."""
  p = prepared or prepare(config, workdir)
  tc, task, model, tx, schedule, dp, workdir = (config.train, p.task, p.model, p.tx,
                                                p.schedule, p.dp, p.workdir)
  graphdef, rest, state = initial_state(p)
  num_params = count_params(model)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpointer = ckpt_lib.Checkpointer(workdir / "checkpoints", tc.keep_checkpoints)
  start = checkpointer.latest_step()
  if start is not None:
    state = checkpointer.restore(dp.abstract(state))
    if int(state["step"]) != start:
      raise RuntimeError(f"checkpoint {start} holds step {int(state['step'])}")
  (workdir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
  writer = MetricWriter(workdir, resume_step=start or 0)
  start = start or 0
  summary_path = workdir / "summary.json"
  if start >= tc.num_steps and summary_path.exists():
    checkpointer.close()
    print(f"{workdir}: already trained to step {start}; summary unchanged")
    return json.loads(summary_path.read_text())

  train_step, eval_step = jit_steps(p, graphdef, rest)
  base_key = jax.random.key(config.seed)
  buckets = bucket_boundaries(task.info.max_length, tc.length_buckets)

  def evaluate(params):
    totals = None
    for batch in task.eval_batches(tc.eval_batch_size):
      sums = eval_step(params, dp.shard_batch(trim_to_bucket(batch, buckets)))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    return {"loss": float(totals["loss"]) / count, "accuracy": float(totals["accuracy"]) / count}

  window, last_train, last_eval = _Window(), None, None
  bar = tqdm(total=tc.num_steps, initial=start, desc=desc or config.model.name,
             disable=not progress, dynamic_ncols=True, leave=True)
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
        last_train = window.flush(writer, checkpointer.latest_step()) or last_train
        bar.set_postfix(loss=f"{last_train['loss']:.3f}", acc=f"{last_train['accuracy']:.3f}")
      if do_eval:
        t0 = time.perf_counter()
        last_eval = evaluate(state["params"])
        eval_seconds += time.perf_counter() - t0
        writer.write(done, "eval", last_eval)
        bar.set_postfix(loss=f"{last_train['loss']:.3f}", eval_acc=f"{last_eval['accuracy']:.3f}")
      if do_ckpt:
        checkpointer.save(done, state)
    jax.block_until_ready(state)
  except KeyboardInterrupt:
    done = int(state["step"])
    latest = checkpointer.latest_step()
    if latest is None or done > latest:
      window.flush(writer, latest)  # refuses to save a non-finite state
      checkpointer.save(done, state)
    print(f"\ninterrupted at step {done}; checkpoint saved in {workdir}/checkpoints; "
          "run the same command again to resume")
    raise
  finally:
    bar.close()
    checkpointer.close()  # waits for saves in flight, whatever stopped the loop
  t_end = time.perf_counter()
  timed_steps = tc.num_steps - start - 1
  train_seconds = (t_end - t_first - eval_seconds) if t_first is not None else 0.0
  steps_per_s = timed_steps / train_seconds if timed_steps > 0 and train_seconds > 0 else None
  example = task.train_batch(0, 1, config.seed)
  summary = {
      "model": config.model.name, "task": config.data.name, "step": tc.num_steps,
      "resumed_from_step": start, "final_eval": last_eval, "final_train": last_train,
      "params": num_params,
      "flops_per_example": forward_flops(graphdef, state["params"], rest, example),
      "train_step_peak_bytes": _train_step_peak_bytes(train_step, state, batch_specs, base_key),
      "steps_per_second": steps_per_s,
      "train_examples_per_second": None if steps_per_s is None else steps_per_s * tc.batch_size,
      "wall_time_s": t_end - t_begin,
      "train_step_compilations": train_step._cache_size(),
      **provenance(dp.num_devices),
  }
  summary_path.write_text(json.dumps(summary, indent=2) + "\n")
  return summary
