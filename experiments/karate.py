"""Karate club factions from 8 labelled members, by attention that ignores the edges.

Question: the default Transformer does NOT use the batch's `adjacency` (attention masked
          by the graph comes in a later issue), so this config measures what attention
          over the set of nodes alone reaches on Zachary's karate club: 34 members, 4
          labelled per club (data.seed picks them), the other 26 scored (13 + 13, so
          chance is 0.5). Default features "structural" (8 standardised role features:
          degree, clustering, core number, PageRank, betweenness, closeness, eigenvector
          centrality, triangles) show a member's role but not its faction; `identity`
          (one-hot node ids, the classic GCN input) lets it only memorise the 8 labelled
          members. No positional encoding: node ids are arbitrary.
Command:  ./launch.sh run experiments/karate.py --workdir workdirs/karate
          (`:identity` one-hot node ids instead; `:smoke` shrinks it for tests)
Expected: near chance, as the graph is not seen. Measured (300 steps, training loss
          1e-4, train accuracy 1.0): eval accuracy 0.577 with data seed 0; over data
          seeds 0-4 (--config.data.seed=S) 0.54-0.73, mean 0.61. `:identity`: 0.654
          with seed 0; seeds 0-4 0.46-0.65, mean 0.55. For scale, a rule that reads the
          graph (each member takes the club of its nearest labelled member in hops,
          ties to Mr. Hi) scores 0.85-0.96, mean 0.91, on the same five splits.
          Models that read the graph (issue 4's families; same config, measured over
          data seeds 0-4 with --config.model.name=NAME): with `:identity` features
          graph_attention (attention masked by adjacency + self loops) 0.885-0.962, mean
          0.923; gcn 0.731-0.962, mean 0.869; the edge-blind transformer 0.462-0.654, mean
          0.546. With the default structural features: graph_attention mean 0.662, gcn
          0.669, transformer 0.608.
Runtime:  9-21 s for the whole command (12 s, then 9 s with a warm compile cache; 21 s
          the first time), measured with `.venv/bin/python -m attn_research.main --config
          experiments/karate.py --workdir /tmp/karate_run --no-progress` on a busy
          2-core CPU (load average about 6); the run's own
          wall_time_s (summary.json) is about 3.5 s.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("karate", features="identity" if "identity" in words else "structural",
                       labelled_per_class=4)
  config.model.position = "none"  # node ids are arbitrary: a graph is a set of nodes
  # Every batch is the same graph, so one copy gives the same gradient as 64.
  config.train.update(batch_size=1, eval_batch_size=1, num_steps=300, warmup_steps=10,
                      log_every=25, eval_every=50, checkpoint_every=300)
  return finalize(config, words, known=("identity",))
