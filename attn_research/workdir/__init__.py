"""The workdir: its file names, reading and writing them, checkpoints and the lock.

files.py     names (CONFIG, METRICS, SUMMARY, CHECKPOINTS, ...), read_*, write_json,
             check_writable
lock.py      DirectoryLock (one writer per directory), file_lock (the data cache)
checkpoint.py  Checkpointer (orbax; restore falls back past unreadable steps), the
             resume rules
best.py      BestCheckpoint (train.keep_best)

Only files and lock are imported here: report/ reads workdirs through this package and
must not pay for orbax (import workdir.checkpoint / workdir.best where needed).
This package imports nothing from train/, models/ or data/.
"""
from attn_research.workdir.files import (CHECKPOINTS, CHECKPOINTS_BEST, CONFIG, LOCK, METRICS,
                                         SUMMARY, UNREADABLE_SUFFIX, check_writable,
                                         read_config, read_metrics, read_summary, write_json)
from attn_research.workdir.lock import DirectoryInUseError, DirectoryLock, file_lock

__all__ = ["CHECKPOINTS", "CHECKPOINTS_BEST", "CONFIG", "LOCK", "METRICS", "SUMMARY",
           "UNREADABLE_SUFFIX", "DirectoryInUseError", "DirectoryLock", "check_writable",
           "file_lock", "read_config", "read_metrics", "read_summary", "write_json"]
