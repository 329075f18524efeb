"""Two real processes: jax.distributed on localhost, CPU collectives (gloo), one workdir.

Each process has 2 forced CPU devices (4 in all) and hands its devices their rows of the
global batch (train/parallel.py). Only process 0 writes the logs, the summary and the
progress bar; both take part in orbax's checkpoint saves and restores. The final
metrics equal a single-process, 1-device run with the same global batch, and a run
resumed on a different mesh (data 1 x fsdp 2 x tensor 2, fsdp across the processes)
continues from the two-process checkpoint to the same numbers.
"""
import json
import shutil
import socket
import subprocess
import sys

import pytest

from attn_research.train.loop import run
from tests.conftest import ROOT, make_config, forced_devices_env

SETTINGS = dict(train__num_steps=6, train__batch_size=16, train__eval_batch_size=64,
                train__log_every=1, train__checkpoint_every=3, train__eval_every=3)

CHILD = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from tests.conftest import make_config
from attn_research.train.loop import run
import jax
settings = dict({SETTINGS!r}, **json.loads(sys.argv[2]))
summary = run(make_config(**settings), sys.argv[1], progress=True)
print("RESULT " + json.dumps(dict(summary, processes=jax.process_count(),
                                  local=jax.local_device_count(), index=jax.process_index())))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, **mesh):
  """Starts the two processes on workdir; returns [(summary, stderr)] by process index."""
  port = _free_port()
  procs = []
  for index in range(2):
    env = forced_devices_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                             JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(index))
    procs.append(subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workdir), json.dumps(mesh)], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=400)
      assert proc.returncode == 0, err[-3000:]
      line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
      results.append((json.loads(line[len("RESULT "):]), err))
  finally:
    for proc in procs:  # one that failed must not leave the other waiting for it
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return results


def _close(a, b):
  for split in ("final_train", "final_eval"):
    for key in ("loss", "accuracy"):
      assert a[split][key] == pytest.approx(b[split][key], rel=1e-4, abs=1e-6), (split, key)


@pytest.mark.slow  # two processes, two launches: about a minute on 2 shared cores
def test_two_processes_train_like_one(tmp_path):
  single = run(make_config(**SETTINGS), tmp_path / "one", progress=False)
  workdir = tmp_path / "two"
  results = _launch(workdir)
  for index, (summary, _) in enumerate(results):
    assert (summary["index"], summary["processes"], summary["local"]) == (index, 2, 2)
    assert summary["device"]["count"] == 4 and summary["mesh"]["data"] == 4
    _close(summary, single)
  # Only process 0 writes: one event file, each logged step once, one progress bar.
  assert len(list(workdir.glob("events.out.tfevents.*"))) == 1
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in rows if r["split"] == "train"]
  assert train_steps == [1, 2, 3, 4, 5, 6]
  assert json.loads((workdir / "summary.json").read_text())["step"] == 6
  assert "6/6" in results[0][1] and "6/6" not in results[1][1]
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]

  # The step-3 checkpoint of the two processes continues on another mesh.
  shutil.rmtree(workdir / "checkpoints" / "6")
  (workdir / "summary.json").unlink()
  resumed = _launch(workdir, mesh__data=1, mesh__fsdp=2, mesh__tensor=2)
  for summary, _ in resumed:
    assert summary["resumed_from_step"] == 3
    assert summary["mesh"] == {"data": 1, "fsdp": 2, "sequence": 1, "tensor": 2}
    _close(summary, single)
