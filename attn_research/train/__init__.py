"""Train state, jitted steps, the loop, checkpoints and the metric writer."""
from attn_research.train.loop import run

__all__ = ["run"]
