"""Sequence (context) parallelism in a training run: what `mesh.sequence > 1` needs.

With --config.mesh.sequence=N every sequence of a batch is split into N contiguous blocks
of positions, one per device of the mesh's "sequence" axis (train/parallel.py
batch_shardings: inputs, mask and per-vector targets are split along their length axis,
besides the batch axis over data x fsdp). Everything in a Transformer but attention is
position-wise (embeddings, position encodings added to the input, MLPs, norms) or a
reduction XLA partitions by itself (mean pooling, the loss), so XLA's SPMD partitioner
keeps those activations split; attention alone needs every key, and it runs as ring
attention (kernels/ring.py, impl="ring"): shard_map over the sequence axis, key/value
blocks passed round the ring, causal runs load balanced by the zigzag layout. The steps
are traced with the mesh current (Parallel.in_mesh), which is where impl="ring" finds it.

Splitting the batch along its length where it enters the step, rather than leaving it
split over data only and letting the ring's shard_map reshard q/k/v, keeps the
activations between attention layers at T / N positions per device, which is the point
of sequence parallelism (memory for lengths one device cannot hold). Measured (compiled
train step, copy task at T 512, d_model 64, 2 layers, batch 4, sequence 4 on forced CPU
devices): the MLP's hidden activations hold 128 positions per device and XLA's peak
estimate is 13.5 MiB, against 512 positions and 30.9 MiB with the batch split over data
only. The causal ring's zigzag order is made inside the attention call (kernels/ring.py),
so the batch stays in natural order, each device holding contiguous positions.

On the CPU backend a sequence-parallel run turns JAX's persistent compilation cache off for
its process (avoid_cached_rings): measured with jax 0.10.2 on 4 forced CPU devices, a
ring train step compiled fresh runs, but the same step loaded from the cache by the next
process deadlocks in XLA's CPU collectives (one device enters the data-axis all-reduce
while the others wait in the ring's collective-permute) until XLA aborts it.

What the ring cannot run is refused here, before anything is built or compiled, naming
the settings (check): any other attention implementation on a sequence mesh, ring
attention without one, attention kinds other than softmax, position encodings that add
a bias to the scores (relative, alibi; rotary and encodings added to the input are
fine), windows, and lengths the ring cannot cut into equal blocks (N blocks; 2N when
causal, for the load-balanced layout), at every length a batch may be trimmed to
(train.length_buckets) and counting a CLS token.
"""
from __future__ import annotations

import jax
from flax import nnx

from attn_research.data.base import bucket_boundaries
from attn_research.models import get_model
from attn_research.models.common import is_causal
from attn_research.nn.positions.base import POSITIONAL
from attn_research.objectives import get_objective

RING = "ring"
# Models whose only mixing across positions is MultiHeadSelfAttention with
# model.attention_impl (checked below); others (ViT's patch grid, encoder-decoder
# cross-attention) are not wired for a split sequence.
MODELS = ("transformer",)


def _has_cls(config, info) -> bool:
  return config.model.get("pooling") == "cls" and info.output_kind == "per_sequence"


def attended_lengths(config, info) -> list[int]:
  """The lengths attention sees: every bucket length a batch may be trimmed to, plus one
  for a CLS token (model.pooling=cls on a per-sequence task)."""
  extra = int(_has_cls(config, info))
  return [b + extra for b in bucket_boundaries(info.max_length, config.train.length_buckets)]


def check(config, info, sizes: dict):
  """ValueError naming the settings when the run's model cannot train on a mesh of these
  sizes ({axis: size}) as sequence parallelism needs (see the module docstring); nothing
  when sequence is 1 and the model does not ask for ring attention."""
  n, model = sizes.get("sequence", 1), config.model
  impl = model.get("attention_impl")
  if n == 1:
    if impl == RING:
      raise ValueError("model.attention_impl='ring' runs attention round the mesh's sequence "
                       "axis, but mesh.sequence=1: set --config.mesh.sequence=N (N > 1 "
                       "devices) or another model.attention_impl (e.g. auto)")
    return
  if model.name not in MODELS:
    raise ValueError(f"mesh.sequence={n} (sequence parallelism) supports model.name in "
                     f"{MODELS}; got {model.name!r}: set --config.mesh.sequence=1")
  if impl != RING:
    raise ValueError(f"mesh.sequence={n} splits every sequence over {n} devices and only ring "
                     f"attention attends across them: set --config.model.attention_impl=ring "
                     f"(got model.attention_impl={impl!r}) or --config.mesh.sequence=1")
  if model.attention != "softmax":
    raise ValueError(f"mesh.sequence={n}: ring attention computes softmax attention; got "
                     f"model.attention={model.attention!r}: set --config.model.attention=softmax")
  if POSITIONAL.get(model.position).needs_bias:
    raise ValueError(f"mesh.sequence={n}: model.position={model.position!r} adds a bias to the "
                     "attention scores, which ring attention does not take; use position "
                     "'rotary', 'learned', 'sinusoidal', 'floater' or 'none'")
  if model.get("window", 0):
    raise ValueError(f"mesh.sequence={n}: ring attention attends every key; got "
                     f"model.window={model.window}: set --config.model.window=0")
  causal = is_causal(info)
  blocks = 2 * n if causal else n
  for length in attended_lengths(config, info):
    if length % blocks:
      why = (f"2 x mesh.sequence = {blocks} blocks (causal: two per device, load balanced)"
             if causal else f"mesh.sequence = {n} blocks")
      cls = " (a CLS token included: model.pooling='cls')" if _has_cls(config, info) else ""
      raise ValueError(f"mesh.sequence={n}: attention sees sequences of length {length}{cls}, "
                       f"which ring attention cannot cut into {why}; lengths come from "
                       f"data.max_length={info.max_length} and train.length_buckets="
                       f"{config.train.length_buckets}")


def counting_forward(p):
  """For a prepared run on a sequence mesh: the objective's forward of the same model with
  model.attention_impl=auto (built abstractly: nothing is allocated or run), whose FLOPs
  are counted for the summary; None otherwise. The ring's own program cannot be counted:
  it only traces with a mesh current, and XLA's cost analysis of a shard_map counts one
  device's blocks, not the whole attention."""
  if p.dp.sequence == 1:
    return None
  config = p.config.copy_and_resolve_references()
  with config.unlocked():
    config.model.attention_impl = "auto"
  model = nnx.eval_shape(lambda: get_model(config.model, p.task.info, rngs=nnx.Rngs(0)))
  return get_objective(config, model).forward


def avoid_cached_rings(sizes: dict):
  """Turns the persistent compilation cache off on the CPU backend when the mesh has a
  sequence axis (see the module docstring); called before anything compiles, as the cache
  opens at the process's first compilation."""
  if sizes.get("sequence", 1) > 1 and jax.default_backend() == "cpu" and (
      jax.config.jax_enable_compilation_cache):
    jax.config.update("jax_enable_compilation_cache", False)
    print("[mesh] sequence parallelism on CPU: the persistent compilation cache is off for "
          "this process (cached ring steps deadlock XLA's CPU collectives)")
