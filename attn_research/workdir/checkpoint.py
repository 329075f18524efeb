"""Checkpoints (orbax) and the workdir's resume rules.

A workdir that holds a checkpoint is resumed, never overwritten: the stored
config.json must match the new config (every key but `resume`), and a checkpoint is
never replaced by an older step.

A checkpoint that cannot be read (a torn write, a bad disk, a file overwritten) does not
end the run: restore tries the steps newest first, moves the unreadable ones newer than
the one it restores out of orbax's directory into checkpoints_unreadable/<step>.<time>/
(kept, never deleted) and says so. A save that fails (a full disk) stops the run with
one error naming the step and the directory; orbax writes into a temporary folder that
it renames when complete, so the checkpoints before it stay readable.
"""
from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import shutil
import sys
import time
import traceback

import jax
import orbax.checkpoint as ocp

from attn_research.workdir.files import CHECKPOINTS, CONFIG, UNREADABLE_SUFFIX

__all__ = ["IGNORED_KEYS", "ADDED_LATER", "IGNORED_PREFIXES", "flatten", "config_differences",
           "has_checkpoint", "next_free_workdir", "ConfigMismatchError", "check_resumable",
           "CheckpointSaveError", "UnreadableCheckpointsError", "Checkpointer"]

IGNORED_KEYS = ("resume",)
# Keys added to every config after runs had been stored without them, with the value
# that means what those runs did: absent in a stored config equals this value.
ADDED_LATER = {"mode": "single", "objective": "classification", "train.keep_best": "",
               "train.accumulate_steps": 1, "model.remat": "none",
               "model.dtype": "auto", "model.param_dtype": "float32", "train.frozen": "", "init_from": "",
               "init_skip": "head/.*", "data.vocabulary": "task",
               "mesh.data": -1, "mesh.fsdp": 1, "mesh.tensor": 1, "mesh.sequence": 1,
               # scikit-learn digits' validation split and label subsets (2026-11-30)
               "data.validation_fraction": 0.0, "data.eval_split": "test",
               "data.label_fraction": 1.0,
               # mnist1d's validation from fresh generator draws (2026-11-30)
               "data.validation_from": "train",
               # listops' validation stream (2026-11-30)
               "data.num_validation": 0,
               # fortunes' fixed split across seeds (2026-11-30)
               "data.holdout_seed": -1,
               # spoken_digit_strings' batches made ahead (when, never what; 2026-11-30)
               "data.prefetch": 0,
               # kjv's validation books (2026-11-30)
               "data.validation_books": ""}
# Settings that change what is drawn after training, never the training itself, and the
# device mesh (how a step is computed, not what: a checkpoint restores onto any mesh).
IGNORED_PREFIXES = ("report.", "mesh.")


def flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(old: dict, new: dict):
  """["key: old -> new", ...] over flattened keys, ignoring IGNORED_KEYS and the keys
  under IGNORED_PREFIXES."""
  a, b = flatten(old), flatten(new)
  for key, value in ADDED_LATER.items():
    if key not in a and b.get(key) == value:
      a[key] = value
  keys = sorted(k for k in set(a) | set(b)
                if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES))
  missing = "<absent>"
  return [f"{k}: {a.get(k, missing)!r} -> {b.get(k, missing)!r}"
          for k in keys if a.get(k, missing) != b.get(k, missing)]


def has_checkpoint(workdir) -> bool:
  ckpt = pathlib.Path(workdir) / CHECKPOINTS
  return ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())


def next_free_workdir(workdir) -> pathlib.Path:
  """DIR.2, DIR.3, ... : the first sibling that holds no checkpoint."""
  base = pathlib.Path(workdir)
  i = 2
  while has_checkpoint(f"{base}.{i}") or (base.parent / f"{base.name}.{i}" / CONFIG).exists():
    i += 1
  return base.parent / f"{base.name}.{i}"


class ConfigMismatchError(ValueError):
  pass


def check_resumable(workdir, config_dict: dict):
  """Raises ConfigMismatchError when the workdir's checkpoints come from another config."""
  stored = pathlib.Path(workdir) / CONFIG
  if not has_checkpoint(workdir) or not stored.exists():
    return
  # Compare as JSON sees them (a tuple in the config is a list in config.json).
  diffs = config_differences(json.loads(stored.read_text()),
                             json.loads(json.dumps(config_dict)))
  if diffs:
    raise ConfigMismatchError(
        f"{workdir} holds checkpoints of a different config; refusing to mix them.\n  "
        + "\n  ".join(diffs)
        + "\nUse another --workdir, or --config.resume=False to start afresh in a new workdir.")


class CheckpointSaveError(OSError):
  """A checkpoint could not be written; the message names the step, the directory and
  the newest checkpoint still intact. errno is the underlying one (ENOSPC: disk full)."""

  def __str__(self):
    return self.strerror


class UnreadableCheckpointsError(ValueError):
  """No checkpoint of a directory could be restored (the CLI prints it as one line)."""


def _first_line(error: BaseException) -> str:
  """What went wrong, in one line: orbax wraps the reader's error (TensorStore's, which
  names the file and the failure) in one that prints pages of spec, so the innermost
  cause's first line is the one that says it."""
  while error.__cause__ is not None:
    error = error.__cause__
  lines = [l for l in str(error).splitlines() if l.strip()]
  text = lines[0] if lines else type(error).__name__
  return text if len(text) <= 300 else text[:297] + "..."


def _os_error(error: BaseException):
  """The OSError behind error (itself, or what it was raised from), or None."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


# Step folders (with a trailing "/") whose restore failed. Orbax reads a step's arrays
# concurrently and gives up at the first failure; the other reads of that step finish
# later on an event loop already closed and report the same failure again, pages long
# (TensorStore specs, "Event loop is closed"). Restore has said it in one line, so those
# reports, and only those, are dropped.
_ABANDONED_READS: set = set()


def _mentions_abandoned_step(error) -> bool:
  while error is not None:
    if any(d in str(error) for d in _ABANDONED_READS):
      return True
    error = error.__cause__
  return False


def _from_closed_loop(error, tb) -> bool:
  return (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
          and any(f.name == "call_soon_threadsafe" for f in traceback.extract_tb(tb)))


class _AbandonedReadsLogFilter(logging.Filter):
  def filter(self, record):
    error = record.exc_info[1] if record.exc_info else None
    return not (_mentions_abandoned_step(error)
                or any(d in record.getMessage() for d in _ABANDONED_READS))


def _silence_abandoned_reads(step_dir: pathlib.Path):
  if not _ABANDONED_READS:
    previous = sys.unraisablehook

    def hook(args):
      if not (_mentions_abandoned_step(args.exc_value)
              or _from_closed_loop(args.exc_value, args.exc_traceback)):
        previous(args)

    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_AbandonedReadsLogFilter())
  _ABANDONED_READS.add(f"{step_dir}/")


def _with_shardings(abstract_state):
  """abstract_state with every leaf that names no sharding placed on this process's first
  device. Orbax would otherwise use the sharding the checkpoint was saved with, which
  names the saving run's devices: a checkpoint written on 8 devices (or another mesh)
  would not restore where they do not all exist. Training restores with its own mesh's
  shardings (train/parallel.py); readers (train/restore.load_trained, init_from) get one
  device."""
  def fill(x):
    if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None:
      one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one)
    return x

  return jax.tree.map(fill, abstract_state)


class Checkpointer:
  """The orbax CheckpointManager of one directory, keeping the newest `keep` steps.

  best_fn/best_mode are orbax's: with them the steps kept are the best by
  best_fn(metrics) instead of the newest (workdir/best.py).
  """

  def __init__(self, directory, keep: int, *, best_fn=None, best_mode: str = "max"):
    if keep < 1:
      raise ValueError(f"train.keep_checkpoints={keep} must be >= 1")
    self.directory = pathlib.Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, best_fn=best_fn,
                                             best_mode=best_mode))
    self.restored_step = None  # the step restore() returned, once it has
    self._in_flight = None     # the step of the last save, until it has landed

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self):
    return sorted(self.manager.all_steps())

  def restore(self, abstract_state, *, move_aside: bool = True, step: int | None = None):
    """The state of the newest readable step (its step in self.restored_step).

    Unreadable steps newer than it are reported on stderr and, with move_aside, moved
    to the sibling directory checkpoints_unreadable/ (readers that must not change the
    workdir pass move_aside=False). Raises UnreadableCheckpointsError, moving nothing,
    when no step is readable or there is none. step: that step only (none other is
    tried; a step that is not there is an error listing those that are).
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      raise UnreadableCheckpointsError(f"{self.directory} holds no checkpoint to restore")
    if step is not None:
      if step not in steps:
        raise UnreadableCheckpointsError(f"{self.directory} holds no checkpoint of step "
                                         f"{step}; its steps: {sorted(steps)}")
      steps = [step]
    abstract_state = _with_shardings(abstract_state)
    failures = []
    for step in steps:
      try:
        state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
      except Exception as e:  # orbax raises plain Exception for corrupt data
        _silence_abandoned_reads(self.directory / str(step))
        failures.append((step, _first_line(e)))
        continue
      self.restored_step = step
      for bad, reason in failures:
        where = f"moved it to {self._move_aside(bad)}" if move_aside else "left it in place"
        print(f"warning: checkpoint step {bad} in {self.directory} is unreadable ({reason}); "
              f"{where}; restoring step {step} instead", file=sys.stderr, flush=True)
      if failures and move_aside:
        self.manager.reload()
      return state
    tried = ", ".join(str(s) for s, _ in failures)
    raise UnreadableCheckpointsError(
        f"no checkpoint in {self.directory} is readable (steps tried: {tried}; newest: "
        f"{failures[0][1]}); move {self.directory} aside to start afresh, or use another "
        "--workdir")

  def _move_aside(self, step: int) -> pathlib.Path:
    """Moves step's folder out of orbax's directory (which would list it again)."""
    root = self.directory.parent / (self.directory.name + UNREADABLE_SUFFIX)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, i = root / f"{step}.{stamp}", 2
    while target.exists():
      target, i = root / f"{step}.{stamp}.{i}", i + 1
    shutil.move(str(self.directory / str(step)), str(target))
    return target

  def save(self, step: int, state, *, metrics: dict | None = None):
    """Starts an asynchronous save of state as `step`; raises CheckpointSaveError when
    this save, or the one before it still in flight, cannot be written."""
    latest = self.latest_step()
    if latest is not None and step <= latest:
      raise ValueError(f"refusing to overwrite checkpoint step {latest} with step {step}")
    self._wait()
    try:
      self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)
    except Exception as e:
      self._raise_save_error(e, step)
    self._in_flight = step

  def _wait(self):
    """Waits for the save in flight, naming its step when it failed."""
    step, self._in_flight = self._in_flight, None
    if step is None:
      self.manager.wait_until_finished()
      return
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      self._raise_save_error(e, step)

  def _raise_save_error(self, error: Exception, step: int):
    cause = _os_error(error)
    if cause is None:
      raise error
    try:
      self.manager.reload()  # what is on disk now: the failed step is not
    except Exception:  # the directory may be unreadable too; the message still holds
      pass
    intact = [s for s in self.manager.all_steps() if s < step]
    kept = (f"the checkpoint of step {max(intact)} is intact" if intact
            else "no earlier checkpoint exists")
    raise CheckpointSaveError(
        cause.errno, f"could not save the checkpoint of step {step} in {self.directory}: "
        f"{cause.strerror or cause}; {kept}; free space (or fix the permissions) and run the "
        "same command again to resume from it") from error

  def close(self):
    """Waits for asynchronous saves to land; safe to call twice. Raises
    CheckpointSaveError when the last one could not be written."""
    if self.manager is None:
      return
    manager = self.manager
    try:
      self._wait()
    except BaseException:
      self.manager = None
      with contextlib.suppress(Exception):  # it would raise the same failure again
        manager.close()
      raise
    self.manager = None
    manager.close()
