"""With little data a CNN wins; with more, self-attention catches up (ViT's data-size claim).

Question: Dosovitskiy et al. 2020 (arXiv 2010.11929) find CNNs ahead of ViT on small
          pre-training sets and ViT ahead from about 90M images. At CPU scale: test
          accuracy against training-set size on MNIST-1D for three arms, each its own
          comparison config (the tokenisation is a data setting):
            vit_patches  a ViT-style Transformer (learned positions, a class token) over
                         10 patches of 4 samples (data.patch=4): the paper's tokenisation
            vit_samples  the same Transformer over the 40 samples, one vector each
            cnn          MNIST-1D's official ConvBase (models/mnist1d_official.py: three
                         stride-2 convolutions, 25 channels, kernels 5/3/3, flatten,
                         linear; 5,210 parameters) with the official Adam lr 1e-2
Command:  ./launch.sh reproduce vit2020_datasize [--tier tiny|full]
          (one arm at one size, its 3 seeds: ./launch.sh run
           experiments/repro/vit2020_datasize.py:tiny,vit_patches
           --config.data.train_size=4000; the reproduction sets the steps per size)
Expected: reports/vit2020_datasize/report.md: test accuracy of each run's best-on-
          validation checkpoint against training-set size, a least-squares line in
          log10 N per arm, the ViT-minus-CNN gap per size and where the lines cross.
Runtime:  measured in the report (tiny: 2-core CPU; full: sized for one GPU).

Training length is set in epochs per size, capped in steps (reproduce/vit2020_datasize.
steps_for); the validation set is carved from each training set (data.validation_
fraction, chosen per size by the reproduction); the fixed 1,000 test signals are scored
once per run by its best-on-validation checkpoint.
"""
from attn_research.experiment import (base_config, family_models, finalize, make_comparison,
                                      parse_arg)

VIT = dict(d_model=16, num_layers=2, num_heads=2, mlp_ratio=2, position="learned",
           pooling="cls")
# arm -> (model family, its settings, data.patch, Adam learning rate)
ARMS = {
    "vit_patches": ("transformer", VIT, 4, 1e-2),
    "vit_samples": ("transformer", VIT, 1, 1e-2),
    "cnn": ("mnist1d_conv", {}, 1, 1e-2),
}
NUM_SEEDS = {"tiny": 3, "full": 5}  # reproduce/protocol.seeds_for
# Shared by every arm: Adam as the official MNIST-1D code (no weight decay, batch 100),
# a short warm-up for the Transformers, then a constant rate: the best-on-validation
# checkpoint, not a decay, ends training.
RECIPE = dict(optimizer="adam", weight_decay=0.0, grad_clip=1.0, schedule="constant",
              warmup_steps=50, batch_size=100, eval_batch_size=500, keep_best="accuracy")


def get_config(arg=None):
  words = parse_arg(arg)
  tier = "full" if "full" in words else "tiny"
  arms = [w for w in words if w in ARMS] or ["vit_patches"]  # the arm that decides
  if len(arms) != 1:
    raise ValueError(f"name one arm of {sorted(ARMS)} in the config argument (e.g. "
                     f"'tiny,vit_patches'; none means vit_patches); got {arms}")
  family, settings, patch, lr = ARMS[arms[0]]
  config = base_config("mnist1d", patch=patch, validation_fraction=0.2,
                       eval_split="validation")
  make_comparison(config, family_models({arms[0]: (family, settings)}), enforce=False)
  config.num_seeds = NUM_SEEDS[tier]
  config.train.update(RECIPE, learning_rate=lr, num_steps=1000, eval_every=100,
                      log_every=100, checkpoint_every=1000)
  return finalize(config, words, known=("tiny", "full", *ARMS))
