"""Prepared data on disk: built once, checked on every load, never trusted blindly.

Files live in the data directory (`data.dir` in the config, else $ATTN_RESEARCH_DATA,
else ~/.cache/attn_research/data). Each prepared array set is one .npz named by a
hash of its generator parameters; `manifest.json` beside it records the file's
SHA-256 and those parameters. Writes go to a temporary file that is renamed into
place, so an interrupted preparation leaves no half-written file behind; a file
whose checksum or parameters do not match the manifest is rebuilt, with a message.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from attn_research.workdir.lock import file_lock

DEFAULT_DIR = pathlib.Path.home() / ".cache" / "attn_research" / "data"
MANIFEST = "manifest.json"


class MissingProgramError(RuntimeError):
  """A task's data needs a program, pip package or corpus this machine lacks; the
  message says how to get it (apt-get or pip). Tests skip on it via the task's probe
  (data/sources.py), and `./launch.sh doctor` lists what is missing."""


def data_dir(configured: str | None = None) -> pathlib.Path:
  """data.dir if set, else $ATTN_RESEARCH_DATA, else the user cache folder."""
  return pathlib.Path(configured or os.environ.get("ATTN_RESEARCH_DATA") or DEFAULT_DIR)


def require_program(program: str, apt_package: str):
  """The program's path, or one clear error naming the package that provides it."""
  path = shutil.which(program)
  if path is None:
    raise MissingProgramError(
        f"this task needs the program {program!r}, which is not installed; install it with: "
        f"apt-get update && apt-get install -y {apt_package}")
  return path


def _sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _atomic_write(path: pathlib.Path, write):
  """write(file_object) into a temporary file in path's folder, then rename it to path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; data files are for everyone
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _read_manifest(directory: pathlib.Path) -> dict:
  path = directory / MANIFEST
  try:
    return json.loads(path.read_text())
  except (FileNotFoundError, json.JSONDecodeError):
    return {}


def _update_manifest(directory: pathlib.Path, filename: str, entry: dict):
  manifest = _read_manifest(directory)
  manifest[filename] = entry
  _atomic_write(directory / MANIFEST,
                lambda f: f.write((json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()))


def cache_key(name: str, params: dict) -> str:
  blob = json.dumps({"name": name, "params": params}, sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stored_arrays(path: pathlib.Path, entry, params_json):
  """(arrays, None) when path holds what its manifest entry promises, else (None, why
  not), why being None when there is no file at all."""
  if not path.exists():
    return None, None
  if entry is None:
    return None, "it is not in the manifest"
  if entry.get("params") != params_json:
    return None, "its parameters differ from the manifest's"
  if _sha256(path) != entry.get("sha256"):
    return None, "its checksum does not match the manifest (corrupt or modified)"
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}, None


def cached_arrays(directory, name: str, params: dict, build, *, log=print) -> dict:
  """The arrays build() returns, stored under directory as NAME-KEY.npz.

  params must hold everything the arrays depend on (they are part of the key and are
  checked against the manifest). A missing, corrupt or mismatching file is rebuilt.
  One process (or thread) builds a file at a time: another asking for it meanwhile
  waits, then reads the finished file instead of building it again.
  """
  directory = pathlib.Path(directory)
  filename = f"{name}-{cache_key(name, params)}.npz"
  path = directory / filename
  params_json = json.loads(json.dumps(params, sort_keys=True, default=str))
  arrays, _ = _stored_arrays(path, _read_manifest(directory).get(filename), params_json)
  if arrays is not None:
    return arrays
  directory.mkdir(parents=True, exist_ok=True)
  with file_lock(directory / f".{filename}.lock",
                 on_wait=lambda who: log(f"[data] waiting for {who} to finish building {path}")):
    # Looked at again under the lock: the process waited for may have just built it.
    arrays, problem = _stored_arrays(path, _read_manifest(directory).get(filename), params_json)
    if arrays is not None:
      return arrays
    if problem is not None:
      log(f"[data] rebuilding {path}: {problem}")
    t0 = time.perf_counter()
    arrays = build()
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    entry = {"sha256": _sha256(path), "params": params_json,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "build_seconds": round(time.perf_counter() - t0, 2)}
    # Builders of other files rewrite the manifest too: one at a time, or one's entry
    # could be lost to the other's read-modify-write.
    with file_lock(directory / f".{MANIFEST}.lock"):
      _update_manifest(directory, filename, entry)
  return arrays
