"""Spectral normalisation (Miyato et al. 2018, arXiv 1802.05957) as a function of the raw
weight: the layer's parameter is the raw kernel W; the kernel used is W / sigma(W),
computed in the forward pass, where sigma is W's largest singular value estimated by
power iteration. The iterate u is a non-parameter variable (PowerIterate), advanced one
step per training forward pass and left alone in evaluation.

Why not nnx.SpectralNorm: it writes the normalised weight back into the wrapped layer's
kernel (flax issue 5576), so the parameter the optimizer updates is no longer the raw
weight and each call normalises an already normalised kernel. Here the stored kernel
never changes in a forward pass (tests/test_gan.py checks it).

A kernel of any rank >= 2 is read as the matrix [fan-in, out] (a convolution's
[kh, kw, c_in, c_out] as [kh kw c_in, c_out]); a 1-D parameter (a bias, a norm's scale)
has no spectral norm to speak of and is refused. The power iteration runs under
stop_gradient, as in Miyato et al.: the gradient flows through W in W / (v^T W u) only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class PowerIterate(nnx.Variable):
  """The power-iteration vector u of a spectrally normalised kernel: state, not a parameter
  (no gradient, no optimizer), carried and checkpointed with the batch statistics."""


def check_kernel_shape(shape, what: str = "kernel"):
  """ValueError for a parameter that is not at least a matrix."""
  if len(shape) < 2:
    raise ValueError(f"spectral normalisation needs a weight of rank >= 2 (a matrix or a "
                     f"convolution kernel); got {what} of shape {tuple(shape)}: a 1-D "
                     "parameter (bias, norm scale) has no spectral norm")


def _unit(x, eps=1e-12):
  return x / (jnp.linalg.norm(x) + eps)


def spectral_normalize(kernel, u, *, update: bool):
  """(kernel / sigma, u after the step, sigma). One power-iteration step from u when
  update (training); with update False sigma is estimated from u as it is."""
  check_kernel_shape(kernel.shape)
  w_MN = kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32)
  u = jax.lax.stop_gradient(u)
  if update:
    u = jax.lax.stop_gradient(_unit(_unit(w_MN @ u) @ w_MN))
  v = jax.lax.stop_gradient(_unit(w_MN @ u))
  sigma = v @ w_MN @ u
  return (kernel / sigma.astype(kernel.dtype)), u, sigma


def init_iterate(rngs: nnx.Rngs, kernel_shape) -> PowerIterate:
  check_kernel_shape(kernel_shape)
  u = jax.random.normal(rngs.params(), (kernel_shape[-1],), jnp.float32)
  return PowerIterate(_unit(u))


class SNConv(nnx.Module):
  """A 2-D convolution (NHWC, SAME padding) whose kernel is spectrally normalised when
  spectral is True (else a plain convolution with the same parameters)."""

  def __init__(self, c_in: int, c_out: int, kernel: int = 3, *, spectral: bool = True,
               use_bias: bool = True, rngs: nnx.Rngs):
    init = nnx.initializers.xavier_uniform() if spectral else nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, c_in, c_out), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((c_out,), jnp.float32)) if use_bias else None
    self.u = init_iterate(rngs, self.kernel.shape) if spectral else None

  def weight(self, *, train: bool):
    """The kernel the layer uses; advances u when train."""
    if self.u is None:
      return self.kernel[...]
    w, u, _ = spectral_normalize(self.kernel[...], self.u[...], update=train)
    if train:
      self.u[...] = u
    return w

  def __call__(self, x_BHWC, *, train: bool):
    y = jax.lax.conv_general_dilated(x_BHWC, self.weight(train=train).astype(x_BHWC.dtype),
                                     (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if self.bias is None else y + self.bias[...]


class SNLinear(nnx.Module):
  """x @ W + b with W spectrally normalised when spectral is True."""

  def __init__(self, d_in: int, d_out: int, *, spectral: bool = True, use_bias: bool = True,
               rngs: nnx.Rngs):
    init = nnx.initializers.xavier_uniform() if spectral else nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (d_in, d_out), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((d_out,), jnp.float32)) if use_bias else None
    self.u = init_iterate(rngs, self.kernel.shape) if spectral else None

  weight = SNConv.weight

  def __call__(self, x, *, train: bool):
    y = x @ self.weight(train=train).astype(x.dtype)
    return y if self.bias is None else y + self.bias[...]


class SNEmbed(nnx.Module):
  """A class embedding table [num_classes, dim], spectrally normalised when spectral is
  True (SAGAN normalises the projection discriminator's embedding too)."""

  def __init__(self, num_classes: int, dim: int, *, spectral: bool = True, rngs: nnx.Rngs):
    self.kernel = nnx.Param(nnx.initializers.xavier_uniform()(rngs.params(),
                                                               (num_classes, dim), jnp.float32))
    self.u = init_iterate(rngs, self.kernel.shape) if spectral else None

  weight = SNConv.weight

  def __call__(self, labels_B, *, train: bool):
    return self.weight(train=train)[labels_B]
