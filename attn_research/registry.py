"""Name -> implementation tables: how configs pick models, tasks, kernels and encodings.

A registry entry may carry default settings (the complete set of keys it reads) and
smoke settings (what shrinks it to seconds for tests). `resolve` checks a config
section against the entry, so a misspelt or foreign setting is an error, never
silently ignored.
"""
from __future__ import annotations


def check_choice(setting: str, value, valid):
  """Raises ValueError naming a config setting whose value is not one of valid."""
  if value not in valid:
    raise ValueError(f"{setting}={value!r} is not valid; choose from {tuple(valid)}")


class Registry:
  def __init__(self, config_key: str):
    """config_key names the setting that selects an entry, for messages (e.g. "model.name")."""
    self.config_key = config_key
    self._entries = {}
    self._takes_arg = set()

  def register(self, name: str, defaults: dict | None = None, smoke: dict | None = None,
               *, takes_arg: bool = False):
    """Decorator adding fn_or_cls under name. takes_arg: the entry reads NAME:ARG (a class
    that declares typed `setting_defaults`, read with attn_research/args.py, takes one
    too); NAME:ARG of any other entry is refused, so an argument is never silently
    dropped."""
    def wrap(obj):
      if name in self._entries:
        raise ValueError(f"{self.config_key}={name!r} is registered twice")
      self._entries[name] = (obj, dict(defaults or {}), dict(smoke or {}))
      if takes_arg or getattr(obj, "setting_defaults", None):
        self._takes_arg.add(name)
      return obj
    return wrap

  def names(self):
    return sorted(self._entries)

  def __contains__(self, name):
    return isinstance(name, str) and name.split(":", 1)[0] in self._entries

  def _entry(self, name):
    """NAME or NAME:ARG (an entry that takes an argument, e.g. "tfds:mnist")."""
    base = name.split(":", 1)[0] if isinstance(name, str) else name
    if base not in self._entries:
      raise ValueError(f"{self.config_key}={name!r} is not registered; valid: {self.names()}")
    if base != name and base not in self._takes_arg:
      takes = sorted(self._takes_arg)
      raise ValueError(f"{self.config_key}={name!r}: {base!r} takes no argument after ':'"
                       + (f"; entries that do: {takes}" if takes else ""))
    return self._entries[base]

  def get(self, name):
    return self._entry(name)[0]

  def defaults(self, name) -> dict:
    """The entry's settings with their default values (and its name), as a fresh dict."""
    return dict(self._entry(name)[1], name=name)

  def smoke(self, name) -> dict:
    return dict(self._entry(name)[2])

  def resolve(self, section):
    """(entry, settings) for a config section holding `name` and the entry's settings."""
    name = section["name"]
    defaults = self.defaults(name)
    unknown = sorted(set(section.keys()) - set(defaults))
    if unknown:
      section_name = self.config_key.rsplit(".", 1)[0]
      raise ValueError(f"{section_name} {name!r} does not use {unknown}; its settings are "
                       f"{sorted(defaults)}")
    return self.get(name), dict(defaults, **dict(section.items()))
