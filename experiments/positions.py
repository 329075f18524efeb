"""Which position encodings extrapolate to longer sequences than they were trained on?

Question: a Transformer trained on multi-query associative recall at length L: how
          accurate is it at 2L and 4L with each position encoding (none, sinusoidal,
          learned, relative, rotary, alibi, floater)?
Command:  ./launch.sh run experiments/positions.py   (workdir: workdirs/positions)
Expected: measured once (seed 0; Transformer d_model 64, 2 layers, 4 heads; 3,000 steps
          of batch 64 at L = 12: 4 key-value pairs and 4 queries, 16 keys, 8 values;
          eval accuracy over 512 held-out sequences per length, chance 0.125):

          | position   | L = 12 (trained) | 2L = 24 | 4L = 48 |
          |------------|------------------|---------|---------|
          | none       | 0.414            | 0.315   | 0.256   |
          | sinusoidal | 0.415            | 0.245   | 0.187   |
          | learned    | 0.412            | 0.312   | 0.254   |
          | relative   | 0.966            | 0.349   | 0.246   |
          | rotary     | 1.000            | 0.779   | 0.286   |
          | alibi      | 0.405            | 0.321   | 0.254   |
          | floater    | 0.408            | 0.246   | 0.123   |

          Only the two encodings that act inside attention as a function of the offset
          (rotary, T5 relative) learned to bind a key to the value after it within
          3,000 steps; the others stayed on the plateau of "none" (about 41 %: one of
          the values present, without knowing which). Pilot runs with sinusoidal and
          learned positions were still on it after 6,000 steps, with a learning rate
          of 3e-3, and with 3 layers of 8 heads. Rotary keeps 78 % at 2L and falls to
          29 % at 4L; relative falls to 35 % at 2L (offsets of 12 and more, new at 2L,
          fall in T5 buckets that training never updated). The plateau models lose
          accuracy with length as more distinct values appear; sinusoidal and floater
          fall below "none", floater to chance at 4L, where its ODE runs to t = 4.7
          against 1.1 in training. So the table compares extrapolation between rotary
          and relative only; for the others it shows what unseen positions do to a
          model that did not learn to use positions.
Runtime:  376 s wall (429 s CPU) for all seven on the 2-core CPU, other jobs sharing it
          (load average 1.8 at the start, 5 at the end); about 65 train steps/s each.
Writes:   WORKDIR/<encoding>/ (one training run each), WORKDIR/extrapolation.json,
          WORKDIR/extrapolation.md (the table) and WORKDIR/extrapolation.png
          (accuracy against evaluation length, one line per encoding).

The task's rule does not depend on its length: L = 2 * num_pairs + num_queries, and
evaluating at factor x L multiplies both num_pairs and num_queries (keys stay distinct:
num_keys >= 4 * num_pairs). Every model is built for the longest length, 4L, so learned
absolute positions have rows past L that training never reaches; the table reports
what they do there. `smoke` trains one encoding (learned) for 3 steps and evaluates
it at L and 2L (seconds: compiling dominates). `full` (10,000 steps, d_model 128, 4 layers)
is the floater2020 reproduction's full tier, sized for a GPU.
"""
import ml_collections

from attn_research.experiment import base_config, finalize, parse_arg

ENCODINGS = ("none", "sinusoidal", "learned", "relative", "rotary", "alibi", "floater")


def get_config(arg=None):
  words = parse_arg(arg)
  # L = 2 * 4 + 4 = 12 vectors; at 4L all 16 keys appear. (8 pairs of 32 keys and 16
  # values stayed on the 25 % plateau for 3,000 steps: too slow for a 2-core CPU.)
  config = base_config("associative_recall", num_pairs=4, num_queries=4, num_keys=16,
                       num_values=8)
  # A constant rate after warm-up: under the cosine decay the recall circuit was still
  # on its plateau (42 %) when the rate had decayed; at constant rate it jumped to
  # 99.8 % between steps 1,000 and 2,000 (rotary, pilot run).
  config.train.update(num_steps=3000, schedule="constant", eval_every=500,
                      checkpoint_every=1000)
  config.mode = "extrapolation"
  config.extrapolation = ml_collections.ConfigDict(dict(encodings=ENCODINGS, factors=(1, 2, 4)))
  if "full" in words:  # the floater2020 reproduction's full tier (sized for a GPU)
    config.train.update(num_steps=10_000, checkpoint_every=2000)
    config.model.update(d_model=128, num_layers=4, num_heads=8)
  config = finalize(config, words, known=("full",))
  if "smoke" in words:
    # The smoke task's 4 pairs need 8 distinct keys at 2L.
    config.data.num_keys = 2 * config.data.num_pairs
    config.extrapolation.update(encodings=("learned",), factors=(1, 2))
  return config
