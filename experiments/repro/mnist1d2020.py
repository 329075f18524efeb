"""MNIST-1D's baseline table (Greydanus and Kobak 2020) beside a Transformer.

Question: does our training stack reproduce the ordering of MNIST-1D's baselines on its
          default split (4,000 train / 1,000 test): logistic regression 32 %, MLP 68 %,
          CNN 94 %, GRU about 91 % (ANCHORS.md), and where does a small Transformer land?
Command:  ./launch.sh reproduce mnist1d2020 [--tier tiny|full]
          (or one comparison: ./launch.sh run experiments/repro/mnist1d2020.py:tiny)
Expected: reports/mnist1d2020/report.md holds the measured table (README.md's
          reproduction table copies the tiny tier's numbers).
Runtime:  tiny: under 10 minutes on a 2-core CPU; full: 4x the steps.
"""
from attn_research.experiment import (base_config, family_models, finalize, make_comparison,
                                      parse_arg)

# Our families at the paper's scale (its models are small); not parameter-matched: the
# paper's table compares architectures as it built them, and so do we.
MODELS = {
    "logistic": ("mlp", dict(num_layers=0)),
    "mlp": ("mlp", dict(num_layers=2, d_model=100)),
    "cnn": ("cnn", dict(d_model=32, num_layers=3, kernel_size=5)),
    "gru": ("rnn", dict(cell="gru", bidirectional=False, d_model=64, num_layers=1)),
    "transformer": ("transformer", dict(d_model=64, num_layers=2, num_heads=4)),
}
STEPS = {"tiny": 1000, "full": 4000}


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  config = base_config("mnist1d")
  make_comparison(config, family_models(MODELS), enforce=False)
  config.train.update(num_steps=STEPS[tier], learning_rate=3e-3, eval_every=250)
  return finalize(config, words, known=("tiny", "full"))
