"""`./launch.sh reproduce all`: one summary line per claim with its verdict, failures
named, and a report without a criterion or a valid verdict refused."""
import json

import pytest

import attn_research.reproduce.__main__ as cli
from attn_research.reproduce import REPRODUCTIONS
from attn_research.reproduce.base import Report, write_report


def test_all_prints_one_summary_line_per_claim(monkeypatch, tmp_path, capsys):
  names = REPRODUCTIONS.names()
  verdicts = dict(zip(names, ["supported", "not supported", "inconclusive"] * len(names)))

  def fake(name, tier, reports):
    if name == names[1]:
      raise RuntimeError("broke\nsecond line")
    out = tmp_path / name
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"verdict": verdicts[name]}))
    return out

  monkeypatch.setattr(cli, "reproduce", fake)
  monkeypatch.setattr("attn_research.compile_cache.enable", lambda: None)
  with pytest.raises(SystemExit) as e:
    cli.main(["all", "--reports", str(tmp_path)])
  assert e.value.code == 1  # one failed
  out = capsys.readouterr().out
  summary = out[out.index("[reproduce] summary"):].splitlines()[1:]
  assert len(summary) == len(names)
  for name, line in zip(names, summary):
    assert line.split()[0] == name
    expected = "FAILED (RuntimeError: broke)" if name == names[1] else verdicts[name]
    assert expected in line, line


def test_a_report_needs_a_criterion_and_a_verdict(tmp_path):
  report = Report(claim="c", tables=[], paper="p", differences="d", results={},
                  verdict="why", criterion="Supported if ...", verdict_label="supported")
  write_report("x", "smoke", tmp_path, report, 1.0)
  results = json.loads((tmp_path / "results.json").read_text())
  assert (results["verdict"], results["criterion"]) == ("supported", "Supported if ...")
  with pytest.raises(ValueError, match="returned no criterion"):
    write_report("x", "smoke", tmp_path, Report("c", [], "p", "d", {}, verdict_label="supported"),
                 1.0)
  with pytest.raises(ValueError, match="verdict must be one of"):
    write_report("x", "smoke", tmp_path, Report("c", [], "p", "d", {}, criterion="r",
                                                verdict_label="promising"), 1.0)
