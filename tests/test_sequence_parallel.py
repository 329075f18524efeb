"""Sequence parallelism from a training run (train/sequence.py, mesh.sequence, impl="ring").

Fast: what the ring cannot run is refused by name before anything is built (1 device).
Slow: 4 forced CPU devices in a subprocess: a tiny Transformer trained with its sequences
split over the mesh's sequence axis (a per-sequence task over data 2 x sequence 2, a
causal task over sequence 4) ends with the 1-device run's losses and accuracies.
"""

import jax
import pytest
from jax.sharding import PartitionSpec as P

from attn_research.data import get_task
from attn_research.train import parallel, sequence
from attn_research.train.loop import prepare, run
from tests.conftest import ROOT, make_config, last_json_line, run_on_devices

SEQ2 = dict(data=1, fsdp=1, sequence=2, tensor=1)
# The causal copy task, shrunk: sequences of 16 tokens.
COPY = dict(data__name="copy", data__min_symbols=3, data__max_symbols=6, data__max_length=16,
            data__num_eval=16)


def _check(sizes=SEQ2, **overrides):
  config = make_config(**overrides)
  sequence.check(config, get_task(config.data).info, sizes)


def test_sequence_axis_is_a_mesh_size():
  assert parallel.mesh_sizes(dict(data=-1, sequence=2), 8) == dict(data=4, fsdp=1, sequence=2,
                                                                   tensor=1)
  with pytest.raises(ValueError, match=r"mesh \(data=2 fsdp=1 sequence=2 tensor=1\) has 4 "
                                       r"devices but there are 8"):
    parallel.mesh_sizes(dict(data=2, sequence=2), 8)
  assert make_config(mesh__sequence=2).mesh.sequence == 2
  assert make_config().mesh.sequence == 1


def test_refused_on_one_device_before_anything_is_written(tmp_path):
  with pytest.raises(ValueError, match=r"sequence=2 tensor=1\): the fixed sizes multiply to 2, "
                                       r"which does not divide the 1 devices"):
    prepare(make_config(mesh__sequence=2, model__attention_impl="ring"), tmp_path / "a")
  with pytest.raises(ValueError, match=r"model.attention_impl='ring' runs attention round the "
                                       r"mesh's sequence axis, but mesh.sequence=1"):
    prepare(make_config(model__attention_impl="ring"), tmp_path / "b")
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_what_the_ring_cannot_run_is_refused_by_name():
  ring = dict(model__attention_impl="ring")
  _check(**ring)  # digits: 16 patches, mean pooling, learned positions: fine
  _check(**ring, model__position="rotary")
  _check(**ring, **COPY)  # causal: 16 = 4 blocks of 4
  cases = [
      (dict(), r"mesh.sequence=2 splits every sequence over 2 devices .* set "
               r"--config.model.attention_impl=ring \(got model.attention_impl='auto'\)"),
      (dict(ring, model__attention="linear"), r"got model.attention='linear': set "
                                              r"--config.model.attention=softmax"),
      (dict(ring, model__position="alibi"), r"model.position='alibi' adds a bias"),
      (dict(ring, model__position="relative"), r"model.position='relative' adds a bias"),
      (dict(ring, model__window=2), r"got model.window=2: set --config.model.window=0"),
      (dict(ring, model__pooling="cls"), r"length 17 \(a CLS token included: "
                                         r"model.pooling='cls'\), which ring attention cannot "
                                         r"cut into mesh.sequence = 2 blocks"),
      (dict(ring, model__name="vit"), r"supports model.name in \('transformer',\); got 'vit'"),
      (dict(ring, **dict(COPY, data__max_length=14)),
       r"length 14, which ring attention cannot cut into 2 x mesh.sequence = 4 blocks \(causal"),
  ]
  for overrides, message in cases:
    with pytest.raises(ValueError, match=message):
      _check(**overrides)
  # Every bucket length counts: copy at 24 tokens in 2 buckets is trimmed to 16 or 24;
  # 3 devices (6 causal blocks) cut 24 but not 16.
  buckets = dict(ring, **dict(COPY, data__max_length=24), train__length_buckets=2)
  _check(**buckets)
  with pytest.raises(ValueError, match=r"length 16, .* 2 x mesh.sequence = 6 blocks .* "
                                       r"data.max_length=24 and train.length_buckets=2"):
    _check(dict(SEQ2, sequence=3), **buckets)


# --------------------------------------------------------------- 4 forced CPU devices

SETTINGS = dict(train__num_steps=3, train__batch_size=8, train__eval_batch_size=16,
                train__log_every=1, model__attention_impl="ring")
RUNS = {"digits_data2_seq2": dict(SETTINGS, mesh__data=2, mesh__sequence=2),
        "copy_seq4": dict(SETTINGS, **COPY, mesh__data=1, mesh__sequence=4)}

SCRIPT = f"""
import json, pathlib, sys
sys.path.insert(0, {str(ROOT)!r})
import jax
from tests.conftest import make_config
from attn_research.train.loop import prepare, run
assert jax.device_count() == 4, jax.devices()
out, root = {{}}, pathlib.Path(sys.argv[1])
runs = {RUNS!r}
# Batches enter the step split along their length where they have one.
for name in runs:
  p = prepare(make_config(**runs[name]), root / ("probe_" + name))
  batch = p.dp.shard_batch(p.task.train_batch(0, 8, 0))
  out["specs_" + name] = {{k: str(v.sharding.spec) for k, v in batch.items()}}
out["cache_on"] = jax.config.jax_enable_compilation_cache
for name, settings in runs.items():
  out[name] = run(make_config(**settings), root / name, progress=False)
print(json.dumps(out))
"""


def _close(a, b, rel=1e-4):
  for split in ("final_train", "final_eval"):
    for key in ("loss", "accuracy"):
      assert a[split][key] == pytest.approx(b[split][key], rel=rel, abs=1e-6), (split, key)


@pytest.mark.slow  # 4 forced devices in a subprocess, plus two 1-device runs: about a minute
def test_ring_training_matches_one_device(tmp_path):
  assert jax.device_count() == 1
  single = {name: run(make_config(**{k: v for k, v in settings.items()
                                     if not k.startswith(("mesh", "model__attention_impl"))}),
                      tmp_path / f"one_{name}", progress=False)
            for name, settings in RUNS.items()}
  out = last_json_line(run_on_devices(4, SCRIPT, tmp_path))
  split, rows = str(P(("data", "fsdp"), "sequence")), str(P(("data", "fsdp")))
  assert out["specs_copy_seq4"] == {"inputs": split, "targets": split, "mask": split,
                                    "target_mask": split}, out["specs_copy_seq4"]
  assert out["specs_digits_data2_seq2"] == {"inputs": split, "mask": split, "targets": rows,
                                            "target_mask": rows}
  assert out["cache_on"] is False  # train/sequence.avoid_cached_rings
  assert out["digits_data2_seq2"]["mesh"] == dict(data=2, fsdp=1, sequence=2, tensor=1)
  assert out["copy_seq4"]["mesh"] == dict(data=1, fsdp=1, sequence=4, tensor=1)
  for name in RUNS:
    _close(out[name], single[name])
    # FLOPs are counted for the model as one device runs it, not the ring's program.
    assert out[name]["flops_per_example"] == single[name]["flops_per_example"], name
