"""`./launch.sh data NAME`: prepares a task and shows its summary and one example."""
import pathlib
import re

import pytest

from attn_research import prepare


def test_data_verb_renders_listops_as_a_bracket_string(tmp_path, capsys):
  prepare.main(["listops", "--config.min_length=10", "--config.max_length=40",
                "--config.num_train=50", "--config.num_eval=10", f"--config.dir={tmp_path}",
                "--out", str(tmp_path / "out")])
  out = capsys.readouterr().out
  assert "listops: tokens (input size 16) -> per_sequence with 10 classes; max length 40" in out
  assert re.search(r"class shares \(train\): min 0\.\d+, max 0\.\d+ over 50 targets", out)
  assert re.search(r"example: \[(MIN|MAX|MED|SM) .* \]  = \d", out)


def test_data_verb_draws_an_image(tmp_path, capsys):
  prepare.main(["digits", "--config.view=pixels", "--out", str(tmp_path)])
  path = pathlib.Path(capsys.readouterr().out.strip().splitlines()[-1].split("example: ")[1])
  assert path.suffix == ".png" and path.stat().st_size > 1000


def test_data_verb_rejects_unknown_settings(capsys):
  with pytest.raises(SystemExit):
    prepare.main(["digits", "--config.vew=pixels"])
  assert "unknown config key 'vew'. Did you mean view?" in capsys.readouterr().err
