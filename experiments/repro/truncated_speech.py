"""Truncated self-attention on speech: accuracy and compute against the attention window.

Question: the lecture's speech slide: an utterance is a long sequence of frames, so speech
          models truncate attention to a window around each frame. How much accuracy does
          a window cost on spoken_digits (log-mel frames, 4 unheard voices), and what does
          it save, next to full attention and a CNN and an RNN at equal parameters?
Command:  ./launch.sh reproduce truncated_speech [--tier tiny|full]
Expected: reports/truncated_speech/report.md: accuracy and FLOPs per example against the
          window (number of frames on each side), with full attention, CNN and BiLSTM rows.
Runtime:  tiny: under 10 minutes on a 2-core CPU once the utterances are synthesized
          (the espeak-ng program, or the pip package espeakng-loader's library when the
          program is missing; about a minute the first time).
"""
from attn_research.experiment import base_config, finalize, make_comparison, parse_arg
from attn_research.models import model_defaults

WINDOWS = {"tiny": (2, 8, 32), "full": (1, 2, 4, 8, 16, 32, 64)}


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  config = base_config("spoken_digits")
  attention = dict(model_defaults("transformer"), d_model=48, num_layers=2, num_heads=4,
                   dropout=0.1)
  models = {f"window_{w}": dict(attention, window=w) for w in WINDOWS[tier]}
  models["full_attention"] = dict(attention, window=0)
  models["cnn"] = dict(model_defaults("cnn"), d_model=48, num_layers=3, kernel_size=5)
  models["rnn"] = dict(model_defaults("rnn"), d_model=48, num_layers=2, cell="lstm",
                       bidirectional=True)
  # Widths solved for one parameter budget (the window changes no parameter).
  make_comparison(config, models, params=40000)
  config.train.update(num_steps=200 if tier == "tiny" else 600, eval_every=100)
  return finalize(config, words, known=("tiny", "full"))
