"""MNIST-1D's official baselines (Greydanus and Kobak 2020, arXiv 2011.14439; the
greydanus/mnist1d repository's models.py), rebuilt in Flax NNX so that the paper's table
can be reproduced with the paper's own models rather than this project's families:

  mnist1d_linear  logistic regression: Linear(40, 10)                      (410 params)
  mnist1d_mlp     MLPBase: Linear(40, 100), ReLU; h + ReLU(Linear(100, 100)(h));
                  Linear(100, 10)                                         (15,210)
  mnist1d_conv    ConvBase: three 1D convolutions of stride 2 and padding 1, 25
                  channels, kernels 5 / 3 / 3, ReLU after each (40 -> 19 -> 10 -> 5
                  positions), then flattened with the position kept (25 x 5 = 125
                  features) into Linear(125, 10)                          (5,210)
  mnist1d_gru     GRUBase: a bidirectional GRU of hidden size 6 over the 40 samples
                  (one scalar per step), every step's 12 outputs flattened (480
                  features) into Linear(480, 10)                          (5,134)

Every model reads the signal as its 40 samples whatever vectors the task groups them
into (data.patch only reshapes), so these rows do not depend on the tokenisation.

Initialisation is PyTorch's default, which the official code uses: every weight and
bias of a Linear or Conv layer uniform in +-1/sqrt(fan_in) (fan_in = inputs x kernel
width), every GRU weight and bias uniform in +-1/sqrt(hidden). Flax's defaults (LeCun
normal weights, zero biases, orthogonal recurrent weights) are a different start; the
GRU cell also carries PyTorch's second (recurrent) bias, which flax's GRUCell lacks:
the candidate state is tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.models.registry import register_model


def uniform_init(bound: float):
  """A flax initializer drawing uniformly from [-bound, bound]."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def torch_linear(fan_in: int, features: int, rngs) -> nnx.Linear:
  """nnx.Linear initialised as torch.nn.Linear: weight and bias in +-1/sqrt(fan_in)."""
  init = uniform_init(1 / math.sqrt(fan_in))
  return nnx.Linear(fan_in, features, kernel_init=init, bias_init=init, rngs=rngs)


def torch_conv(in_channels: int, out_channels: int, kernel: int, rngs) -> nnx.Conv:
  """nnx.Conv as torch.nn.Conv1d(in, out, kernel, stride=2, padding=1), same initialisation."""
  init = uniform_init(1 / math.sqrt(in_channels * kernel))
  return nnx.Conv(in_channels, out_channels, (kernel,), strides=2, padding=[(1, 1)],
                  kernel_init=init, bias_init=init, rngs=rngs)


class TorchGRUCell(nnx.GRUCell):
  """torch.nn.GRU's cell: flax's GRUCell with a bias on the recurrent transform too (so the
  reset gate multiplies W_hn h + b_hn), every parameter uniform in +-1/sqrt(hidden)."""

  def __init__(self, in_features: int, hidden: int, rngs):
    init = uniform_init(1 / math.sqrt(hidden))
    super().__init__(in_features, hidden, kernel_init=init, recurrent_kernel_init=init,
                     bias_init=init, rngs=rngs)
    self.dense_h = nnx.Linear(hidden, 3 * hidden, kernel_init=init, bias_init=init, rngs=rngs)


def check_task(name: str, task_info):
  if task_info.output_kind != "per_sequence" or task_info.input_kind == "tokens":
    raise ValueError(f"model {name!r} classifies a real-valued signal (one label per "
                     f"sequence); the task gives {task_info.input_kind!r} inputs and "
                     f"{task_info.output_kind!r} outputs")


def check_positive(name: str, cfg, key: str):
  if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
    raise ValueError(f"model.{key}={cfg[key]!r} must be a positive int (model {name!r})")


def samples(inputs, mask_BT):
  """[B, T, F] vectors (masked; patches of F samples) -> [B, T * F] samples."""
  x = inputs.astype(jnp.float32) * mask_BT[..., None]
  return x.reshape(x.shape[0], -1)


def conv_length(length: int, kernel: int) -> int:
  """Output length of a stride-2, padding-1 convolution (as PyTorch computes it)."""
  return (length + 2 - kernel) // 2 + 1


@register_model("mnist1d_linear", {})
class Linear(nnx.Module):
  """Logistic regression on the samples (the official LinearBase)."""

  def __init__(self, cfg, task_info, rngs):
    check_task("mnist1d_linear", task_info)
    self.out = torch_linear(task_info.max_length * task_info.input_size,
                            task_info.num_classes, rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    return self.out(samples(inputs, mask_BT))


@register_model("mnist1d_mlp", dict(hidden=100))
class MLPBase(nnx.Module):
  """Linear + ReLU, a residual Linear + ReLU, Linear (the official MLPBase)."""

  def __init__(self, cfg, task_info, rngs):
    check_task("mnist1d_mlp", task_info)
    check_positive("mnist1d_mlp", cfg, "hidden")
    h = cfg["hidden"]
    self.first = torch_linear(task_info.max_length * task_info.input_size, h, rngs)
    self.second = torch_linear(h, h, rngs)
    self.out = torch_linear(h, task_info.num_classes, rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    h = jax.nn.relu(self.first(samples(inputs, mask_BT)))
    h = h + jax.nn.relu(self.second(h))
    return self.out(h)


@register_model("mnist1d_conv", dict(channels=25))
class ConvBase(nnx.Module):
  """Three stride-2 convolutions with ReLU, flattened (position kept), Linear (the
  official ConvBase)."""

  KERNELS = (5, 3, 3)

  def __init__(self, cfg, task_info, rngs):
    check_task("mnist1d_conv", task_info)
    check_positive("mnist1d_conv", cfg, "channels")
    c, length, width = cfg["channels"], task_info.max_length * task_info.input_size, 1
    self.convs = nnx.List([])
    for kernel in self.KERNELS:
      self.convs.append(torch_conv(width, c, kernel, rngs))
      width, length = c, conv_length(length, kernel)
    if length < 1:
      raise ValueError(f"model 'mnist1d_conv' needs a longer signal: "
                       f"{task_info.max_length * task_info.input_size} samples leave none "
                       "after three stride-2 convolutions")
    self.out = torch_linear(c * length, task_info.num_classes, rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    h_BLC = samples(inputs, mask_BT)[..., None]
    for conv in self.convs:
      h_BLC = jax.nn.relu(conv(h_BLC))
    return self.out(h_BLC.reshape(h_BLC.shape[0], -1))


@register_model("mnist1d_gru", dict(hidden=6, bidirectional=True))
class GRUBase(nnx.Module):
  """A (bidirectional) GRU over the samples, all outputs flattened into Linear (the
  official GRUBase)."""

  def __init__(self, cfg, task_info, rngs):
    check_task("mnist1d_gru", task_info)
    check_positive("mnist1d_gru", cfg, "hidden")
    if not isinstance(cfg["bidirectional"], bool):
      raise ValueError(f"model.bidirectional={cfg['bidirectional']!r} must be True or False")
    h, length = cfg["hidden"], task_info.max_length * task_info.input_size

    def make_rnn():
      # rngs=False: the carry is passed in (zeros), so no RNG stream is consumed.
      return nnx.RNN(TorchGRUCell(1, h, rngs), rngs=False)

    self.bidirectional, self.hidden = cfg["bidirectional"], h
    self.rnn = (nnx.Bidirectional(make_rnn(), make_rnn(), rngs=False) if self.bidirectional
                else make_rnn())
    directions = 2 if self.bidirectional else 1
    self.out = torch_linear(directions * h * length, task_info.num_classes, rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False):
    x_BL1 = samples(inputs, mask_BT)[..., None]
    zeros = jnp.zeros((x_BL1.shape[0], self.hidden), jnp.float32)
    h_BLH = self.rnn(x_BL1, initial_carry=(zeros, zeros) if self.bidirectional else zeros)
    return self.out(h_BLH.reshape(h_BLH.shape[0], -1))
