"""Digits 0-9 drawn from the fonts matplotlib ships (DejaVu Sans, Serif and Sans Mono with
their bold and oblique/italic faces: 12 faces), under random affine maps, stroke widths
and noise: an offline, seeded, unbounded-size image set for classifiers and generators.

How an image is made (all in numpy, vectorised over images, so ten thousand take a few
seconds):
  1. Each face's glyph outline (matplotlib.textpath.TextPath) is filled once into a
     64x64 template (2x supersampled, so edges are anti-aliased), centred, its larger
     side 1 in glyph units; each template is thickened or thinned by grey dilation or
     erosion with a disc of radius r (stroke_range, in template pixels: r < 0 erodes).
  2. Per image: a face, a digit, a stroke radius, a rotation, a shear, a scale (the
     glyph's larger side as a share of the canvas) and a translation are drawn; the
     canvas (64x64 for image_size 32, else 32x32) samples the template through the
     inverse affine map (bilinear).
  3. The canvas is averaged over blocks down to image_size (2x2 or 4x4 blocks: area
     averaging, as scikit-learn's digits were made from 32x32 bitmaps by counting 4x4
     blocks), scaled by a brightness in [0.75, 1] and given Gaussian noise of a standard
     deviation drawn from [0, noise], then clipped to [0, 1].
Convention (that of data/images.py's sklearn digits): background 0, strokes bright, values
in [0, 1]; so a model trained here at image_size=8 reads sklearn's digits unchanged.

Train and eval sets are drawn from separate streams of one seed, cached on disk (data/
cache.py) under a key of every setting. One label per image; read as pixels or patches.
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from attn_research.data.base import TaskInfo, register_task
from attn_research.data.cache import cached_arrays, data_dir
from attn_research.data.images import ImageTask, image_to_vectors

FACES = {
    "sans": ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique"),
    "serif": ("DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic",
              "DejaVuSerif-BoldItalic"),
    "mono": ("DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
             "DejaVuSansMono-BoldOblique"),
}
IMAGE_SIZES = (8, 16, 32)
TEMPLATE = 64      # template pixels over glyph coordinates [-EXTENT, EXTENT]
EXTENT = 0.65      # half-width of the template in glyph units (glyph's larger side is 1)
GENERATOR = 1      # bump when the drawing changes: cached sets are then rebuilt

DEFAULTS = dict(image_size=32, num_train=10000, num_eval=2000, fonts="sans,serif,mono",
                rotation=15.0, shear=0.2, scale_range=(0.7, 0.95), translate=0.08,
                stroke_range=(-1, 3), noise=0.08, view="patches", patch_size=4, seed=0,
                dir=None)
SMOKE = dict(num_train=512, num_eval=128)


def font_path(face: str) -> pathlib.Path:
  import matplotlib
  return pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf"


def parse_fonts(fonts: str) -> tuple:
  """'sans,mono' -> the face names of those families; ValueError naming the valid ones."""
  names = [f.strip() for f in str(fonts).split(",") if f.strip()]
  unknown = [n for n in names if n not in FACES]
  if not names or unknown:
    raise ValueError(f"data.fonts={fonts!r} must be a comma-separated list of "
                     f"{sorted(FACES)}" + (f"; unknown: {unknown}" if unknown else ""))
  return tuple(face for n in dict.fromkeys(names) for face in FACES[n])


@functools.lru_cache(maxsize=None)
def glyph_template(face: str, digit: int):
  """[TEMPLATE, TEMPLATE] float32 coverage of one glyph, centred, larger side 1 glyph unit."""
  from matplotlib.font_manager import FontProperties
  from matplotlib.path import Path
  from matplotlib.textpath import TextPath
  path = TextPath((0, 0), str(digit), size=1.0, prop=FontProperties(fname=font_path(face)))
  lo, hi = path.vertices.min(0), path.vertices.max(0)
  centre, side = (lo + hi) / 2, (hi - lo).max()
  n = 2 * TEMPLATE  # 2x supersampled, then 2x2 averaged
  axis = (np.arange(n) + 0.5) / n * 2 * EXTENT - EXTENT
  gx, gy = np.meshgrid(axis, -axis)  # row 0 at the top: glyph y points up
  points = np.stack([gx.ravel(), gy.ravel()], 1) * side + centre
  # Even-odd over the outline's closed polygons: a counter (the hole of 0, 6, 8, 9) is
  # inside two of them; contains_points on the compound path would fill it.
  inside = np.zeros(len(points), bool)
  for polygon in path.to_polygons(closed_only=True):
    inside ^= Path(polygon).contains_points(points)
  inside = inside.reshape(n, n).astype(np.float32)
  return inside.reshape(TEMPLATE, 2, TEMPLATE, 2).mean((1, 3))


def stroked(template, radius: int):
  """The template thickened (radius > 0) or thinned (radius < 0) by a disc."""
  if radius == 0:
    return template
  from scipy import ndimage
  r = abs(radius)
  yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
  disc = (xx ** 2 + yy ** 2) <= r * r + 0.5
  op = ndimage.grey_dilation if radius > 0 else ndimage.grey_erosion
  return op(template, footprint=disc)


@functools.lru_cache(maxsize=4)
def template_bank(faces: tuple, radii: tuple):
  """[faces, 10, radii, TEMPLATE, TEMPLATE] float32."""
  return np.stack([np.stack([np.stack([stroked(glyph_template(f, d), r) for r in radii])
                             for d in range(10)]) for f in faces])


def bilinear(images_NHW, rows_NPQ, cols_NPQ):
  """Samples each image at fractional pixel coordinates (zero outside)."""
  N, H, W = images_NHW.shape
  r0, c0 = np.floor(rows_NPQ).astype(np.int64), np.floor(cols_NPQ).astype(np.int64)
  fr, fc = rows_NPQ - r0, cols_NPQ - c0
  idx = np.arange(N)[:, None, None]
  out = np.zeros(rows_NPQ.shape, np.float32)
  for dr, wr in ((0, 1 - fr), (1, fr)):
    for dc, wc in ((0, 1 - fc), (1, fc)):
      r, c = r0 + dr, c0 + dc
      ok = (r >= 0) & (r < H) & (c >= 0) & (c < W)
      out += np.where(ok, images_NHW[idx, np.clip(r, 0, H - 1), np.clip(c, 0, W - 1)], 0) * wr * wc
  return out


def draw(rng, n: int, cfg: dict, faces: tuple):
  """(images [n, S, S] float32 in [0, 1], labels [n] int32, face index [n] int32)."""
  lo, hi = cfg["stroke_range"]
  radii = tuple(range(int(lo), int(hi) + 1))
  bank = template_bank(faces, radii)
  labels = rng.integers(0, 10, n).astype(np.int32)
  face = rng.integers(0, len(faces), n).astype(np.int32)
  radius = rng.integers(0, len(radii), n)
  theta = np.deg2rad(rng.uniform(-cfg["rotation"], cfg["rotation"], n))
  shear = rng.uniform(-cfg["shear"], cfg["shear"], n)
  scale = rng.uniform(*cfg["scale_range"], n)
  shift = rng.uniform(-cfg["translate"], cfg["translate"], (n, 2))
  brightness = rng.uniform(0.75, 1.0, n).astype(np.float32)
  sigma = rng.uniform(0.0, cfg["noise"], n).astype(np.float32)
  # Canvas pixel centres in canvas units [-0.5, 0.5], y up.
  S = cfg["image_size"]
  canvas_size = max(32, 2 * S)
  axis = ((np.arange(canvas_size) + 0.5) / canvas_size - 0.5).astype(np.float32)
  px, py = np.meshgrid(axis, -axis)
  # Forward map: glyph -> canvas = R(theta) S(shear) * scale; its inverse applied here.
  cos, sin = np.cos(theta), np.sin(theta)
  fwd = np.empty((n, 2, 2))
  fwd[:, 0, 0], fwd[:, 0, 1] = cos, cos * shear - sin
  fwd[:, 1, 0], fwd[:, 1, 1] = sin, sin * shear + cos
  inv = np.linalg.inv(fwd * scale[:, None, None]).astype(np.float32)
  shift = shift.astype(np.float32)
  x = px[None] - shift[:, 0, None, None]
  y = py[None] - shift[:, 1, None, None]
  gx = inv[:, 0, 0, None, None] * x + inv[:, 0, 1, None, None] * y
  gy = inv[:, 1, 0, None, None] * x + inv[:, 1, 1, None, None] * y
  to_pixel = lambda g: (g + EXTENT) / (2 * EXTENT) * TEMPLATE - 0.5  # noqa: E731
  templates = bank[face, labels, radius]
  canvas = bilinear(templates, to_pixel(-gy), to_pixel(gx))
  k = canvas_size // S
  images = canvas.reshape(n, S, k, S, k).mean((2, 4)) * brightness[:, None, None]
  images += rng.standard_normal(images.shape).astype(np.float32) * sigma[:, None, None]
  return np.clip(images, 0.0, 1.0).astype(np.float32), labels, face


def check_settings(cfg):
  """ValueError naming the first setting out of range, before anything is drawn."""
  if cfg["image_size"] not in IMAGE_SIZES:
    raise ValueError(f"data.image_size={cfg['image_size']!r} must be one of {IMAGE_SIZES}")
  for key in ("num_train", "num_eval"):
    if not (isinstance(cfg[key], int) and cfg[key] >= 1):
      raise ValueError(f"data.{key}={cfg[key]!r} must be a positive int")
  parse_fonts(cfg["fonts"])
  if not 0 <= cfg["rotation"] <= 90:
    raise ValueError(f"data.rotation={cfg['rotation']} must be in [0, 90] degrees")
  if not 0 <= cfg["shear"] <= 1:
    raise ValueError(f"data.shear={cfg['shear']} must be in [0, 1]")
  lo, hi = cfg["scale_range"]
  if not 0.2 <= lo <= hi <= 1.2:
    raise ValueError(f"data.scale_range={tuple(cfg['scale_range'])} must satisfy 0.2 <= low "
                     "<= high <= 1.2 (the glyph's larger side as a share of the image)")
  if not 0 <= cfg["translate"] <= 0.3:
    raise ValueError(f"data.translate={cfg['translate']} must be in [0, 0.3] (image widths)")
  lo, hi = cfg["stroke_range"]
  if not (int(lo) == lo and int(hi) == hi and -2 <= lo <= hi <= 4):
    raise ValueError(f"data.stroke_range={tuple(cfg['stroke_range'])} must be ints with "
                     "-2 <= low <= high <= 4 (template pixels; < 0 thins the stroke)")
  if not 0 <= cfg["noise"] <= 0.5:
    raise ValueError(f"data.noise={cfg['noise']} must be in [0, 0.5]")
  if cfg["view"] not in ("pixels", "patches"):
    raise ValueError(f"data.view={cfg['view']!r} must be 'pixels' or 'patches'")
  p = cfg["patch_size"]
  if cfg["view"] == "patches" and not (isinstance(p, int) and p >= 1
                                       and cfg["image_size"] % p == 0):
    raise ValueError(f"data.patch_size={p!r} must divide data.image_size={cfg['image_size']}")


def rendered_arrays(cfg) -> dict:
  """{train_images, train_labels, eval_images, eval_labels} (images uint8 0-255), cached."""
  keys = ("image_size", "num_train", "num_eval", "fonts", "rotation", "shear", "scale_range",
          "translate", "stroke_range", "noise", "seed")
  params = {k: (list(cfg[k]) if isinstance(cfg[k], (tuple, list)) else cfg[k]) for k in keys}
  params["generator"] = GENERATOR

  def build():
    faces = parse_fonts(cfg["fonts"])
    out = {}
    for stream, split in enumerate(("train", "eval")):
      rng = np.random.default_rng([cfg["seed"], stream])
      chunks = []
      for start in range(0, cfg[f"num_{split}"], 2000):  # bounded memory
        chunks.append(draw(rng, min(2000, cfg[f"num_{split}"] - start), cfg, faces))
      images = np.concatenate([c[0] for c in chunks])
      out[f"{split}_images"] = np.round(images * 255).astype(np.uint8)
      out[f"{split}_labels"] = np.concatenate([c[1] for c in chunks])
      out[f"{split}_faces"] = np.concatenate([c[2] for c in chunks])
    return out

  return cached_arrays(data_dir(cfg["dir"]), "rendered_digits", params, build)


@register_task("rendered_digits", DEFAULTS, smoke=SMOKE)
def rendered_digits(cfg):
  """Font-rendered digits (module docstring): 10 classes, image_size^2 grey pixels, read
  as image_size^2 one-pixel vectors (view=pixels) or (size/p)^2 patches of p*p."""
  check_settings(cfg)
  arrays = rendered_arrays(cfg)
  p = 1 if cfg["view"] == "pixels" else cfg["patch_size"]
  S = cfg["image_size"]
  splits = {}
  for split in ("train", "eval"):
    vectors = image_to_vectors(arrays[f"{split}_images"].astype(np.float32) / 255.0, p)
    splits[split] = {"inputs": vectors, "mask": np.ones(vectors.shape[:2], bool),
                     "targets": arrays[f"{split}_labels"].astype(np.int32)}
  info = TaskInfo(input_kind="pixels" if p == 1 else "patches", input_size=p * p,
                  output_kind="per_sequence", num_classes=10, max_length=(S // p) ** 2,
                  train_size=cfg["num_train"], image_shape=(S, S, 1))
  return ImageTask(info, splits["train"], splits["eval"], image_shape=(S, S, 1), patch_size=p)
