"""One writer per directory: a lock file that a second process is refused on, at once.

DIR/.lock holds who took it (pid, host, start time, command) and is locked with
fcntl.flock on an open descriptor. The kernel releases a flock when its holder dies, even
by kill -9, so a lock is never stuck; the file's content only makes the refusal say who
holds it. The holder removes the file when it lets go, so a .lock found free names a
process that died without letting go: one on this host that no longer runs is taken over
with a message; one from another host cannot be checked from here (flock may not reach
across hosts on a network file system), so it is refused with the command that removes it.

Within one process the same directory may be locked again (a comparison or a sweep
that runs several workdirs in one process nests them): the lock is counted, not taken
twice, and is let go when the outermost holder lets go.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import shlex
import socket
import sys
import threading
import time

from attn_research.workdir.files import LOCK


class DirectoryInUseError(ValueError):
  """Another process holds the directory's lock (a ValueError: the CLI prints one line)."""


def _holder_text(holder: dict) -> str:
  if not holder:
    return "another process (it has not written its pid yet)"
  return (f"pid {holder.get('pid')} on host {holder.get('host')} (since "
          f"{holder.get('started')}: {holder.get('command')})")


def _read_holder(fd_or_path) -> dict:
  """The JSON a holder wrote, or {} when there is none (yet) or it is unreadable."""
  try:
    if isinstance(fd_or_path, int):
      os.lseek(fd_or_path, 0, os.SEEK_SET)
      text = os.read(fd_or_path, 1 << 16).decode(errors="replace")
    else:
      text = pathlib.Path(fd_or_path).read_text(errors="replace")
    holder = json.loads(text)
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


def _pid_alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError):
    return True  # exists but is not ours, or no pid to check: assume it runs
  return True


_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _flock(path: pathlib.Path, blocking: bool):
  """An open descriptor of path holding its flock, or None when another holds it
  (blocking=False). The previous holder removes the file as it lets go: a lock taken on
  a file no longer at path guards nothing, so it is dropped and taken again."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
      os.close(fd)
      return None
    except OSError as e:
      if e.errno not in _NO_FLOCK:
        os.close(fd)
        raise
      # Some network file systems refuse flock: run unguarded rather than not at all.
      print(f"warning: cannot lock {path} ({e.strerror}); nothing stops a second "
            "process from writing beside this one", file=sys.stderr)
      return fd
    except BaseException:
      os.close(fd)
      raise
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)


def _record(fd):
  """Writes this process's identity into the lock file."""
  me = {"pid": os.getpid(), "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join(sys.argv)}
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, (json.dumps(me) + "\n").encode())


def _let_go(path: pathlib.Path, fd: int):
  """Removes the file, then releases the flock (in this order: see _flock)."""
  try:
    path.unlink(missing_ok=True)
  finally:
    os.close(fd)


# realpath of the directory -> [descriptor, depth]; process-wide, so nested locks of one
# directory in one process count instead of deadlocking.
_HELD: dict = {}
_HELD_GUARD = threading.Lock()


class DirectoryLock:
  """The lock of one directory (DIR/.lock), for `with` or acquire()/release().

  what: how the refusal names the directory ("workdir", "sweep directory", ...).
  """

  def __init__(self, directory, *, what: str = "workdir", echo=print):
    self.directory = pathlib.Path(directory)
    self.path = self.directory / LOCK
    self.what = what
    self.echo = echo
    self._key = None

  def acquire(self):
    """Takes the lock or raises DirectoryInUseError naming the holder; creates the
    directory (and its parents) when missing."""
    self.directory.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(self.directory)
    with _HELD_GUARD:
      if key in _HELD:
        _HELD[key][1] += 1
        self._key = key
        return self
      fd = _flock(self.path, blocking=False)
      if fd is None:
        raise DirectoryInUseError(
            f"{self.what} {self.directory} is in use by {_holder_text(self._wait_for_holder())}; "
            "wait for it to finish or stop it, then run again")
      try:
        self._check_previous(fd)
        _record(fd)
      except BaseException:
        os.close(fd)  # leaves the file as it was: it may be another host's record
        raise
      _HELD[key] = [fd, 1]
      self._key = key
    return self

  def _wait_for_holder(self, seconds=1.0) -> dict:
    """The holder's record; a holder that has just taken the lock writes it within
    moments, so an empty file is read again for a little while."""
    deadline = time.monotonic() + seconds
    holder = _read_holder(self.path)
    while not holder and time.monotonic() < deadline:
      time.sleep(0.05)
      holder = _read_holder(self.path)
    return holder

  def _check_previous(self, fd):
    """A record in a free lock file was left by a holder that did not let go."""
    previous = _read_holder(fd)
    if not previous:
      return
    host, pid = previous.get("host"), previous.get("pid")
    if host != socket.gethostname():
      raise DirectoryInUseError(
          f"{self.what} {self.directory} is locked by {_holder_text(previous)}; its liveness "
          f"cannot be checked from host {socket.gethostname()}: if no such process runs on "
          f"{host}, remove the lock with: rm {shlex.quote(str(self.path))}")
    state = "is no longer running" if not _pid_alive(pid) else "no longer holds it"
    self.echo(f"taking over the lock of {self.what} {self.directory} left by pid {pid} "
              f"on {host}, which {state}")

  def release(self):
    if self._key is None:
      return
    with _HELD_GUARD:
      entry = _HELD[self._key]
      entry[1] -= 1
      if entry[1] == 0:
        del _HELD[self._key]
        _let_go(self.path, entry[0])
    self._key = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


@contextlib.contextmanager
def file_lock(path, *, on_wait=None):
  """Holds an exclusive lock on the file `path` (created, and removed afterwards),
  waiting for another holder to let go; on_wait(holder_text) is called once before
  waiting. Not counted per process: threads and processes exclude each other alike."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd = _flock(path, blocking=False)
  if fd is None:
    if on_wait is not None:
      on_wait(_holder_text(_read_holder(path)))
    fd = _flock(path, blocking=True)
  try:
    _record(fd)
    yield
  finally:
    _let_go(path, fd)
