"""The workdir survives what goes wrong around it: an unreadable checkpoint, a full disk,
an unwritable path, a second process on the same directory; and it keeps the best eval
checkpoint beside the latest ones (attn_research/workdir/)."""
import contextlib
import errno
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from attn_research.data import cache as cache_lib
from attn_research.train import loop
from attn_research.train.loop import prepare, run
from attn_research.workdir import (LOCK, DirectoryInUseError, DirectoryLock, file_lock,
                                   read_metrics, read_summary)
from attn_research.workdir.checkpoint import (Checkpointer, CheckpointSaveError,
                                              UnreadableCheckpointsError)
from tests.conftest import ROOT, make_config

HOST = socket.gethostname()


def small_config(**overrides):
  settings = dict(train__num_steps=4, train__checkpoint_every=2, train__log_every=2,
                  train__eval_every=2)
  settings.update(overrides)
  return make_config("experiments/base.py:smoke", **settings)


def steps_in(directory):
  directory = pathlib.Path(directory)
  if not directory.exists():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def corrupt(step_dir):
  """Overwrites every data file orbax wrote for the step (its OCDBT `d/` folders) with
  random bytes of the same size, as a bad disk or a torn copy would leave them."""
  files = [f for f in pathlib.Path(step_dir).rglob("*") if f.is_file() and f.parent.name == "d"]
  assert files, f"no data files under {step_dir}"
  rng = np.random.default_rng(0)
  for f in files:
    f.write_bytes(rng.integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())


def cli(workdir, *flags, timeout=300):
  return subprocess.run(
      [sys.executable, "-m", "attn_research.main", "--config",
       str(ROOT / "experiments/base.py:smoke"), "--workdir", str(workdir), "--no-progress",
       *flags], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# --- B: an unreadable checkpoint ----------------------------------------------------


def test_unreadable_latest_checkpoint_is_moved_aside_and_the_run_resumes(tmp_path, capsys):
  """The issue's scenario: 600 steps, a checkpoint every 100, five kept; summary and the
  checkpoints above 400 removed and 400's data overwritten. The same command again warns,
  moves 400 aside (kept), resumes from 300 and ends exactly as the first run did."""
  config = make_config(train__num_steps=600, train__checkpoint_every=100,
                       train__keep_checkpoints=5, train__eval_every=600, train__log_every=100)
  first = run(config, tmp_path, progress=False)
  ckpt = tmp_path / "checkpoints"
  assert steps_in(ckpt) == [200, 300, 400, 500, 600]
  (tmp_path / "summary.json").unlink()
  for step in (500, 600):
    shutil.rmtree(ckpt / str(step))
  corrupt(ckpt / "400")
  capsys.readouterr()

  again = run(config, tmp_path, progress=False)
  err = capsys.readouterr().err
  assert "checkpoint step 400" in err and "unreadable" in err and "restoring step 300" in err
  assert again["resumed_from_step"] == 300
  assert again["final_eval"] == first["final_eval"]
  assert again["final_train"] == first["final_train"]
  moved = list((tmp_path / "checkpoints_unreadable").iterdir())
  assert [p.name.split(".")[0] for p in moved] == ["400"]
  assert any(p.is_file() for p in moved[0].rglob("*"))  # kept, not emptied
  assert steps_in(ckpt) == [200, 300, 400, 500, 600]   # 400 written afresh


def _tiny_state(step):
  # Over 1 KiB per array: smaller values are stored inline in OCDBT's manifest.
  return {"step": np.asarray(step, np.int32), "w": np.full(1024, step, np.float32)}


def test_unreadable_steps_are_skipped_newest_first_and_none_readable_is_one_error(tmp_path,
                                                                                   capsys):
  directory = tmp_path / "checkpoints"
  checkpointer = Checkpointer(directory, 5)
  for step in (1, 2, 3):
    checkpointer.save(step, _tiny_state(step))
  checkpointer.close()
  corrupt(directory / "3")
  abstract = _tiny_state(0)

  # A reader (move_aside=False) skips 3 and leaves it where it is.
  reader = Checkpointer(directory, 5)
  state = reader.restore(abstract, move_aside=False)
  reader.close()
  assert reader.restored_step == 2 and float(state["w"][0]) == 2.0
  assert steps_in(directory) == [1, 2, 3]
  assert "checkpoint step 3" in capsys.readouterr().err

  corrupt(directory / "2")
  corrupt(directory / "1")
  checkpointer = Checkpointer(directory, 5)
  with pytest.raises(UnreadableCheckpointsError, match=rf"no checkpoint in {directory} is "
                                                      r"readable \(steps tried: 3, 2, 1") as e:
    checkpointer.restore(abstract)
  checkpointer.close()
  assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
  assert steps_in(directory) == [1, 2, 3]  # none readable: nothing moved
  assert not (tmp_path / "checkpoints_unreadable").exists()


# --- D: an unwritable workdir, a full disk ------------------------------------------------


def test_unwritable_workdir_is_one_line_before_anything_is_built(tmp_path, monkeypatch):
  def built(*a, **k):
    raise AssertionError("the task was built before the workdir was checked")

  monkeypatch.setattr(loop, "get_task", built)
  with pytest.raises(ValueError, match=r"workdir /proc/x is not writable.*: No such file"):
    prepare(small_config(), "/proc/x")
  a_file = tmp_path / "file"
  a_file.write_text("user data")
  with pytest.raises(ValueError, match=rf"workdir {a_file}/run cannot be created: {a_file} "
                                       "is a file"):
    prepare(small_config(), a_file / "run")
  assert a_file.read_text() == "user data"

  result = cli("/proc/x")
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines() == [
      "error: workdir /proc/x is not writable (it does not exist; creating it in /proc "
      "fails): No such file or directory"]


def test_full_disk_during_a_save_names_step_and_directory_and_the_rerun_resumes(tmp_path,
                                                                                 monkeypatch):
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == 4:
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", save)
  with pytest.raises(CheckpointSaveError) as e:
    run(small_config(), tmp_path, progress=False)
  message = str(e.value)
  assert e.value.errno == errno.ENOSPC
  assert (f"could not save the checkpoint of step 4 in {tmp_path / 'checkpoints'}: No space "
          "left on device; the checkpoint of step 2 is intact") in message
  assert not (tmp_path / "summary.json").exists()
  assert steps_in(tmp_path / "checkpoints") == [2]

  monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
  summary = run(small_config(), tmp_path, progress=False)
  assert summary["resumed_from_step"] == 2 and summary["step"] == 4


def test_a_save_that_fails_in_the_background_is_named_when_waited_for(tmp_path, monkeypatch):
  checkpointer = Checkpointer(tmp_path / "checkpoints", 3)
  checkpointer.save(1, _tiny_state(1))

  def wait_until_finished(self):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", wait_until_finished)
  with pytest.raises(CheckpointSaveError, match="checkpoint of step 1 in .*: No space left on "
                                                "device; no earlier checkpoint exists"):
    checkpointer.close()


# --- C: one process per directory ---------------------------------------------------------

HOLDER = """
import sys, time
from attn_research.workdir.lock import DirectoryLock
DirectoryLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def held_by_another_process(directory):
  """A separate process holding directory's lock; yields its pid, kills it (-9) after."""
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == "held"
    yield proc.pid
  finally:
    proc.kill()
    proc.wait()


def test_second_process_on_a_workdir_is_refused_naming_pid_and_host(tmp_path):
  workdir = tmp_path / "run"
  with DirectoryLock(workdir):
    result = cli(workdir)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, lines
  assert lines[0].startswith(f"error: workdir {workdir} is in use by pid {os.getpid()} on "
                             f"host {HOST} (since ")
  assert sorted(p.name for p in workdir.iterdir()) == []  # nothing written, lock let go


def test_lock_of_a_killed_process_is_taken_over_and_a_live_one_refused(tmp_path):
  with held_by_another_process(tmp_path) as pid:
    with pytest.raises(DirectoryInUseError, match=rf"in use by pid {pid} on host {HOST}"):
      DirectoryLock(tmp_path).acquire()
  # kill -9 left its .lock file behind; the kernel let go of the flock.
  assert json.loads((tmp_path / LOCK).read_text())["pid"] == pid
  messages = []
  with DirectoryLock(tmp_path, echo=messages.append):
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
  assert messages == [f"taking over the lock of workdir {tmp_path} left by pid {pid} on "
                      f"{HOST}, which is no longer running"]
  assert not (tmp_path / LOCK).exists()


def test_stale_lock_file_is_taken_over_and_another_hosts_is_refused(tmp_path):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (tmp_path / LOCK).write_text(json.dumps({"pid": dead.pid, "host": HOST}))
  messages = []
  DirectoryLock(tmp_path, echo=messages.append).acquire().release()
  assert messages and f"left by pid {dead.pid}" in messages[0]

  record = {"pid": 4242, "host": "elsewhere", "started": "2020-01-01 00:00:00",
            "command": "train"}
  (tmp_path / LOCK).write_text(json.dumps(record))
  with pytest.raises(DirectoryInUseError, match=rf"locked by pid 4242 on host elsewhere .*"
                                                rf"remove the lock with: rm {tmp_path / LOCK}"):
    DirectoryLock(tmp_path).acquire()
  assert json.loads((tmp_path / LOCK).read_text()) == record  # left as it was


def test_nested_locks_in_one_process_do_not_deadlock(tmp_path):
  """A comparison or sweep may hold a directory and run inside it: counted, not taken twice."""
  with DirectoryLock(tmp_path):
    summary = run(small_config(), tmp_path, progress=False)
    assert (tmp_path / LOCK).exists()  # the outer holder still has it
  assert summary["step"] == 4
  assert not (tmp_path / LOCK).exists()


def test_sweep_and_reproduce_directories_are_locked(tmp_path, capsys):
  from attn_research.reproduce import reproduce
  from attn_research.sweep import main as sweep_main

  config = tmp_path / "exp.py"
  config.write_text("from attn_research.experiment import base_config, finalize, parse_arg\n"
                    "def get_config(arg=None):\n  return finalize(base_config(), parse_arg(arg))\n"
                    "def sweep(add):\n  add(seed=[0, 1])\n")
  sweep_dir = tmp_path / "sweep"

  def never(*a):
    raise AssertionError("a refused sweep started a run")

  with held_by_another_process(sweep_dir) as pid:
    assert sweep_main([str(config), "--sweep-dir", str(sweep_dir)], command=never) == 2
    assert f"sweep directory {sweep_dir} is in use by pid {pid}" in capsys.readouterr().err
  assert not (sweep_dir / "sweep.json").exists()

  reports = tmp_path / "reports"
  with held_by_another_process(reports / "cordonnier2020") as pid:
    with pytest.raises(DirectoryInUseError, match=rf"report directory .* in use by pid {pid}"):
      reproduce("cordonnier2020", "smoke", reports)


def test_one_builder_per_cached_file_the_other_waits_and_reads_it(tmp_path):
  builds, results, messages = [], {}, []

  def build():
    builds.append(threading.get_ident())
    time.sleep(0.5)
    return {"x": np.arange(10)}

  def worker(name):
    results[name] = cache_lib.cached_arrays(tmp_path, "demo", {"n": 10}, build,
                                            log=messages.append)

  threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(builds) == 1
  assert all(np.array_equal(r["x"], np.arange(10)) for r in results.values())
  # The waiter names the builder's pid, or says it has not written it yet when it looked
  # between the lock's creation and the pid's write (a race the threads may lose).
  assert any(m.startswith(("[data] waiting for pid", "[data] waiting for another process"))
             for m in messages), messages
  manifest = json.loads((tmp_path / cache_lib.MANIFEST).read_text())
  assert len(manifest) == 1 and not list(tmp_path.glob(".*.lock"))


def test_file_lock_excludes_another_holder_until_it_lets_go(tmp_path):
  order = []

  def second():
    with file_lock(tmp_path / "f.lock"):
      order.append("second")

  with file_lock(tmp_path / "f.lock"):
    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    order.append("first done")
  t.join(5)
  assert order == ["first done", "second"]
  assert not (tmp_path / "f.lock").exists()


# --- E: the best checkpoint ---------------------------------------------------------------


def test_keep_best_refuses_unknown_metrics_naming_the_valid_ones():
  with pytest.raises(ValueError, match=r"train.keep_best='acc' is not a metric .* valid: '' "
                                       r"\(off\), 'accuracy' \(higher is better\), 'loss' "
                                       r"\(lower is better\)"):
    prepare(small_config(train__keep_best="acc"), "/tmp/unused")


def test_best_eval_checkpoint_is_kept_and_known_again_after_resuming(tmp_path):
  """Eval accuracy of this run peaks at step 8 of 16: checkpoints_best holds 8, and the
  summary's best_eval is metrics.jsonl's best eval row. Resumed from 12, the run must
  know that best (a later, worse eval must not replace it)."""
  config = small_config(train__num_steps=16, train__eval_every=2, train__checkpoint_every=4,
                        train__log_every=4, train__learning_rate=0.1,
                        train__keep_best="accuracy")
  summary = run(config, tmp_path, progress=False)
  evals = read_metrics(tmp_path, "eval")
  best_row = max(evals, key=lambda r: r["accuracy"])  # the first of ties, as kept
  assert best_row["step"] < 16, "the test needs a run whose accuracy peaks before the end"
  assert evals[0]["step"] < best_row["step"] <= 12, "and improves after its first eval"
  expected = {k: v for k, v in best_row.items() if k != "split"}
  assert summary["best_eval"] == expected
  assert read_summary(tmp_path)["best_eval"] == expected
  assert steps_in(tmp_path / "checkpoints_best") == [best_row["step"]]

  (tmp_path / "summary.json").unlink()
  shutil.rmtree(tmp_path / "checkpoints" / "16")
  again = run(config, tmp_path, progress=False)
  assert again["resumed_from_step"] == 12
  assert again["best_eval"] == expected
  assert steps_in(tmp_path / "checkpoints_best") == [best_row["step"]]
