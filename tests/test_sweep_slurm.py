"""The SLURM launcher: the job-array script, one array task run locally, the skip/resume
rules of the local launcher, and its refusals."""
import json
import os
import subprocess

import pytest

from attn_research.sweep import main
from attn_research.sweep.slurm import SCRIPT, run_task
from tests.test_sweep import fake, write_config  # noqa: F401  (fake is a fixture)

AXIS = 'add(**{"model.attention": ["softmax", "linear"]})'


def test_writes_a_throttled_array_and_runs_nothing(tmp_path, fake, capsys):  # noqa: F811
  _, launches, _ = fake
  spec = write_config(tmp_path, AXIS)
  sweep_dir = tmp_path / "sweep"
  assert main([spec, "--sweep-dir", str(sweep_dir), "--seeds", "2", "--launcher", "slurm",
               "--parallel", "2", "--slurm", "time=00:10:00", "--slurm", "gres=gpu:1"]) == 0
  script = (sweep_dir / "slurm" / SCRIPT).read_text()
  assert "#SBATCH --array=0-3%2\n" in script
  assert "#SBATCH --time=00:10:00\n" in script and "#SBATCH --gres=gpu:1\n" in script
  assert f"-m attn_research.sweep.slurm {sweep_dir.resolve()}" in script
  assert os.access(sweep_dir / "slurm" / SCRIPT, os.X_OK)
  names = [r["name"] for r in json.loads((sweep_dir / "sweep.json").read_text())["runs"]]
  assert len(names) == 4 and launches() == []  # nothing trained on the submitting machine
  assert f"sbatch {sweep_dir / 'slurm' / SCRIPT}" in capsys.readouterr().out


def test_array_task_trains_its_run_then_skips_it(tmp_path, fake):  # noqa: F811
  command, launches, set_behaviour = fake
  spec = write_config(tmp_path, AXIS)
  sweep_dir = tmp_path / "sweep"
  assert main([spec, "--sweep-dir", str(sweep_dir), "--launcher", "slurm"]) == 0
  runs = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
  set_behaviour({runs[1]["name"]: "interrupt"})  # preempted once: checkpoint, exit 130
  assert run_task(sweep_dir, "1", command=command, echo=lambda s: None) == 1
  assert run_task(sweep_dir, "1", command=command, echo=lambda s: None) == 0
  assert launches() == [runs[1]["name"]] * 2  # task 1 ran run 1 only, and again to resume
  summary = json.loads((sweep_dir / runs[1]["name"] / "summary.json").read_text())
  assert summary["resumed"] and summary["flags"]["model.attention"] == "linear"
  assert run_task(sweep_dir, "1", command=command, echo=lambda s: None) == 0
  assert launches() == []  # finished: skipped
  assert not (sweep_dir / runs[0]["name"] / "summary.json").exists()


@pytest.mark.slow  # a real training process: ~10 s on 2 cores
def test_the_script_runs_one_real_task(tmp_path):
  """The written script itself, with SLURM_ARRAY_TASK_ID set as SLURM would: a real
  two-step training run of the array's second setting."""
  spec = write_config(tmp_path, 'add(**{"train.num_steps": [1, 2]})') + ":smoke"
  sweep_dir = tmp_path / "sweep"
  assert main([spec, "--sweep-dir", str(sweep_dir), "--launcher", "slurm"]) == 0
  proc = subprocess.run(["bash", str(sweep_dir / "slurm" / SCRIPT)], capture_output=True,
                        text=True, env=dict(os.environ, SLURM_ARRAY_TASK_ID="1"), timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  run_dir = sweep_dir / "train.num_steps=2"
  assert json.loads((run_dir / "summary.json").read_text())["step"] == 2
  assert not (sweep_dir / "train.num_steps=1").exists()
  assert "1 runs: 1 trained now" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--slurm", "time=1"], "add --launcher slurm"),
    (["--launcher", "slurm", "--slurm", "time"], "must be KEY=VALUE"),
    (["--launcher", "slurm", "--slurm", "array=0-3"], "set by the launcher"),
])
def test_bad_slurm_options_are_refused(tmp_path, capsys, args, message):
  spec = write_config(tmp_path, AXIS)
  try:
    code = main([spec, "--sweep-dir", str(tmp_path / "sweep"), *args])
  except SystemExit as e:  # argparse's parser.error
    code = e.code
  assert code == 2 and message in capsys.readouterr().err
  assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("index", [None, "2", "-1", "x"])
def test_task_index_outside_the_array_is_refused(tmp_path, index):
  spec = write_config(tmp_path, AXIS)
  sweep_dir = tmp_path / "sweep"
  assert main([spec, "--sweep-dir", str(sweep_dir), "--launcher", "slurm"]) == 0
  with pytest.raises(ValueError, match=r"SLURM_ARRAY_TASK_ID=.* must be an int in 0\.\.1"):
    run_task(sweep_dir, index)


def test_task_without_a_sweep_record_is_refused(tmp_path):
  with pytest.raises(ValueError, match="holds no sweep.json"):
    run_task(tmp_path, "0")
