"""kill -9 in the middle of a CLI run, the same command again: the final metrics are
bitwise those of an uninterrupted run."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from attn_research.train.loop import run
from tests.conftest import ROOT, make_config

STEPS = 600
OVERRIDES = dict(train__num_steps=STEPS, train__checkpoint_every=50, train__log_every=50,
                 train__eval_every=STEPS, model__dropout=0.1)


def _command(workdir):
  flags = [f"--config.{k.replace('__', '.')}={v}" for k, v in OVERRIDES.items()]
  return [sys.executable, "-m", "attn_research.main", "--config",
          str(ROOT / "experiments/base.py:smoke"), "--workdir", str(workdir), "--no-progress",
          *flags]


def _checkpoints(workdir):
  ckpt = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in ckpt.glob("*") if p.name.isdigit()) if ckpt.exists() else []


@pytest.mark.slow  # two CLI processes, 600 steps: ~20 s
def test_kill_9_then_rerun_resumes_to_identical_metrics(tmp_path):
  workdir = tmp_path / "killed"
  proc = subprocess.Popen(_command(workdir), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, start_new_session=True)
  deadline = time.time() + 120
  while time.time() < deadline and not [s for s in _checkpoints(workdir) if s >= 200]:
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(0.02)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  killed_at = max(_checkpoints(workdir))
  assert 200 <= killed_at < STEPS, f"killed at {killed_at}: the run was not interrupted"
  assert not (workdir / "summary.json").exists()

  rerun = subprocess.run(_command(workdir), cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  resumed = json.loads((workdir / "summary.json").read_text())
  assert resumed["resumed_from_step"] >= 200

  straight = run(make_config(**OVERRIDES), tmp_path / "straight", progress=False)
  assert resumed["final_eval"] == straight["final_eval"]
  assert resumed["final_train"] == straight["final_train"]
