"""The causal copy task of "Transformers are RNNs" (Katharopoulos et al. 2020), decoder-only.

Question: can a causal Transformer learn to copy a random sequence of 32-62 symbols
          (`0 x 0 x`, loss on the second copy only)?
Command:  ./launch.sh run experiments/copy.py
Expected: measured once (seed 0, default Transformer, 102k parameters, 1,500 steps):
          next-token accuracy on the second copy 40.3 % at step 500, 90.1 % at 1,000 and
          94.1 % at 1,500 (eval loss 0.17) over 512 held-out sequences; chance is 10 %.
Runtime:  measured on a 2-core CPU shared with other jobs (load about 4): 552 s
          (2.8 steps/s).
Reference: the paper trains 4 layers, 8 heads, d_model 256 with RAdam (lr 1e-3, lr / 10
          after 30 % of 3,000 updates), batch 64; the `paper` argument selects that
          setup (sized for a GPU).
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("copy")
  config.model.position = "sinusoidal"
  config.train.num_steps = 1500
  config.train.eval_every = 500
  config.train.eval_batch_size = 128
  if "paper" in words:
    config.model.update(d_model=256, num_layers=4, num_heads=8, dropout=0.1)
    config.train.update(optimizer="radam", learning_rate=1e-3, weight_decay=0.01,
                        schedule="step", decay_fraction=0.3, warmup_steps=0, num_steps=3000)
  return finalize(config, words, known=("paper",))
