"""LRA's Table 2 in our kernels: training speed and peak memory of one model's
forward+backward step at long lengths, relative to softmax attention (Tay et al. 2020,
arXiv 2011.04006, Table 2: steps per second and memory at 1K-4K tokens, relative to
the vanilla Transformer).

Measured apart from the ListOps training, whose lengths (hundreds of tokens at the tiny
tier) are too short for the kernels' costs to separate. Every kernel is the model the
accuracy table trained (its solved width), rebuilt for the measured length, fed random
tokens with no padding, and timed on the gradient of its mean cross-entropy with
respect to its parameters (no optimizer update). Memory is XLA's compiled estimate of
the step's peak (measure/memory.py), so a configuration over `max_gib` is reported with
its estimate instead of being run. The baseline, "softmax", materialises the
[B, H, T, T] score matrix as LRA's vanilla Transformer does (attention_impl "xla");
"softmax (chunked)" is the same exact attention computed in key blocks (Rabe and
Staats 2021), an extra row: exact attention need not hold the matrix either.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from attn_research.data.base import TaskInfo
from attn_research.data.listops import DIGIT0, VOCAB
from attn_research.measure import time_and_memory
from attn_research.models import get_model
from attn_research.objectives.base import apply_model

BASELINE = "softmax"
CHUNKED = "softmax (chunked)"
SETTINGS = {
    # tokens: examples per step x length, the same at every length (batch 4096 / T)
    "smoke": dict(lengths=(64, 128), tokens=128, repeats=1, max_gib=1.0),
    "tiny": dict(lengths=(1024, 2048, 4096), tokens=4096, repeats=2, max_gib=8.0),
    "full": dict(lengths=(1024, 2048, 3072, 4096), tokens=4 * 4096, repeats=5, max_gib=60.0),
}


def speed_models(models: dict) -> dict:
  """The measured variants of the trained models {name: model settings}: softmax
  materialised (the baseline), the others as trained, and softmax chunked beside."""
  out = {}
  for name, cfg in models.items():
    cfg = dict(cfg)
    if name == BASELINE:
      out[name] = dict(cfg, attention_impl="xla")
      out[CHUNKED] = dict(cfg, attention_impl="chunked")
    else:
      out[name] = cfg
  return out


def _grad_step(model_cfg, length: int, batch: int):
  """(fn, args): fn(*args) is the gradient of the model's loss on one random batch."""
  info = TaskInfo(input_kind="tokens", input_size=VOCAB, output_kind="per_sequence",
                  num_classes=10, max_length=length)
  model = get_model(model_cfg, info, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(DIGIT0, VOCAB, (batch, length)), jnp.int32)
  mask = jnp.ones((batch, length), bool)
  labels = jnp.asarray(rng.integers(0, 10, (batch,)), jnp.int32)

  def fn(tokens, mask, labels, *leaves):
    def loss(p):
      logits = apply_model(graphdef, p, rest, {"inputs": tokens, "mask": mask}, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return jax.grad(loss)(jax.tree.unflatten(treedef, leaves))

  return fn, [tokens, mask, labels, *leaves]


def measure(models: dict, tier: str, log=print) -> dict:
  """{"lengths", "batch", "kernels": {name: {"seconds", "examples_per_second", "bytes",
  "notes"}}} of every model of speed_models(models) at the tier's lengths."""
  s = SETTINGS[tier]
  batches = [max(1, s["tokens"] // t) for t in s["lengths"]]
  kernels = {}
  for name, cfg in speed_models(models).items():
    r = kernels[name] = dict(seconds=[], examples_per_second=[], bytes=[], notes=[])
    for length, batch in zip(s["lengths"], batches):
      fn, args = _grad_step(cfg, length, batch)
      m = time_and_memory(fn, args, repeats=s["repeats"], max_bytes=s["max_gib"] * 2**30)
      r["seconds"].append(m["seconds"])
      r["examples_per_second"].append(None if m["seconds"] is None else batch / m["seconds"])
      r["bytes"].append(m["bytes"])
      r["notes"].append(m["note"])
      took = m["note"] or f"{m['seconds'] * 1e3:,.0f} ms"
      log(f"[lra2020] speed {name} T={length} batch {batch}: {took}, "
          f"{(m['bytes'] or 0) / 2**20:,.0f} MiB")
  return dict(lengths=list(s["lengths"]), batch=batches, kernels=kernels,
              repeats=s["repeats"], max_gib=s["max_gib"])


def relative(speed: dict) -> dict:
  """{name: {"speed": [examples/s / softmax's], "memory": [bytes / softmax's]}} per length
  (None where either did not run or has no estimate)."""
  base = speed["kernels"][BASELINE]
  out = {}
  for name, r in speed["kernels"].items():
    out[name] = dict(
        speed=[None if a is None or b is None else a / b
               for a, b in zip(r["examples_per_second"], base["examples_per_second"])],
        memory=[None if a is None or not b else a / b for a, b in zip(r["bytes"], base["bytes"])])
  return out
