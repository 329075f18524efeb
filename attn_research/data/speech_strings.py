"""Connected spoken-digit strings with a label per frame: long speech where the answer is local.

Why: spoken_digits gives one label per utterance, which needs the whole utterance; the
case for truncated attention in speech is the opposite, a long input whose every frame
is explained by the few hundred milliseconds around it. Here an utterance is a string
of min_digits..max_digits digits ("three eight one ..."), 10 ms log-mel frames, and
every frame is labelled with the digit being spoken at its centre, or SILENCE (class 10)
in the gaps between digits and at either end.

How: each digit word is synthesized once per (voice, speed, pitch) with the
spoken_digits machinery (data/speech.py: eSpeak NG, resampled to 16 kHz, silence
trimmed to 10 ms either side of the sound) and cached on disk. A string concatenates
the words of one voice at one (speed, pitch), with silent gaps of gap_ms between them
and edge_ms before and after, then white noise at snr_db over the whole string (gaps
included, so silence is the noise floor) and the spoken_digits log-mel features. Because
the words are joined after synthesis, every sample knows its word and the frame labels
are exact: frame t (samples [t * HOP, t * HOP + WINDOW)) takes the label of its centre
sample. The words are citation forms joined by pauses, not coarticulated connected
speech (the engine would blur the boundaries this task needs).

Splits by voice: test_voices voices (drawn by data.seed) are the test split,
validation_voices more the validation split, the rest train, so both evaluation splits
are voices never heard in training. Training strings are drawn afresh for every batch
(a pure function of data.seed, the run's seed and the step); the validation and test
strings are fixed (num_validation, num_test of them). data.eval_split says which the run
evaluates on. A drawn string longer than max_frames is drawn again (never cut).
Features are standardised per mel bin with the statistics of a fixed sample of
training strings.
"""
from __future__ import annotations

import concurrent.futures
import time

import numpy as np
from tqdm.auto import tqdm

from attn_research.data import speech
from attn_research.data.base import (Task, TaskInfo, check_eval_split, pad_batch, register_task,
                                     save_figure, with_target_mask)
from attn_research.data.cache import cached_arrays, data_dir
from attn_research.data.sources import data_source

SILENCE = len(speech.DIGIT_WORDS)  # class 10: the gaps and both ends
CLASS_NAMES = (*speech.DIGIT_WORDS, "silence")
SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")
FORMAT = 1            # bump when the word synthesis changes what it produces
STATS_STRINGS = 64    # training strings whose frames give the standardisation statistics
MAX_REDRAWS = 100     # drawing a string that fits max_frames
# Streams of the per-split generators (training batches use [seed, run seed, step]).
STREAMS = {"validation": 2**31 - 1, "test": 2**31 - 2, "stats": 2**31 - 3}

DEFAULTS = dict(dir=None, voices=list(speech.DEFAULT_VOICES), speeds=[150, 180, 210],
                pitches=[40, 60], snr_db=20.0, min_digits=3, max_digits=8, gap_ms=[30, 150],
                edge_ms=[50, 150], validation_voices=3, test_voices=3, num_validation=192,
                num_test=288, max_frames=512, eval_split="validation", seed=0, engine="auto",
                prefetch=0)
SMOKE = dict(voices=["en-us+m1", "en-gb+f2", "en-029+m3"], speeds=[200], pitches=[50],
             min_digits=2, max_digits=3, validation_voices=1, test_voices=1, num_validation=8,
             num_test=8, max_frames=192)

data_source("spoken_digit_strings")(speech.speech_source)


# ----------------------------------------------------------------------------- words

def word_grid(cfg):
  """Every (voice, word, speed, pitch) index tuple, in the canonical (cached) order."""
  return [(v, w, s, p) for v in range(len(cfg["voices"])) for w in range(len(speech.DIGIT_WORDS))
          for s in range(len(cfg["speeds"])) for p in range(len(cfg["pitches"]))]


def build_words(cfg, engine):
  """Every digit word of every voice and style: waves (concatenated float32 at 16 kHz),
  lengths (samples), voice, word, speed, pitch, in word_grid order."""
  grid = word_grid(cfg)

  def one(job):
    v, w, s, p = job
    return speech.synthesize(engine, cfg["voices"][v], cfg["speeds"][s], cfg["pitches"][p],
                             speech.DIGIT_WORDS[w])

  with concurrent.futures.ThreadPoolExecutor(speech.WORKERS) as pool:
    waves = list(tqdm(pool.map(one, grid), total=len(grid), disable=None, desc="eSpeak NG",
                      unit="word", leave=False))
  columns = np.asarray(grid, np.int32).reshape(-1, 4)
  return {"waves": np.concatenate(waves), "lengths": np.array([len(w) for w in waves], np.int64),
          "voice": columns[:, 0], "word": columns[:, 1], "speed": columns[:, 2],
          "pitch": columns[:, 3]}


def words_cache_params(cfg, engine) -> dict:
  return dict(voices=list(cfg["voices"]), speeds=list(cfg["speeds"]),
              pitches=list(cfg["pitches"]), engine=engine.identity,
              sample_rate=speech.SAMPLE_RATE, hop=speech.HOP, trim=speech.TRIM_THRESHOLD,
              format=FORMAT)


class WordBank:
  """The cached words, looked up by (voice, word, speed, pitch) indices."""

  def __init__(self, words, cfg):
    self.waves = words["waves"]
    starts = np.concatenate([[0], np.cumsum(words["lengths"])[:-1]])
    shape = (len(cfg["voices"]), len(speech.DIGIT_WORDS), len(cfg["speeds"]), len(cfg["pitches"]))
    self.start = np.zeros(shape, np.int64)
    self.length = np.zeros(shape, np.int64)
    index = (words["voice"], words["word"], words["speed"], words["pitch"])
    self.start[index], self.length[index] = starts, words["lengths"]

  def wave(self, v, w, s, p):
    return self.waves[self.start[v, w, s, p]:self.start[v, w, s, p] + self.length[v, w, s, p]]


# ----------------------------------------------------------------------------- strings

def frame_labels(sample_labels):
  """[samples] label of every sample -> [frames] label of every log-mel frame: the label
  of the frame's centre sample (speech.log_mel's framing; a signal shorter than one
  window is padded with silence)."""
  n = speech.frame_count(max(len(sample_labels), speech.WINDOW))
  centres = np.arange(n) * speech.HOP + speech.WINDOW // 2
  padded = np.concatenate([sample_labels, np.full(speech.WINDOW, SILENCE, sample_labels.dtype)])
  return padded[centres]


def ms_to_samples(ms):
  return int(round(ms * speech.SAMPLE_RATE / 1000))


def draw_string(rng, bank: WordBank, voices, cfg):
  """One string: (wave [samples], sample labels [samples], digits, (voice, speed, pitch))."""
  v = int(rng.choice(voices))
  s, p = int(rng.integers(len(cfg["speeds"]))), int(rng.integers(len(cfg["pitches"])))
  digits = rng.integers(0, len(speech.DIGIT_WORDS), int(rng.integers(cfg["min_digits"],
                                                                      cfg["max_digits"] + 1)))
  gap_lo, gap_hi = (ms_to_samples(x) for x in cfg["gap_ms"])
  edge_lo, edge_hi = (ms_to_samples(x) for x in cfg["edge_ms"])
  pieces, labels = [], []
  for i, d in enumerate(digits):
    pause = rng.integers(edge_lo, edge_hi + 1) if i == 0 else rng.integers(gap_lo, gap_hi + 1)
    pieces += [np.zeros(pause, np.float32), bank.wave(v, d, s, p)]
    labels += [np.full(pause, SILENCE, np.int8), np.full(len(pieces[-1]), d, np.int8)]
  tail = rng.integers(edge_lo, edge_hi + 1)
  pieces.append(np.zeros(tail, np.float32))
  labels.append(np.full(tail, SILENCE, np.int8))
  return np.concatenate(pieces), np.concatenate(labels), digits, (v, s, p)


def log_mels(waves):
  """speech.log_mel of each wave, with one mel projection for all of them: a matrix
  product per string costs more in BLAS start-up than in arithmetic on a busy machine."""
  window, filters = speech._analysis()
  framed = []
  for wave in waves:
    wave = np.asarray(wave, np.float32)
    if len(wave) < speech.WINDOW:
      wave = np.pad(wave, (0, speech.WINDOW - len(wave)))
    n = speech.frame_count(len(wave))
    framed.append(np.lib.stride_tricks.sliding_window_view(wave, speech.WINDOW)[::speech.HOP][:n])
  power_TF = np.abs(np.fft.rfft(np.concatenate(framed) * window, n=speech.N_FFT, axis=-1)) ** 2
  mels_TM = np.log(np.maximum(power_TF @ filters, 1e-10)).astype(np.float32)
  return np.split(mels_TM, np.cumsum([len(f) for f in framed])[:-1])


def make_strings(rng, n, bank, voices, cfg):
  """n strings: unnormalised log-mel inputs [n, max_frames, NUM_MELS], mask, targets
  [n, max_frames] (padding labelled 0, masked out), and per string its digits' count,
  voice, speed and pitch."""
  T = cfg["max_frames"]
  out = {"inputs": np.zeros((n, T, speech.NUM_MELS), np.float32), "mask": np.zeros((n, T), bool),
         "targets": np.zeros((n, T), np.int32)}
  meta = {k: np.zeros(n, np.int32) for k in ("num_digits", "voice", "speed", "pitch", "lengths")}
  waves = []
  for i in range(n):
    for _ in range(MAX_REDRAWS):
      wave, sample_labels, digits, (v, s, p) = draw_string(rng, bank, voices, cfg)
      if speech.frame_count(max(len(wave), speech.WINDOW)) <= T:
        break
    else:
      raise ValueError(f"{MAX_REDRAWS} strings in a row were longer than data.max_frames={T} "
                       f"frames: raise max_frames or lower max_digits={cfg['max_digits']}")
    waves.append(speech.add_noise(wave, cfg["snr_db"], rng))
    labels = frame_labels(sample_labels)
    t = len(labels)
    out["mask"][i, :t], out["targets"][i, :t] = True, labels
    for key, value in (("num_digits", len(digits)), ("voice", v), ("speed", s), ("pitch", p),
                       ("lengths", t)):
      meta[key][i] = value
  for i, feats in enumerate(log_mels(waves)):
    out["inputs"][i, :len(feats)] = feats
  return out, meta


def split_voices(cfg):
  """{split: voice indices}: test and validation voices drawn by data.seed, the rest train."""
  order = np.random.default_rng([cfg["seed"], 1]).permutation(len(cfg["voices"]))
  n_test, n_val = cfg["test_voices"], cfg["validation_voices"]
  return {"test": np.sort(order[:n_test]), "validation": np.sort(order[n_test:n_test + n_val]),
          "train": np.sort(order[n_test + n_val:])}


def _check(cfg):
  speech._check(dict(cfg, eval_voices=1, eval_styles=1), speaker=False)  # voices, speeds, pitches
  if cfg["validation_voices"] < 1 or cfg["test_voices"] < 1 or (
      cfg["validation_voices"] + cfg["test_voices"] >= len(cfg["voices"])):
    raise ValueError(f"data.validation_voices={cfg['validation_voices']} and data.test_voices="
                     f"{cfg['test_voices']} must be >= 1 each and leave at least one of the "
                     f"{len(cfg['voices'])} voices for training")
  if not 1 <= cfg["min_digits"] <= cfg["max_digits"]:
    raise ValueError(f"data.min_digits={cfg['min_digits']} and data.max_digits="
                     f"{cfg['max_digits']} must satisfy 1 <= min_digits <= max_digits")
  for key in ("gap_ms", "edge_ms"):
    lo_hi = cfg[key]
    if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
      raise ValueError(f"data.{key}={lo_hi!r} must be [low, high] milliseconds, 0 <= low <= high")
  for key in ("num_validation", "num_test"):
    if not (isinstance(cfg[key], int) and cfg[key] >= 1):
      raise ValueError(f"data.{key}={cfg[key]!r} must be a positive int")
  if not (isinstance(cfg["prefetch"], int) and cfg["prefetch"] >= 0):
    raise ValueError(f"data.prefetch={cfg['prefetch']!r} must be an int >= 0 (batches made "
                     "ahead in background threads; 0: each when asked)")
  check_eval_split(cfg["eval_split"], EVAL_SPLITS)


class DigitStrings(Task):
  """Training batches drawn afresh from the training voices; a fixed evaluation split.
  `meta` holds the evaluation strings' digit counts, voices, speeds, pitches, lengths."""

  def __init__(self, info, bank, cfg, voices, mean, std):
    self.info, self.bank, self.cfg, self.voices = info, bank, cfg, voices
    self.mean, self.std = mean, std
    split = cfg["eval_split"]
    evaluation, self.meta = make_strings(np.random.default_rng([cfg["seed"], STREAMS[split]]),
                                         cfg[f"num_{split}"], bank, voices[split], cfg)
    self.evaluation = with_target_mask(self.standardise(evaluation))
    self.class_names = CLASS_NAMES
    # Batches made ahead by background threads (data.prefetch > 0): each is a pure
    # function of (step, batch size, seed), so this changes when, never what.
    self._pool = (concurrent.futures.ThreadPoolExecutor(cfg["prefetch"])
                  if cfg["prefetch"] else None)
    self._ahead = {}

  def standardise(self, batch):
    batch["inputs"] = np.where(batch["mask"][..., None], (batch["inputs"] - self.mean) / self.std,
                               0.0).astype(np.float32)
    return batch

  def train_batch(self, step, batch_size, seed):
    if self._pool is None:
      return self.make_train_batch(step, batch_size, seed)
    key = (step, batch_size, seed)
    future = self._ahead.pop(key, None) or self._pool.submit(self.make_train_batch, *key)
    for stale in [k for k in self._ahead if k[1:] != key[1:] or k[0] <= step]:
      self._ahead.pop(stale).cancel()
    for ahead in range(step + 1, step + 1 + self.cfg["prefetch"]):
      if (ahead, batch_size, seed) not in self._ahead:
        self._ahead[ahead, batch_size, seed] = self._pool.submit(self.make_train_batch, ahead,
                                                                 batch_size, seed)
    return future.result()

  def make_train_batch(self, step, batch_size, seed):
    rng = np.random.default_rng([self.cfg["seed"], seed, step])
    batch, _ = make_strings(rng, batch_size, self.bank, self.voices["train"], self.cfg)
    return with_target_mask(self.standardise(batch))

  def eval_batches(self, batch_size):
    n = len(self.evaluation["targets"])
    for start in range(0, n, batch_size):
      yield pad_batch({k: v[start:start + batch_size] for k, v in self.evaluation.items()},
                      batch_size)

  def render(self, example, out_dir):
    """The string's spectrogram with its frame labels drawn underneath; returns the path."""
    n = int(np.asarray(example["mask"]).sum())
    frames, labels = np.asarray(example["inputs"])[:n], np.asarray(example["targets"])[:n]
    spoken = "".join(str(int(d)) for i, d in enumerate(labels)
                     if d != SILENCE and (i == 0 or labels[i - 1] != d))

    def draw(ax):
      ax.imshow(frames.T, origin="lower", aspect="auto", cmap="magma")
      ax.plot(np.arange(n), np.where(labels == SILENCE, np.nan, labels * 8.0), "c.", ms=2)
      ax.set(xlabel="frame (10 ms)", ylabel="mel bin (cyan: digit x 8)",
             title=f"{spoken}: {n} frames")

    return save_figure(draw, out_dir, f"digit_string_{spoken}_{n}.png", figsize=(8, 3), dpi=80)


@register_task("spoken_digit_strings", DEFAULTS, smoke=SMOKE)
def spoken_digit_strings(cfg):
  """Connected spoken-digit strings, a label per 10 ms frame (10 digits + silence).

  Settings: dir (data folder), voices, speeds, pitches, snr_db, engine (as spoken_digits);
  min_digits / max_digits (digits per string), gap_ms / edge_ms ([low, high] pauses
  between digits / before and after), validation_voices / test_voices (voices held out
  for each, drawn by seed), num_validation / num_test (fixed strings), max_frames (T; a
  longer draw is redrawn), eval_split ("validation" or "test"), seed, prefetch (training
  batches made ahead in that many background threads; 0: none).
  """
  _check(cfg)
  engine = speech.get_engine(cfg["engine"])
  speech.check_voices(cfg["voices"], engine)
  t0 = time.perf_counter()
  words = cached_arrays(data_dir(cfg["dir"]), "spoken_digit_words", words_cache_params(cfg, engine),
                        lambda: build_words(cfg, engine))
  bank = WordBank(words, cfg)
  voices = split_voices(cfg)
  sample, _ = make_strings(np.random.default_rng([cfg["seed"], STREAMS["stats"]]), STATS_STRINGS,
                           bank, voices["train"], cfg)
  real = sample["inputs"][sample["mask"]]
  mean, std = real.mean(0), real.std(0) + 1e-5
  info = TaskInfo(input_kind="frames", input_size=speech.NUM_MELS, output_kind="per_vector",
                  num_classes=len(CLASS_NAMES), max_length=cfg["max_frames"], train_size=None)
  task = DigitStrings(info, bank, cfg, voices, mean, std)
  lengths = task.meta["lengths"]
  print(f"[data] spoken_digit_strings: {len(words['lengths'])} words synthesized "
        f"({len(cfg['voices'])} voices), train/validation/test voices "
        f"{len(voices['train'])}/{len(voices['validation'])}/{len(voices['test'])}, "
        f"{cfg['eval_split']} {len(lengths)} strings of {lengths.min()}-{lengths.max()} frames "
        f"(mean {lengths.mean():.0f}, max_frames {cfg['max_frames']}), {engine.identity}, "
        f"ready in {time.perf_counter() - t0:.1f} s")
  return task
