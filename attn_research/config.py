"""Experiment configs: load `path.py[:arg]`, apply `--config.key=value` overrides, lock.

An override of an unknown key is an error that lists the valid keys; a value that
does not parse as the key's type is an error naming both. Overriding `model.name`
(or `data.name`) swaps in that family's default settings before the other
overrides apply, so `--config.model.name=cnn --config.model.kernel_size=3` works.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import pathlib

import ml_collections

from attn_research import args
from attn_research.data import task_defaults
from attn_research.models import model_defaults


def split_spec(spec: str):
  """"experiments/x.py:arg" -> (Path, "arg" or None): NAME:ARG as attn_research/args.py
  splits it, ARG read by the file's get_config (experiment.parse_arg)."""
  path, arg = args.split(spec)
  return pathlib.Path(path), arg


def load_config(spec: str, overrides=()) -> ml_collections.ConfigDict:
  path, arg = split_spec(spec)
  if not path.is_file():
    raise ValueError(f"config file {str(path)!r} does not exist; experiments live in experiments/")
  module_spec = importlib.util.spec_from_file_location(f"_attn_config_{path.stem}", path)
  if module_spec is None:  # importlib finds no loader for a name not ending in .py
    raise ValueError(f"config file {str(path)!r} is not a Python file; configs are "
                     "experiments/NAME.py files defining get_config(arg)")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(arg)")
  config = module.get_config(arg)
  apply_overrides(config, overrides)
  config.lock()
  return config


def flat_keys(config, prefix=""):
  keys = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, f"{prefix}{k}.")
    else:
      keys.append(f"{prefix}{k}")
  return keys


def parse_value(key: str, raw: str, current):
  """raw string -> a value of current's type."""
  def fail(kind):
    return ValueError(f"--config.{key}={raw!r} is not a valid {kind} "
                      f"(the current value is {current!r})")

  if isinstance(current, bool):
    if raw.lower() in ("true", "1", "yes"):
      return True
    if raw.lower() in ("false", "0", "no"):
      return False
    raise fail("bool (True or False)")
  if isinstance(current, int):
    try:
      return int(raw)
    except ValueError:
      raise fail("int") from None
  if isinstance(current, float):
    try:
      return float(raw)
    except ValueError:
      raise fail("float") from None
  if isinstance(current, str):
    return raw
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    # TypeError: an unhashable key or set member ({[1]: 2}); the last two: deep nesting.
    if current is None:
      return raw
    raise fail(type(current).__name__) from None
  unsafe = _not_json(value)
  if unsafe is not None:  # config.json, sweep.json and resumption compare configs as JSON
    raise ValueError(f"--config.{key}={raw!r} holds {unsafe}; settings are numbers, strings, "
                     "True/False, None, and lists, tuples and str-keyed dicts of those")
  if current is not None and not isinstance(value, type(current)):
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
      return type(current)(value)
    raise fail(type(current).__name__)
  return value


def _not_json(value):
  """None when value survives a JSON round trip as itself (bar tuples), else what does not."""
  if value is None or isinstance(value, (str, bool, int, float)):
    return None
  if isinstance(value, (list, tuple)):
    return next((bad for bad in map(_not_json, value) if bad is not None), None)
  if isinstance(value, dict):
    keys = [k for k in value if not isinstance(k, str)]
    if keys:
      return f"the non-string dict key {keys[0]!r}"
    return next((bad for bad in map(_not_json, value.values()) if bad is not None), None)
  return f"a {type(value).__name__} ({value!r})"


def _family_defaults(path_parts):
  """The registry that owns the sub-config at path_parts, or None."""
  if path_parts[-1] == "data":
    return task_defaults
  if path_parts[-1] == "model" or (len(path_parts) >= 2 and path_parts[-2] == "models"):
    return model_defaults
  return None


def apply_overrides(config, overrides):
  """overrides: iterable of (dotted key, raw string). `name` keys go first."""
  overrides = sorted(overrides, key=lambda kv: not kv[0].endswith(".name"))
  for key, raw in overrides:
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        valid = flat_keys(config)
        close = difflib.get_close_matches(key, valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}")
      if i < len(parts) - 1:
        node = node[part]
    leaf = parts[-1]
    if isinstance(node[leaf], ml_collections.ConfigDict):
      raise ValueError(f"{key!r} is a group of settings; set one of its keys: "
                       f"{', '.join(flat_keys(node[leaf], key + '.'))}")
    value = parse_value(key, raw, node[leaf])
    defaults = _family_defaults(parts[:-1]) if leaf == "name" and len(parts) > 1 else None
    if defaults is not None:
      parent = config
      for part in parts[:-2]:
        parent = parent[part]
      with parent.unlocked():
        parent[parts[-2]] = ml_collections.ConfigDict(defaults(value))
    else:
      with node.unlocked():
        node[leaf] = value


def parse_override_args(args):
  """["--config.a.b=1", "--config.c", "x"] -> [("a.b", "1"), ("c", "x")]; other args are errors."""
  out, i = [], 0
  while i < len(args):
    arg = args[i]
    if not arg.startswith("--config."):
      raise ValueError(f"unexpected argument {arg!r}; overrides look like --config.KEY=VALUE")
    body = arg[len("--config."):]
    if "=" in body:
      key, raw = body.split("=", 1)
    elif i + 1 < len(args):
      key, raw = body, args[i + 1]
      i += 1
    else:
      raise ValueError(f"{arg!r} has no value; write --config.{body}=VALUE")
    out.append((key, raw))
    i += 1
  return out
