"""With little data a CNN wins; with more, self-attention catches up (ViT's data-size claim).

Question: Dosovitskiy et al. 2020 (arXiv 2010.11929) find CNNs ahead of ViT on small
          pre-training sets and ViT ahead from about 90M images. At CPU scale: accuracy
          against training-set size on MNIST-1D for a ViT-style Transformer (each of the
          40 samples one vector, learned positions, a class token), a CNN and a GRU over
          the same samples, at equal parameters. `patch4` cuts the signal into 10 patches
          of 4 samples for every model instead (measured once, tiny tier: the ViT led the
          CNN at every size, 0.623 / 0.784 / 0.811 against 0.578 / 0.754 / 0.774 at
          1k / 4k / 16k: over patches the CNN loses its sample-level locality).
Command:  ./launch.sh reproduce vit2020_datasize [--tier tiny|full]
          (one size: ./launch.sh run experiments/repro/vit2020_datasize.py:tiny
           --config.data.train_size=4000)
Expected: reports/vit2020_datasize/report.md: accuracy (mean ± std over seeds) against
          training-set size per family, where the curves meet or how the gap narrows.
Runtime:  tiny: 3 sizes x 2 seeds x 3 families of 500 steps, about 10 minutes on a
          2-core CPU; full: 1,000 to 64,000 examples, 3 seeds, for a GPU.
"""
from attn_research.experiment import (base_config, family_models, finalize, make_comparison,
                                      parse_arg)

MODELS = {
    "vit": ("transformer", dict(num_layers=2, num_heads=4, position="learned", pooling="cls")),
    "cnn": ("cnn", dict(num_layers=3, kernel_size=3)),
    "gru": ("rnn", dict(cell="gru", bidirectional=True, num_layers=1)),
}


def get_config(arg=None):
  words = parse_arg(arg)
  full = "full" in words
  config = base_config("mnist1d", patch=4 if "patch4" in words else 1)
  make_comparison(config, family_models(MODELS), params=26_000)
  config.train.update(num_steps=3000 if full else 500, learning_rate=3e-3,
                      eval_every=500 if full else 250)
  return finalize(config, words, known=("tiny", "full", "patch4"))
