"""Vision Transformer (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words",
arXiv 2010.11929).

The image is cut into N = (H/p)(W/p) patches of p x p pixels (model.patch_size, taken
from the pixel grid whatever view the task gives), each flattened and mapped linearly
to d_model; a position embedding is added, a class token may be prepended, and
pre-LN Transformer blocks (nn/transformer.EncoderBlock) follow. The label is read from
the class token (pooling="cls", the paper's) or the mean of the patch vectors
(pooling="mean"). patch_size=1 reads every pixel as a vector, the lecture's view for
tiny images. Self-attention costs O(N^2 d) per layer: halving p quadruples N.

position:
  learned       one learned vector per patch (the paper's 1D table)
  sinusoidal2d  fixed 2D sin-cos: the first half of the channels encode the patch's row,
                the second half its column (needs d_model divisible by 4); no parameters
  none          no positions: the model sees a set of patches
As in big_vision, positions go on the patches only; the class token is prepended after.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.models.image_grid import ImageModel, grid_to_patches
from attn_research.models.registry import register_model
from attn_research.nn.heads import POOLINGS, ClsToken, OutputHead
from attn_research.nn.transformer import EncoderBlock, check_remat, run_blocks
from attn_research.registry import check_choice

POSITIONS = ("learned", "sinusoidal2d", "none")
DEFAULTS = dict(d_model=64, num_layers=2, num_heads=4, mlp_ratio=4, dropout=0.0,
                attention="softmax", attention_impl="auto", patch_size=2, position="learned",
                pooling="cls",
                # Rematerialisation in training: none, block or full (nn/transformer.py).
                remat="none")


def sinusoidal_2d(rows: int, cols: int, d_model: int):
  """[rows * cols, d_model], row-major: [sin-cos of the row (d/2) | of the column (d/2)]."""
  if d_model % 4:
    raise ValueError(f"model.position='sinusoidal2d' needs model.d_model divisible by 4 "
                     f"(half for rows, half for columns, each sin-cos pairs); got {d_model}")
  row_RD = sinusoidal_encoding(jnp.arange(rows), d_model // 2)
  col_CD = sinusoidal_encoding(jnp.arange(cols), d_model // 2)
  return jnp.concatenate([jnp.repeat(row_RD, cols, axis=0), jnp.tile(col_CD, (rows, 1))], -1)


@register_model("vit", DEFAULTS)
class ViT(ImageModel):
  """patches -> linear embedding + position (+ class token) -> encoder blocks -> head."""

  @staticmethod
  def width_multiple(cfg) -> int:
    """What d_model must be a multiple of, besides the head count (models/budget.py)."""
    return 4 if cfg["position"] == "sinusoidal2d" else 1

  def __init__(self, cfg, task_info, rngs):
    super().__init__("vit", task_info)
    self.remat = check_remat(cfg["remat"])
    check_choice("model.position", cfg["position"], POSITIONS)
    check_choice("model.pooling", cfg["pooling"], POOLINGS)
    d, p = cfg["d_model"], cfg["patch_size"]
    H, W, C = self.image_shape
    if not isinstance(p, int) or p < 1 or H % p or W % p:
      divisors = [q for q in range(1, min(H, W) + 1) if H % q == 0 and W % q == 0]
      raise ValueError(f"model.patch_size={p!r} must divide the image size {H}x{W}; valid: "
                       f"{divisors}")
    if cfg["num_heads"] < 1 or d % cfg["num_heads"]:
      raise ValueError(f"model.num_heads={cfg['num_heads']} must divide model.d_model={d}")
    if cfg["num_layers"] < 1 or cfg["mlp_ratio"] < 1:
      raise ValueError(f"model.num_layers={cfg['num_layers']} and model.mlp_ratio="
                       f"{cfg['mlp_ratio']} must be >= 1")
    if cfg["position"] == "sinusoidal2d" and d % 4:
      sinusoidal_2d(H // p, W // p, d)  # raises, naming d_model
    self.patch_size, self.rows, self.cols = p, H // p, W // p
    self.num_patches = self.rows * self.cols
    self.patch_embed = nnx.Linear(C * p * p, d, rngs=rngs)
    self.position = cfg["position"]
    if self.position == "learned":
      self.pos_ND = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(),
                                                            (self.num_patches, d)))
    self.cls = ClsToken(d, rngs=rngs) if cfg["pooling"] == "cls" else None
    self.dropout = nnx.Dropout(cfg["dropout"], rngs=rngs)
    self.blocks = nnx.List([
        EncoderBlock(d, cfg["num_heads"], cfg["mlp_ratio"], cfg["dropout"],
                     kernel=cfg["attention"], impl=cfg["attention_impl"], rngs=rngs)
        for _ in range(cfg["num_layers"])])
    self.head = OutputHead(d, task_info.num_classes, "per_sequence", cfg["pooling"], rngs=rngs)

  def embed_patches(self, inputs):
    """[B, T, F] task vectors -> [B, N, d_model] patch embeddings with positions."""
    x_BND = self.patch_embed(grid_to_patches(self.grid(inputs), self.patch_size))
    if self.position == "learned":
      x_BND = x_BND + self.pos_ND[...]
    elif self.position == "sinusoidal2d":
      x_BND = x_BND + sinusoidal_2d(self.rows, self.cols, x_BND.shape[-1])
    return x_BND

  def __call__(self, inputs, mask_BT=None, *, train: bool = False):
    del mask_BT  # image tasks have no padding
    x_BND = self.embed_patches(inputs)
    mask_BN = jnp.ones(x_BND.shape[:2], bool)
    if self.cls is not None:
      x_BND, mask_BN = self.cls(x_BND, mask_BN)
    x_BND = self.dropout(x_BND, deterministic=not train)
    x_BND = run_blocks(self.blocks, x_BND, lambda block, x: block(x, None, train=train),
                       remat=self.remat, train=train)
    return self.head(x_BND, mask_BN)
