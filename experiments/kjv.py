"""Character-level language model of the King James Bible with a causal Transformer.

Question: how well does a small decoder-only Transformer (2 layers, d_model 64, 4 heads,
          learned positions) predict the next character of held-out books (Ruth,
          Ecclesiastes, James) after a two-minute CPU run on the other 63 books?
          Windows of 64 characters, every position scored; 64 tokens (63 characters
          + unknown).
Command:  ./launch.sh run experiments/kjv.py --workdir workdirs/kjv
          (needs `apt-get install -y bible-kjv-text`; `:smoke` shrinks it for tests)
Expected: eval loss 1.553 nats per character (2.24 bits), next-character accuracy
          54.4 %, after 1,000 steps of 32 windows (2.09 nats at step 250, 1.71 at 500,
          1.58 at 750); measured once with `.venv/bin/python -m attn_research.main
          --config experiments/kjv.py --workdir /tmp/kjv_run --no-progress` (112,448
          parameters). The eval loss was still falling when the run ended.
Runtime:  113 s wall, measured on a busy 2-core CPU (9.6 steps/s).
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  # 512 eval windows of 64 characters: the first 32,768 characters of the held-out text.
  config = base_config("kjv", max_length=64, num_eval=512)
  # Many short steps learn faster than few long ones in two minutes: at 300 steps of
  # 32 x 128 characters (lr 1e-3) the model was still at 2.28 nats per character.
  config.train.update(batch_size=32, num_steps=1000, learning_rate=3e-3, warmup_steps=20)
  return finalize(config, parse_arg(arg))
