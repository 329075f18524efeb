"""One grammar for the settings written after a name: `NAME:ARG`.

Four places read text after a colon: attention kernels (`performer:64`), position
encodings (`floater:solver=tsit5,dt=0.1`), datasets (`tfds:mnist`) and experiment files
(`experiments/x.py:copy,smoke`). They all read it here, so the same text means the same
thing everywhere and a mistake gets the same kind of message everywhere: one that names
the item and lists the valid keys with their types.

  split("performer:64")             -> ("performer", "64");  split("softmax") -> ("softmax", None)
  parse_arg("solver=tsit5,dt=0.05", solver="midpoint", dt=0.1)
                                    -> {"solver": "tsit5", "dt": 0.05}

ARG is a comma-separated list of items (after big_vision's `parse_arg`):
  KEY=VALUE   VALUE converted to the type of KEY's default (bool, int, float, str)
  WORD        a key whose default is a bool: that key is True (`copy,smoke`);
              any other word: the value of the next key that is no bool, in the order
              the defaults are given (`performer:64` sets the first key, the only one)
A default is a value (its type is the key's type) or a pair (default, type), for a
default of None (`k=(None, int)`). A key given twice, an unknown key or word, and a
value that does not convert raise ValueError.
"""
from __future__ import annotations

TYPES = (bool, int, float, str)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def split(spec: str):
  """"NAME:ARG" -> (NAME, ARG); (NAME, None) when there is no colon or nothing after it."""
  name, _, arg = spec.partition(":")
  return name, (arg or None)


def items(arg: str | None) -> list:
  """The comma-separated items of ARG, empty ones dropped ("a,,b" -> ["a", "b"])."""
  return [item for item in (arg or "").split(",") if item]


def _typed(defaults: dict) -> dict:
  """key -> (default, type), each type checked: a programming error is a TypeError."""
  typed = {}
  for key, default in defaults.items():
    value, kind = default if isinstance(default, tuple) else (default, type(default))
    if kind not in TYPES:
      raise TypeError(f"parse_arg default {key}={default!r}: give a bool, int, float or str "
                      "value, or a pair (default, type) with one of those types")
    typed[key] = (value, kind)
  return typed


def describe(defaults: dict) -> str:
  """"solver: str = 'midpoint', dt: float = 0.1": the keys, their types and defaults."""
  return ", ".join(f"{key}: {kind.__name__} = {value!r}"
                   for key, (value, kind) in _typed(defaults).items())


def _article(kind) -> str:
  return f"{'an' if kind is int else 'a'} {kind.__name__}"


def convert(raw: str, kind):
  """raw text -> a value of kind (bool, int, float or str); ValueError when it is none."""
  if kind is bool:
    if raw.lower() in TRUE:
      return True
    if raw.lower() in FALSE:
      return False
    raise ValueError(raw)
  return kind(raw.strip()) if kind in (int, float) else raw


def parse_arg(arg: str | None, *, where: str = "", what: str = "setting", **defaults) -> dict:
  """The settings ARG gives, every key of defaults present, values of the defaults' types.

  Args:
    arg: the text after NAME: (None or "" gives the defaults).
    where: what the text belongs to, the start of every message ("model.position").
    what: what one item is called in messages ("floater setting", "config argument").
    **defaults: every valid key with its default value, or (default, type).
  """
  typed = _typed(defaults)
  prefix = f"{where}: " if where else ""
  settings, given, unknown = {k: v for k, (v, _) in typed.items()}, set(), []
  positional = [k for k, (_, kind) in typed.items() if kind is not bool]

  def set_value(key, raw, item):
    if key in given:
      raise ValueError(f"{prefix}{what} {key} is given twice (at {item!r}); settings: "
                       f"{describe(defaults)}")
    kind = typed[key][1]
    try:
      settings[key] = convert(raw, kind)
    except ValueError:
      raise ValueError(f"{prefix}give {what} {key} {_article(kind)}; got {key}={raw!r} "
                       f"(settings: {describe(defaults)})") from None
    given.add(key)

  for item in items(arg):
    key, sep, raw = item.partition("=")
    if sep:
      if key not in typed:
        raise ValueError(f"{prefix}{what} {item!r} is not KEY=VALUE with KEY in "
                         f"[{describe(defaults)}]")
      set_value(key, raw, item)
    elif item in typed and typed[item][1] is bool:
      set_value(item, "true", item)
    else:
      free = [k for k in positional if k not in given]
      if free:
        set_value(free[0], item, item)
      else:
        unknown.append(item)
  if unknown:
    flags = [k for k, (_, kind) in typed.items() if kind is bool]
    valid = [f"{flags} (words that turn a bool setting on)"] if flags else []
    if positional:
      in_order = describe({k: defaults[k] for k in positional})
      valid.append(f"one value each, in this order, for [{in_order}]")
    raise ValueError(f"{prefix}unknown {what}(s) {unknown}; valid: "
                     f"{'; '.join(valid) or 'nothing (it takes no settings)'}")
  return settings


def parse_flags(arg: str | None, *, where: str = "", what: str = "argument") -> list:
  """The words of ARG that are on, for text made of bool words only ("copy,smoke" ->
  ["copy", "smoke"]; "smoke=false" -> []): which words are valid is checked later, by
  parse_arg with the full set of keys. A KEY=VALUE whose VALUE is no bool is refused."""
  words = {}
  for item in items(arg):
    key, sep, raw = item.partition("=")
    try:
      words[key] = convert(raw, bool) if sep else True
    except ValueError:
      prefix = f"{where}: " if where else ""
      raise ValueError(f"{prefix}{what}s are words, each on (WORD or WORD=true) or off "
                       f"(WORD=false); got {item!r}") from None
  return [word for word, on in words.items() if on]
