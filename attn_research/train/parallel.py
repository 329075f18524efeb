"""Data parallelism: one mesh axis "data" over every device of every process.

The batch is split along "data", parameters and optimizer state are replicated;
XLA inserts the gradient all-reduce. Multi-host runs call
jax.distributed.initialize from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID (each process then feeds its own slice of the global batch).
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

_initialized = False


def maybe_initialize_distributed():
  """Starts jax.distributed when the environment names a coordinator (multi-host)."""
  global _initialized
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if _initialized or not address:
    return
  jax.distributed.initialize(coordinator_address=address,
                             num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                             process_id=int(os.environ["JAX_PROCESS_ID"]))
  _initialized = True


class DataParallel:
  def __init__(self, batch_size: int):
    maybe_initialize_distributed()
    devices = jax.devices()
    if batch_size % len(devices):
      raise ValueError(f"train.batch_size={batch_size} must be a multiple of the "
                       f"{len(devices)} devices it is split over")
    self.mesh = Mesh(np.asarray(devices), ("data",))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    self.num_devices = len(devices)

  def shard_batch(self, batch: dict):
    """Global numpy batch -> global jax arrays split along the batch axis; each process
    contributes the rows that belong to its devices."""
    n_proc, proc = jax.process_count(), jax.process_index()
    if n_proc == 1:  # the common case, and twice as fast as the general path
      return jax.device_put(batch, self.batch_sharding)

    def put(x):
      rows = x.shape[0] // n_proc
      local = x[proc * rows:(proc + 1) * rows]
      return jax.make_array_from_process_local_data(self.batch_sharding, local, x.shape)

    return {k: put(v) for k, v in batch.items()}

  def replicate(self, tree):
    return jax.device_put(tree, self.replicated)

  def abstract(self, tree):
    """Shape/dtype/sharding skeleton of a replicated tree (an orbax restore target)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), tree)
