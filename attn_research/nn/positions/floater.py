"""FLOATER: position encodings as the solution of a neural ODE (`--config.model.position=floater`).

Liu, Yu, Dhillon & Hsieh, "Learning to Encode Position for Transformer with Continuous
Dynamical Model", ICML 2020, arXiv 2003.09229. The encoding is a continuous function of
the position t, the solution of

    dp/dt = h(t, p; theta),   p(t) = p(0) + integral_0^t h(tau, p(tau); theta) dtau,

with h a small MLP, here h(t, p) = W2 tanh(W1 [p; t] + b1) + b2 (`hidden` units). Token i
sits at t_i = i * delta, and the ODE is solved with diffrax at exactly the positions a
batch needs, so there is no maximum length: a longer sequence integrates further.

Per layer, as in the paper (its figure 1): layer n adds its own encoding p^(n)(t_i) to
its input before the block. The dynamics theta are shared by every layer (the paper's
parameter sharing); how the layers' encodings then differ is a choice made here: each
layer has its own initial value p^(n)(0), a learned d_model vector starting at zero. The
whole stack is one ODE solve whose state holds the num_layers vectors side by side.

`init` selects the starting point:
  sinusoidal (default)  p^(n)(t) = q^(n)(t) + z^(n)(t), z the ODE solution above and q the
                        encoding of the Transformer one warm-starts from, after the
                        paper's compatibility form: the sinusoidal encoding of position i
                        at the first layer (where the plain Transformer adds it), zero at
                        the others. With h = 0 and z(0) = 0 it is the sinusoidal Transformer.
  zeros                 p^(n)(t) = z^(n)(t): the pure ODE encoding, from zero.

Settings go after the name, `floater:KEY=VALUE,...` (every key optional; the grammar of
attn_research/args.py, so a bare first value is the solver):
  solver  fixed-step explicit solver: euler, heun, midpoint, ralston, bosh3, tsit5, dopri5
          (default midpoint)
  dt      solver step size in t (default 0.1, one step per position at the default delta)
  delta   spacing of positions in t, t_i = i * delta (default 0.1)
  hidden  hidden units of the MLP h (default 32)
  init    sinusoidal or zeros (default sinusoidal)
  scale_tokens  multiply the token vectors by sqrt(d_model) before the first layer (default
          false), as `sinusoidal:scale_tokens` does: so the tokens are at the sin/cos
          term's scale, and a model warm-started from such a sinusoidal one sees the same sum
e.g. `--config.model.position=floater:solver=tsit5,dt=0.05,init=zeros`. A bad key or value
raises ValueError naming it and listing the keys and their types.

Cost: one solve of a (num_layers x d_model) state over ceil((T - 1) * delta / dt) steps,
O(steps * num_layers * d_model * hidden) per forward pass and independent of the batch;
backpropagation goes through the stored steps (memory O(steps * num_layers * d_model)).
Training-time overhead, measured by `PYTHONPATH=. python benchmarks/floater_step.py
--repeats 5` on experiments/base.py's Transformer (16 positions, 2 layers, d_model 64,
batch 64) on the 2-core CPU: 1.09x learned positions' train-step time (1.28x with
solver=tsit5), and 7.0 s against 3.7 s for the first, compiling call (table there).

The encoding depends on positions only, never on content, so it is causal, and it is
added to the input vectors (no attention bias), so linear attention takes it too.
"""
from __future__ import annotations

import math

import diffrax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_research import args
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.nn.positions.base import Position, register_positional
from attn_research.nn.positions.sinusoidal import token_scale

SOLVERS = {"euler": diffrax.Euler, "heun": diffrax.Heun, "midpoint": diffrax.Midpoint,
           "ralston": diffrax.Ralston, "bosh3": diffrax.Bosh3, "tsit5": diffrax.Tsit5,
           "dopri5": diffrax.Dopri5}
INITS = ("sinusoidal", "zeros")
DEFAULTS = dict(solver="midpoint", dt=0.1, delta=0.1, hidden=32, init="sinusoidal",
                scale_tokens=False)


def parse_settings(text: str) -> dict:
  """"solver=tsit5,dt=0.05" -> the full settings dict (defaults filled in), checked."""
  settings = args.parse_arg(text, where="model.position", what="floater setting", **DEFAULTS)
  for key in ("dt", "delta"):
    if not (math.isfinite(settings[key]) and settings[key] > 0):
      raise ValueError(f"model.position: floater {key}={settings[key]} must be a positive number")
  if settings["hidden"] < 1:
    raise ValueError(f"model.position: floater hidden={settings['hidden']} must be >= 1")
  if settings["solver"] not in SOLVERS:
    raise ValueError(f"model.position: floater solver={settings['solver']!r} is not valid; "
                     f"choose from {tuple(SOLVERS)}")
  if settings["init"] not in INITS:
    raise ValueError(f"model.position: floater init={settings['init']!r} is not valid; "
                     f"choose from {INITS}")
  return settings


def dynamics(t, p_ND, theta):
  """h(t, p): the same two-layer MLP applied to each layer's vector (shared theta)."""
  w1, b1, w2, b2 = theta
  t_N1 = jnp.broadcast_to(jnp.asarray(t, p_ND.dtype), p_ND.shape[:-1] + (1,))
  return jnp.tanh(jnp.concatenate([p_ND, t_N1], -1) @ w1 + b1) @ w2 + b2


def solve(theta, p0_ND, times_T, *, solver: str, dt: float):
  """p(t) at every time of times_T (concrete, non-negative, increasing): [T, N, D].

  max_steps is rounded up to a power of two and t1 passed as an array, so lengths
  that share T (or a bucket of steps) share one compiled solve."""
  times_T = np.asarray(times_T, np.float64)
  t1 = max(float(times_T[-1]), dt)
  max_steps = 1 << math.ceil(t1 / dt - 1e-9).bit_length()
  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(dynamics), SOLVERS[solver](), t0=jnp.float32(0.0), t1=jnp.float32(t1),
      dt0=jnp.float32(dt), y0=p0_ND, args=theta,
      saveat=diffrax.SaveAt(ts=jnp.asarray(times_T, jnp.float32)),
      stepsize_controller=diffrax.ConstantStepSize(),
      max_steps=max_steps,
      # Backpropagation keeps every step (the state is only num_layers x d_model):
      # half the compile time of recomputing them from a few checkpoints.
      adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=max_steps))
  return sol.ys


@register_positional("floater")
class FloaterPosition(Position):
  """Neural-ODE position encodings added before every layer (see the module docstring)."""
  setting_defaults = DEFAULTS
  per_layer = True
  cannot_decode = ("its per-layer encodings come from one ODE solve over the concrete "
                   "positions of a sequence, not one position at a time; method='recompute' "
                   "runs it")

  def __init__(self, d_model, max_length, num_heads, *, rngs, num_layers: int = 1,
               settings=""):
    del max_length, num_heads  # any length: the ODE is solved as far as a batch needs
    s = parse_settings(settings)
    if s["init"] == "sinusoidal" and d_model % 2:
      raise ValueError(f"model.position: floater init=sinusoidal needs an even d_model; got "
                       f"{d_model} (or use init=zeros)")
    self.solver, self.dt, self.delta, self.init = s["solver"], s["dt"], s["delta"], s["init"]
    self.d_model, self.num_layers = d_model, num_layers
    self.scale = token_scale(d_model, s["scale_tokens"])
    lecun = nnx.initializers.lecun_normal()
    self.w1 = nnx.Param(lecun(rngs.params(), (d_model + 1, s["hidden"])))
    self.b1 = nnx.Param(jnp.zeros((s["hidden"],)))
    self.w2 = nnx.Param(lecun(rngs.params(), (s["hidden"], d_model)))
    self.b2 = nnx.Param(jnp.zeros((d_model,)))
    self.p0_ND = nnx.Param(jnp.zeros((num_layers, d_model)))

  def encode(self, positions_T):
    """[num_layers, T, d_model] encodings at real positions (t = position * delta);
    positions_T must be concrete, non-negative and increasing."""
    positions_T = np.asarray(positions_T, np.float64)
    if positions_T.ndim != 1 or positions_T.size == 0 or positions_T[0] < 0 or np.any(
        np.diff(positions_T) <= 0):
      raise ValueError(f"floater positions must be a non-empty increasing 1-D array of "
                       f"non-negative numbers; got {positions_T}")
    theta = tuple(v[...] for v in (self.w1, self.b1, self.w2, self.b2))
    z_TND = solve(theta, self.p0_ND[...], positions_T * self.delta, solver=self.solver,
                  dt=self.dt)
    p_NTD = jnp.transpose(z_TND, (1, 0, 2))
    if self.init == "sinusoidal":  # the warm-start term q^(1)(t): sinusoidal at layer 1
      p_NTD = p_NTD.at[0].add(sinusoidal_encoding(jnp.asarray(positions_T), self.d_model))
    return p_NTD

  def __call__(self, x_BTD):
    return x_BTD * self.scale if self.scale != 1.0 else x_BTD

  def layer_encodings(self, length: int):
    return self.encode(np.arange(length))
