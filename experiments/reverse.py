"""Sequence reversal with an encoder-decoder Transformer (Vaswani et al. 2017), seq2seq.

Question: can an encoder-decoder Transformer (cross-attention from the decoder to the
          encoder) learn to output a random source of 8-16 symbols reversed, then an end
          token, with teacher forcing?
Command:  ./launch.sh run experiments/reverse.py
Expected: measured once (seed 0, default encoder_decoder: d_model 64, 2 + 2 layers, 4 heads,
          238k parameters, 1,000 steps of batch 64): next-token accuracy over every target
          token (end token included, teacher forcing) of 512 held-out sources 64.1 % at step
          250, 89.9 % at 500, 98.1 % at 750 and 99.2 % at 1,000 (eval loss 0.043); chance
          is about 10 %.
Runtime:  measured with `nice -n 19 .venv/bin/python -m attn_research.main --config
          experiments/reverse.py --workdir /tmp/reverse_run` (what `run` calls) on a
          2-core CPU shared with another job (load about 3-4): 87 s wall, 13.5 steps/s.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("reverse", model="encoder_decoder")
  config.train.num_steps = 1000
  config.train.eval_every = 250
  config.train.eval_batch_size = 128
  if "smoke" in words:  # experiment.smoke shrinks d_model / heads; one layer on each side
    config.model.update(encoder_layers=1, decoder_layers=1)
  return finalize(config, words)
