"""FLOPs of a program, counted by XLA, with every loop iteration included.

FLOPs per example are XLA's HLO cost analysis of the lowered (not yet optimised)
forward pass of one example. XLA counts a loop body once, not once per iteration, so
every `scan` (the RNN's recurrence, chunked and recurrent attention) is unrolled in the
jaxpr before lowering: the count then covers every iteration. Lowering without
compiling keeps the count independent of the device's fusion choices and cheap enough
to solve widths for a FLOPs budget (models/budget.py, through modes/comparison.py);
unrolling costs lowering time linear in the trip count (9.9 s for the default
comparison's 2-layer BiLSTM over 2,048 steps, measured on the shared 2-core CPU). A
`while` loop of unknown trip count gives None: its count is unknowable from the program.
"""
from __future__ import annotations

import jax
from jax.extend import core as jcore


def _spec(x):
  return jax.ShapeDtypeStruct(x.shape, x.dtype)


def _rewrite(jaxpr, found_while: list):
  """jaxpr with every scan fully unrolled (recursively); notes any while loop."""
  def sub(p):
    if isinstance(p, jcore.ClosedJaxpr):
      return p.replace(jaxpr=_rewrite(p.jaxpr, found_while))
    if isinstance(p, jcore.Jaxpr):
      return _rewrite(p, found_while)
    if isinstance(p, tuple) and p and all(isinstance(x, (jcore.ClosedJaxpr, jcore.Jaxpr))
                                          for x in p):
      return tuple(sub(x) for x in p)
    return p

  eqns = []
  for eqn in jaxpr.eqns:
    params = {k: sub(v) for k, v in eqn.params.items()}
    if eqn.primitive.name == "scan":
      params["unroll"] = 0  # 0 = no loop at all: every iteration is its own code
    elif eqn.primitive.name == "while":
      found_while.append(eqn)
    eqns.append(eqn.replace(params=params))
  return jaxpr.replace(eqns=eqns)


def unrolled_flops(fn, *args):
  """FLOPs of fn(*args) (arrays or ShapeDtypeStructs) with every scan unrolled, from XLA's
  cost analysis of the lowered program; None if a while loop remains or XLA gives none."""
  specs = jax.tree.map(_spec, args)
  closed = jax.make_jaxpr(fn)(*specs)
  found_while = []
  unrolled = closed.replace(jaxpr=_rewrite(closed.jaxpr, found_while))
  if found_while:
    return None
  flat = jax.tree.leaves(specs)
  lowered = jax.jit(jcore.jaxpr_as_fun(unrolled)).lower(*flat)
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return None if flops is None else float(flops)


def forward_flops(forward, params, example_batch):
  """FLOPs of one example's eval-mode forward pass forward(params, batch) (params may
  be abstract: only their shapes are read, so nnx.eval_shape models work; nothing runs)."""
  return unrolled_flops(forward, params, example_batch)
