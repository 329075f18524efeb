"""MNIST-1D (Greydanus & Kobak 2020, arXiv 2011.14439): a Transformer over 40 scalar samples.

Question: where does a small Transformer (2 layers, d_model 64, each sample one vector,
          learned positions) land on MNIST-1D's default split (4,000 train / 1,000
          test) against the paper's baselines: logistic regression 32 %, MLP 68 %,
          CNN 94 %, GRU about 91 % test accuracy (ANCHORS.md)?
Command:  ./launch.sh run experiments/mnist1d.py --workdir workdirs/mnist1d
          (data-size sweep: --config.data.train_size=N, 500 <= N <= 100,000; the eval
          set stays the same 1,000 signals)
Expected: eval accuracy 53.4 % after 1,000 steps of 64 (44.4 % at step 250, 51.0 % at
          500, 53.0 % at 750; training accuracy 61 %), measured once with
          `.venv/bin/python -m attn_research.main --config experiments/mnist1d.py
          --workdir /tmp/mnist1d_run --no-progress` (103,434 parameters): between the
          paper's logistic regression (32 %) and its MLP (68 %), far below its CNN
          (94 %). At the default learning rate (1e-3) 600 steps gave 49.6 %.
Runtime:  109 s wall, measured on a busy 2-core CPU (10.2 steps/s), plus about 6 s
          the first time to generate and cache the data.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  config = base_config("mnist1d")
  config.train.update(num_steps=1000, learning_rate=3e-3)
  return finalize(config, parse_arg(arg))
