"""Spoken digits (espeak-ng): a Transformer over log-mel frames, tested on voices it never heard.

Question: can self-attention over speech frames (the lecture's "an utterance is a set of
          vectors": one 80-bin log-mel vector per 10 ms) recognise a spoken digit said by a
          voice it never heard? Data: 1,440 utterances of "zero" ... "nine" from 16 espeak-ng
          voices (8 English accents, 16 distinct variants) x 3 speeds x 3 pitches, white
          noise at 20 dB SNR; the 4 voices held out for evaluation are never heard in
          training. `:speaker` asks instead which of the 16 voices speaks, evaluated on
          (speed, pitch) combinations held out from training.
Command:  ./launch.sh run experiments/spoken_digits.py --workdir workdirs/spoken_digits
          (`:speaker` for speaker recognition; `:smoke` shrinks it for tests).
          Synthesis uses the espeak-ng program when it is installed (Debian's 1.51, as
          measured below), else the eSpeak NG library of the pip package espeakng-loader
          (1.52: "one", "four" (en-us) and three voice variants sound different, so the
          numbers below were not measured with it); `--config.data.engine` forces one.
Expected: measured once on a busy 2-core CPU (other jobs running, load about 6), with the
          espeak-ng 1.51 program:
          eval accuracy 78.9 % (284 of 360 utterances by the 4 unheard voices; chance 10 %)
          after 300 steps, while training accuracy is 100 % from step 100: the gap is
          the unheard voices. `:speaker`: 92.8 % of the 320 held-out utterances
          (16 speakers; chance 6.25 %).
Runtime:  measured on the same busy 2-core CPU: training 144 s of wall time (2.2 steps/s,
          compilation and three evaluations included; `:speaker` 111 s, 3.1 steps/s).
          The first run also synthesizes the utterances, once: 35 s to 74 s measured
          (espeak-ng on two threads, slower the busier the machine); later runs load them
          from the data directory's cache in 0.2 s.
"""
from attn_research.experiment import base_config, finalize, parse_arg


def get_config(arg=None):
  words = parse_arg(arg)
  config = base_config("spoken_digits:speaker" if "speaker" in words else "spoken_digits")
  config.model.dropout = 0.1  # 1,080 training utterances: the model fits them within 100 steps
  config.train.num_steps = 300
  config.train.eval_every = 100
  return finalize(config, words, known=("speaker",))
