"""Self-attention whose scores are a learned quadratic function of the pixel offset only
(Cordonnier, Loukas and Jaggi 2020, arXiv 1911.03584, Section 4, "learned quadratic
encoding").

Head h of a layer scores key pixel k for query pixel q by

    score_h(q, k) = -alpha_h ||(k - q) - Delta_h||^2

with a learned centre Delta_h (2 numbers, in pixels) and a learned sharpness alpha_h > 0
(softplus of a parameter): a Gaussian bump of attention centred Delta_h away from the
query. No content enters the scores (q = k = 0 through the project's kernel, the bump as
the score bias), so what a head attends to is exactly where its centre sits. Theorem 1's
construction is this layer with the centres on the kernel grid and alpha -> infinity; the
reproduction trains it on images and reads the centres back to see whether heads spread
into a grid around the query, as the paper's Figures 3-4 show on CIFAR-10.

The centres start near 0 (model.centre_init_std pixels), so spreading out is learned, not
given by the initialisation. Pre-LN blocks (attention, then an MLP), mean pooling, one
label per image.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_research.kernels import dot_product_attention
from attn_research.models.image_grid import ImageModel, grid_to_patches
from attn_research.models.registry import register_model
from attn_research.nn.heads import OutputHead

DEFAULTS = dict(d_model=36, num_layers=2, num_heads=9, mlp_ratio=2, dropout=0.0,
                centre_init_std=0.1, alpha_init=1.0)


def pixel_offsets(rows: int, cols: int) -> np.ndarray:
  """[T, T, 2] offset (row, column) of key pixel k from query pixel q, row-major pixels."""
  pos = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), -1).reshape(-1, 2)
  return (pos[None, :, :] - pos[:, None, :]).astype(np.float32)


def inverse_softplus(y: float) -> float:
  return float(np.log(np.expm1(y)))


class QuadraticAttention(nnx.Module):
  """Multi-head attention with positional-only quadratic scores (module docstring)."""

  def __init__(self, d_model: int, num_heads: int, grid: tuple, *, centre_init_std: float,
               alpha_init: float, rngs: nnx.Rngs):
    if num_heads < 1 or d_model % num_heads:
      raise ValueError(f"model.num_heads={num_heads} must divide model.d_model={d_model}")
    if centre_init_std < 0 or alpha_init <= 0:
      raise ValueError(f"model.centre_init_std={centre_init_std} must be >= 0 and "
                       f"model.alpha_init={alpha_init} > 0")
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    self.rows, self.cols = grid  # the pixel grid; offsets are recomputed (constants under jit)
    self.centre_H2 = nnx.Param(centre_init_std * jax.random.normal(rngs.params(), (num_heads, 2)))
    self.raw_alpha_H = nnx.Param(jnp.full((num_heads,), inverse_softplus(alpha_init)))
    self.value = nnx.Linear(d_model, d_model, rngs=rngs)
    self.out = nnx.Linear(d_model, d_model, rngs=rngs)

  def alpha(self):
    return jax.nn.softplus(self.raw_alpha_H[...])

  def bias(self):
    """[1, H, T, T] scores -alpha_h ||delta - Delta_h||^2."""
    offsets_TT2 = jnp.asarray(pixel_offsets(self.rows, self.cols))
    diff_HTT2 = offsets_TT2[None] - self.centre_H2[...][:, None, None, :]
    return (-self.alpha()[:, None, None] * (diff_HTT2 ** 2).sum(-1))[None]

  def __call__(self, x_BTD):
    B, T, _ = x_BTD.shape
    H, Dh = self.num_heads, self.head_dim
    v_BTHD = self.value(x_BTD).reshape(B, T, H, Dh)
    zeros_BTH1 = jnp.zeros((B, T, H, 1), x_BTD.dtype)
    y_BTHD = dot_product_attention(zeros_BTH1, zeros_BTH1, v_BTHD, bias=self.bias(),
                                   impl="reference")
    return self.out(y_BTHD.reshape(B, T, H * Dh))


class QuadraticBlock(nnx.Module):
  def __init__(self, d_model, num_heads, mlp_ratio, dropout, grid, *, centre_init_std,
               alpha_init, rngs):
    self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
    self.attn = QuadraticAttention(d_model, num_heads, grid,
                                   centre_init_std=centre_init_std, alpha_init=alpha_init,
                                   rngs=rngs)
    self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp_in = nnx.Linear(d_model, mlp_ratio * d_model, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_ratio * d_model, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x_BTD, *, train: bool):
    x_BTD = x_BTD + self.dropout(self.attn(self.norm1(x_BTD)), deterministic=not train)
    h = self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm2(x_BTD))))
    return x_BTD + self.dropout(h, deterministic=not train)


@register_model("quadratic_attention", DEFAULTS)
class QuadraticAttentionNet(ImageModel):
  """pixels -> linear embedding -> blocks of quadratic-encoding attention -> mean -> label."""

  def __init__(self, cfg, task_info, rngs):
    super().__init__("quadratic_attention", task_info)
    H, W, C = self.image_shape
    d = cfg["d_model"]
    if cfg["num_layers"] < 1 or cfg["mlp_ratio"] < 1:
      raise ValueError(f"model.num_layers={cfg['num_layers']} and model.mlp_ratio="
                       f"{cfg['mlp_ratio']} must be >= 1")
    self.embed = nnx.Linear(C, d, rngs=rngs)
    self.blocks = nnx.List([
        QuadraticBlock(d, cfg["num_heads"], cfg["mlp_ratio"], cfg["dropout"], (H, W),
                       centre_init_std=cfg["centre_init_std"], alpha_init=cfg["alpha_init"],
                       rngs=rngs)
        for _ in range(cfg["num_layers"])])
    self.norm = nnx.LayerNorm(d, rngs=rngs)
    self.head = OutputHead(d, task_info.num_classes, "per_sequence", "mean", rngs=rngs)

  def __call__(self, inputs, mask_BT=None, *, train: bool = False):
    del mask_BT  # image tasks have no padding
    x_BTD = self.embed(grid_to_patches(self.grid(inputs), 1))
    for block in self.blocks:
      x_BTD = block(x_BTD, train=train)
    return self.head(self.norm(x_BTD), jnp.ones(x_BTD.shape[:2], bool))

  def centres(self):
    """[(centres [H, 2] in pixels (row, column), alpha [H])] per layer."""
    return [(np.asarray(b.attn.centre_H2[...]), np.asarray(b.attn.alpha())) for b in self.blocks]
