"""Checkpoints (orbax) and the workdir's safety rules.

A workdir that holds a checkpoint is resumed, never overwritten: the stored
config.json must match the new config (every key but `resume`), and a checkpoint is
never replaced by an older step.
"""
from __future__ import annotations

import json
import pathlib

import orbax.checkpoint as ocp

IGNORED_KEYS = ("resume",)
# Settings that change what is drawn after training, never the training itself.
IGNORED_PREFIXES = ("report.",)


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
  keys = sorted(k for k in set(a) | set(b)
                if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES))
  missing = "<absent>"
  return [f"{k}: {a.get(k, missing)!r} -> {b.get(k, missing)!r}"
          for k in keys if a.get(k, missing) != b.get(k, missing)]


def has_checkpoint(workdir) -> bool:
  ckpt = pathlib.Path(workdir) / "checkpoints"
  return ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())


def next_free_workdir(workdir) -> pathlib.Path:
  """DIR.2, DIR.3, ... : the first sibling that holds no checkpoint."""
  base = pathlib.Path(workdir)
  i = 2
  while has_checkpoint(f"{base}.{i}") or (base.parent / f"{base.name}.{i}" / "config.json").exists():
    i += 1
  return base.parent / f"{base.name}.{i}"


class ConfigMismatchError(ValueError):
  pass


def check_resumable(workdir, config_dict: dict):
  """Raises ConfigMismatchError when the workdir's checkpoints come from another config."""
  stored = pathlib.Path(workdir) / "config.json"
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


class Checkpointer:
  def __init__(self, directory, keep: int):
    if keep < 1:
      raise ValueError(f"train.keep_checkpoints={keep} must be >= 1")
    self.manager = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self):
    return self.manager.latest_step()

  def restore(self, abstract_state):
    step = self.latest_step()
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def save(self, step: int, state):
    latest = self.latest_step()
    if latest is not None and step <= latest:
      raise ValueError(f"refusing to overwrite checkpoint step {latest} with step {step}")
    self.manager.save(step, args=ocp.args.StandardSave(state))

  def close(self):
    """Waits for asynchronous saves to land; safe to call twice."""
    if self.manager is not None:
      self.manager.wait_until_finished()
      self.manager.close()
      self.manager = None
