"""Digits as 64 pixel vectors: an image is a set of vectors, one per pixel.

Question: reading scikit-learn's 8x8 digits as 64 one-pixel vectors (the lecture's
          "pixel as a vector"), what does the default Transformer reach?
Command:  ./launch.sh run experiments/digits.py   (`:patches` reads 16 2x2 patches)
Expected: measured once (seed 0, 1,000 steps): eval accuracy 0.911 (loss 0.50) on the
          359 held-out images; the same Transformer on 16 patches (experiments/base.py)
          reaches 0.981, so 64 one-pixel vectors are the harder reading.
Runtime:  measured on a 2-core CPU shared with other jobs (load 4-7): 278 s (3.9 steps/s).
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("digits", view="patches" if "patches" in words else "pixels")
  return finalize(config, words, known=("patches",))
