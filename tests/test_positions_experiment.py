"""experiments/positions.py and attn_research/extrapolate.py: the smoke run through the
CLI writes every file, models are built for the longest length, bad settings raise."""
import dataclasses
import json

import pytest

from attn_research import main
from attn_research.data import get_task
from attn_research.modes.extrapolation import run_extrapolation, scaled_data
from attn_research.models.budget import param_count
from attn_research.nn.positions import POSITIONAL
from conftest import ROOT, make_config


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("positions")
  main.main(["--config", str(ROOT / "experiments/positions.py:smoke"), "--workdir", str(workdir),
             "--no-progress"])
  return workdir


def test_smoke_writes_table_plot_and_one_run_per_encoding(smoke_dir):
  data = json.loads((smoke_dir / "extrapolation.json").read_text())
  assert list(data["results"]) == ["learned"]
  evals = data["results"]["learned"]["evals"]
  assert [(e["factor"], e["length"]) for e in evals] == [(1, 8), (2, 16)]
  assert all(0.0 <= e["accuracy"] <= 1.0 and e["loss"] > 0 for e in evals), evals
  run_dir = smoke_dir / "learned"
  assert (run_dir / "summary.json").exists() and any((run_dir / "checkpoints").iterdir())
  stored = json.loads((run_dir / "config.json").read_text())
  assert stored["model"]["position"] == "learned" and stored["extrapolation"]["factors"] == [1, 2]
  table = (smoke_dir / "extrapolation.md").read_text()
  assert "| learned | " in table and "| accuracy at 2L = 16 |" in table, table
  assert (smoke_dir / "extrapolation.png").read_bytes()[:4] == b"\x89PNG"


def test_models_are_built_for_the_longest_length(smoke_dir):
  # Learned positions hold one d_model row per position: 2L = 16 of them, not L = 8.
  config = make_config("experiments/positions.py:smoke")
  info = get_task(config.data).info
  got = json.loads((smoke_dir / "extrapolation.json").read_text())["results"]["learned"]["params"]
  counts = {n: param_count(dict(config.model), dataclasses.replace(info, max_length=n))
            for n in (8, 16)}
  assert got == counts[16] != counts[8], (got, counts)


def test_the_full_experiment_scales_its_task_exactly():
  config = make_config("experiments/positions.py")
  encodings = config.extrapolation.encodings
  assert len(encodings) == 7 and all(e in POSITIONAL for e in encodings)
  L = get_task(config.data).info.max_length
  for f in config.extrapolation.factors:
    assert get_task(scaled_data(config.data, f)).info.max_length == f * L


@pytest.mark.parametrize("overrides,message", [
    (dict(extrapolation__factors="(2, 4)"), r"must be increasing positive ints starting at 1"),
    (dict(extrapolation__encodings="('learned', 'banana')"), "'banana' is not registered"),
    (dict(data__name="digits"), "data.name='digits' has no length to scale"),
    (dict(data__length=5), r"data.length=5 cannot hold 2 pairs and 2 queries"),
])
def test_bad_settings_raise_before_anything_is_written(tmp_path, overrides, message):
  config = make_config("experiments/positions.py:smoke", **overrides)
  with pytest.raises(ValueError, match=message):
    run_extrapolation(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()
