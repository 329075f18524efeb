"""Cordonnier et al. 2020, learned: attention with a learned quadratic positional encoding
trained on images; do its heads spread into a grid of offsets around the query?

Question: Theorem 1 says 9 heads with the quadratic encoding CAN compute a 3x3
          convolution; Section 4 trains such heads on CIFAR-10 and finds their centres
          spread out around the query pixel, grid-like. Does the same happen on the
          8x8 digits read as 64 pixel vectors, with centres that start near 0?
Command:  ./launch.sh reproduce cordonnier2020 [--tier tiny|full] (the construction and
          this training; `./launch.sh run experiments/repro/cordonnier2020.py:tiny` trains
          the model alone)
Expected: reports/cordonnier2020/report.md: the learned centres per layer and seed.
Runtime:  tiny: see the report (3 seeds of a 2-layer, 9-head model on 8x8 digits).
"""
from attn_research.experiment import base_config, finalize, make_comparison, parse_arg
from attn_research.models import model_defaults

STEPS = {"tiny": 1500, "full": 4000}


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  # A tenth of the training images is the validation split that picks the checkpoint; the
  # test images are scored once by that checkpoint.
  config = base_config("digits", view="pixels", validation_fraction=0.1,
                       eval_split="validation")
  model = dict(model_defaults("quadratic_attention"), name="quadratic_attention",
               num_layers=2 if tier == "tiny" else 4)
  make_comparison(config, {"quadratic": model})
  config.num_seeds = 3 if tier == "tiny" else 5
  config.train.update(num_steps=STEPS[tier], eval_every=100, keep_best="accuracy",
                      learning_rate=3e-3,
                      batch_size=64)
  return finalize(config, words, known=("tiny", "full"))
