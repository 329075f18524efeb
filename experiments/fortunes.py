"""A Transformer reads a fortune byte by byte and names the file it comes from.

Question: can self-attention over raw UTF-8 bytes tell Debian's fortune files apart?
          9 classes (computers, cookie, definitions, miscellaneous, people, politics,
          science, songs-poems, work), 6,315 training and 1,577 eval quotes, the first
          128 bytes of each; always answering the largest class scores 15.7 %.
Command:  ./launch.sh run experiments/fortunes.py --workdir workdirs/fortunes
          (needs `apt-get install -y fortunes`; `:smoke` shrinks it for tests)
Expected: eval accuracy 52.8 % (loss 1.35) after 300 steps of 32 quotes (47.7 % at
          step 100, 51.4 % at 200), against 15.7 % for the majority class; measured once
          with `.venv/bin/python -m attn_research.main --config experiments/fortunes.py
          --workdir /tmp/fortunes_run --no-progress` (125,321 parameters). A 1,000-step
          run of 64 x 128 bytes peaked at 53.1 % (step 500) while training accuracy rose
          to 71 %: it overfits.
Runtime:  110 s wall, measured on a busy 2-core CPU (3.8 steps/s).
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  config = base_config("fortunes", max_length=128)
  # Eval accuracy stops improving after a few hundred steps (the model then memorises
  # the 6k quotes), so the run is short.
  config.train.update(batch_size=32, num_steps=300, warmup_steps=20, eval_every=100,
                      checkpoint_every=100)
  return finalize(config, parse_arg(arg))
