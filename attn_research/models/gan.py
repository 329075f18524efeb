"""A small SAGAN (Zhang et al. 2019, "Self-Attention Generative Adversarial Networks",
arXiv 1805.08318): a ResNet generator and discriminator, spectral normalisation in both,
SAGAN's attention block at one chosen feature-map size (or none), optional class
conditioning (conditional batch norm in G, a projection discriminator).

One registered model, `gan`, holds both networks (`generator`, `discriminator`), so
get_model builds it like any other and the loop needs no change; objectives/gan.py
trains them. For an image of H x H (H a power of two, 8 to 64) and width w:
  G: z [B, noise_dim] -> linear -> 4x4 x (w 2^L), L = log2(H / 4) up-blocks, each
     BN-ReLU-up2-conv3-BN-ReLU-conv3 + (up2-conv1) halving the channels, then
     BN-ReLU-conv3 to the image's channels and tanh: images in [-1, 1].
  D: conv3 at H x H (w channels), L down-blocks ReLU-conv3-ReLU-conv3-avgpool2 +
     (conv1-avgpool2) doubling the channels down to 4x4, ReLU, sum over positions ->
     linear to one logit, plus <embed(y), h> when conditional (Miyato & Koyama 2018).
attention_res = r puts the attention block (models/sagan.py FeatureMapAttention, keys
and values 2x2 max-pooled, gamma starting at 0) on the r x r feature map of both G
(after the block that makes it) and D (after the layer that makes it); 0: no attention.
The BN statistics and the spectral-norm iterates are non-parameter state the objective
carries (nnx.BatchStat, nn/spectral_norm.PowerIterate).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.models.image_grid import image_layout, vectors_to_grid
from attn_research.models.registry import register_model
from attn_research.models.sagan import FeatureMapAttention, check_global_impl
from attn_research.nn.spectral_norm import SNConv, SNEmbed, SNLinear

DEFAULTS = dict(noise_dim=64, width=32, attention_res=0, attention_reduction=8,
                attention_pool=True, attention_impl="auto", conditional=False,
                g_spectral_norm=True, d_spectral_norm=True)
IMAGE_SIZES = (8, 16, 32, 64)


def up2(x_BHWC):
  return jnp.repeat(jnp.repeat(x_BHWC, 2, axis=1), 2, axis=2)


def down2(x_BHWC):
  return nnx.avg_pool(x_BHWC, (2, 2), strides=(2, 2))


class Norm(nnx.Module):
  """Batch norm; with num_classes, conditional: per-class gain and bias (init 1 and 0)."""

  def __init__(self, channels: int, num_classes: int | None, *, rngs: nnx.Rngs):
    cond = num_classes is not None
    self.bn = nnx.BatchNorm(channels, use_scale=not cond, use_bias=not cond, momentum=0.9,
                            rngs=rngs)
    self.gain = (nnx.Embed(num_classes, channels, embedding_init=nnx.initializers.ones,
                           rngs=rngs) if cond else None)
    self.shift = (nnx.Embed(num_classes, channels, embedding_init=nnx.initializers.zeros,
                            rngs=rngs) if cond else None)

  def __call__(self, x_BHWC, labels_B, *, train: bool):
    y = self.bn(x_BHWC, use_running_average=not train)
    if self.gain is None:
      return y
    return y * self.gain(labels_B)[:, None, None, :] + self.shift(labels_B)[:, None, None, :]


class GBlock(nnx.Module):
  def __init__(self, c_in, c_out, num_classes, spectral, *, rngs):
    self.norm1 = Norm(c_in, num_classes, rngs=rngs)
    self.conv1 = SNConv(c_in, c_out, 3, spectral=spectral, rngs=rngs)
    self.norm2 = Norm(c_out, num_classes, rngs=rngs)
    self.conv2 = SNConv(c_out, c_out, 3, spectral=spectral, rngs=rngs)
    self.skip = SNConv(c_in, c_out, 1, spectral=spectral, rngs=rngs)

  def __call__(self, x, labels, *, train):
    h = up2(jax.nn.relu(self.norm1(x, labels, train=train)))
    h = self.conv1(h, train=train)
    h = self.conv2(jax.nn.relu(self.norm2(h, labels, train=train)), train=train)
    return h + self.skip(up2(x), train=train)


class DBlock(nnx.Module):
  def __init__(self, c_in, c_out, spectral, *, rngs):
    self.conv1 = SNConv(c_in, c_out, 3, spectral=spectral, rngs=rngs)
    self.conv2 = SNConv(c_out, c_out, 3, spectral=spectral, rngs=rngs)
    self.skip = SNConv(c_in, c_out, 1, spectral=spectral, rngs=rngs)

  def __call__(self, x, *, train):
    h = self.conv1(jax.nn.relu(x), train=train)
    h = self.conv2(jax.nn.relu(h), train=train)
    return down2(h) + down2(self.skip(x, train=train))


def _attention(cfg, channels, spectral, rngs):
  return FeatureMapAttention(channels, cfg["attention_reduction"], cfg["attention_impl"],
                             pool=cfg["attention_pool"], spectral=spectral, rngs=rngs)


class Generator(nnx.Module):
  def __init__(self, cfg, image_size, channels, num_classes, *, rngs):
    levels = (image_size // 4).bit_length() - 1
    self.widths = [cfg["width"] * 2 ** (levels - i) for i in range(levels + 1)]  # 4x4 first
    sn = cfg["g_spectral_norm"]
    self.noise_dim, self.attention_res = cfg["noise_dim"], cfg["attention_res"]
    self.project = SNLinear(cfg["noise_dim"], 16 * self.widths[0], spectral=sn, rngs=rngs)
    self.blocks = nnx.List([GBlock(self.widths[i], self.widths[i + 1], num_classes, sn,
                                   rngs=rngs) for i in range(levels)])
    res = [4 * 2 ** i for i in range(levels + 1)]
    self.attention_index = res.index(self.attention_res) if self.attention_res else None
    self.attention = (_attention(cfg, self.widths[self.attention_index], sn, rngs)
                      if self.attention_res else None)
    self.out_norm = Norm(self.widths[-1], num_classes, rngs=rngs)
    self.out = SNConv(self.widths[-1], channels, 3, spectral=sn, rngs=rngs)

  def features(self, z_BZ, labels_B, *, train: bool, upto: int | None = None):
    """The feature map after level `upto` (0 = the 4x4 map), attention applied; None:
    the images [B, H, W, C] in [-1, 1]."""
    h = self.project(z_BZ, train=train).reshape(z_BZ.shape[0], 4, 4, self.widths[0])
    for i in range(len(self.blocks) + 1):
      if i > 0:
        h = self.blocks[i - 1](h, labels_B, train=train)
      if i == upto:
        return h
      if i == self.attention_index:
        h = self.attention(h, train=train)
    h = jax.nn.relu(self.out_norm(h, labels_B, train=train))
    return jnp.tanh(self.out(h, train=train))

  def __call__(self, z_BZ, labels_B=None, *, train: bool):
    return self.features(z_BZ, labels_B, train=train)


class Discriminator(nnx.Module):
  def __init__(self, cfg, image_size, channels, num_classes, *, rngs):
    levels = (image_size // 4).bit_length() - 1
    widths = [cfg["width"] * 2 ** i for i in range(levels + 1)]  # at H, H/2, ..., 4
    sn = cfg["d_spectral_norm"]
    self.stem = SNConv(channels, widths[0], 3, spectral=sn, rngs=rngs)
    self.blocks = nnx.List([DBlock(widths[i], widths[i + 1], sn, rngs=rngs)
                            for i in range(levels)])
    res = [image_size // 2 ** i for i in range(levels + 1)]
    r = cfg["attention_res"]
    self.attention_index = res.index(r) if r else None
    self.attention = _attention(cfg, widths[self.attention_index], sn, rngs) if r else None
    self.head = SNLinear(widths[-1], 1, spectral=sn, rngs=rngs)
    self.embed = (SNEmbed(num_classes, widths[-1], spectral=sn, rngs=rngs)
                  if num_classes is not None else None)

  def __call__(self, x_BHWC, labels_B=None, *, train: bool):
    """Logits [B] (real > 0); labels_B is required when conditional (None: the
    unconditional part only, for FLOPs counting)."""
    h = self.stem(x_BHWC, train=train)
    for i in range(len(self.blocks) + 1):
      if i > 0:
        h = self.blocks[i - 1](h, train=train)
      if i == self.attention_index:
        h = self.attention(h, train=train)
    pooled_BC = jnp.sum(jax.nn.relu(h), axis=(1, 2))
    out_B = self.head(pooled_BC, train=train)[:, 0]
    if self.embed is not None and labels_B is not None:
      out_B = out_B + jnp.sum(self.embed(labels_B, train=train) * pooled_BC, axis=-1)
    return out_B


def check_gan_settings(cfg, task_info):
  """((H, W, C), patch, num_classes or None); ValueError naming the first bad value."""
  shape, patch = image_layout("gan", task_info)
  H, W, C = shape
  if H != W or H not in IMAGE_SIZES:
    raise ValueError(f"model 'gan' draws square images of {IMAGE_SIZES} pixels; the task's "
                     f"image shape is {tuple(shape)}")
  for key in ("noise_dim", "width", "attention_reduction"):
    if not (isinstance(cfg[key], int) and cfg[key] >= 1):
      raise ValueError(f"model.{key}={cfg[key]!r} must be an int >= 1")
  valid = [0] + [4 * 2 ** i for i in range((H // 4).bit_length()) if 4 * 2 ** i <= H]
  if cfg["attention_res"] not in valid:
    raise ValueError(f"model.attention_res={cfg['attention_res']!r} must be the side of one "
                     f"of the feature maps of a {H}x{H} GAN, or 0 for no attention; "
                     f"valid: {valid}")
  check_global_impl(cfg["attention_impl"])
  num_classes = None
  if cfg["conditional"]:
    if task_info.num_classes < 2:
      raise ValueError(f"model.conditional=True needs a labelled task (>= 2 classes); this "
                       f"task has num_classes={task_info.num_classes}: set "
                       "model.conditional=False")
    num_classes = task_info.num_classes
  return shape, patch, num_classes


@register_model("gan", DEFAULTS)
class GAN(nnx.Module):
  """The generator and the discriminator of one GAN (module docstring). Called as a
  model (inputs, mask, train=) it gives D's logits for the task's images."""
  family = "gan"

  def __init__(self, cfg, task_info, rngs):
    shape, self.task_patch, self.num_classes = check_gan_settings(cfg, task_info)
    self.image_shape = tuple(shape)
    self.conditional = self.num_classes is not None
    self.noise_dim = cfg["noise_dim"]
    self.generator = Generator(cfg, shape[0], shape[2], self.num_classes, rngs=rngs)
    self.discriminator = Discriminator(cfg, shape[0], shape[2], self.num_classes, rngs=rngs)

  def images(self, inputs_BTF):
    """The task's vectors as images [B, H, W, C] in [0, 1]."""
    return vectors_to_grid(inputs_BTF.astype(jnp.float32), self.image_shape, self.task_patch)

  def __call__(self, inputs, mask_BT=None, *, train: bool = False):
    del mask_BT
    return self.discriminator(self.images(inputs) * 2 - 1, train=train)
