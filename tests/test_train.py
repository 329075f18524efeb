"""The training loop: workdir files, resumption, NaN stop, refusals."""
import json
import math

import jax
import numpy as np
import pytest
from flax import nnx

from attn_research.data.base import ArrayTask
from attn_research.workdir import checkpoint as ckpt_lib
from attn_research.train import writer as writer_lib
from attn_research.train.loop import run
from tests.conftest import make_config


def small_config(**overrides):
  settings = dict(train__num_steps=4, train__checkpoint_every=2, train__log_every=1,
                  train__eval_every=2, model__dropout=0.1)
  settings.update(overrides)
  return make_config("experiments/base.py:smoke", **settings)


def read_jsonl(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_the_workdir_contract(tmp_path):
  summary = run(small_config(), tmp_path, progress=False)
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["train"]["num_steps"] == 4 and config["model"]["name"] == "transformer"
  rows = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
  assert [r["step"] for r in rows if r["split"] == "eval"] == [2, 4]
  assert {"loss", "accuracy", "grad_norm", "learning_rate"} <= set(rows[0])
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk == json.loads(json.dumps(summary))
  assert summary["step"] == 4 and summary["params"] > 0
  assert 0.0 <= summary["final_eval"]["accuracy"] <= 1.0
  assert summary["flops_per_example"] > 0
  assert summary["versions"]["jax"] == jax.__version__
  # One compilation of the train step for the whole run: no recompilation after step 1.
  assert summary["train_step_compilations"] == 1
  train_rows = [r for r in rows if r["split"] == "train"]
  # The schedule by hand: warm-up over 1 step from 0 (step 1's update is zero), then half
  # a cosine from 1e-3 down over the 3 remaining steps.
  np.testing.assert_allclose([r["learning_rate"] for r in train_rows],
                             [0.0] + [1e-3 * 0.5 * (1 + math.cos(math.pi * s / 3))
                                      for s in range(3)], rtol=1e-5, atol=1e-12)
  # At initialisation the model guesses: loss near ln(10) (margin: tests/test_learning.py).
  assert abs(train_rows[0]["loss"] - math.log(10)) < 1.0, train_rows[0]
  # Step 1 (learning rate 0) leaves the parameters as drawn; the later steps move them,
  # and the last checkpoint holds the parameters of the last step's logged norm.
  norms = [r["param_norm"] for r in train_rows]
  assert all(abs(n - norms[0]) > 1e-6 for n in norms[1:]), (
      f"parameter norms {norms}: the updates of steps 2-4 did not change the parameters")
  from attn_research.train.restore import load_trained
  trained = load_trained(tmp_path)
  leaves = jax.tree.leaves(nnx.state(trained.model, nnx.Param))
  restored_norm = math.sqrt(sum(float((np.asarray(x, np.float64) ** 2).sum()) for x in leaves))
  assert trained.step == 4 and restored_norm == pytest.approx(norms[-1], rel=1e-5)
  # Eval accuracy is a whole number of the task's scored eval examples (359 digits; the
  # last eval batch of 64 is padding past them, which must not count).
  scored = sum(int(b["target_mask"].sum()) for b in trained.task.eval_batches(64))
  correct = summary["final_eval"]["accuracy"] * scored
  assert scored == 359 and abs(correct - round(correct)) < 1e-6, (
      f"eval accuracy x 359 = {correct} is not a whole number of images: padding counted?")


def _interrupt_at(monkeypatch, step):
  real_write = writer_lib.MetricWriter.write
  state = {"fired": False}

  def write(self, s, split, metrics):
    real_write(self, s, split, metrics)
    if s == step and split == "train" and not state["fired"]:
      state["fired"] = True
      raise KeyboardInterrupt

  monkeypatch.setattr(writer_lib.MetricWriter, "write", write)


def test_interrupted_run_resumes_to_identical_results(tmp_path, monkeypatch):
  reference = run(small_config(), tmp_path / "straight", progress=False)
  _interrupt_at(monkeypatch, 3)
  with pytest.raises(KeyboardInterrupt):
    run(small_config(), tmp_path / "killed", progress=False)
  # Ctrl-C saved the state it had reached.
  assert ckpt_lib.Checkpointer(tmp_path / "killed" / "checkpoints", 3).latest_step() == 3
  resumed = run(small_config(), tmp_path / "killed", progress=False)
  assert resumed["resumed_from_step"] == 3
  assert resumed["final_eval"] == reference["final_eval"]  # bitwise on CPU
  assert resumed["final_train"] == reference["final_train"]
  straight = read_jsonl(tmp_path / "straight" / "metrics.jsonl")
  killed = read_jsonl(tmp_path / "killed" / "metrics.jsonl")
  assert killed == straight


def test_finished_workdir_is_not_retrained(tmp_path):
  first = run(small_config(), tmp_path, progress=False)
  again = run(small_config(), tmp_path, progress=False)
  assert again == json.loads(json.dumps(first))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  real = ArrayTask.train_batch

  def poisoned(self, step, batch_size, seed):
    batch = real(self, step, batch_size, seed)
    if step == 2:  # the batch of step 3
      batch["inputs"] = np.full_like(batch["inputs"], np.nan)
    return batch

  monkeypatch.setattr(ArrayTask, "train_batch", poisoned)
  cfg = small_config(train__checkpoint_every=1, train__num_steps=5)
  with pytest.raises(FloatingPointError, match="at step 3.*last good checkpoint: step 2"):
    run(cfg, tmp_path, progress=False)
  assert ckpt_lib.Checkpointer(tmp_path / "checkpoints", 3).latest_step() == 2
  assert not (tmp_path / "summary.json").exists()


def test_workdir_of_another_config_is_refused(tmp_path):
  run(small_config(), tmp_path, progress=False)
  before = (tmp_path / "config.json").read_text()
  with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"train.learning_rate: 0.001 -> 0.01"):
    run(small_config(train__learning_rate=0.01), tmp_path, progress=False)
  assert (tmp_path / "config.json").read_text() == before


def test_resume_false_starts_afresh_in_a_new_workdir(tmp_path):
  run(small_config(), tmp_path / "w", progress=False)
  run(small_config(resume=False), tmp_path / "w", progress=False)
  assert (tmp_path / "w.2" / "summary.json").exists()
  assert (tmp_path / "w" / "summary.json").exists()  # the first run is untouched


def test_checkpoint_is_never_overwritten_by_an_older_step(tmp_path):
  run(small_config(), tmp_path, progress=False)
  checkpointer = ckpt_lib.Checkpointer(tmp_path / "checkpoints", 3)
  with pytest.raises(ValueError, match="refusing to overwrite checkpoint step 4 with step 3"):
    checkpointer.save(3, {"x": np.zeros(2)})
  checkpointer.close()


def test_tuple_settings_resume(tmp_path):
  """config.json stores tuples as lists; that is not a config difference."""
  from attn_research.workdir.checkpoint import check_resumable
  run(small_config(), tmp_path, progress=False)
  config = json.loads((tmp_path / "config.json").read_text())
  config["data"]["extra"] = ["a", 1]
  (tmp_path / "config.json").write_text(json.dumps(config))
  config["data"]["extra"] = ("a", 1)
  check_resumable(tmp_path, config)  # no error
  config["data"]["extra"] = ("a", 2)
  with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"data.extra: \['a', 1\] -> \['a', 2\]"):
    check_resumable(tmp_path, config)


def test_length_buckets_trim_padding_only():
  from attn_research.data.base import bucket_boundaries, trim_to_bucket
  assert bucket_boundaries(100, 4) == [32, 56, 80, 100]
  assert bucket_boundaries(100, 1) == [100]
  mask = np.zeros((2, 100), bool)
  mask[0, :30], mask[1, :41] = True, True
  batch = {"inputs": np.ones((2, 100)), "mask": mask, "targets": np.ones((2, 100)),
           "target_mask": mask, "adjacency": np.ones((2, 100, 100), bool)}
  trimmed = trim_to_bucket(batch, bucket_boundaries(100, 4))
  assert trimmed["inputs"].shape == (2, 56) and trimmed["adjacency"].shape == (2, 56, 56)
  assert trimmed["mask"].sum() == mask.sum()  # every real vector kept
  per_sequence = dict(batch, targets=np.ones(2), target_mask=np.ones(2, bool))
  assert trim_to_bucket(per_sequence, [56, 100])["targets"].shape == (2,)


@pytest.mark.slow  # two full runs compiled at several lengths: ~11 s
def test_bucketed_run_matches_the_padded_run(tmp_path):
  cfg = dict(train__num_steps=4, train__checkpoint_every=4, train__eval_every=4)
  padded = run(make_config("experiments/listops.py:smoke", **cfg), tmp_path / "a",
               progress=False)
  bucketed = run(make_config("experiments/listops.py:smoke", train__length_buckets=4, **cfg),
                 tmp_path / "b", progress=False)
  assert 1 <= bucketed["train_step_compilations"] <= 4
  for key in ("loss", "accuracy"):
    assert bucketed["final_eval"][key] == pytest.approx(padded["final_eval"][key], abs=1e-4)
