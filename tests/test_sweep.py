"""Sweeps: expansion and names, refusals before anything runs, skip/resume, an isolated
failure, the exact aggregate of known results, and one real CLI run."""
import csv
import json
import sys

import pytest

from attn_research.report.sweep import write_report
from attn_research.sweep import collect_axes, expand, main, main_command, plan_sweep, run_name
from attn_research.sweep.plan import write_record

CONFIG = '''
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  return finalize(base_config(), parse_arg(arg))


def sweep(add):
{body}
'''

# Stands in for `python -m attn_research.main`: same flags, no JAX. Behaviour per run
# name from DIR/behaviour.json; every launch is appended to DIR/launches.txt.
FAKE_RUN = '''
import json, pathlib, sys
state, args = pathlib.Path(sys.argv[1]), sys.argv[2:]
workdir = pathlib.Path(args[args.index("--workdir") + 1])
flags = dict(a[len("--config."):].split("=", 1) for a in args if a.startswith("--config."))
behaviour = state / "behaviour.json"
what = json.loads(behaviour.read_text()).get(workdir.name) if behaviour.exists() else None
with open(state / "launches.txt", "a") as f:
  f.write(workdir.name + "\\n")
print("training", workdir.name, flush=True)
if what == "fail":
  sys.exit("Traceback (most recent call last):\\nValueError: boom in " + workdir.name)
partial = workdir / "partial"
if what == "interrupt" and not partial.exists():
  partial.write_text("checkpoint at step 1")
  sys.exit(130)
(workdir / "summary.json").write_text(json.dumps({
    "final_eval": {"accuracy": 0.5 + int(flags.get("seed", 0)) / 10, "loss": 1.0},
    "params": 10, "wall_time_s": 0.1, "resumed": partial.exists(), "flags": flags}))
'''


def write_config(tmp_path, body, name="exp.py"):
  path = tmp_path / name
  path.write_text(CONFIG.format(body="\n".join("  " + l for l in body.splitlines())))
  return str(path)


@pytest.fixture
def fake(tmp_path):
  """(command, launches(), set_behaviour(dict)): runs are the fake script above."""
  script = tmp_path / "fake_run.py"
  script.write_text(FAKE_RUN)

  def command(run, plan):
    return [sys.executable, str(script), str(tmp_path), *main_command(run, plan)[3:]]

  def launches():
    path = tmp_path / "launches.txt"
    names = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return sorted(names)

  def set_behaviour(behaviour):
    (tmp_path / "behaviour.json").write_text(json.dumps(behaviour))

  return command, launches, set_behaviour


def test_expansion_product_zip_seeds_and_names():
  def sweep(add):
    add(**{"model.attention": ["softmax", "linear"]})
    add(zip={"model.d_model": [8, 16], "model.num_heads": [1, 2]})
  axes, runs = expand(collect_axes(sweep), seeds=2)
  assert [a.keys for a in axes] == [("model.attention",), ("model.d_model", "model.num_heads"),
                                    ("seed",)]
  names = [run_name(r) for r in runs]
  assert names[:3] == ["model.attention=softmax,model.d_model=8,model.num_heads=1,seed=0",
                       "model.attention=softmax,model.d_model=8,model.num_heads=1,seed=1",
                       "model.attention=softmax,model.d_model=16,model.num_heads=2,seed=0"]
  assert len(names) == len(set(names)) == 8
  assert runs[-1] == {"model.attention": "linear", "model.d_model": 16, "model.num_heads": 2,
                      "seed": 1}
  # Two keys in one call are two axes (a product); names are filesystem-safe.
  _, runs = expand(collect_axes(lambda add: add(**{"a": [1, 2], "b": ["x/y", (2, 3)]})))
  assert [run_name(r) for r in runs] == ["a=1,b=x_y", "a=1,b=2-3", "a=2,b=x_y", "a=2,b=2-3"]


@pytest.mark.parametrize("sweep_fn, seeds, message", [
    (lambda add: add(zip={"a": [1, 2], "b": [1]}), None, "one length"),
    (lambda add: add(**{"a": "softmax"}), None, "non-empty list"),
    (lambda add: add("a", [1]), None, "takes keywords"),
    (lambda add: add(**{"seed": [0, 1]}), 2, "swept by two axes"),
    (lambda add: None, None, "no axis"),
], ids=["zip-lengths", "not-a-list", "positional", "seed-twice", "empty"])
def test_bad_add_calls_are_refused(sweep_fn, seeds, message):
  with pytest.raises(ValueError, match=message):
    expand(collect_axes(sweep_fn), seeds)


@pytest.mark.parametrize("body, args, message", [
    ('add(**{"model.atention": ["softmax"]})', [], "unknown config key 'model.atention'"),
    ('add(**{"model.attention": ["softmax"]})', ["--config.train.num_step=3"],
     "unknown config key 'train.num_step'"),
    ('add(**{"train.num_steps": [3, "many"]})', [], "train.num_steps=many: --config.train"),
    ('add(**{"model.position": ["learned", "Learned"]})', [], "would share the workdir"),
    ('add(**{"model.dropout": [0, 0.0]})', [], "resolve to the same config"),
    ('add(**{"model.attention": ["softmax"]})', ["--config.model.attention=linear"],
     "overrides a swept key"),
    ("pass", [], "no axis"),
], ids=["unknown-key", "unknown-override", "bad-value", "case-blind-collision",
        "same-config", "override-of-swept-key", "no-axis"])
def test_refused_before_anything_runs(tmp_path, fake, capsys, body, args, message):
  command, launches, _ = fake
  sweep_dir = tmp_path / "sweep"
  rc = main([write_config(tmp_path, body), "--sweep-dir", str(sweep_dir), *args],
            command=command)
  assert rc == 2 and message in capsys.readouterr().err
  assert not sweep_dir.exists() and launches() == []


def test_config_without_sweep_is_refused(tmp_path, capsys):
  path = tmp_path / "plain.py"
  path.write_text(CONFIG.split("def sweep")[0])
  assert main([str(path), "--sweep-dir", str(tmp_path / "s")]) == 2
  assert "defines no sweep(add)" in capsys.readouterr().err


def test_other_expansion_in_existing_sweep_dir_is_refused(tmp_path, fake, capsys):
  command, launches, _ = fake
  spec = write_config(tmp_path, 'add(**{"model.attention": ["softmax", "linear"]})')
  sweep_dir = tmp_path / "sweep"
  write_record(plan_sweep(spec, sweep_dir=sweep_dir))
  before = (sweep_dir / "sweep.json").read_bytes()
  assert main([spec, "--sweep-dir", str(sweep_dir), "--seeds", "2"], command=command) == 2
  assert "runs only in the new sweep: model.attention=softmax,seed=0" in capsys.readouterr().err
  assert main([spec, "--sweep-dir", str(sweep_dir), "--config.train.num_steps=7"],
              command=command) == 2
  assert "train.num_steps: 1000 -> 7 (existing -> new; all 2 runs)" in capsys.readouterr().err
  assert (sweep_dir / "sweep.json").read_bytes() == before and launches() == []
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("mine")
  assert main([spec, "--sweep-dir", str(tmp_path / "other")], command=command) == 2
  assert "holds no sweep.json" in capsys.readouterr().err


def test_rerun_skips_finished_and_resumes_unfinished(tmp_path, fake):
  command, launches, set_behaviour = fake
  spec = write_config(tmp_path, 'add(**{"model.attention": ["softmax", "linear"]})')
  argv = [spec, "--sweep-dir", str(tmp_path / "sweep"), "--seeds", "2"]
  set_behaviour({"model.attention=linear,seed=0": "interrupt"})
  assert main(argv, command=command) == 1
  assert len(launches()) == 4
  assert main(argv, command=command) == 0
  assert launches() == ["model.attention=linear,seed=0"]  # only the unfinished one
  resumed = json.loads((tmp_path / "sweep/model.attention=linear,seed=0/summary.json").read_text())
  assert resumed["resumed"] and resumed["flags"] == {"model.attention": "linear", "seed": "0"}
  assert main(argv, command=command) == 0
  assert launches() == []


def test_failing_run_is_isolated_and_named(tmp_path, fake, capsys):
  command, launches, set_behaviour = fake
  spec = write_config(tmp_path, 'add(**{"model.attention": ["softmax", "linear"]})')
  sweep_dir = tmp_path / "sweep"
  bad = "model.attention=softmax,seed=1"
  set_behaviour({bad: "fail"})
  rc = main([spec, "--sweep-dir", str(sweep_dir), "--seeds", "2", "--parallel", "2"],
            command=command)
  out = capsys.readouterr().out
  assert rc == 1 and len(launches()) == 4
  finished = sorted(p.parent.name for p in sweep_dir.glob("*/summary.json"))
  assert len(finished) == 3 and bad not in finished
  log = sweep_dir / bad / "log.txt"
  assert f"FAILED {bad} (exit 1): ValueError: boom in {bad}\n    log: {log}" in out
  assert "training " + bad in log.read_text()
  rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
  assert [r["status"] for r in rows] == ["ok", "failed", "ok", "ok"]
  assert rows[1]["error"] == f"ValueError: boom in {bad}"
  assert f"- `{bad}`: ValueError: boom in {bad} (log: `{log}`)" in (
      sweep_dir / "results.md").read_text()


def test_report_of_known_results(tmp_path):
  spec = write_config(tmp_path, 'add(**{"model.attention": ["softmax", "linear"]})')
  sweep_dir = tmp_path / "sweep"
  write_record(plan_sweep(spec, seeds=2, sweep_dir=sweep_dir))
  results = {"model.attention=softmax,seed=0": (0.5, 1.0, 1234, 1.5),
             "model.attention=softmax,seed=1": (0.7, 2.0, 1234, 2.5),
             "model.attention=linear,seed=0": (0.8, 0.5, 1000, 3.0)}
  for name, (acc, loss, params, wall) in results.items():
    (sweep_dir / name).mkdir()
    (sweep_dir / name / "summary.json").write_text(json.dumps(
        {"final_eval": {"accuracy": acc, "loss": loss}, "params": params, "wall_time_s": wall}))
  failed = sweep_dir / "model.attention=linear,seed=1"
  failed.mkdir()
  (failed / "sweep_exit.json").write_text(json.dumps({"returncode": 2, "error": "error: nope"}))

  report = write_report(sweep_dir)
  table = ("| model.attention | n | eval accuracy | eval loss | params | wall time (s) |\n"
           "|---|---|---|---|---|---|\n"
           "| softmax | 2 | 0.6000 ± 0.1414 | 1.5000 ± 0.7071 | 1,234 | 2.0 |\n"
           "| linear | 1 of 2 | 0.8000 | 0.5000 | 1,000 | 3.0 |")
  assert report["table"] == table
  md = (sweep_dir / "results.md").read_text()
  assert table in md and "4 runs: 3 finished, 1 failed, 0 incomplete, 0 not started" in md
  assert (sweep_dir / "results.csv").read_text() == (
      "run,model.attention,seed,status,eval_accuracy,eval_loss,params,wall_time_s,error\n"
      '"model.attention=softmax,seed=0",softmax,0,ok,0.5,1.0,1234,1.5,\n'
      '"model.attention=softmax,seed=1",softmax,1,ok,0.7,2.0,1234,2.5,\n'
      '"model.attention=linear,seed=0",linear,0,ok,0.8,0.5,1000,3.0,\n'
      '"model.attention=linear,seed=1",linear,1,failed,,,,,error: nope\n')
  assert [p.name for p in report["plots"]] == ["accuracy_vs_model.attention.png"]
  assert report["plots"][0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a real training process: ~12 s (test_sweep_slurm's real task, too)
def test_real_cli_run(tmp_path):
  """The one real `python -m attn_research.main` run: two training steps of a tiny model."""
  spec = write_config(tmp_path, 'add(**{"train.num_steps": [2]})') + ":smoke"
  sweep_dir = tmp_path / "sweep"
  assert main([spec, "--sweep-dir", str(sweep_dir)]) == 0
  run_dir = sweep_dir / "train.num_steps=2"
  assert json.loads((run_dir / "config.json").read_text())["train"]["num_steps"] == 2
  assert "step 2: eval accuracy" in (run_dir / "log.txt").read_text()
  row, = csv.DictReader(open(sweep_dir / "results.csv"))
  assert row["status"] == "ok" and 0.0 <= float(row["eval_accuracy"]) <= 1.0
  assert int(row["params"]) > 0


# Stands in for `python -m attn_research.main` on the first launch only: the real CLI,
# with the data's train_batch raising KeyboardInterrupt (what Ctrl-C raises) when the
# loop asks for the batch of step 5, after step 4 ran and checkpoint 2 was written.
# Later launches are the plain CLI.
INTERRUPTED_ONCE = '''
import pathlib, sys
marker, argv = pathlib.Path(sys.argv[1]), sys.argv[2:]
if not marker.exists():
  from attn_research.data.base import ArrayTask
  real = ArrayTask.train_batch

  def train_batch(self, step, batch_size, seed):
    if step == 4:
      marker.write_text("interrupted")
      raise KeyboardInterrupt
    return real(self, step, batch_size, seed)

  ArrayTask.train_batch = train_batch
from attn_research.main import main
main(argv)
'''


@pytest.mark.slow
def test_interrupted_real_run_resumes_from_its_checkpoint(tmp_path):
  """A real run stopped by Ctrl-C after a checkpoint is resumed, not restarted, by the
  same sweep command: its summary says it resumed from the step it saved."""
  script, marker = tmp_path / "interrupted_once.py", tmp_path / "interrupted"
  script.write_text(INTERRUPTED_ONCE)

  def command(run, plan):
    return [sys.executable, str(script), str(marker), *main_command(run, plan)[3:]]

  spec = write_config(tmp_path, 'add(**{"train.num_steps": [6]})') + ":smoke"
  argv = [spec, "--sweep-dir", str(tmp_path / "sweep"), "--config.train.checkpoint_every=2"]
  assert main(argv, command=command) == 1  # the interrupted run counts as unfinished
  run_dir = tmp_path / "sweep" / "train.num_steps=6"
  assert marker.exists() and not (run_dir / "summary.json").exists()
  saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [2, 4], saved  # the interval's and the one Ctrl-C saved
  assert main(argv, command=command) == 0
  summary = json.loads((run_dir / "summary.json").read_text())
  assert summary["resumed_from_step"] == 4 and summary["step"] == 6
  steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["split"] == "train"]
  assert steps == sorted(set(steps)) and steps[-1] == 6  # no step logged twice
