"""TensorBoard event files beside metrics.jsonl, and `./launch.sh tensorboard DIR`.

The event files are read back the way TensorBoard reads them: with tensorboard's own
EventAccumulator when the optional app is installed, else with a small TFRecord reader
over tensorboardX's protos that applies TensorBoard's purge rule (a SessionLog START at
step S drops the events logged earlier at steps >= S).
"""
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from attn_research import tensorboard_cli
from attn_research.train import writer as writer_lib
from attn_research.train.loop import run
from tests.conftest import ROOT, make_config

TRAIN_METRICS = {"loss", "accuracy", "grad_norm", "learning_rate"}


def small_config(**overrides):
  settings = dict(train__num_steps=4, train__checkpoint_every=2, train__log_every=1,
                  train__eval_every=2)
  settings.update(overrides)
  return make_config("experiments/base.py:smoke", **settings)


def records(path):
  """The payloads of a TFRecord file, their checksums checked."""
  data, i = path.read_bytes(), 0
  while i < len(data):
    header = data[i:i + 8]
    (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[i + 8:i + 12])
    assert header_crc == masked_crc32c(header), f"{path}: bad length checksum at byte {i}"
    payload = data[i + 12:i + 12 + length]
    (crc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
    assert crc == masked_crc32c(payload), f"{path}: bad record checksum at byte {i}"
    yield payload
    i += 16 + length


def events(workdir):
  """Every event of the run's files, in the order TensorBoard reads them (by name)."""
  for path in sorted(pathlib.Path(workdir).glob("events.out.tfevents.*")):
    for payload in records(path):
      yield event_pb2.Event.FromString(payload)


def raw_scalars(workdir):
  """{tag: [(step, value), ...]} as written, duplicates and all."""
  out = {}
  for event in events(workdir):
    for value in event.summary.value:
      if value.HasField("simple_value"):
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def shown_scalars(workdir):
  """{tag: [(step, value), ...]} as TensorBoard shows them (purged)."""
  try:
    from tensorboard.backend.event_processing import event_accumulator
  except ImportError:
    out = {}
    for event in events(workdir):
      if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
        out = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in out.items()}
      for value in event.summary.value:
        if value.HasField("simple_value"):
          out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
  acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"scalars": 0})
  acc.Reload()
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def jsonl_scalars(workdir):
  """metrics.jsonl as {split/metric: [(step, value as float32)]}: event files hold float32."""
  out = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    row = json.loads(line)
    for name, value in row.items():
      if name not in ("step", "split"):
        out.setdefault(f"{row['split']}/{name}", []).append(
            (row["step"], float(np.float32(value))))
  return out


def histograms(workdir, tag):
  return {e.step: v.histo for e in events(workdir) for v in e.summary.value
          if v.tag == tag and v.HasField("histo")}


def test_event_file_holds_the_metrics_parameter_norms_and_attention_maps(tmp_path):
  run(small_config(), tmp_path, progress=False)
  metrics = jsonl_scalars(tmp_path)
  assert {f"train/{m}" for m in TRAIN_METRICS} | {"eval/loss", "eval/accuracy"} <= set(metrics)
  assert [s for s, _ in metrics["train/loss"]] == [1, 2, 3, 4]
  assert [s for s, _ in metrics["eval/accuracy"]] == [2, 4]
  shown = shown_scalars(tmp_path)
  for tag, points in metrics.items():
    assert shown[tag] == points, tag  # same steps, same (float32) values

  # Parameter norms at the eval steps: one histogram over every parameter array, one
  # scalar per top-level layer; the layers' squared norms add up to the histogram's.
  histos = histograms(tmp_path, "params/l2_norms")
  assert sorted(histos) == [2, 4]
  layers = {tag: dict(points) for tag, points in shown.items() if tag.startswith("params/norm/")}
  assert set(layers) == {"params/norm/blocks.0", "params/norm/embed", "params/norm/head"}
  for step, histo in histos.items():
    total = sum(points[step] ** 2 for points in layers.values())
    assert total == pytest.approx(histo.sum_squares, rel=1e-5)
  # ...and the last ones are those of the trained parameters, one value per array.
  from flax import nnx

  from attn_research.train.restore import load_trained
  trained = writer_lib.param_norms(nnx.state(load_trained(tmp_path).model, nnx.Param))
  assert histos[4].num == len(trained) > 1
  assert histos[4].sum_squares == pytest.approx(sum(n * n for n in trained.values()), rel=1e-5)

  # Attention maps, once written, are images in the run's logs at its final step.
  from attn_research.modes.attention_maps import save_attention_maps
  pngs = save_attention_maps(tmp_path)
  images = {v.tag: (e.step, v.image) for e in events(tmp_path) for v in e.summary.value
            if v.HasField("image")}
  assert set(images) == {f"attention_maps/{p.stem}" for p in pngs}
  for png in pngs:
    step, image = images[f"attention_maps/{png.stem}"]
    assert step == 4 and image.encoded_image_string == png.read_bytes()
    assert image.width > 0 and image.height > 0


def test_a_run_resumed_from_an_earlier_checkpoint_shows_each_step_once(tmp_path):
  run(small_config(), tmp_path, progress=False)
  # As if the process died after logging steps 3 and 4 but before saving step 4: the
  # resumed run logs 3 and 4 again.
  shutil.rmtree(tmp_path / "checkpoints" / "4")
  (tmp_path / "summary.json").unlink()
  summary = run(small_config(), tmp_path, progress=False)
  assert summary["resumed_from_step"] == 2
  written = raw_scalars(tmp_path)
  assert [s for s, _ in written["train/loss"]] == [1, 2, 3, 4, 3, 4]  # the case to purge
  shown = shown_scalars(tmp_path)
  assert [s for s, _ in shown["train/loss"]] == [1, 2, 3, 4]
  assert [s for s, _ in shown["eval/loss"]] == [2, 4]
  metrics = jsonl_scalars(tmp_path)
  for tag, points in metrics.items():
    assert shown[tag] == points, tag


def test_layer_norms_group_arrays_by_top_level_layer():
  arrays = {"blocks": {0: {"w": np.array([3.0, 4.0])}, 1: {"w": np.array([0.0, 2.0])}},
            "embed": {"kernel": np.array([[1.0]]), "bias": np.array([0.0, 0.0])}}
  norms = writer_lib.param_norms(arrays)
  assert norms == {("blocks", 0, "w"): 5.0, ("blocks", 1, "w"): 2.0,
                   ("embed", "bias"): 0.0, ("embed", "kernel"): 1.0}
  assert writer_lib.layer_norms(norms) == {"blocks.0": 5.0, "blocks.1": 2.0, "embed": 1.0}


@pytest.mark.parametrize("process,writes", [(0, True), (1, False)])
def test_only_process_zero_writes(tmp_path, monkeypatch, process, writes):
  import jax
  monkeypatch.setattr(jax, "process_index", lambda: process)
  with writer_lib.MetricWriter(tmp_path, resume_step=0) as writer:
    writer.write(1, "train", {"loss": 1.0})
    writer.write_params(1, {"w": np.ones(2)})
  assert (tmp_path / "metrics.jsonl").exists() == writes
  assert bool(raw_scalars(tmp_path).get("train/loss")) == writes
  assert bool(histograms(tmp_path, "params/l2_norms")) == writes


def test_add_images_refuses_a_file_that_is_not_a_png(tmp_path):
  bad = tmp_path / "plot.png"
  bad.write_text("not an image")
  with pytest.raises(ValueError, match="plot.png' is not a PNG"):
    writer_lib.add_images(tmp_path, [bad], step=0)


def test_tensorboard_verb_without_tensorboard_prints_the_install_hint(tmp_path, monkeypatch,
                                                                      capsys):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
  with pytest.raises(SystemExit) as exit_info:
    tensorboard_cli.main([str(tmp_path)])
  assert exit_info.value.code not in (0, None)
  assert "pip install -c constraints.txt -e '.[tensorboard]'" in str(exit_info.value.code)


def test_tensorboard_verb_refuses_a_missing_directory(tmp_path):
  with pytest.raises(SystemExit, match="'.*nowhere' is not a directory"):
    tensorboard_cli.main([str(tmp_path / "nowhere")])


def test_tensorboard_verb_starts_tensorboard_on_the_directory(tmp_path, monkeypatch):
  started = []
  monkeypatch.setattr(tensorboard_cli, "tensorboard_installed", lambda: True)
  monkeypatch.setattr(os, "execv", lambda exe, argv: started.append(argv))
  tensorboard_cli.main([str(tmp_path), "--port", "6007"])
  assert started == [[sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path),
                      "--port", "6007"]]


def test_launcher_tensorboard_verb_prints_the_install_hint(tmp_path):
  # A package named tensorboard that fails to import stands in for a missing app, whether
  # or not the real one is installed; the active environment skips the bootstrap.
  shadow = tmp_path / "shadow" / "tensorboard"
  shadow.mkdir(parents=True)
  (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
  env = dict(os.environ, PYTHONPATH=str(shadow.parent), VIRTUAL_ENV=str(tmp_path / "active"),
             PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
  out = subprocess.run(["bash", str(ROOT / "launch.sh"), "tensorboard", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
  assert out.returncode != 0
  assert "-e '.[tensorboard]'" in out.stderr, out.stderr
