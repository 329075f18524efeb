"""The fortunes category task as a transfer target (experiments/pretrain.py:fortunes): its
validation split, label subsets and fixed split, and the experiment variant that
fine-tunes a KJV-pretrained encoder on it."""
import re

import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.workdir.checkpoint import config_differences
from tests.conftest import make_config, require_source


def fortunes(**settings):
  return get_task(dict(task_defaults("fortunes"), **settings))


def rows(arrays):
  """Each example's bytes (inputs where the mask is on) as one hashable value."""
  return [r[m].astype(np.uint8).tobytes() for r, m in zip(arrays["inputs"], arrays["mask"])]


@pytest.mark.parametrize("settings, message", [
    (dict(eval_split="validation"), "needs data.validation_fraction > 0"),
    (dict(eval_split="train"), "data.eval_split='train' is not valid"),
    (dict(label_fraction=0.0), "data.label_fraction=0.0 must be in (0, 1]"),
    (dict(label_fraction=1.5), "data.label_fraction=1.5 must be in (0, 1]"),
    (dict(validation_fraction=-0.1), "data.validation_fraction=-0.1 must be in [0, 1)"),
    (dict(validation_fraction=0.75), "must leave at least 10 %"),
    (dict(holdout_seed=-2), "data.holdout_seed=-2 must be an int >= 0, or -1"),
])
def test_fortunes_split_settings_are_refused_by_name(settings, message):
  # Checked before the corpus is read: no fortunes package needed to refuse.
  with pytest.raises(ValueError, match=re.escape(message)):
    fortunes(**settings)


def test_validation_and_label_subsets_leave_the_test_split_alone():
  require_source("fortunes")
  # Whole quotes (1,024 bytes hold nearly all): distinct quotes can share a shorter prefix.
  base = fortunes(max_length=1024)
  split = dict(max_length=1024, validation_fraction=0.1, holdout_seed=0)
  full = fortunes(**split)
  np.testing.assert_array_equal(base.evaluation["inputs"], full.evaluation["inputs"])
  np.testing.assert_array_equal(base.evaluation["targets"], full.evaluation["targets"])
  val = fortunes(**split, eval_split="validation")
  test, val_rows = set(rows(base.evaluation)), set(rows(val.evaluation))
  n_classes = base.info.num_classes
  per_class = np.bincount(base.train["targets"], minlength=n_classes) + np.bincount(
      base.evaluation["targets"], minlength=n_classes)
  np.testing.assert_array_equal(np.bincount(val.evaluation["targets"], minlength=n_classes),
                                np.round(0.1 * per_class).astype(int))
  train_counts = np.bincount(full.train["targets"], minlength=n_classes)
  subsets = {}
  for frac in (0.01, 0.05, 1.0):
    t = fortunes(**split, label_fraction=frac, seed=2)
    np.testing.assert_array_equal(t.evaluation["inputs"], base.evaluation["inputs"])
    counts = np.bincount(t.train["targets"], minlength=n_classes)
    np.testing.assert_array_equal(counts, np.maximum(1, np.round(frac * train_counts)))
    assert t.info.train_size == counts.sum()
    subsets[frac] = set(rows(t.train))
    assert not subsets[frac] & test and not subsets[frac] & val_rows
  assert subsets[0.01] < subsets[0.05] < subsets[1.0]  # nested within one seed
  other = fortunes(**split, label_fraction=0.05, seed=3)
  assert set(rows(other.train)) != subsets[0.05]
  np.testing.assert_array_equal(other.evaluation["inputs"], base.evaluation["inputs"])
  # holdout_seed -1 (the default) draws the split with data.seed, as before.
  np.testing.assert_array_equal(fortunes(seed=1, max_length=64).evaluation["inputs"],
                                fortunes(seed=5, holdout_seed=1, max_length=64).evaluation["inputs"])


def test_fortunes_variant_builds_and_reuses_the_kjv_pretraining():
  require_source("fortunes")
  require_source("kjv_mlm")
  from attn_research.modes.transfer import check, pretrain_config, test_data, transfer_runs
  for tier in ("", "smoke"):
    config = make_config("experiments/pretrain.py:" + ",".join(w for w in ("fortunes", tier) if w))
    kjv = make_config("experiments/pretrain.py" + (f":{tier}" if tier else ""))
    check(config)
    assert config.data.name == "fortunes" and config.data.vocabulary == "shared"
    assert config.data.max_length == config.transfer.pretrain.data.max_length
    # The pretraining run is the KJV default's, so its workdir can be reused.
    assert config_differences(pretrain_config(kjv).to_dict(),
                              pretrain_config(config).to_dict()) == []
    assert len(config.transfer.num_steps) == len(config.transfer.label_fractions)
  runs = transfer_runs(config, "/nonexistent")
  single, _ = runs["finetune", 1.0, 0]
  task = get_task(single.data)
  assert task.info.input_size == 258 and task.info.max_length == 16
  test = get_task(test_data(single.data, 0))
  assert len(test.evaluation["targets"]) > len(task.evaluation["targets"])  # 20 % vs 10 %
  assert kjv.data.name == "kjv_books"  # the default stays KJV


@pytest.mark.slow  # seven runs of the loop
def test_fortunes_transfer_smoke_runs_every_arm(tmp_path):
  require_source("fortunes")
  require_source("kjv_mlm")
  from attn_research.modes.transfer import run_transfer
  data = run_transfer(make_config("experiments/pretrain.py:fortunes,smoke"), tmp_path,
                      progress=False)
  assert data["task"] == "fortunes"
  assert {(r["arm"], r["fraction"]) for r in data["runs"]} == {
      (a, f) for a in ("scratch", "finetune", "probe") for f in (0.05, 1.0)}
  test_size = data["test_rates"]["examples"]
  assert data["test_rates"]["chance"] == 1 / 9
  for r in data["runs"]:
    assert r["test"]["split"] == "test" and r["test"]["examples"] == test_size
  labels = {r["fraction"]: r["labels"] for r in data["runs"]}
  assert labels[0.05] < labels[1.0]
