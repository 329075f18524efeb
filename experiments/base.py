"""One Transformer on scikit-learn digits (16 patches of 2x2 pixels): the shared defaults.

Question: does the plain pipeline (task -> model -> jitted train step -> workdir) work?
Command:  ./launch.sh run experiments/base.py --workdir workdirs/base
          (any default can be overridden, e.g. --config.model.name=cnn --config.data.view=pixels)
          ./launch.sh sweep experiments/base.py --seeds 3 --parallel 2   (the sweep below)
Expected: eval accuracy well above the 10 % of chance after 1,000 steps.
Runtime:  well under a minute on a 2-core CPU (measured numbers: README, experiment table).
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  return finalize(base_config(), parse_arg(arg))


def sweep(add):
  # 2 x 2 runs: does attention need to know where each patch sits (no position encoding
  # vs learned), and what does the linear kernel (elu+1 features) cost against softmax?
  add(**{"model.position": ["none", "learned"]})
  add(**{"model.attention": ["softmax", "linear"]})
