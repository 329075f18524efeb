"""The causal copy task with softmax, linear and local attention at equal parameters
(Katharopoulos et al. 2020, arXiv 2006.16236, Section 4.1 / Figure 2).

Question: does linear attention (an RNN in its causal form) learn to copy as well as
          softmax attention, and what does truncating attention to a local window cost on
          a task that must look back a whole sequence (one layer's window is a quarter of
          the longest sequence; the stack of layers reaches back far enough)?
Command:  ./launch.sh reproduce katharopoulos2020_copy [--tier tiny|full]
          (one comparison: ./launch.sh run experiments/repro/katharopoulos2020_copy.py:tiny)
Expected: reports/katharopoulos2020_copy/report.md: loss curves and final accuracies.
Runtime:  tiny: shorter sequences (8-15 symbols) and a small model, under 10 minutes on a
          2-core CPU; full: the paper's setup (32-62 symbols, 4 layers, 8 heads,
          d_model 256, RAdam, 3,000 updates), sized for a GPU.
"""
from attn_research.experiment import base_config, finalize, make_comparison, parse_arg

KERNELS = {"softmax": dict(attention="softmax"), "linear": dict(attention="linear"),
           "local": dict(attention="softmax")}  # local: window set below


def get_config(arg=None):
  words = parse_arg(arg)
  full = "full" in words
  config = base_config("copy")
  if not full:
    config.data.update(min_symbols=8, max_symbols=16, max_length=34)
  model = dict(config.model, position="sinusoidal")
  if full:
    model.update(d_model=256, num_layers=4, num_heads=8, dropout=0.1)
    config.train.update(optimizer="radam", learning_rate=1e-3, weight_decay=0.01,
                        schedule="step", decay_fraction=0.3, warmup_steps=0, num_steps=3000)
  else:
    model.update(d_model=64, num_layers=2, num_heads=4)
    config.train.update(num_steps=800, eval_every=200, eval_batch_size=128)
  make_comparison(config, {name: dict(model, **settings) for name, settings in KERNELS.items()})
  # A quarter of the longest sequence: one layer cannot reach back to the first copy,
  # but the stack can (2 layers x 8 = 16 positions in the tiny tier, 4 x 32 in the full
  # one), as stacked convolutions widen their receptive field.
  config.models.local.window = config.data.max_length // 4
  return finalize(config, words, known=("tiny", "full"))
