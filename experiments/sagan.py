"""A self-attention GAN (SAGAN, Zhang et al. 2019) on font-rendered digits.

Question: does a small SAGAN learn to draw the rendered digits (data/rendered_digits.py,
          16x16), and how far (Fréchet distance in a small digit classifier's feature
          space, measure/feature_net.py) does it get with attention at a given feature map?
Command:  ./launch.sh run experiments/sagan.py            (attention at 8x8)
          ./launch.sh run experiments/sagan.py:noattn     (no attention)
          ./launch.sh run experiments/sagan.py:attn16     (attention at 16x16)
          ./launch.sh run experiments/sagan.py:cond       (class-conditional: conditional BN
                                                          in G, projection D)
          (the ablation over seeds: ./launch.sh reproduce sagan2019)
Expected: measured as the seed-0 runs of `./launch.sh reproduce sagan2019 --tier tiny`
          (same settings; 300 steps of 64, FD of 1,000 samples against the 1,000
          held-out images; the real-vs-real floor is 0.39): noattn 19.38, attn8 11.61,
          attn16 11.30. Seeds 1 and 2 gave 10.71 / 27.09 (noattn), 15.17 / 41.40
          (attn8), 17.48 / 45.05 (attn16): the spread between seeds exceeds the
          differences between variants (reports/sagan2019/report.md).
Runtime:  35-71 s per run (the first of a variant compiles) on the 2-core CPU shared
          with other jobs (load 5-6), 2026-11-30.
"""
import ml_collections

from attn_research.experiment import base_config, finalize, parse_arg
from attn_research.objectives.gan import GAN_DEFAULTS

VARIANTS = {"noattn": 0, "attn8": 8, "attn16": 16}


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("rendered_digits", model="gan", image_size=16, num_train=10000,
                       num_eval=1000)
  config.objective = "gan"
  config.gan = ml_collections.ConfigDict(dict(GAN_DEFAULTS, d_learning_rate=4e-4))
  chosen = [w for w in words if w in VARIANTS]
  # The tiny tier's settings of experiments/repro/sagan2019.py (see there for why).
  config.model.update(width=8, noise_dim=64, attention_reduction=2, attention_impl="chunked",
                      attention_res=VARIANTS[chosen[-1]] if chosen else 8,
                      conditional="cond" in words)
  config.train.update(batch_size=64, eval_batch_size=500, num_steps=300, optimizer="adam",
                      learning_rate=2e-4, weight_decay=0.0, grad_clip=0.0,
                      schedule="constant", warmup_steps=0, log_every=50, eval_every=100,
                      checkpoint_every=100)
  if "smoke" in words:  # finalize's smoke() shrinks train and data; the GAN too
    config.model.update(width=4, noise_dim=8)
    config.gan.update(feature_steps=20, feature_width=4, feature_dim=8)
  config = finalize(config, words, known=("cond", *VARIANTS))
  if "smoke" in words:
    config.train.update(batch_size=8, eval_batch_size=64)
  return config
