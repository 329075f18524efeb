"""ListOps (Long Range Arena) at CPU scale: does self-attention learn nested list operations?

Question: trained on LRA-style ListOps with shorter expressions (32-128 tokens instead
          of LRA's 500-2000, depth <= 10, <= 10 arguments), how far above the ~17 % of the
          most frequent class does the default Transformer get?
Command:  ./launch.sh run experiments/listops.py
          (`:lra` uses LRA's lengths, 500-2000 tokens: sized for a GPU, not this CPU)
Expected: measured once (seed 0): eval accuracy 32.2 % at step 500, 33.8 % at 1,000 and
          33.2 % at 1,500, against 15.4 % for always answering the most frequent label
          (0) of the 500 eval expressions; training accuracy was about 38 %.
Runtime:  measured on a 2-core CPU shared with other jobs (load 4-6): 773 s for the run
          (2.0 steps/s), plus about 36 s to generate the 5,500 expressions on first use
          (cached afterwards). A quiet machine is faster.
Reference: LRA (Tay et al. 2020) Transformer 36.37 %, Linear Transformer 16.13 %,
          Performer 18.01 % at 500-2000 tokens with 96k training examples.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  if "lra" in words:
    config = base_config("listops", num_train=96_000, num_eval=2_000)
  else:
    config = base_config("listops", min_length=32, max_length=128, num_train=5_000)
  config.model.position = "sinusoidal"
  config.train.num_steps = 1500
  config.train.eval_every = 500
  return finalize(config, words, known=("lra",))
