"""Self-attention vs a CNN vs a bidirectional RNN on one task at about equal parameters.

Question: on scikit-learn's digits read as a set of vectors (the lecture's "an image
          is a set of vectors": here 16 patches of 2x2 pixels), how do a Transformer, a
          1D CNN and a bidirectional LSTM of about 60k parameters each compare in
          accuracy and speed?
Command:  ./launch.sh            (the default experiment; same as
          ./launch.sh run experiments/compare.py --workdir workdirs/compare)
          Arguments: `pixels` reads 64 one-pixel vectors instead (slower: 4x longer
          sequences); `copy` runs the causal copy task (unidirectional RNN);
          `smoke` shrinks it for tests.
Expected: all three learn the task well above chance (10 %); the table in README.md
          lists the accuracies and speeds measured on a 2-core CPU.
Runtime:  under 3 minutes of training on a 2-core CPU (README.md has the measurement).
Writes:   WORKDIR/<model>/ (one run each; WORKDIR/<model>/seed_<s>/ with
          --config.num_seeds=N > 1), WORKDIR/comparison.md, WORKDIR/comparison.png.
"""
from attn_research.experiment import (base_config, family_models, finalize, make_comparison,
                                      parse_arg)

# Widths chosen so the three families hold about the same number of parameters
# (58k-64k on digits; `./launch.sh` prints the exact counts).
MODELS = {
    "transformer": dict(d_model=48, num_layers=2, num_heads=4),
    "cnn": dict(d_model=64, num_layers=3, kernel_size=5),
    "rnn": dict(d_model=72, num_layers=2, cell="lstm", bidirectional=True),
}


def get_config(arg=None):
  words = parse_arg(arg)
  if "copy" in words:
    config = base_config("copy")
  else:
    config = base_config("digits", view="pixels" if "pixels" in words else "patches")
  # --config.budget.params=N (or budget.flops=N, FLOPs per example; not both) solves every
  # d_model for that count (within tolerance); a comparison whose counts spread wider
  # than max_spread refuses to run (attn_research.experiment.BUDGET_DEFAULTS).
  make_comparison(config, family_models({name: (name, s) for name, s in MODELS.items()}))
  if config.data.name == "copy":
    config.models.rnn.bidirectional = False  # outputs are causal: no peeking at the future
  # > 1: every model runs with seeds seed, seed + 1, ... (WORKDIR/<model>/seed_<s>/), and
  # the report gives eval accuracy as mean +- std over them.
  config.num_seeds = 1
  config.train.num_steps = 1000
  config.train.eval_every = 100  # denser learning curves; evaluation is cheap here
  return finalize(config, words, known=("copy", "pixels"))
