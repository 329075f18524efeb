"""Truncated self-attention on long speech with a label per frame: accuracy and compute
against the attention window.

Question: the lecture's speech slide: an utterance is a long sequence of 10 ms frames,
          and what a frame says is decided by the frames around it, so speech models
          truncate attention to a window. On connected spoken-digit strings labelled per
          frame (spoken_digit_strings: the digit being spoken, or silence; voices never
          heard in training), how much frame accuracy do windows of 4, 16 and 64 frames on
          each side cost against full attention, and what do they save?
Command:  ./launch.sh reproduce truncated_speech [--tier tiny|full]
          (one comparison: ./launch.sh run experiments/repro/truncated_speech.py:tiny)
Expected: reports/truncated_speech/report.md: test frame accuracy (best-on-validation
          checkpoint) and FLOPs per example against the window, with the verdict.
Runtime:  tiny (3 seeds x 4 models, 400 steps of 8 strings of 2-6 digits, at most 256
          frames): 837 s wall measured 2026-11-30 on 2 CPU cores shared with other jobs
          (load average 12.8 at the start, 7.0 at the end), 368 s user + 64 s system CPU
          time; an identical earlier run under load 15-18 took 1,424 s (the wall time alone
          was not measured). full (4-10 digits at slower speeds, up to 1,024 frames, d_model
          128, 4 layers, 2,000 steps of 32, 5 seeds, batches made ahead in 8 threads): sized
          for one GPU by estimate, not run.
"""
from attn_research.experiment import base_config, finalize, make_comparison, parse_arg
from attn_research.models import model_defaults

WINDOWS = (4, 16, 64)
SEEDS = {"tiny": 3, "full": 5}
DATA = {"tiny": dict(speeds=[160, 190, 220], pitches=[40, 60], min_digits=2, max_digits=6,
                     gap_ms=[30, 120], edge_ms=[50, 100], max_frames=256, num_validation=128,
                     num_test=256),
        "full": dict(speeds=[120, 150, 180], pitches=[35, 50, 65], min_digits=4, max_digits=10,
                     max_frames=1024, num_validation=256, num_test=512, prefetch=8)}
MODEL = {"tiny": dict(d_model=32, num_layers=2, num_heads=2),
         "full": dict(d_model=128, num_layers=4, num_heads=4)}
TRAIN = {"tiny": dict(num_steps=400, batch_size=8, eval_every=50, checkpoint_every=400),
         "full": dict(num_steps=2000, batch_size=32, eval_every=200, checkpoint_every=1000)}


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  config = base_config("spoken_digit_strings")
  config.data.update(eval_split="validation", **DATA[tier])
  # Rotary positions: relative offsets, the same for every frame, whatever the window.
  attention = dict(model_defaults("transformer"), position="rotary", dropout=0.1,
                   **MODEL[tier])
  models = {"full_attention": dict(attention, window=0)}
  models.update({f"window_{w}": dict(attention, window=w) for w in WINDOWS})
  # The window changes no parameter: every model has the same width and count.
  make_comparison(config, models)
  config.num_seeds = SEEDS[tier]
  # Constant learning rate after warm-up: the run length, not a decay, decides where it
  # stops; the checkpoint is the best on the validation voices.
  config.train.update(schedule="constant", learning_rate=2e-3, warmup_steps=50,
                      keep_best="accuracy", eval_batch_size=64, log_every=50, **TRAIN[tier])
  config = finalize(config, words, known=("tiny", "full"))
  if "smoke" in words:
    config.num_seeds = 1
    config.train.update(keep_best="accuracy", eval_batch_size=8)
  return config
