"""Which position encodings let a character language model read longer windows than it
was trained on? The ALiBi paper's protocol (Press et al. 2022) on the King James Bible.

Question: a causal Transformer trained on windows of L characters of kjv: what is its
          loss per character (and perplexity) on held-out books read in windows of L, 2L
          and 4L characters, with sinusoidal, learned, FLOATER and ALiBi positions?
Command:  ./launch.sh run experiments/positions_lm.py   (workdir: workdirs/positions_lm)
          ./launch.sh reproduce floater2020_lm runs it over 3 seeds with the protocol
          (reports/floater2020_lm/).
Expected: not measured in this single-seed form; reports/floater2020_lm/report.md holds
          the three-seed table.
Runtime:  one seed of the four encodings is about a third of the reproduction's time
          (README.md has the measurement).
Writes:   WORKDIR/<encoding>/ (one run each), WORKDIR/extrapolation.json, .md and .png.

Data: kjv (data/text.py) with Ruth, Ecclesiastes and James held out as the test text and
Jonah, Philippians and Titus as the validation text that chooses each run's checkpoint
(lowest validation loss); training reads random windows of the other 60 books. Every
position of a window is scored, so at 2L the later half of each window is read with more
context than training ever gave. Encodings at the scale a model can use them (as
experiments/positions.py): sinusoidal and FLOATER scale tokens by sqrt(d_model); the
learned table starts at the tokens' std and its rows past L are never trained; ALiBi in
its causal form (the distance penalty to the left, which the causal mask makes one-sided).
`smoke` trains learned positions for 3 steps and evaluates at L and 2L.
"""
import ml_collections

from attn_research.experiment import base_config, finalize, parse_arg

ENCODINGS = ("sinusoidal:scale_tokens", "learned:init=tokens", "floater:scale_tokens", "alibi")


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("kjv", max_length=32, num_eval=256, validation_books="Jonah,Phi,Titus",
                       eval_split="validation")
  config.model.update(d_model=64, num_layers=2, num_heads=4)
  # A constant rate after warm-up (as experiments/positions.py), so the last quarter of
  # evaluations shows whether a run is still improving. 2,000 steps: the first tiny run
  # of the reproduction, at 1,000 steps (258 s), left 6 of 9 deciding runs still improving
  # by 2-3.3 % over their last quarter (FLOATER's test loss at 2L was below sinusoidal's
  # and learned's there, p = 0.019 and 0.030).
  config.train.update(batch_size=32, num_steps=2000, learning_rate=3e-3, warmup_steps=20,
                      schedule="constant", eval_every=200, checkpoint_every=1000,
                      log_every=100, keep_best="loss")
  config.mode = "extrapolation"
  config.extrapolation = ml_collections.ConfigDict(dict(encodings=ENCODINGS, factors=(1, 2, 4)))
  if "full" in words:  # the floater2020_lm reproduction's full tier (sized for a GPU)
    config.data.update(max_length=256, num_eval=48)
    config.model.update(d_model=256, num_layers=4, num_heads=8)
    config.train.update(batch_size=64, num_steps=10_000, learning_rate=1e-3,
                        checkpoint_every=2000, eval_every=250)
  config = finalize(config, words, known=("full",))
  if "smoke" in words:
    config.extrapolation.update(encodings=("learned:init=tokens",), factors=(1, 2))
  return config
