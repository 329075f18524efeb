"""Attending only to neighbours: graph-masked self-attention vs full self-attention vs a GCN
on Zachary's karate club (node classification from 4 labelled members per club).

Question: the lecture's "self-attention on graphs = attend only to the neighbours". Does
          masking attention with the adjacency (graph_attention; `gat` adds GAT's additive
          scores) beat attention over all members (transformer_full: the graph ignored), and
          how does it compare with a GCN (Kipf and Welling 2017)?
Command:  ./launch.sh reproduce gat_karate [--tier tiny|full]
          (one label draw: ./launch.sh run experiments/repro/gat_karate.py:tiny)
Expected: reports/gat_karate/report.md: accuracy mean +- std over label draws per model,
          and the graph coloured by each model's predictions.
Runtime:  tiny: 5 label draws x 3-4 models of 300 steps, a few minutes on a 2-core CPU.
"""
from attn_research.experiment import (base_config, family_models, finalize, make_comparison,
                                      parse_arg)

MODELS = {
    "graph_attention": ("graph_attention", dict(d_model=32, num_layers=2, num_heads=4)),
    "transformer_full": ("transformer", dict(d_model=32, num_layers=2, num_heads=4,
                                                         position="none")),
    "gcn": ("gcn", dict(d_model=32, num_layers=2)),
}


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("karate", features="identity", labelled_per_class=4)
  # Equal parameter budgets: widths solved for 7,200 parameters each.
  make_comparison(config, family_models(MODELS), params=7200)
  # Every batch is the same graph, so one copy gives the same gradient as 64.
  config.train.update(batch_size=1, eval_batch_size=1, num_steps=300, warmup_steps=10,
                      log_every=25, eval_every=50, checkpoint_every=300)
  return finalize(config, words, known=("tiny", "full"))
