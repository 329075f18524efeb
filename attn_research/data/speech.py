"""Spoken digits synthesized with eSpeak NG: speech as a set of log-mel frame vectors.

Each utterance is one word, "zero" ... "nine", spoken by a voice (an English accent
plus an eSpeak NG voice variant, e.g. "en-us+f2") at one speed (words per minute) and
one pitch (0-99), as `espeak-ng -v VOICE -s SPEED -p PITCH --stdout WORD` speaks it.
The 22,050 Hz output is resampled to 16 kHz (scipy), its leading and trailing silence
trimmed, and white noise added at `snr_db` (seeded per utterance). Features: log-mel
spectrogram, 25 ms Hann window, 10 ms hop, 512-point FFT, 80 mel bins over 0-8 kHz
(HTK mel scale), standardized per mel bin with the training frames' statistics.

The engine (data.engine, data/espeak.py): "program" runs Debian's `espeak-ng` (needs
root to install); "library" runs the eSpeak NG library and voice data of the pip
package espeakng-loader (installed with the other dependencies: no root), each
utterance in a freshly forked process so that it too is a pure function of its
arguments; "auto" (default) is the program when it is on PATH, else the library. The
library reproduces the program of its own version sample for sample (checked with
Debian's 1.51 library), but the pinned library is 1.52.0 and Debian 12's program 1.51:
of the 1,440 default utterances 1,035 come out byte-identical; "one" (every accent) and
"four" (the en-us accent) are pronounced differently, and the f3, f5 and klatt
variants draw their noise from 1.52's own random generator. The README's speech numbers were
measured with the 1.51 program.

Names:
  spoken_digits          10 classes (the digit); evaluation holds out `eval_voices`
                         whole voices, so the eval speakers are never heard in training.
  spoken_digits:speaker  one class per voice (speaker recognition); evaluation holds out
                         `eval_styles` (speed, pitch) combinations: the same speakers,
                         utterances never heard in training.
Each name reads only the hold-out setting of its own split: eval_voices for the digits,
eval_styles for the speakers.

The synthesized features are cached on disk (data.cache.cached_arrays) under a key
that includes the engine and its version, so another engine rebuilds them.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import functools
import hashlib
import math
import shutil
import time

import numpy as np
from scipy import signal
from tqdm.auto import tqdm

from attn_research import args
from attn_research.data.base import (ArrayTask, TaskInfo, lengths_to_mask, register_task,
                                     save_figure)
from attn_research.data.cache import (MissingProgramError, cached_arrays, data_dir,
                                      require_program)
from attn_research.data.espeak import Engine, LibraryEngine, ProgramEngine, SynthesisError
from attn_research.data.sources import Source, data_source, pip_package
from attn_research.registry import check_choice

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000
WINDOW = 400        # 25 ms at 16 kHz
HOP = 160           # 10 ms
N_FFT = 512
NUM_MELS = 80
TRIM_THRESHOLD = 0.02  # of the peak amplitude: what counts as silence at either end
FORMAT = 2          # bump when the synthesis or feature code changes what it produces
WORKERS = 2         # threads computing features while the engine synthesizes the next word
ENGINES = ("auto", "program", "library")
PROGRAM = "espeak-ng"
PACKAGE = "espeakng-loader"
INSTALL_HINT = (f"pip install -c constraints.txt {PACKAGE} (./launch.sh installs it with "
                f"the other dependencies)")

# 8 eSpeak NG English accents x 16 distinct variants: holding out a voice holds out its variant.
DEFAULT_VOICES = (
    "en-us+m1", "en-gb+m2", "en-gb-scotland+m3", "en-gb-x-gbclan+m4",
    "en-gb-x-rp+m5", "en-gb-x-gbcwmd+m6", "en-029+m7", "en-us-nyc+m8",
    "en-us+f1", "en-gb+f2", "en-gb-scotland+f3", "en-gb-x-gbclan+f4",
    "en-gb-x-rp+f5", "en-gb-x-gbcwmd+klatt", "en-029+croak", "en-us-nyc+Andy")

# Lists, not tuples: config.json stores lists, and resuming compares it with the config.
DEFAULTS = dict(dir=None, voices=list(DEFAULT_VOICES), speeds=[130, 175, 220],
                pitches=[35, 50, 65], snr_db=20.0, eval_voices=4, eval_styles=2, seed=0,
                max_frames=90, engine="auto")
SMOKE = dict(voices=["en-us+m1", "en-gb+f2", "en-029+m3"], speeds=[175], pitches=[40, 60],
             eval_voices=1, eval_styles=1)


# ----------------------------------------------------------------------------- features

def hz_to_mel(f):
  return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
  return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(num_mels=NUM_MELS, n_fft=N_FFT, sample_rate=SAMPLE_RATE, fmin=0.0,
                   fmax=None):
  """[n_fft // 2 + 1, num_mels] triangular filters, peak 1, centres evenly spaced in mel.

  Filter m rises from point m to 1 at point m + 1 and falls to 0 at point m + 2 of
  num_mels + 2 points spread evenly on the mel scale; the triangles are evaluated at
  each FFT bin's frequency (not snapped to bins), so no narrow low filter is empty.
  """
  fmax = sample_rate / 2 if fmax is None else fmax
  if not 0 <= fmin < fmax <= sample_rate / 2:
    raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2}; got {fmin}, {fmax}")
  points_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), num_mels + 2))
  bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
  left, centre, right = points_hz[:-2], points_hz[1:-1], points_hz[2:]
  rising = (bins_hz[:, None] - left) / (centre - left)
  falling = (right - bins_hz[:, None]) / (right - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frame_count(num_samples: int) -> int:
  """Frames of WINDOW samples every HOP samples (a shorter signal is padded to one frame)."""
  return 1 + max(0, num_samples - WINDOW) // HOP


@functools.lru_cache(maxsize=1)
def _analysis():
  return np.hanning(WINDOW + 1)[:-1].astype(np.float32), mel_filterbank()


def log_mel(wave):
  """[samples] float wave at 16 kHz -> [frames, NUM_MELS] float32 log-mel energies."""
  wave = np.asarray(wave, np.float32)
  if len(wave) < WINDOW:
    wave = np.pad(wave, (0, WINDOW - len(wave)))
  n = frame_count(len(wave))
  frames_TW = np.lib.stride_tricks.sliding_window_view(wave, WINDOW)[::HOP][:n]
  window, filters = _analysis()
  power_TF = np.abs(np.fft.rfft(frames_TW * window, n=N_FFT, axis=-1)) ** 2
  return np.log(np.maximum(power_TF @ filters, 1e-10)).astype(np.float32)


# ----------------------------------------------------------------------------- eSpeak NG

@functools.lru_cache(maxsize=1)
def library_engine() -> LibraryEngine:
  """The engine of the pip package espeakng-loader (its library and voice data)."""
  package = pip_package(PACKAGE, "espeakng_loader")
  if package is None:
    raise MissingProgramError(f"data.engine='library' synthesizes speech with the eSpeak NG "
                              f"library of the pip package {PACKAGE}, which is not installed: "
                              f"{INSTALL_HINT}")
  import espeakng_loader
  engine = LibraryEngine(espeakng_loader.get_library_path(), espeakng_loader.get_data_path(),
                         package)
  atexit.register(engine.close)
  return engine


@functools.lru_cache(maxsize=4)
def program_engine(path: str) -> ProgramEngine:
  return ProgramEngine(path)


def get_engine(choice: str = "auto") -> Engine:
  """data.engine -> the engine (see the module docstring)."""
  check_choice("data.engine", choice, ENGINES)
  if choice == "auto":
    choice = "program" if shutil.which(PROGRAM) else "library"
  if choice == "program":
    return program_engine(require_program(PROGRAM, "espeak-ng"))
  return library_engine()


@data_source("spoken_digits")
def speech_source() -> Source:
  """What data.engine="auto" (the default) uses here; the library is probed by starting it."""
  if shutil.which(PROGRAM):
    return Source(True, f"{program_engine(shutil.which(PROGRAM)).identity} "
                        f"({shutil.which(PROGRAM)})",
                  f"data.engine=library uses the pip package {PACKAGE} instead")
  try:
    engine = library_engine()
    return Source(True, f"{engine.identity}: {len(engine.voices[0])} English accents, "
                        f"{len(engine.voices[1])} variants",
                  "apt-get install -y espeak-ng gives the program the README's speech numbers "
                  "were measured with")
  except (MissingProgramError, SynthesisError, OSError) as e:
    return Source(False, f"the eSpeak NG library of the pip package {PACKAGE} ({e})",
                  f"{INSTALL_HINT}, or apt-get install -y espeak-ng")


def check_voices(voices, engine: Engine):
  """Every voice is ACCENT+VARIANT, both known (eSpeak NG silently ignores unknown variants)."""
  accents, variants = engine.voices
  for voice in voices:
    accent, plus, variant = voice.partition("+")
    if accent not in accents or not plus or variant not in variants:
      raise ValueError(
          f"data.voices holds {voice!r}: a voice is ACCENT+VARIANT with ACCENT one of "
          f"{sorted(accents)} and VARIANT one of {sorted(variants)} (eSpeak NG's voices/!v "
          f"files), e.g. 'en-us+f2'")


def raw_samples(engine: Engine, voice: str, speed: int, pitch: int, word: str):
  """(sample rate, int16 samples) exactly as eSpeak NG makes them. The voice is checked
  first: eSpeak NG would speak an unknown variant with the plain accent, silently."""
  check_voices([voice], engine)
  rate, data = engine.synthesize(voice, speed, pitch, word)
  return rate, np.frombuffer(data, "<i2")


def synthesize(engine: Engine, voice: str, speed: int, pitch: int, word: str):
  """The word as a float32 wave at 16 kHz in [-1, 1], silence trimmed at both ends."""
  rate, samples = raw_samples(engine, voice, speed, pitch, word)
  if len(samples) == 0:
    raise RuntimeError(f"eSpeak NG produced no samples for {voice} {speed} {pitch} {word!r}")
  g = math.gcd(SAMPLE_RATE, rate)
  wave = signal.resample_poly(samples.astype(np.float32) / 32768.0, SAMPLE_RATE // g, rate // g)
  loud = np.nonzero(np.abs(wave) > TRIM_THRESHOLD * np.abs(wave).max())[0]
  if len(loud) == 0:
    raise RuntimeError(f"eSpeak NG produced silence for {voice} {speed} {pitch} {word!r}")
  margin = HOP  # 10 ms kept either side of the sound
  return wave[max(0, loud[0] - margin):loud[-1] + margin + 1].astype(np.float32)


def add_noise(wave, snr_db, rng):
  """wave plus white Gaussian noise at snr_db below the wave's mean power (None or inf: clean)."""
  if snr_db is None or math.isinf(snr_db):
    return wave
  noise_power = np.mean(wave.astype(np.float64) ** 2) / 10.0 ** (snr_db / 10.0)
  return (wave + rng.normal(0.0, math.sqrt(noise_power), wave.shape)).astype(np.float32)


# ----------------------------------------------------------------------------- the data

def utterance_grid(cfg):
  """Every (voice, word, speed, pitch) index tuple, in the canonical (cached) order."""
  return [(v, w, s, p) for v in range(len(cfg["voices"])) for w in range(len(DIGIT_WORDS))
          for s in range(len(cfg["speeds"])) for p in range(len(cfg["pitches"]))]


def build_utterances(cfg, engine: Engine):
  """All utterances: frames [sum of lengths, NUM_MELS] (concatenated, unnormalised log-mel),
  lengths, voice, word, speed, pitch (indices into the settings), in utterance_grid order."""
  grid = utterance_grid(cfg)

  def one(index_and_job):
    i, (v, w, s, p) = index_and_job
    wave = synthesize(engine, cfg["voices"][v], cfg["speeds"][s], cfg["pitches"][p],
                      DIGIT_WORDS[w])
    return log_mel(add_noise(wave, cfg["snr_db"], np.random.default_rng([cfg["seed"], i])))

  with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
    feats = list(tqdm(pool.map(one, enumerate(grid)), total=len(grid), disable=None,
                      desc="eSpeak NG", unit="utt", leave=False))
  columns = np.asarray(grid, np.int32).reshape(-1, 4)
  return {"frames": np.concatenate(feats), "lengths": np.array([len(f) for f in feats], np.int32),
          "voice": columns[:, 0], "word": columns[:, 1], "speed": columns[:, 2],
          "pitch": columns[:, 3]}


def cache_params(cfg, engine: Engine) -> dict:
  """Everything the cached arrays depend on."""
  return dict(voices=list(cfg["voices"]), speeds=list(cfg["speeds"]),
              pitches=list(cfg["pitches"]), snr_db=cfg["snr_db"], seed=cfg["seed"],
              engine=engine.identity, sample_rate=SAMPLE_RATE, window=WINDOW, hop=HOP,
              n_fft=N_FFT, num_mels=NUM_MELS, trim=TRIM_THRESHOLD, format=FORMAT)


def _check(cfg, speaker):
  voices, speeds, pitches = cfg["voices"], cfg["speeds"], cfg["pitches"]
  if not voices or len(set(voices)) != len(voices):
    raise ValueError(f"data.voices={voices!r} must be a non-empty list of distinct voices")
  if not speeds or not all(isinstance(s, int) and 80 <= s <= 450 for s in speeds):
    raise ValueError(f"data.speeds={speeds!r} must be words per minute, ints in [80, 450]")
  if not pitches or not all(isinstance(p, int) and 0 <= p <= 99 for p in pitches):
    raise ValueError(f"data.pitches={pitches!r} must be ints in [0, 99]")
  if len(set(speeds)) != len(speeds) or len(set(pitches)) != len(pitches):
    raise ValueError(f"data.speeds={speeds!r} and data.pitches={pitches!r} must not repeat")
  styles = len(speeds) * len(pitches)
  if not speaker and not 1 <= cfg["eval_voices"] < len(voices):
    raise ValueError(f"data.eval_voices={cfg['eval_voices']} must be in [1, {len(voices) - 1}]: "
                     f"spoken_digits holds out whole voices, and there are {len(voices)}")
  if speaker and not 1 <= cfg["eval_styles"] < styles:
    raise ValueError(f"data.eval_styles={cfg['eval_styles']} must be in [1, {styles - 1}]: "
                     f"spoken_digits:speaker holds out (speed, pitch) combinations, and there "
                     f"are {len(speeds)} x {len(pitches)}")
  if cfg["snr_db"] is not None and not isinstance(cfg["snr_db"], (int, float)):
    raise ValueError(f"data.snr_db={cfg['snr_db']!r} must be a number of dB (inf: clean)")
  if not (isinstance(cfg["max_frames"], int) and cfg["max_frames"] >= 1):
    raise ValueError(f"data.max_frames={cfg['max_frames']!r} must be a positive int")


def split_indices(utts, cfg, speaker):
  """(train, eval) utterance indices. Digits: eval = the utterances of eval_voices voices
  drawn by seed. Speaker: eval = every voice's utterances at eval_styles held-out
  (speed, pitch) combinations drawn by seed."""
  rng = np.random.default_rng([cfg["seed"], 1])
  if speaker:
    style = utts["speed"] * len(cfg["pitches"]) + utts["pitch"]
    held = rng.permutation(len(cfg["speeds"]) * len(cfg["pitches"]))[:cfg["eval_styles"]]
    is_eval = np.isin(style, held)
  else:
    held = rng.permutation(len(cfg["voices"]))[:cfg["eval_voices"]]
    is_eval = np.isin(utts["voice"], held)
  return np.nonzero(~is_eval)[0], np.nonzero(is_eval)[0]


def pad_frames(frames, lengths, idx, max_frames):
  """[len(idx), max_frames, NUM_MELS] inputs and mask for utterances idx (real frames first)."""
  starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  inputs = np.zeros((len(idx), max_frames, frames.shape[1]), np.float32)
  for row, i in enumerate(idx):
    inputs[row, :lengths[i]] = frames[starts[i]:starts[i] + lengths[i]]
  return inputs, lengths_to_mask(lengths[idx], max_frames)


class SpokenDigits(ArrayTask):
  """ArrayTask plus the names of its classes and, per split, each example's utterance
  (`meta[split]`: voice, word, speed, pitch indices into the settings, and length)."""

  def __init__(self, info, train, evaluation, class_names, meta):
    super().__init__(info, train, evaluation)
    self.class_names, self.meta = class_names, meta

  def render(self, example, out_dir):
    """Saves the example's spectrogram (real frames only) as a PNG; returns its path."""
    n = int(np.asarray(example["mask"]).sum())
    frames = np.asarray(example["inputs"])[:n]
    label = self.class_names[int(np.asarray(example["targets"]))]
    digest = hashlib.sha1(frames.tobytes()).hexdigest()[:8]

    def draw(ax):
      ax.imshow(frames.T, origin="lower", aspect="auto", cmap="magma")
      ax.set(xlabel="frame (10 ms)", ylabel="mel bin", title=f"{label}: {n} frames")

    return save_figure(draw, out_dir, f"spoken_digits_{label.replace('+', '_')}_{digest}.png",
                       figsize=(6, 3), dpi=80)


@register_task("spoken_digits", DEFAULTS, smoke=SMOKE, takes_arg=True)
def spoken_digits(cfg):
  """Spoken digits from eSpeak NG; `spoken_digits:speaker` classifies the voice instead.

  Settings: dir (data folder; None: data_dir()), voices (ACCENT+VARIANT each), speeds
  (words per minute), pitches (0-99), snr_db (white noise; inf or None: clean),
  eval_voices (voices held out: digits), eval_styles ((speed, pitch) pairs held out:
  speakers), seed (noise and held-out choice), max_frames (T; a longer utterance is an
  error, never cut), engine ("auto", "program" or "library": who synthesizes).
  """
  try:
    speaker = args.parse_arg(args.split(cfg["name"])[1], where=f"data.name={cfg['name']!r}",
                             what="variant", speaker=False)["speaker"]
  except ValueError as e:
    raise ValueError(f"{e}; the only variant is 'spoken_digits:speaker'") from None
  _check(cfg, speaker)
  engine = get_engine(cfg["engine"])
  check_voices(cfg["voices"], engine)
  t0 = time.perf_counter()
  utts = cached_arrays(data_dir(cfg["dir"]), "spoken_digits", cache_params(cfg, engine),
                       lambda: build_utterances(cfg, engine))
  lengths = utts["lengths"]
  longest = int(lengths.argmax())
  if lengths[longest] > cfg["max_frames"]:
    raise ValueError(
        f"utterance {DIGIT_WORDS[utts['word'][longest]]!r} by "
        f"{cfg['voices'][utts['voice'][longest]]} at speed "
        f"{cfg['speeds'][utts['speed'][longest]]} has {lengths[longest]} frames, more than "
        f"data.max_frames={cfg['max_frames']}: raise max_frames or the slowest speed")
  train_idx, eval_idx = split_indices(utts, cfg, speaker)
  labels = utts["voice"] if speaker else utts["word"]
  class_names = tuple(cfg["voices"]) if speaker else DIGIT_WORDS
  splits, meta = {}, {}
  for split, idx in (("train", train_idx), ("eval", eval_idx)):
    inputs, mask = pad_frames(utts["frames"], lengths, idx, cfg["max_frames"])
    splits[split] = {"inputs": inputs, "mask": mask, "targets": labels[idx].astype(np.int32)}
    meta[split] = {k: utts[k][idx] for k in ("voice", "word", "speed", "pitch", "lengths")}
  # Standardise each mel bin with the training frames' statistics; padding stays 0.
  real = splits["train"]["inputs"][splits["train"]["mask"]]
  mean, std = real.mean(0), real.std(0) + 1e-5
  for split in splits.values():
    split["inputs"] = np.where(split["mask"][..., None], (split["inputs"] - mean) / std,
                               0.0).astype(np.float32)
  info = TaskInfo(input_kind="frames", input_size=NUM_MELS, output_kind="per_sequence",
                  num_classes=len(class_names), max_length=cfg["max_frames"],
                  train_size=len(train_idx))
  print(f"[data] {cfg['name']}: {len(lengths)} utterances ({len(cfg['voices'])} voices x "
        f"{len(DIGIT_WORDS)} words x {len(cfg['speeds'])} speeds x {len(cfg['pitches'])} "
        f"pitches), train {len(train_idx)} / eval {len(eval_idx)}, {len(class_names)} classes, "
        f"frames {lengths.min()}-{lengths.max()} (mean {lengths.mean():.0f}, max_frames "
        f"{cfg['max_frames']}), {engine.identity}, ready in {time.perf_counter() - t0:.1f} s")
  return SpokenDigits(info, splits["train"], splits["eval"], class_names, meta)
