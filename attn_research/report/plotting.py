"""Matplotlib without a display, and one way to write a figure (used by every plot)."""
from __future__ import annotations


def pyplot():
  """matplotlib.pyplot on the Agg backend (files only: no display is needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save(fig, path, *, dpi: int = 120, tight: bool = True):
  """Writes fig to path (tight layout first unless tight=False) and closes it."""
  import matplotlib.pyplot as plt
  if tight:
    fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
