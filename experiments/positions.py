"""Which position encodings extrapolate to longer sequences than they were trained on?

Question: a Transformer trained on associative recall at length L, with a fixed number of
          key-value pairs placed among filler tokens, so that a longer sequence has the
          same pairs and queries and only more filler: how accurate is it at 2L and 4L
          with each position encoding (none, sinusoidal, learned, relative, rotary,
          alibi, floater)?
Command:  ./launch.sh run experiments/positions.py   (workdir: workdirs/positions)
          ./launch.sh reproduce floater2020 runs the same settings over 3 seeds with a
          validation split and the test split scored once (reports/floater2020/).
Expected: not measured in this single-seed form; reports/floater2020/report.md holds the
          measured table of the three-seed protocol run of these settings.
Runtime:  not measured alone; the three-seed tiny run of the same settings took 1,438 s
          on a 2-core CPU shared with other jobs (479 CPU-s), so one seed is a few minutes.
Writes:   WORKDIR/<encoding>/ (one training run each), WORKDIR/extrapolation.json,
          WORKDIR/extrapolation.md (the table) and WORKDIR/extrapolation.png
          (accuracy against evaluation length, one line per encoding).

Each encoding at the scale that lets a model use it (nn/positions/): sinusoidal and
FLOATER scale the token vectors by sqrt(d_model) as the Transformer paper does (the
unscaled sin/cos vector, norm 5.7 at d = 64, swamped tokens of norm ~1); the learned
table starts at the tokens' std instead of BERT's 0.02; ALiBi looks left with half its
heads and right with the other half (the symmetric form cannot tell a key's left
neighbour from its right one, which this bidirectional task needs). FLOATER starts from
the sinusoidal encoding plus an ODE term that is zero at initialisation (its paper's
compatibility form).

The task (data/synthetic.py associative_recall_filler): L = `length` vectors, the last
num_queries of them queries; evaluating at factor x L multiplies `length` only. Every
model is built for the longest length, 4L, so learned absolute positions have rows past L
that training never reaches; the table reports what they do there. `smoke` trains one
encoding (learned) for 3 steps and evaluates it at L and 2L. `full` is the floater2020
reproduction's full tier (sized for a GPU; not run here), where FLOATER is also
fine-tuned from the trained sinusoidal model (FLOATER_FINETUNE below).
"""
import ml_collections

from attn_research.experiment import base_config, finalize, parse_arg

ENCODINGS = ("none", "sinusoidal:scale_tokens", "learned:init=tokens", "relative", "rotary",
             "alibi:bidirectional=split", "floater:scale_tokens")
# The full tier's extra arm: FLOATER initialised from the trained sinusoidal run (same
# token scaling, so the sum it starts from is that model's), as the FLOATER authors
# fine-tune from a trained Transformer. The reproduction fills in init_from.
FLOATER_FINETUNE = dict(position="floater:scale_tokens", source="sinusoidal:scale_tokens",
                        init_skip=".*position/.*", steps_fraction=0.5)


def get_config(arg=None):
  words = parse_arg(arg)
  # L = 12: 2 pairs (4 vectors), 4 filler, 4 queries; at 4L the same 2 pairs sit among
  # 40 filler. (Pilot runs with 4 pairs of 16 keys and 8 values at L = 24, or 3 pairs at
  # L = 16, stayed on the position-blind plateau for 800-1,000 steps with learned and
  # sinusoidal positions; with 2 pairs of 4 keys learned positions (d_model 64) left it
  # at step ~500, split ALiBi (d_model 32) at step ~200, while sinusoidal and FLOATER
  # (d_model 32) were still climbing at step 1,000: hence 1,500 steps.)
  config = base_config("associative_recall_filler", num_pairs=2, num_queries=4, num_keys=4,
                       num_values=4, length=12, num_eval=512)
  config.model.update(d_model=32, num_layers=2, num_heads=4)
  # A constant rate after warm-up: under a cosine decay recall circuits were still on
  # their plateau when the rate had decayed (pilot runs of the earlier recall task).
  config.train.update(num_steps=1500, learning_rate=3e-3, schedule="constant", eval_every=100,
                      checkpoint_every=500, log_every=100)
  config.mode = "extrapolation"
  config.extrapolation = ml_collections.ConfigDict(dict(encodings=ENCODINGS, factors=(1, 2, 4)))
  if "full" in words:  # the floater2020 reproduction's full tier (sized for a GPU)
    config.data.update(num_pairs=4, num_keys=16, num_values=8, length=32, num_eval=2048)
    config.train.update(num_steps=10_000, learning_rate=1e-3, checkpoint_every=2000,
                        eval_every=250)
    config.model.update(d_model=128, num_layers=4, num_heads=8)
    config.extrapolation.finetune = ml_collections.ConfigDict(FLOATER_FINETUNE)
  config = finalize(config, words, known=("full",))
  if "smoke" in words:
    config.extrapolation.update(encodings=("learned",), factors=(1, 2))
  return config
