"""Is a small graph connected? Does it hold a triangle? Attention that ignores the edges.

Question: the default Transformer does NOT use the batch's `adjacency` (attention masked
          by the graph comes in a later issue), so this config measures how much of a
          graph property attention over the set of nodes alone can read off node
          features. Data: the networkx graph atlas (every graph of 1-7 nodes), balanced
          50/50 by subsampling the majority class: 410 train / 102 eval graphs for
          "connected", 276 / 68 for `:triangle`. Node features: the one-hot degree
          (default) or `:constant` (all nodes alike: the edges are the only information).
          No positional encoding: node order is arbitrary.
Command:  ./launch.sh run experiments/graph_property.py --workdir workdirs/graph_property
          (`:triangle` the triangle property; `:constant` constant node features; they
          combine, e.g. `:triangle,constant`; `:smoke` shrinks it for tests)
Expected: well above chance from degrees alone, exactly chance without them. Measured
          (300 steps, data seeds 0-2 via --config.data.seed=S): connected 0.951 with
          seed 0, 0.91-0.96 over seeds 0-2 (mean 0.94); `:triangle` 0.868 with seed 0,
          0.85-0.88 (mean 0.87); `:constant` and `:triangle,constant` 0.500 (every graph
          looks the same). Why degrees suffice: 208 of the 256 disconnected atlas
          graphs have an isolated node, and the rule "an isolated node means disconnected"
          alone scores 0.93, 0.91, 0.93 on the same three eval splits.
          With constant features, models that read the graph (seeds 0-2,
          --config.model.name=NAME): graph_attention stays at 0.500 (mean aggregation of
          identical vectors stays identical: every node looks alike), gcn 0.50-0.59 on
          `connected` (its degree normalisation leaks degree) and 0.47-0.50 on `triangle`.
Runtime:  13-32 s for the whole command (14 s, then 13 s with a warm compile cache; 32 s
          the first time; `:triangle` 14 s), measured with `.venv/bin/python -m
          attn_research.main --config experiments/graph_property.py --workdir
          /tmp/gp_run --no-progress` on a busy 2-core CPU (load average about 6); the
          run's own wall_time_s (summary.json) is about 6 s.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("graph_property",
                       property="triangle" if "triangle" in words else "connected",
                       features="constant" if "constant" in words else "degree")
  config.model.position = "none"  # node order is arbitrary: a graph is a set of nodes
  config.train.update(num_steps=300, eval_every=50, checkpoint_every=300)
  return finalize(config, words, known=("triangle", "constant"))
