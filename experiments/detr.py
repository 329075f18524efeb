"""DETR on synthetic scenes: detection as set prediction, no anchors and no NMS.

Question: does a small DETR (CNN backbone, Transformer encoder, 6 learned object queries;
          models/detr.py) trained with Hungarian matching (objectives/set_prediction.py)
          find and classify 1-3 shapes in 32x32 scenes (data/scenes.py), and how does the
          same network do with a fixed-order assignment (`:fixed_order`)?
Command:  ./launch.sh run experiments/detr.py[:fixed_order]   (`full` for 64x64 scenes)
          The settings are those of the reproduction (experiments/repro/detr2020.py, one
          seed); `./launch.sh reproduce detr2020` trains 3 seeds of both and scores AP.
Expected: measured in the reproduction's seed 0 (1,000 steps of 32 scenes; 256 test scenes):
          matching test AP50 0.616, AP50:95 0.263, count accuracy 0.016 (duplicates: too
          many queries claim an object); fixed order AP50 0.654, AP50:95 0.298, count
          accuracy 0.824 (reports/detr2020/report.md has all seeds).
Runtime:  measured 2026-11-30 on 2 CPU cores shared with two other reproductions: 96 s
          (matching, 15 steps/s) and 60 s (fixed order, 26 steps/s), compilation included.
"""
import pathlib

from attn_research.config import load_config
from attn_research.experiment import parse_arg

REPRO = pathlib.Path(__file__).resolve().parent / "repro" / "detr2020.py"


def get_config(arg=None):
  parse_arg(arg)  # the grammar check; the reproduction's config knows the words
  return load_config(f"{REPRO}:{arg}" if arg else str(REPRO))
