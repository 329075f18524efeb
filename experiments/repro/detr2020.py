"""DETR's claim in small (Carion et al. 2020): set prediction with bipartite matching
learns to detect without anchors or NMS, against the same network trained with a
fixed-order assignment.

Question: on synthetic 1-3 shape scenes (data/scenes.py), does DETR with Hungarian
          matching beat the same network whose objects are given to the queries in a fixed
          order (left to right; `fixed_order`) on test AP50 and count accuracy?
Command:  ./launch.sh reproduce detr2020 [--tier tiny|full]   (3 / 5 seeds of both arms)
          one run: ./launch.sh run experiments/repro/detr2020.py:tiny[,fixed_order]
Expected: reports/detr2020/report.md holds the measured table and verdict (tiny tier).
Runtime:  tiny (32x32 scenes, 1,000 steps, six runs, test scoring and figures): 483 s wall,
          328 s CPU, measured 2026-11-30 on 2 cores shared with two other reproductions;
          full (64x64 scenes, 20,000 steps, 5 seeds): sized for one GPU, not measured.
"""
import ml_collections

from attn_research.experiment import base_config, finalize, parse_arg
from attn_research.objectives.set_prediction import SET_PREDICTION_DEFAULTS

DATA = {"tiny": dict(image_size=32, max_objects=3, min_size=0.2, max_size=0.5, eval_size=256),
        "full": dict(image_size=64, max_objects=3, min_size=0.15, max_size=0.45, eval_size=512)}
MODEL = {"tiny": dict(d_model=64, num_heads=4, encoder_layers=2, decoder_layers=2,
                      num_queries=6, backbone_width=32, backbone_stages=2),
         "full": dict(d_model=128, num_heads=8, encoder_layers=3, decoder_layers=3,
                      num_queries=10, backbone_width=64, backbone_stages=3)}
TRAIN = {"tiny": dict(num_steps=1000, batch_size=32, eval_every=250, checkpoint_every=500),
         "full": dict(num_steps=20000, batch_size=64, eval_every=2000, checkpoint_every=2000)}
SMOKE_MODEL = dict(d_model=16, num_heads=2, encoder_layers=1, decoder_layers=2, num_queries=4,
                   backbone_width=8, backbone_stages=1, norm_groups=2)


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  config = base_config("shapes_detection", "detr")
  config.objective = "set_prediction"
  # DETR's loss weights and no-object weight 0.1 (set for ~93 empty queries against ~7
  # objects; here ~4 against ~2: report.md lists it among the differences).
  config.set_prediction = ml_collections.ConfigDict(dict(
      SET_PREDICTION_DEFAULTS,
      assignment="fixed_order" if "fixed_order" in words else "hungarian"))
  config.data.update(DATA[tier])
  config.model.update(MODEL[tier])
  config.train.update(learning_rate=2e-3, weight_decay=1e-4, grad_clip=0.1, warmup_steps=50,
                      eval_batch_size=128, log_every=50, **TRAIN[tier])
  config = finalize(config, words, known=("tiny", "full", "fixed_order"))
  if "smoke" in words:
    config.model.update(SMOKE_MODEL)
    config.data.update(image_size=16, eval_size=16)
    config.train.update(batch_size=4, eval_batch_size=16)
  return config
