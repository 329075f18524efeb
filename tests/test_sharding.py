"""Meshes beyond data parallel (train/parallel.py, train/sharding.py).

Fast: the mesh setting's validation and the rules' specs, on shapes alone (1 device).
Slow: 8 forced CPU devices in a subprocess: data 2 x fsdp 2 x tensor 2 trains to the
1-device run's numbers with its parameters and Adam moments really split, and
checkpoints move between meshes (8 devices -> 2x2x2, 8 devices -> 1 device).
"""
import json
import shutil

import jax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from attn_research.data import get_task
from attn_research.experiment import MESH_DEFAULTS as CONFIG_MESH_DEFAULTS
from attn_research.models import get_model
from attn_research.objectives import get_objective
from attn_research.objectives.optim import param_paths
from attn_research.train import parallel, sharding
from attn_research.train.loop import prepare, run
from attn_research.workdir.checkpoint import config_differences
from tests.conftest import ROOT, make_config, last_json_line, run_on_devices


def _abstract_state(config):
  info = get_task(config.data).info
  model = nnx.eval_shape(lambda: get_model(config.model, info, rngs=nnx.Rngs(0)))
  return model, get_objective(config, model).abstract_state()


def test_mesh_sizes_resolve_and_refuse():
  assert parallel.mesh_sizes(None, 8) == {"data": 8, "fsdp": 1, "sequence": 1, "tensor": 1}
  assert parallel.mesh_sizes(dict(data=-1, fsdp=2, tensor=2), 8) == dict(data=2, fsdp=2, sequence=1,
                                                                         tensor=2)
  assert parallel.mesh_sizes(dict(data=1, fsdp=-1, tensor=2), 8)["fsdp"] == 4
  assert parallel.MESH_DEFAULTS == CONFIG_MESH_DEFAULTS  # two spellings, one default
  bad = [(dict(data=2, fsdp=2, tensor=1), 8, r"has 4 devices but there are 8"),
         (dict(data=-1, fsdp=-1, tensor=1), 8, r"only one axis may be -1; got \['data', 'fsdp'\]"),
         (dict(data=-1, fsdp=3, tensor=1), 8, r"multiply to 3, which does not divide the 8"),
         (dict(data=0, fsdp=1, tensor=1), 8, r"mesh.data=0 must be a positive int or -1"),
         (dict(data=-1, fsdp=1, tensor=1, pipeline=2), 8, r"mesh axes \['pipeline'\] are unknown")]
  for mesh, devices, message in bad:
    with pytest.raises(ValueError, match=message):
      parallel.mesh_sizes(mesh, devices)


def test_batch_must_divide_over_data_and_fsdp():
  sizes = dict(data=2, fsdp=2, tensor=2)
  parallel.check_batches(sizes, batch_size=4, eval_batch_size=8)  # tensor does not split it
  with pytest.raises(ValueError, match=r"train.batch_size=6 must be a multiple of the 4 batch "
                                       r"shards .*mesh.data=2 x mesh.fsdp=2"):
    parallel.check_batches(sizes, batch_size=6)
  with pytest.raises(ValueError, match=r"eval_batch_size=12 must be a multiple of the 8 devices"):
    parallel.check_batches(dict(data=8, fsdp=1, tensor=1), batch_size=8, eval_batch_size=12)


def test_bad_mesh_refused_before_compiling(tmp_path):
  config = make_config(mesh__fsdp=2)  # one device here
  with pytest.raises(ValueError, match=r"mesh \(data=-1 fsdp=2 sequence=1 tensor=1\): the fixed "
                                       r"sizes multiply to 2, which does not divide the 1 devices"):
    prepare(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_rules_split_heads_mlp_width_and_optimizer_state():
  """Tensor rules on the tiny transformer's paths, FSDP on the largest free dimension, the
  Adam moments sharded exactly like their parameters, counters whole."""
  _, state = _abstract_state(make_config())  # d_model 16, 2 heads, MLP width 64
  specs = param_paths(sharding.state_specs(state, dict(data=2, fsdp=2, tensor=2)))
  block = "blocks/0/"
  expected = {f"{block}attn/query/kernel": P("fsdp", "tensor", None),  # [16, 2, 8]
              f"{block}attn/query/bias": P("tensor", "fsdp"),          # [2, 8]
              f"{block}attn/out/kernel": P("tensor", None, "fsdp"),    # [2, 8, 16]
              f"{block}mlp/up/kernel": P("fsdp", "tensor"),            # [16, 64]
              f"{block}mlp/up/bias": P("tensor"),                      # [64]
              f"{block}mlp/down/kernel": P("tensor", "fsdp"),          # [64, 16]
              f"{block}ln_mlp/scale": P("fsdp"),                       # [16]
              "head/proj/kernel": P("fsdp", None)}                     # [16, 10]
  for path, spec in expected.items():
    assert specs[f"params/{path}"] == spec, path
    assert specs[f"opt_state/1/0/mu/{path}"] == spec, path
    assert specs[f"opt_state/1/0/nu/{path}"] == spec, path
  assert specs["step"] == P() and specs["opt_state/1/0/count"] == P()
  # fsdp alone: no tensor axis anywhere; tensor alone: no fsdp axis anywhere.
  only_fsdp = param_paths(sharding.state_specs(state, dict(data=4, fsdp=2, tensor=1)))
  assert only_fsdp[f"params/{block}mlp/up/kernel"] == P(None, "fsdp")
  only_tensor = param_paths(sharding.state_specs(state, dict(data=4, fsdp=1, tensor=2)))
  assert only_tensor[f"params/{block}attn/value/kernel"] == P(None, "tensor", None)
  assert only_tensor[f"params/{block}ln_attn/scale"] == P(None)


def test_rules_refuse_what_they_cannot_split():
  model, _ = _abstract_state(make_config())
  params = nnx.state(model, nnx.Param)
  with pytest.raises(ValueError, match=r"mesh.tensor=4 must divide the attention heads "
                                       r"\(model.num_heads\) = 2 \(dimension 0 of blocks/0/attn/"):
    sharding.check_axes_used(params, dict(data=1, fsdp=1, tensor=4), "model transformer")
  with pytest.raises(ValueError, match=r"mesh.fsdp=7 shards nothing: no parameter of model "
                                       r"transformer has a dimension divisible by 7"):
    sharding.check_axes_used(params, dict(data=1, fsdp=7, tensor=1), "model transformer")
  mlp, _ = _abstract_state(make_config(model__name="mlp"))
  with pytest.raises(ValueError, match=r"mesh.tensor=2 shards nothing: no parameter path of "
                                       r"model mlp matches a tensor rule"):
    sharding.check_axes_used(nnx.state(mlp, nnx.Param), dict(data=1, fsdp=1, tensor=2),
                             "model mlp")


def test_mesh_is_a_setting_and_never_blocks_resuming():
  config = make_config(mesh__data=-1, mesh__fsdp=2, mesh__tensor=1)
  assert dict(config.mesh) == dict(data=-1, fsdp=2, sequence=1, tensor=1)
  with pytest.raises(ValueError, match="unknown config key 'mesh.pipeline'"):
    make_config(mesh__pipeline=2)
  new = json.loads(json.dumps(config.to_dict()))
  old = {k: v for k, v in new.items() if k != "mesh"}  # a workdir from before meshes
  assert config_differences(old, new) == []
  default = json.loads(json.dumps(make_config().to_dict()))
  assert config_differences(default, new) == []  # another mesh: the same run
  assert config_differences(default, dict(new, seed=1)) == ["seed: 0 -> 1"]


# --------------------------------------------------------------- 8 forced CPU devices

SETTINGS = dict(train__num_steps=3, train__batch_size=16, train__eval_batch_size=64,
                train__log_every=1)
MESH_222 = dict(mesh__data=2, mesh__fsdp=2, mesh__tensor=2)
LONG = dict(SETTINGS, train__num_steps=6, train__checkpoint_every=3, train__eval_every=3)

SCRIPT = f"""
import json, pathlib, shutil, sys
sys.path.insert(0, {str(ROOT)!r})
import jax
from jax.sharding import PartitionSpec as P
from tests.conftest import make_config
from attn_research.train.loop import initial_state, prepare, run
assert jax.device_count() == 8, jax.devices()
out, root = {{}}, pathlib.Path(sys.argv[1])

# The state is born split: parameters and Adam moments by the rules.
p = prepare(make_config(**{dict(SETTINGS, **MESH_222)!r}), root / "probe")
state = initial_state(p)
attn, mlp = state["params"]["blocks"][0]["attn"], state["params"]["blocks"][0]["mlp"]
mu = state["opt_state"][1][0].mu["blocks"][0]
out["specs"] = {{name: str(x.sharding.spec) for name, x in [
    ("query", attn["query"]["kernel"]), ("up", mlp["up"]["kernel"]),
    ("mu_query", mu["attn"]["query"]["kernel"]), ("mu_down", mu["mlp"]["down"]["kernel"]),
    ("step", state["step"])]}}
out["query_shard_shape"] = list(attn["query"]["kernel"].addressable_shards[0].data.shape)
out["mesh_222"] = run(make_config(**{dict(SETTINGS, **MESH_222)!r}), root / "m222",
                      progress=False)

# A data-8 checkpoint continues on data 2 x fsdp 2 x tensor 2.
out["data8_long"] = run(make_config(**{LONG!r}), root / "d8", progress=False)
shutil.copytree(root / "d8", root / "d8_to_222")
shutil.rmtree(root / "d8_to_222" / "checkpoints" / "6")
(root / "d8_to_222" / "summary.json").unlink()
out["resumed_222"] = run(make_config(**{dict(LONG, **MESH_222)!r}), root / "d8_to_222",
                         progress=False)
print(json.dumps(out))
"""


def _close(a, b, rel=1e-4):
  for split in ("final_train", "final_eval"):
    for key in ("loss", "accuracy"):
      assert a[split][key] == pytest.approx(b[split][key], rel=rel, abs=1e-6), (split, key)


@pytest.mark.slow  # 8 forced devices in a subprocess: about a minute on 2 shared cores
def test_mesh_222_matches_one_device_and_checkpoints_move(tmp_path):
  assert jax.device_count() == 1
  single = run(make_config(**SETTINGS), tmp_path / "one", progress=False)
  out = last_json_line(run_on_devices(8, SCRIPT, tmp_path))
  assert out["specs"] == {"query": str(P("fsdp", "tensor", None)), "up": str(P("fsdp", "tensor")),
                          "mu_query": str(P("fsdp", "tensor", None)),
                          "mu_down": str(P("tensor", "fsdp")), "step": str(P())}
  assert out["query_shard_shape"] == [8, 1, 8]  # [16, 2, 8] split 2 x 2
  assert out["mesh_222"]["mesh"] == {"data": 2, "fsdp": 2, "sequence": 1, "tensor": 2}
  _close(out["mesh_222"], single)
  resumed, reference = out["resumed_222"], out["data8_long"]
  assert resumed["resumed_from_step"] == 3 and resumed["step"] == 6
  _close(resumed, reference)
  # The same data-8 checkpoint continues on this 1-device process.
  shutil.copytree(tmp_path / "d8", tmp_path / "d8_to_1")
  shutil.rmtree(tmp_path / "d8_to_1" / "checkpoints" / "6")
  (tmp_path / "d8_to_1" / "summary.json").unlink()
  on_one = run(make_config(**LONG), tmp_path / "d8_to_1", progress=False)
  assert on_one["resumed_from_step"] == 3 and on_one["device"]["count"] == 1
  _close(on_one, reference)
