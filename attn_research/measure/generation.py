"""Per-token generation latency against context length (Katharopoulos et al. 2020,
"Transformers are RNNs", arXiv 2006.16236, whose abstract claims up to 4000x faster
autoregressive prediction of very long sequences than softmax attention).

For each context length C it builds a prompt of C random tokens, runs
attn_research.models.generate.prefill (not timed), then times decode (through
generate.decode_fn) generating --new-tokens tokens at positions C .. C + n - 1 (after
one compiling call; the best of --repeats calls or more, until --min-time seconds were
timed), for
  linear-state       linear attention, the RNN state (S, z) per layer: O(1) per token in C;
  softmax-cache      softmax attention with a KV cache of C + n - 1 positions: O(C) per token;
  softmax-recompute  softmax attention, the full causal model over all C + n - 1
                     positions every step: O(C^2) per token. A length whose predicted
                     time (a compiling and a timed call, from the last length's call
                     times the squared length ratio) passes --recompute-budget seconds is
                     skipped, and repeats stop once a length has used the budget.
The model is a Transformer (d_model, layers, heads from the flags, sinusoidal positions,
random weights), one batch of --batch prompts.

  PYTHONPATH=. .venv/bin/python benchmarks/generation.py [--lengths 256,512,...]
      [--d-model 64] [--layers 1] [--heads 4] [--new-tokens 64] [--repeats 3]
      [--min-time 1] [--batch 1] [--recompute-budget 60]

measure(...) returns the rows (dicts) that benchmarks/generation.py prints, for
reproductions to reuse (katharopoulos2020_generation). It lives in measure/, not models/,
because it times models rather than defining one: models/ stays free of benchmark code.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_research.data import TaskInfo
from attn_research.models import get_model, model_defaults
from attn_research.models import generate as gen
from attn_research.report.table import markdown_table

LENGTHS = (256, 512, 1024, 2048, 4096, 8192)
# name: (model.attention, generation method)
METHODS = {"linear-state": ("linear", "state"), "softmax-cache": ("softmax", "cache"),
           "softmax-recompute": ("softmax", "recompute")}
VOCAB = 32


def build_model(attention: str, *, d_model: int, layers: int, heads: int, max_length: int):
  cfg = dict(model_defaults("transformer"), d_model=d_model, num_layers=layers,
             num_heads=heads, attention=attention, position="sinusoidal")
  return get_model(cfg, TaskInfo("tokens", VOCAB, "sequence", VOCAB, max_length),
                   rngs=nnx.Rngs(0))


def time_decode(model, prompt_BT, new_tokens: int, method: str, repeats: int,
                min_time: float = 0.0, max_calls: int = 200, max_seconds=float("inf")):
  """(seconds per decode of new_tokens after compiling, the best of at least `repeats`
  calls, more while the timed calls total under min_time seconds, at most max_calls, and
  fewer, but at least one, once the calls, the first included, pass max_seconds; seconds
  of the first, compiling call). The model is split once (generate.decode_fn), so a call
  costs the compiled scan plus one dispatch."""
  start = gen.prefill(model, prompt_BT, new_tokens, method=method)
  jax.block_until_ready(start)
  run = gen.decode_fn(model, new_tokens)
  t0 = time.perf_counter()
  jax.block_until_ready(run(start))
  compile_s = time.perf_counter() - t0
  times = []
  while not times or (compile_s + sum(times) < max_seconds and (
      len(times) < repeats or (sum(times) < min_time and len(times) < max_calls))):
    t0 = time.perf_counter()
    jax.block_until_ready(run(start))
    times.append(time.perf_counter() - t0)
  return min(times), compile_s


def measure(lengths=LENGTHS, *, methods=tuple(METHODS), d_model=64, layers=1, heads=4,
            new_tokens=64, repeats=3, min_time=1.0, batch=1, recompute_budget=60.0,
            log=print):
  """Rows {method, context, ms_per_token, tokens_per_s, compile_s} (tokens_per_s counts
  every sequence of the batch); a row per (method, length) measured."""
  for name in methods:
    if name not in METHODS:
      raise ValueError(f"method {name!r} is not benchmarked; valid: {tuple(METHODS)}")
  if not lengths or min(lengths) < 1:
    raise ValueError(f"lengths must be positive ints; got {lengths!r}")
  max_length = max(lengths) + new_tokens
  rng = np.random.default_rng(0)
  rows = []
  for name in methods:
    attention, method = METHODS[name]
    model = build_model(attention, d_model=d_model, layers=layers, heads=heads,
                        max_length=max_length)
    last = None  # (context, seconds of one call) at the last length, to predict the next
    for context in sorted(lengths):
      if method == "recompute" and last is not None:
        predicted = 2 * last[1] * (context / last[0]) ** 2  # compiling call + one timed call
        if predicted > recompute_budget:
          log(f"{name}: skipping context {context} and longer (predicted {predicted:.0f} s "
              f"> --recompute-budget {recompute_budget:g} s)")
          break
      prompt = jnp.asarray(rng.integers(0, VOCAB, (batch, context)), jnp.int32)
      budget = recompute_budget if method == "recompute" else float("inf")
      best, compile_s = time_decode(model, prompt, new_tokens, method, repeats, min_time,
                                    max_seconds=budget)
      last = (context, best)
      row = dict(method=name, context=context, ms_per_token=1e3 * best / new_tokens,
                 tokens_per_s=batch * new_tokens / best, compile_s=compile_s)
      log(f"{name:18s} context {context:5d}: {row['ms_per_token']:8.3f} ms/token "
          f"({row['tokens_per_s']:9.1f} tokens/s, first call {compile_s:.1f} s)")
      rows.append(row)
  return rows


def table(rows) -> str:
  """Markdown: ms/token (tokens/s) per context length and method, and the ratio of the
  longest to the shortest context measured per method."""
  names = list(dict.fromkeys(r["method"] for r in rows))
  lengths = sorted({r["context"] for r in rows})
  cell = {(r["method"], r["context"]): r for r in rows}
  body = [[c] + [f"{cell[n, c]['ms_per_token']:.3f} ({cell[n, c]['tokens_per_s']:,.0f})"
                 if (n, c) in cell else "skipped" for n in names] for c in lengths]
  ratios = []
  for n in names:
    measured = sorted(c for (m, c) in cell if m == n)
    lo, hi = measured[0], measured[-1]
    ratios.append(f"{cell[n, hi]['ms_per_token'] / cell[n, lo]['ms_per_token']:.2f} "
                  f"({hi} vs {lo})")
  return markdown_table(["context"] + [f"{n} ms/token (tokens/s)" for n in names],
                        body + [["ratio longest / shortest"] + ratios])
