"""Reproductions: every one runs its tiny-tier code path at a smoke size and writes every
file it promises; the Cordonnier construction reproduces a convolution."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.reproduce import REPRODUCTIONS, reproduce
from attn_research.reproduce import cordonnier2020
from attn_research.reproduce.__main__ import main as reproduce_main
from tests.conftest import require_program

NEEDS_PROGRAM = {"truncated_speech": ("espeak-ng", "espeak-ng")}


def test_cordonnier_construction_matches_convolution():
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.standard_normal((2, 5, 5, 2)), jnp.float32)
  for k in (3, 5):
    w = jnp.asarray(rng.standard_normal((k, k, 2, 3)), jnp.float32)
    assert cordonnier2020.max_error(images, w, 50.0) < 1e-4
    # Far from the limit the heads blur over neighbours: the construction is not exact.
    assert cordonnier2020.max_error(images, w, 0.5) > 1e-2


@pytest.mark.parametrize("name", REPRODUCTIONS.names())
def test_reproduction_smoke_writes_its_files(name, tmp_path):
  if name in NEEDS_PROGRAM:
    require_program(*NEEDS_PROGRAM[name])
  out = reproduce(name, "smoke", tmp_path)
  report = (out / "report.md").read_text()
  results = json.loads((out / "results.json").read_text())
  assert results["name"] == name and results["tier"] == "smoke"
  assert "## The paper" in report and "## What differs and why" in report
  figures = [line[line.index("(") + 1:-1] for line in report.splitlines()
             if line.startswith("![")]
  assert figures, "every reproduction draws at least one figure"
  for fig in figures:
    assert (out / fig).stat().st_size > 1000, fig


def test_other_tier_report_is_archived_not_lost(tmp_path):
  out = tmp_path / "cordonnier2020"
  out.mkdir()
  (out / "results.json").write_text(json.dumps({"tier": "full", "results": {"x": 1}}))
  (out / "report.md").write_text("the full report")
  reproduce("cordonnier2020", "smoke", tmp_path)
  archived = list((out / "archive").glob("full-*/report.md"))
  assert len(archived) == 1 and archived[0].read_text() == "the full report"


def test_unknown_reproduction_and_tier_are_refused(capsys):
  with pytest.raises(SystemExit) as e:
    reproduce_main(["nosuchpaper"])
  assert e.value.code == 2
  assert "cordonnier2020" in capsys.readouterr().err
  with pytest.raises(ValueError, match="--tier='huge'"):
    reproduce("cordonnier2020", "huge")
