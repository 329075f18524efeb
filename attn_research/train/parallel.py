"""The device mesh of a run (`config.mesh`) and how its state and batches are placed.

config.mesh gives the sizes of four axes, data, fsdp, sequence and tensor (-1: the
devices the others leave; at most one -1). The default, data=-1 fsdp=1 sequence=1
tensor=1, is plain data parallelism: the batch split over every device, the state
replicated, XLA inserting the gradient all-reduce. fsdp and tensor split the parameters
and the optimizer state as train/sharding.py's rules say; the batch is split over
data x fsdp. sequence splits the batch's length axis and runs attention as a ring
(train/sequence.py says what such a run needs).

Devices are laid out in jax.devices() order, data outermost and tensor innermost, so a
tensor group or a sequence ring (which exchange activations every layer) sits on
neighbouring devices, and on several processes each process holds whole slices of the
data axis when it can.

Multi-host runs call jax.distributed.initialize from JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID before anything touches a device
(maybe_initialize_distributed; train/loop.prepare calls it first). Every process then
builds the same global batch and hands its own devices their rows.
"""
from __future__ import annotations

import functools
import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from attn_research.train.sharding import (AXES, BATCH_AXES, SEQUENCE_AXIS, check_axes_used,
                                          state_specs)

MESH_DEFAULTS = dict(data=-1, fsdp=1, sequence=1, tensor=1)

_initialized = False


def maybe_initialize_distributed():
  """Starts jax.distributed when the environment names a coordinator (multi-host).
  On CPU the processes exchange data through gloo (jax's CPU collectives)."""
  global _initialized
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if _initialized or not address:
    return
  missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in os.environ]
  if missing:
    raise ValueError(f"JAX_COORDINATOR_ADDRESS={address!r} is set but {', '.join(missing)} "
                     "is not: a multi-process run needs all three")
  if jax.config.jax_cpu_collectives_implementation in (None, "none", ""):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=address,
                             num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                             process_id=int(os.environ["JAX_PROCESS_ID"]))
  _initialized = True


def mesh_sizes(mesh_cfg, num_devices: int) -> dict:
  """{axis: size} of config.mesh over num_devices, -1 resolved; ValueError naming the
  values when the sizes are not positive ints (or one -1), or do not multiply to the
  device count."""
  cfg = dict(MESH_DEFAULTS, **(dict(mesh_cfg) if mesh_cfg is not None else {}))
  unknown = sorted(set(cfg) - set(AXES))
  if unknown:
    raise ValueError(f"mesh axes {unknown} are unknown; the mesh axes are {list(AXES)}")
  shown = " ".join(f"{a}={cfg[a]}" for a in AXES)
  for axis in AXES:
    v = cfg[axis]
    if not (isinstance(v, int) and not isinstance(v, bool) and (v >= 1 or v == -1)):
      raise ValueError(f"mesh.{axis}={v!r} must be a positive int or -1 (the devices the "
                       "other axes leave)")
  rest = [a for a in AXES if cfg[a] == -1]
  if len(rest) > 1:
    raise ValueError(f"mesh ({shown}): only one axis may be -1; got {rest}")
  fixed = math.prod(cfg[a] for a in AXES if cfg[a] != -1)
  if rest:
    if num_devices % fixed:
      raise ValueError(f"mesh ({shown}): the fixed sizes multiply to {fixed}, which does not "
                       f"divide the {num_devices} devices")
    cfg[rest[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(f"mesh ({shown}) has {fixed} devices but there are {num_devices}; the "
                     "sizes must multiply to the device count (or make one of them -1)")
  return {a: cfg[a] for a in AXES}


def check_batches(sizes: dict, **batches):
  """Refuses a batch (train.KEY=size; None: not given) that data x fsdp does not divide."""
  shards, devices = sizes["data"] * sizes["fsdp"], math.prod(sizes.values())
  for key, size in batches.items():
    if size is not None and size % shards:
      where = (f"{devices} devices it is split over" if shards == devices else
               f"{shards} batch shards it is split over (mesh.data={sizes['data']} x "
               f"mesh.fsdp={sizes['fsdp']})")
      raise ValueError(f"train.{key}={size} must be a multiple of the {where}")


class Parallel:
  """The run's mesh, its batch sharding and the shardings of its state.

  sharded is False for the default mesh (every device on data): the state is then
  replicated exactly as plain data parallelism always did. sequence is the size of the
  sequence axis: above 1, batches are split along their length too and the steps are
  traced with the mesh current (in_mesh), which impl="ring" attention reads.
  """

  def __init__(self, batch_size: int, mesh=None, *, eval_batch_size: int | None = None):
    maybe_initialize_distributed()
    devices = jax.devices()
    self.sizes = mesh_sizes(mesh, len(devices))
    self.num_devices = len(devices)
    self.batch_shards = self.sizes["data"] * self.sizes["fsdp"]
    check_batches(self.sizes, batch_size=batch_size, eval_batch_size=eval_batch_size)
    self.sharded = self.sizes["fsdp"] * self.sizes["tensor"] > 1
    self.sequence = self.sizes[SEQUENCE_AXIS]
    shape = tuple(self.sizes[a] for a in AXES)
    self.mesh = Mesh(np.asarray(devices).reshape(shape), AXES)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(BATCH_AXES))
    # What jit is told of a batch: with a sequence axis the shardings differ by key (see
    # batch_shardings), so jit takes each array's own (None: unspecified).
    self.batch_in_sharding = self.batch_sharding if self.sequence == 1 else None

  def describe(self) -> str:
    return " x ".join(f"{a} {self.sizes[a]}" for a in AXES)

  def check_params(self, abstract_params, what: str):
    """Refuses, before anything compiles, a mesh the parameters cannot be split over
    (train/sharding.py: tensor not dividing heads or MLP width, an axis sharding nothing)."""
    if self.sharded:
      check_axes_used(abstract_params, self.sizes, what)

  def state_shardings(self, tree):
    """NamedShardings of tree's arrays by the rules; the single replicated sharding (a
    pytree prefix of any state) when the mesh splits no parameter."""
    if not self.sharded:
      return self.replicated
    return jax.tree.map(lambda spec: NamedSharding(self.mesh, spec),
                        state_specs(tree, self.sizes), is_leaf=lambda x: isinstance(x, P))

  def place(self, tree):
    """tree's arrays moved onto the mesh as the rules say (replicated by default)."""
    shardings = self.state_shardings(tree)
    if jax.process_count() == 1:
      return jax.device_put(tree, shardings)
    if isinstance(shardings, NamedSharding):  # one for all: spelled out per array
      shardings = jax.tree.map(lambda _, one=shardings: one, tree)

    def put(x, sharding):  # every process holds the same value: each keeps its part
      if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already global: a resharding
      host = np.asarray(x)
      return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree, shardings)

  def replicate(self, tree):
    return jax.device_put(tree, self.replicated)

  def batch_shardings(self, batch: dict):
    """{key: sharding}: every array split along the batch axis over data x fsdp; with a
    sequence axis, the arrays whose dimension 1 is the sequence's length (inputs, mask,
    per-vector targets and target_mask, the first axis of an adjacency) are also split
    along it, each device holding one contiguous block of positions. One sharding for
    all (a pytree prefix) without a sequence axis."""
    if self.sequence == 1:
      return self.batch_sharding
    T = batch["mask"].shape[1]
    split = NamedSharding(self.mesh, P(BATCH_AXES, SEQUENCE_AXIS))
    return {k: split if v.ndim >= 2 and v.shape[1] == T else self.batch_sharding
            for k, v in batch.items()}

  def shard_batch(self, batch: dict):
    """Global numpy batch -> global jax arrays split as batch_shardings says; each process
    hands its own devices their part."""
    shardings = self.batch_shardings(batch)
    if jax.process_count() == 1:  # the common case, and twice as fast as the general path
      return jax.device_put(batch, shardings)
    if isinstance(shardings, NamedSharding):
      shardings = {k: shardings for k in batch}
    return {k: jax.make_array_from_callback(v.shape, shardings[k], lambda idx, v=v: v[idx])
            for k, v in batch.items()}

  def in_mesh(self, fn):
    """fn, traced with this mesh current (jax.sharding.use_abstract_mesh) when the mesh
    has a sequence axis, so impl="ring" attention finds its axis; fn itself otherwise."""
    if self.sequence == 1:
      return fn

    @functools.wraps(fn)
    def traced_in_mesh(*args, **kwargs):
      with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):
        return fn(*args, **kwargs)
    return traced_in_mesh


  def abstract(self, tree):
    """Shape/dtype/sharding skeleton of tree as this mesh places it (an orbax restore
    target: a checkpoint saved on any mesh restores onto this one)."""
    shardings = self.state_shardings(tree)
    if isinstance(shardings, NamedSharding):
      return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=shardings),
                          tree)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)


def DataParallel(batch_size: int) -> Parallel:  # noqa: N802 - the name before meshes
  """Plain data parallelism over every device (the default mesh)."""
  return Parallel(batch_size)
