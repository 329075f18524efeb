"""./launch.sh doctor: one row per registered task, and a missing source is shown as
missing with how to get it (sources simulated by replacing the probes)."""
from attn_research import doctor
from attn_research.data import TASKS
from attn_research.data import sources
from attn_research.data.sources import Source


def rows_by_task(out):
  """{task: its first table row} of the tasks table."""
  lines = out.split("Programs, packages")[0].splitlines()
  return {line.split()[0]: line for line in lines if line and not line.startswith(" ")}


def test_every_registered_task_has_a_row(capsys):
  assert doctor.main([]) == 0
  out = capsys.readouterr().out
  rows = rows_by_task(out)
  names = TASKS.names()
  assert len(names) >= 13  # copy ... tfds: the registry is filled by importing the package
  for name in names:
    assert (name + ":NAME" if name == "tfds" else name) in rows, name
  assert rows["copy"].split()[1] == "yes" and "built in" in rows["copy"]
  assert f"of {len(names)} tasks can run here" in out


def test_a_missing_source_is_marked_with_its_install_hint(monkeypatch):
  monkeypatch.setitem(sources.PROBES, "kjv", lambda: Source(False, "a corpus (absent)",
                                                            "pip install the-corpus"))
  monkeypatch.setitem(sources.PROBES, "spoken_digits",
                      lambda: Source(True, "engine 9.9", "apt-get install -y other-engine"))
  out = doctor.report(width=400)
  rows = rows_by_task(out)
  assert rows["kjv"].split()[:2] == ["kjv", "NO"]
  assert "a corpus (absent)" in rows["kjv"] and "pip install the-corpus" in rows["kjv"]
  assert rows["spoken_digits"].split()[1] == "yes" and "engine 9.9" in rows["spoken_digits"]
  assert "missing: " in out and "kjv" in out.splitlines()[-1]


def test_prepared_tfds_datasets_are_listed(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  rows = rows_by_task(doctor.report(width=400))
  assert rows["tfds:NAME"].split()[1] == "NO" and "tfds build NAME" in rows["tfds:NAME"]
  for info in ("mnist/3.0.1/dataset_info.json", "imdb_reviews/plain_text/1.0.0/dataset_info.json"):
    (tmp_path / info).parent.mkdir(parents=True)
    (tmp_path / info).write_text("{}")
  (tmp_path / "downloads" / "extracted").mkdir(parents=True)  # not a prepared dataset
  assert doctor.prepared_tfds(tmp_path) == ["imdb_reviews/plain_text", "mnist"]
  rows = rows_by_task(doctor.report(width=400))
  assert rows["tfds:NAME"].split()[1] == "yes"
  assert "imdb_reviews/plain_text, mnist" in rows["tfds:NAME"]


def test_programs_and_corpora_table_says_what_each_serves(monkeypatch):
  monkeypatch.setattr(doctor.shutil, "which", lambda name: None)  # no programs at all
  out = doctor.report(width=400).split("Programs, packages")[1]
  by_name = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
  assert "  no  " in by_name["espeak-ng"] and "spoken_digits" in by_name["espeak-ng"]
  assert "espeakng-loader 0." in by_name["espeakng-loader"]
  assert "fortunes" in by_name["fortunes"] and "kjv" in by_name["bible-kjv-text"]
