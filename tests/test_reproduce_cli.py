"""`./launch.sh reproduce all`: one summary line per claim with its verdict, failures
named, and a report without a criterion or a valid verdict refused."""
import json
import os
import sys

import pytest

import attn_research.reproduce.__main__ as cli
from attn_research.cores import usable_cores
from attn_research.reproduce import REPRODUCTIONS
from attn_research.reproduce.base import TIMED, Report, write_report


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
    cli.main(["all", "--reports", str(tmp_path), "--jobs", "1"])
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


# A stand-in for one claim's process: records when and where it ran, then writes the
# results.json a claim writes (or fails as a claim does, naming its error last).
FAKE_CLAIM = r"""
import json, os, pathlib, sys, time
from attn_research.cores import pin_to_cores
pin_to_cores()
name, reports, trace, failing = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
start = time.time()
time.sleep(0.3)
record = dict(start=start, end=time.time(), cores=sorted(os.sched_getaffinity(0)),
              concurrent=os.environ.get("ATTN_REPRODUCE_CONCURRENT", ""))
pathlib.Path(trace, name).write_text(json.dumps(record))
if name == failing:
  print("Traceback (most recent call last):\n[reproduce] FAILED %s: RuntimeError: broke" % name)
  sys.exit(1)
(reports / name / "results.json").write_text(json.dumps({"verdict": "supported"}))
"""


@pytest.mark.skipif(len(usable_cores()) < 2 or not hasattr(os, "sched_setaffinity"),
                    reason="needs two CPU cores and affinity")
def test_all_with_two_jobs_pins_each_claim_and_runs_timed_claims_alone(monkeypatch, tmp_path,
                                                                       capsys):
  names = REPRODUCTIONS.names()
  assert TIMED and TIMED < set(names)
  failing = sorted(set(names) - TIMED)[1]
  trace = tmp_path / "trace"
  trace.mkdir()
  reports = tmp_path / "reports"
  monkeypatch.setattr(cli, "claim_command", lambda name, tier, where: [
      sys.executable, "-c", FAKE_CLAIM, name, str(where), str(trace), failing])
  with pytest.raises(SystemExit) as e:
    cli.main(["all", "--reports", str(reports), "--jobs", "2"])
  assert e.value.code == 1
  out = capsys.readouterr().out
  summary = out[out.index("[reproduce] summary"):].splitlines()
  assert "2 at a time" in summary[0]
  assert [line.split()[0] for line in summary[1:]] == names
  for name, line in zip(names, summary[1:]):
    assert ("FAILED (RuntimeError: broke)" if name == failing else "supported") in line, line
  assert "RuntimeError: broke" in out[out.index(f"[reproduce] {failing} FAILED"):]
  assert (reports / failing / "reproduce-tiny.log").exists()

  runs = {name: json.loads((trace / name).read_text()) for name in names}
  everything = usable_cores()
  pooled = {n: r for n, r in runs.items() if n not in TIMED}
  for name, run in pooled.items():
    assert run["concurrent"] == "reproduce all --jobs 2"
    assert run["cores"] in (everything[0::2], everything[1::2]), (name, run["cores"])
    overlapping = [m for m, other in pooled.items() if m != name
                   and other["start"] < run["end"] and run["start"] < other["end"]]
    assert len(overlapping) <= 1, (name, overlapping)  # never more than two at once
    assert all(pooled[m]["cores"] != run["cores"] for m in overlapping)
  assert any(  # and two did run at once
      a["start"] < b["end"] and b["start"] < a["end"]
      for a in pooled.values() for b in pooled.values() if a is not b)
  last_pooled = max(r["end"] for r in pooled.values())
  timed = sorted((runs[n]["start"], runs[n]["end"], n) for n in TIMED)
  for (start, end, name), after in zip(timed, timed[1:] + [(float("inf"),) * 3]):
    assert start > last_pooled and end < after[0], name  # after the others, one at a time
    assert runs[name]["cores"] == everything and runs[name]["concurrent"] == ""


@pytest.mark.parametrize("jobs", ["0", "999"])
def test_jobs_must_fit_the_cores(jobs, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["all", "--jobs", jobs])
  assert e.value.code == 2
  assert f"--jobs {jobs} is not valid" in capsys.readouterr().err


def test_full_tier_runs_one_claim_at_a_time():
  assert cli.default_jobs("full") == 1
