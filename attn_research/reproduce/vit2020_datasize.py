"""Accuracy against training-set size: a CNN wins with little data, self-attention catches up.

Dosovitskiy et al. 2020 (arXiv 2010.11929), at CPU scale on MNIST-1D (Greydanus and Kobak
2020). Config: experiments/repro/vit2020_datasize.py (one comparison per size and seed).
"""
from __future__ import annotations

import numpy as np

from attn_research.reproduce import common
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.report.stats import summarize
from attn_research.report.plotting import pyplot, save

SIZES = {"smoke": (500,), "tiny": (1000, 4000, 16000),
         "full": (1000, 2000, 4000, 8000, 16000, 32000, 64000)}
SEEDS = {"smoke": (0,), "tiny": (0, 1), "full": (0, 1, 2)}
SMOKE_MODELS = ("vit",)


def plot(path, sizes, acc):
  plt = pyplot()

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, by_size in acc.items():
    means = [np.mean(by_size[n]) for n in sizes]
    stds = [np.std(by_size[n], ddof=1) if len(by_size[n]) > 1 else 0.0 for n in sizes]
    ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=name)
  ax.set(xscale="log", xlabel="training examples", ylabel="test accuracy (1,000 signals)",
         title="MNIST-1D: accuracy against data size (equal parameters)")
  ax.grid(alpha=0.3, which="both")
  ax.legend()
  save(fig, path, dpi=120)


def gap_summary(sizes, acc, a="vit", b="cnn"):
  """How the mean accuracy gap a - b changes with size, in words."""
  if a not in acc or b not in acc:
    return "n/a"
  gaps = [np.mean(acc[a][n]) - np.mean(acc[b][n]) for n in sizes]
  crossing = [n for n, g in zip(sizes, gaps) if g >= 0]
  words = ", ".join(f"{g:+.1%} at {n:,}" for n, g in zip(sizes, gaps))
  where = (f"{a} reaches {b} from {crossing[0]:,} examples" if crossing
           else f"{a} stays below {b} at every size")
  return f"{a} minus {b}: {words}; {where}"


@register_reproduction("vit2020_datasize")
def run(tier, out_dir):
  acc, params, config = {}, {}, None
  for size in SIZES[tier]:
    config, by_model = common.train_over_seeds(
        "vit2020_datasize", tier, out_dir, SEEDS[tier],
        overrides=[("data.train_size", str(size))], smoke_models=SMOKE_MODELS,
        subdir=f"size_{size}")
    for name, summaries in by_model.items():
      acc.setdefault(name, {})[size] = [common.eval_accuracy(s) for s in summaries]
      params[name] = summaries[0]["params"]
  sizes = list(SIZES[tier])
  plot(out_dir / "accuracy_vs_size.png", sizes, acc)
  rows = [[name, f"{params[name]:,}"] + [summarize(acc[name][n]).format(".3f") for n in sizes]
          for name in acc]
  table = markdown_table(["model", "parameters"] + [f"{n:,} examples" for n in sizes], rows)
  verdict = gap_summary(sizes, acc) + "."
  return Report(
      claim="Without the inductive biases of convolution, self-attention needs more data: "
            "CNNs win on small training sets and ViT catches up and overtakes them as the "
            "data grows (Dosovitskiy et al. 2020, arXiv 2010.11929, Figures 3-4).",
      tables=[f"{config.train.num_steps} steps per run (batch {config.train.batch_size}); "
              f"widths solved for {config.budget.params:,} parameters; mean ± std over "
              f"seeds {list(SEEDS[tier])}; every model reads the "
              f"{config.data.patch}-sample vectors of the MNIST-1D signal:\n\n{table}"],
      paper="ViT paper: pre-trained on ImageNet-1k, ViT-L/16 reaches 76.5 % (below "
            "ViT-B/16, 77.9 %); with ImageNet-21k 85.2 %, with JFT-300M 87.1 %; BiT ResNets "
            "win on the small pre-training sets and ViT from about 90M images.",
      differences="MNIST-1D (1,000 to 64,000 generated signals) instead of ImageNet/JFT "
                  "pre-training and transfer; a fixed number of steps at every size, so the "
                  "small sets are seen for many epochs and the large ones for few (the tiny "
                  "tier's 500 steps of 64 are 2 epochs of 16,000); small models solved for "
                  "equal parameters; the GRU is a third reference the paper does not have.",
      results=dict(sizes=sizes, seeds=list(SEEDS[tier]), accuracy=acc, params=params),
      figures=["accuracy_vs_size.png"], verdict=verdict)
