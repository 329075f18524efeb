"""Attention time and memory against sequence length: softmax O(T^2), linear O(T).

Katharopoulos et al. 2020, arXiv 2006.16236, Figure 1 (forward+backward time and GPU
memory against sequence length).

For every kernel, causal self-attention forward+backward (the gradient of the output's sum
with respect to q, k and v) is compiled and timed at lengths 2^9 ... 2^14 (tiny) or 2^16
(full). Memory is XLA's compiled estimate of the peak (temp + arguments + outputs), so
configurations that would not fit are reported with their estimate instead of run.
The slope of log(cost) against log(T), fitted over the lengths that ran (from 2^11 up, where
fixed overheads no longer dominate), is about 2 for a quadratic kernel and 1 for a linear one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.measure import time_and_memory
from attn_research.kernels import dot_product_attention, linear_attention
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.report.plotting import pyplot, save

SETTINGS = {
    "smoke": dict(log2_lengths=(6, 7, 8), heads=1, head_dim=8, repeats=1, max_gib=1.0),
    "tiny": dict(log2_lengths=tuple(range(9, 15)), heads=2, head_dim=32, repeats=2,
                 max_gib=6.0),
    "full": dict(log2_lengths=tuple(range(9, 17)), heads=8, head_dim=64, repeats=5,
                 max_gib=60.0),
}
WINDOW = 128  # local attention: each query sees the 128 keys before it
CRITERION = (
    "Judged on the fitted log-log slopes (lengths from 2^11 up) of the materialised softmax "
    "kernel ('softmax (reference)') and linear attention ('linear (chunked)'). Supported if "
    "softmax's time and memory slopes are both >= 1.7 (about quadratic), linear's are both "
    "<= 1.3 (about linear), and linear is faster than softmax at the longest length both "
    "ran. Not supported if softmax's memory slope is < 1.5 or linear's is > 1.5 (the "
    "growth the claim names is absent). Inconclusive otherwise (for example timings too "
    "noisy to show the time slopes).")


def verdict_label(ref: dict, lin: dict) -> str:
  """The criterion applied to the two kernels' results (slopes, seconds per length)."""
  slopes = (ref["time_slope"], ref["memory_slope"], lin["time_slope"], lin["memory_slope"])
  if any(x is None for x in slopes):
    return "inconclusive"
  if ref["memory_slope"] < 1.5 or lin["memory_slope"] > 1.5:
    return "not supported"
  both = [(a, b) for a, b in zip(ref["seconds"], lin["seconds"]) if a is not None and b is not None]
  faster = bool(both) and both[-1][1] < both[-1][0]
  if min(slopes[:2]) >= 1.7 and max(slopes[2:]) <= 1.3 and faster:
    return "supported"
  return "inconclusive"


def kernels():
  """name -> causal attention function of (q, k, v)."""
  table = {
      "softmax (reference)": lambda q, k, v: dot_product_attention(q, k, v, causal=True,
                                                                   impl="reference"),
      "softmax (chunked)": lambda q, k, v: dot_product_attention(q, k, v, causal=True,
                                                                 impl="chunked"),
      "linear (chunked)": lambda q, k, v: linear_attention(q, k, v, causal=True,
                                                           impl="chunked"),
      f"local (window {WINDOW})": lambda q, k, v: dot_product_attention(
          q, k, v, causal=True, window=(min(WINDOW, q.shape[1] - 1), 0), impl="local"),
  }
  if jax.default_backend() == "gpu":
    table["softmax (cudnn, bf16)"] = lambda q, k, v: dot_product_attention(
        q.astype(jnp.bfloat16), k.astype(jnp.bfloat16), v.astype(jnp.bfloat16),
        causal=True, impl="cudnn")
  return table


def fwd_bwd(attn):
  return jax.grad(lambda q, k, v: jnp.sum(attn(q, k, v).astype(jnp.float32)), argnums=(0, 1, 2))


def fitted_slope(lengths, values, min_length=2048):
  pts = [(t, v) for t, v in zip(lengths, values) if v is not None and t >= min_length]
  if len(pts) < 2:
    pts = [(t, v) for t, v in zip(lengths, values) if v is not None]
  if len(pts) < 2:
    return None
  x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
  return float(np.polyfit(x, y, 1)[0])


def plot(path, lengths, results):
  plt = pyplot()

  fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
  for name, r in results.items():
    secs = [np.nan if s is None else s for s in r["seconds"]]
    line, = ax_t.plot(lengths, secs, "o-", label=f"{name} (slope {_fmt(r['time_slope'])})")
    ax_m.plot(lengths, np.array(r["bytes"]) / 2**20, "o-", color=line.get_color(),
              label=f"{name} (slope {_fmt(r['memory_slope'])})")
  ax_t.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="seconds",
           title="causal attention forward+backward time")
  ax_m.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="MiB",
           title="peak memory (XLA estimate)")
  for ax in (ax_t, ax_m):
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  save(fig, path, dpi=120)


def _fmt(x):
  """Two decimals, or two significant digits for a slope near 0 (a smoke run's timings
  can be flat: 0.0187 would show as 0.02, one digit of a number the report must show)."""
  if x is None:
    return "n/a"
  return f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.2g}"


@register_reproduction("katharopoulos2020_scaling", timed=True)
def run(tier, out_dir):
  s = SETTINGS[tier]
  lengths = [2**p for p in s["log2_lengths"]]
  rng = np.random.default_rng(0)
  results = {}
  for name, attn in kernels().items():
    fn = fwd_bwd(attn)
    r = results[name] = dict(seconds=[], bytes=[], notes=[])
    for t in lengths:
      qkv = [jnp.asarray(rng.standard_normal((1, t, s["heads"], s["head_dim"])), jnp.float32)
             for _ in range(3)]
      m = time_and_memory(fn, qkv, repeats=s["repeats"], max_bytes=s["max_gib"] * 2**30)
      r["seconds"].append(m["seconds"])
      r["bytes"].append(m["bytes"])
      r["notes"].append(m["note"])
      took = m["note"] or f"{m['seconds'] * 1e3:.1f} ms"
      print(f"  {name} T={t}: {took}, {m['bytes'] / 2**20:.0f} MiB", flush=True)
    r["time_slope"] = fitted_slope(lengths, r["seconds"])
    r["memory_slope"] = fitted_slope(lengths, r["bytes"])
  plot(out_dir / "scaling.png", lengths, results)
  columns = ["kernel"] + [f"T={t}" for t in lengths] + ["time slope", "memory slope"]
  time_rows = [[name] + ["-" if sec is None else f"{sec * 1e3:,.1f} ms" for sec in r["seconds"]]
               + [_fmt(r["time_slope"]), _fmt(r["memory_slope"])]
               for name, r in results.items()]
  mem_rows = [[name] + [f"{b / 2**20:,.0f} MiB" + ("" if sec is not None else " (not run)")
                        for b, sec in zip(r["bytes"], r["seconds"])]
              for name, r in results.items()]
  ref, lin = results["softmax (reference)"], results["linear (chunked)"]
  label = verdict_label(ref, lin)
  ran = [(t, a, b) for t, a, b in zip(lengths, ref["seconds"], lin["seconds"])
         if a is not None and b is not None]
  longest = (f"; at T={ran[-1][0]} softmax {ran[-1][1] * 1e3:,.1f} ms, linear "
             f"{ran[-1][2] * 1e3:,.1f} ms" if ran else "")
  verdict = (f"fitted time slopes: softmax reference {_fmt(ref['time_slope'])}, linear "
             f"{_fmt(lin['time_slope'])}; memory slopes {_fmt(ref['memory_slope'])} vs "
             f"{_fmt(lin['memory_slope'])} (quadratic about 2, linear about 1){longest}.")
  return Report(
      claim="Softmax self-attention's time and memory grow quadratically with sequence "
            "length; linear attention's grow linearly (Katharopoulos et al. 2020, arXiv "
            "2006.16236, Figure 1).",
      tables=[f"Forward+backward time, causal, batch 1, {s['heads']} heads, head dim "
              f"{s['head_dim']}, float32, median of {s['repeats']}:\n\n"
              + markdown_table(columns, time_rows),
              "Peak memory (XLA compiled estimate):\n\n"
              + markdown_table(columns[:-2], mem_rows)],
      paper="Figure 1 of the paper (GPU, forward+backward): softmax time and memory grow "
            "quadratically; linear attention's linearly, and it is faster from a few thousand "
            "tokens on. The paper gives the curves, not a table; slopes are ours.",
      differences=f"Random q, k, v instead of a model; {jax.default_backend().upper()} "
                  "instead of the paper's GPU; memory is XLA's estimate rather than a "
                  "measured allocation; local attention (window "
                  f"{WINDOW}) and memory-efficient chunked softmax (Rabe and Staats 2021) "
                  "added for context.",
      results=dict(lengths=lengths, kernels=results, verdict_label=label, **s),
      figures=["scaling.png"], verdict=verdict, criterion=CRITERION, verdict_label=label)
