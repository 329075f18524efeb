"""A config's sweep(add) -> axes -> one settings dict per run, and the runs' names.

See the package docstring (attn_research/sweep/__init__.py) for the `add` API.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import re

from attn_research.report.sweep import REPLICATE_KEY

MAX_NAME = 200  # bytes; most filesystems allow 255 per path component
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,\-]")


@dataclasses.dataclass(frozen=True)
class Axis:
  keys: tuple          # one key, or the keys of a zip
  points: tuple        # one tuple of values (one per key) per point of the axis


def _values(key, values):
  if not isinstance(key, str) or not key:
    raise ValueError(f"sweep keys are dotted config keys such as 'model.attention'; got {key!r}")
  if not isinstance(values, (list, tuple)) or not values:
    raise ValueError(f"add(): {key!r} needs a non-empty list of values, got {values!r}")
  for v in values:
    why = _unusable(v)
    if why:
      raise ValueError(f"add(): {key!r} has the value {v!r}; {why}")
  return list(values)


def _unusable(v, nested=False):
  """Why v cannot be a swept value, or None. Values reach each run as command-line
  text (--config.KEY=TEXT), which can hold neither NUL nor unencodable characters."""
  if isinstance(v, (list, tuple)):
    return next((why for why in (_unusable(x, True) for x in v) if why), None)
  if not isinstance(v, (str, bool, int, float)):
    return "values are str, bool, int, float or a list/tuple of those"
  if isinstance(v, str) and not nested:  # nested ones are written as their repr: escaped
    if "\x00" in v:
      return "a value cannot hold a NUL character (it becomes a command-line argument)"
    try:
      os.fsencode(v)
    except UnicodeEncodeError as e:
      return f"a value must be encodable as a command-line argument ({e.reason})"
  return None


class _Add:
  """The `add` handed to a config's sweep(add); collects the axes."""

  def __init__(self):
    self.axes = []

  def __call__(self, *positional, **axes):
    if positional:
      raise ValueError(f"add() takes keywords, not {positional!r}: write "
                       'add(**{"model.attention": ["softmax", "linear"]})')
    zipped = axes.pop("zip", None)
    if zipped is not None:
      if axes:
        raise ValueError(f"add(zip=...) takes no other keys (got {sorted(axes)}); "
                         "call add once per axis")
      if not isinstance(zipped, dict) or not zipped:
        raise ValueError(f"add(zip=...) needs a dict of key -> list of values, got {zipped!r}")
      lists = {k: _values(k, v) for k, v in zipped.items()}
      lengths = {k: len(v) for k, v in lists.items()}
      if len(set(lengths.values())) != 1:
        raise ValueError(f"add(zip=...) needs lists of one length; got lengths {lengths}")
      self.axes.append(Axis(tuple(lists), tuple(zip(*lists.values()))))
    elif not axes:
      raise ValueError('add() needs at least one axis, e.g. add(**{"model.attention": '
                       '["softmax", "linear"]})')
    for key, values in axes.items():
      self.axes.append(Axis((key,), tuple((v,) for v in _values(key, values))))


def collect_axes(sweep_fn):
  add = _Add()
  sweep_fn(add)
  return add.axes


def expand(axes, seeds=None):
  """(axes, [settings dict per run]): the product of the axes, seeds innermost."""
  if seeds is not None:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
      raise ValueError(f"--seeds {seeds!r} must be a positive int")
    axes = [*axes, Axis((REPLICATE_KEY,), tuple((s,) for s in range(seeds)))]
  if not axes:
    raise ValueError("the sweep has no axis: call add(...) in sweep(add), or pass --seeds K")
  seen = set()
  for axis in axes:
    for key in axis.keys:
      if key in seen:
        hint = " (--seeds adds it; drop one)" if key == REPLICATE_KEY else ""
        raise ValueError(f"{key!r} is swept by two axes{hint}")
      seen.add(key)
  runs = []
  for point in itertools.product(*(a.points for a in axes)):
    settings = {}
    for axis, values in zip(axes, point):
      settings.update(zip(axis.keys, values))
    runs.append(settings)
  return axes, runs


def _show(v):
  return "-".join(_show(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def run_name(settings: dict) -> str:
  """Readable, filesystem-safe: 'model.attention=linear,seed=1'."""
  name = _UNSAFE.sub("_", ",".join(f"{k}={_show(v)}" for k, v in settings.items()))
  if len(name.encode()) > MAX_NAME:  # keep it unique: a hash of the full name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = name.encode()[:MAX_NAME - 12].decode(errors="ignore") + "-h" + digest
  return name


def check_collisions(names, settings_list):
  """Refuses two runs with one workdir (compared case-blind, as macOS and Windows do)."""
  seen = {}
  for name, settings in zip(names, settings_list):
    other = seen.setdefault(name.lower(), settings)
    if other is not settings:
      raise ValueError(f"the runs {other} and {settings} would share the workdir {name!r}; "
                       "give the values distinct names")


def cli_value(v) -> str:
  """A setting as the text of --config.KEY=TEXT (read back by config.parse_value)."""
  return v if isinstance(v, str) else repr(v)


