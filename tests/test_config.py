"""Configs: every experiment builds and locks; overrides are typed and checked; the CLI
rejects bad input before writing anything."""
import json
import math
import re

import pytest

from attn_research import main as cli
from attn_research.config import apply_overrides, parse_override_args
from attn_research.modes.comparison import run_comparison
from attn_research.train.loop import run
from tests.conftest import ROOT, make_config, require_source

EXPERIMENTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "experiments").rglob("*.py"))
# experiments/repro/ configs are trained at smoke size by tests/test_reproduce.py.
TOP_LEVEL = [spec for spec in EXPERIMENTS if "/repro/" not in spec]


@pytest.mark.parametrize("spec", EXPERIMENTS)
def test_every_experiment_builds_locks_and_documents_itself(spec):
  config = make_config(spec)
  assert config.is_locked
  with pytest.raises(AttributeError):
    config.not_a_setting = 1
  doc = (ROOT / spec).read_text()
  for word in ("Question:", "Command:", "Expected:", "Runtime:"):
    assert word in doc, f"{spec} docstring lacks {word}"


# Slow tier: the image comparison's smoke compiles three convolutional models (~12 s);
# the GAN's (two networks, their two steps, the Frechet feature net: 25-50 s) and DETR's
# (10-20 s) train in the slow tier as well, through their reproductions' smoke runs and
# tests/test_gan.py / test_detr.py's learning checks.
# The encoder-decoder, speech and MNIST-1D smoke runs (7-9 s each) repeat what
# test_learning.py, test_speech.py and test_mnist1d.py train in the fast tier.
HEAVY_SMOKE = {"experiments/images.py", "experiments/sagan.py", "experiments/detr.py",
               "experiments/reverse.py", "experiments/spoken_digits.py",
               "experiments/mnist1d.py"}


@pytest.mark.parametrize("spec", [pytest.param(s, marks=pytest.mark.slow) if s in HEAVY_SMOKE
                                  else s for s in TOP_LEVEL])
def test_every_smoke_variant_runs_one_step(spec, tmp_path):
  config = make_config(spec + ":smoke", train__num_steps=1, train__eval_every=1,
                       train__checkpoint_every=1, train__warmup_steps=0)
  if "data" in config:  # a corpus this machine lacks (fortunes without Debian's package)
    require_source(config.data.name)
  if "models" in config:
    summaries, _ = run_comparison(config, tmp_path, progress=False)
    assert (tmp_path / "comparison.md").exists() and (tmp_path / "comparison.png").exists()
  else:
    summaries = {"model": run(config, tmp_path, progress=False)}
  for summary in summaries.values():
    evaluation = summary["final_eval"]
    assert summary["step"] == 1 and evaluation
    assert all(math.isfinite(v) for v in evaluation.values() if isinstance(v, (int, float)))
    if "loss" in evaluation:  # a GAN reports its Frechet distance instead
      assert evaluation["loss"] > 0
    else:
      assert evaluation["fd"] > 0
  if config.get("objective", "classification") == "classification":
    check_first_step(config, summaries)


def check_first_step(config, summaries):
  """One step's numbers by hand: the loss of a guessing model (within 1 nat of
  ln(classes); tests/test_learning.py says why 1), a nonzero finite gradient, the
  configured learning rate (no warm-up), and an eval accuracy that is a whole number of
  the eval set's scored targets (padding not counted)."""
  import math

  from attn_research.data import get_task
  task = get_task(config.data)
  ln_c = math.log(task.info.num_classes)
  scored = sum(float(b["target_mask"].sum())
               for b in task.eval_batches(config.train.eval_batch_size))
  for name, summary in summaries.items():
    first = summary["final_train"]  # the mean over the one step there was
    assert math.isfinite(first["loss"]) and abs(first["loss"] - ln_c) < 1.0, (
        f"{name}: first-step loss {first['loss']} is not within 1 nat of "
        f"ln({task.info.num_classes}) = {ln_c:.3f}")
    assert 0 < first["grad_norm"] < math.inf, (name, first)
    assert first["learning_rate"] == pytest.approx(config.train.learning_rate), (
        f"{name}: step 1 ran at learning rate {first['learning_rate']}, not the configured "
        f"{config.train.learning_rate} (no warm-up)")
    correct = summary["final_eval"]["accuracy"] * scored
    assert abs(correct - round(correct)) < 1e-6 * scored, (
        f"{name}: eval accuracy x {scored:.0f} scored targets = {correct} is not a whole "
        "number: padding or unscored targets counted?")


def test_overrides_are_typed():
  config = make_config(train__learning_rate="3e-4", train__num_steps="7", resume="False",
                       model__position="sinusoidal")
  assert (config.train.learning_rate, config.train.num_steps) == (3e-4, 7)
  assert config.resume is False and config.model.position == "sinusoidal"


def test_overriding_a_family_name_swaps_in_its_defaults():
  config = make_config(model__name="cnn", model__kernel_size="3")
  assert config.model.name == "cnn" and config.model.kernel_size == 3
  assert "num_heads" not in config.model


@pytest.mark.parametrize("key,value,message", [
    ("train.learning_rat", "0.1", "unknown config key 'train.learning_rat'. Did you mean "
                                  "train.learning_rate, .*Valid keys: data.eval_fraction"),
    ("train.num_steps", "many", "--config.train.num_steps='many' is not a valid int"),
    ("resume", "perhaps", "--config.resume='perhaps' is not a valid bool"),
    ("model", "cnn", "'model' is a group of settings; set one of its keys: .*model.name"),
])
def test_bad_overrides_are_named(key, value, message):
  config = make_config()
  with pytest.raises(ValueError, match=message):
    apply_overrides(config, [(key, value)])


def test_override_arguments_parse():
  assert parse_override_args(["--config.a.b=1", "--config.c", "x y"]) == [("a.b", "1"),
                                                                         ("c", "x y")]
  with pytest.raises(ValueError, match="unexpected argument '--lr'"):
    parse_override_args(["--lr", "1"])


def _cli_error(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2
  return capsys.readouterr().err


@pytest.mark.parametrize("overrides,message", [
    (["--config.train.lr=0.1"], "unknown config key 'train.lr'.*Valid keys: .*train.learning_rate"),
    (["--config.train.batch_size=eight"], "batch_size='eight' is not a valid int"),
    (["--config.model.num_heads=3"], "num_heads=3 must divide model.d_model=16"),
    (["--config.model.name=mamba"], "model.name='mamba' is not registered; valid: "),
    (["--config.data.name=mnist"], "data.name='mnist' is not registered; valid: "),
    (["--config.model.attention=sparse"], "model.attention='sparse' is not registered"),
    (["--config.model.attention_impl=cudnn"], "impl='cudnn' needs a GPU"),
    (["--config.model.attention_impl=splash"], "impl='splash' needs a TPU"),
    (["--config.train.optimizer=lion"], "train.optimizer='lion' is not valid"),
    (["--config.train.batch_size=0"], "train.batch_size=0 must be a positive int"),
])
def test_cli_rejects_bad_input_before_writing(overrides, message, tmp_path, capsys):
  workdir = tmp_path / "run"
  err = _cli_error(["--config", str(ROOT / "experiments/base.py:smoke"), "--workdir",
                    str(workdir), "--no-progress", *overrides], capsys)
  assert re.search(message, err), err
  assert not workdir.exists()


def test_cli_rejects_unknown_config_file_and_argument(tmp_path, capsys):
  err = _cli_error(["--config", "experiments/nope.py", "--workdir", str(tmp_path / "w")], capsys)
  assert "config file 'experiments/nope.py' does not exist" in err
  err = _cli_error(["--config", str(ROOT / "experiments/base.py:tiny"), "--workdir",
                    str(tmp_path / "w")], capsys)
  assert "unknown config argument(s) ['tiny']; valid: ['smoke']" in err
  assert not (tmp_path / "w").exists()


def test_cli_runs_and_reports(tmp_path, capsys):
  workdir = tmp_path / "run"
  cli.main(["--config", str(ROOT / "experiments/base.py:smoke"), "--workdir", str(workdir),
            "--no-progress", "--config.train.num_steps=4", "--config.train.log_every=1",
            "--config.train.eval_every=2", "--config.train.checkpoint_every=2",
            "--config.model.dropout=0.1"])
  out = capsys.readouterr().out
  assert f"summary: {workdir / 'summary.json'}" in out
  assert json.loads((workdir / "config.json").read_text())["model"]["dropout"] == 0.1


def test_launcher_help_lists_verbs_and_every_experiment():
  import subprocess
  out = subprocess.run(["bash", str(ROOT / "launch.sh"), "help"], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
  assert out.returncode == 0, out.stderr
  for verb in ("run CONFIG", "test", "help"):
    assert verb in out.stdout
  for spec in EXPERIMENTS:
    first_line = (ROOT / spec).read_text().split('"""')[1].strip().splitlines()[0]
    assert f"{spec}" in out.stdout and first_line in out.stdout
