"""Spoken digits (eSpeak NG): features by hand, the engines (the pip package's library:
pure in its arguments, loud on unknown voices, the same samples as the espeak-ng
program), the batch contract, splits that never leak a speaker (digits) or an utterance
(speakers), determinism, and the on-disk cache."""
import io
import struct
import subprocess

import numpy as np
import pytest

from attn_research.data import get_task, task_defaults, task_smoke
from attn_research.data import speech
from attn_research.data.cache import MissingProgramError, cache_key
from attn_research.data import espeak
from attn_research.data.espeak import SynthesisError
from tests.conftest import missing_system, require_program, require_source

# Two voices, one style: 20 utterances, for tests that must synthesize afresh.
TINY = dict(voices=["en-us+m1", "en-gb+f2"], speeds=[175], pitches=[50], eval_voices=1,
            eval_styles=1)


def config(name="spoken_digits", **settings):
  return dict(task_defaults(name), **dict(task_smoke("spoken_digits"), **settings))


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
  """One data folder holding the smoke utterances, shared by the tests that only read them."""
  return str(tmp_path_factory.mktemp("speech_data"))


@pytest.fixture(scope="module")
def engine():
  """The engine the task uses here (data.engine="auto")."""
  require_source("spoken_digits")
  return speech.get_engine("auto")


@pytest.fixture(scope="module")
def library():
  """The pip package's engine, whether or not the espeak-ng program is installed."""
  if speech.pip_package(speech.PACKAGE, "espeakng_loader") is None:
    missing_system(f"needs the pip package {speech.PACKAGE}: {speech.INSTALL_HINT}")
  return speech.library_engine()


@pytest.fixture(scope="module")
def digits(smoke_dir, engine):
  return get_task(config(dir=smoke_dir))


# ----------------------------------------------------------------- features (no synthesis)

def test_mel_scale_and_filterbank_by_hand():
  assert abs(float(speech.hz_to_mel(1000.0)) - 1000.0) < 0.1  # HTK: 1 kHz is 1000 mel
  np.testing.assert_allclose(speech.mel_to_hz(speech.hz_to_mel([0.0, 440.0, 8000.0])),
                             [0.0, 440.0, 8000.0], atol=1e-6)
  fb = speech.mel_filterbank()  # [257 FFT bins, 80 filters] at 16 kHz, n_fft 512
  assert fb.shape == (257, 80) and fb.dtype == np.float32
  assert fb.min() >= 0 and fb.max() <= 1 + 1e-6
  assert (fb.max(axis=0) > 0.2).all()  # no filter is empty, the narrow low ones included
  freqs = np.arange(257) * 16000 / 512
  centroid = (fb * freqs[:, None]).sum(0) / fb.sum(0)
  assert (np.diff(centroid) > 0).all()  # filters sit at increasing frequencies
  assert centroid[0] < 60 and centroid[-1] > 7000  # and span the band
  # Neighbouring triangles meet at their feet: between the first and last centre the
  # filters sum to 1 (a partition of unity); outside the band nothing is left over.
  centres = speech.mel_to_hz(np.linspace(0, speech.hz_to_mel(8000), 82))[1:-1]
  inside = (freqs >= centres[0]) & (freqs <= centres[-1])
  np.testing.assert_allclose(fb[inside].sum(1), 1.0, atol=1e-5)
  assert fb[0].sum() == 0  # 0 Hz is the first filter's foot


def test_pure_tone_lands_in_its_mel_bin():
  t = np.arange(16000) / 16000  # one second
  # By hand: the 82 mel points are 2840.0 / 81 = 35.06 mel apart; 1 kHz = 1000 mel is
  # point 28.5, nearest point 29, which is the centre of filter 28.
  # 4 kHz = 2146.1 mel is point 61.2: the centre of filter 60.
  for hz, expected in [(1000, 28), (4000, 60)]:
    feats = speech.log_mel(0.5 * np.sin(2 * np.pi * hz * t))
    assert feats.shape == (98, 80) and feats.dtype == np.float32  # 1 + (16000 - 400) // 160
    assert int(feats.mean(0).argmax()) == expected, hz
    assert feats.mean(0)[expected] > feats.mean(0)[expected + 10] + 5  # energy is concentrated


def test_frame_count():
  assert [speech.frame_count(n) for n in (0, 399, 400, 559, 560, 16000)] == [1, 1, 1, 1, 2, 98]
  assert speech.log_mel(np.zeros(100, np.float32)).shape == (1, 80)


def test_noise_has_the_requested_snr():
  wave = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32)  # mean power 1/2
  noisy = speech.add_noise(wave, 10.0, np.random.default_rng(0))
  noise_db = 10 * np.log10(np.mean((noisy - wave) ** 2))
  assert abs(noise_db - (10 * np.log10(0.5) - 10.0)) < 0.1  # -13.0 dB: 10 dB below the wave
  assert speech.add_noise(wave, float("inf"), None) is wave  # inf: clean


def test_wav_with_espeak_streaming_header_parses():
  samples = np.array([0, 1000, -1000, 32767], np.int16)
  header = (b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16) + b"data"
            + struct.pack("<I", 0x7FFFFFFF))  # espeak-ng --stdout does not know the sizes
  rate, parsed = espeak.parse_wav(header + samples.tobytes())
  assert rate == 22050 and parsed == samples.tobytes()
  with pytest.raises(ValueError, match="16-bit mono"):
    stereo = header.replace(struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16),
                            struct.pack("<HHIIHH", 1, 2, 22050, 88200, 4, 16))
    espeak.parse_wav(stereo + samples.tobytes())


def test_engine_choice(monkeypatch, tmp_path):
  monkeypatch.setattr(speech.shutil, "which", lambda name: f"/opt/bin/{name}")
  chosen = speech.get_engine("auto")  # the program when it is on PATH (not run here)
  assert isinstance(chosen, espeak.ProgramEngine) and chosen.program == "/opt/bin/espeak-ng"
  monkeypatch.setattr(speech.shutil, "which", lambda name: None)
  with pytest.raises(MissingProgramError, match="apt-get install -y espeak-ng"):
    speech.get_engine("program")
  with pytest.raises(ValueError, match=r"data.engine='sox' is not valid; choose from "
                                       r"\('auto', 'program', 'library'\)"):
    get_task(config(dir=str(tmp_path), engine="sox"))
  assert not list(tmp_path.iterdir())


def test_missing_engine_names_the_pip_and_apt_installs(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng program
  monkeypatch.setattr(speech, "pip_package", lambda *_: None)  # and no pip package
  speech.library_engine.cache_clear()
  try:
    with pytest.raises(MissingProgramError, match=r"pip install -c constraints.txt "
                                                  r"espeakng-loader"):
      get_task(config(dir=str(tmp_path)))
    source = speech.speech_source()
    assert not source.available and "espeakng-loader" in source.hint
    assert "apt-get install -y espeak-ng" in source.hint
  finally:
    speech.library_engine.cache_clear()  # the next user gets the real engine
  assert not list(tmp_path.iterdir())  # nothing was written


# ----------------------------------------------------------------- the engine

def test_library_synthesis_is_a_pure_function_of_its_arguments(library):
  """The library keeps state between utterances (in one process the same word comes out
  a few samples longer or shorter each time); the engine forks a fresh process per
  utterance, so order and repetition do not matter. klatt and f3 draw random noise."""
  jobs = [("en-gb-x-gbcwmd+klatt", 130, 35, "seven"), ("en-us+f3", 220, 65, "zero"),
          ("en-us+m1", 175, 50, "three")]
  first = [speech.raw_samples(library, *job) for job in jobs]
  again = [speech.raw_samples(library, *job) for job in reversed(jobs)][::-1]
  for (rate_a, a), (rate_b, b) in zip(first, again):
    assert rate_a == rate_b == 22050 and len(a) > 5000
    np.testing.assert_array_equal(a, b)
  assert len({len(samples) for _, samples in first}) == 3  # three different utterances


@pytest.mark.parametrize("which", ["library", "program"])
def test_voices_and_variants_are_listed_and_unknown_ones_fail_loudly(which, library):
  if which == "program":
    require_program("espeak-ng", "espeak-ng")
  engine = speech.get_engine(which)
  accents, variants = engine.voices
  assert {v.split("+")[0] for v in speech.DEFAULT_VOICES} <= accents
  assert {v.split("+")[1] for v in speech.DEFAULT_VOICES} <= variants
  assert {"en-us", "en-gb", "en-029"} <= accents and "fr" not in accents  # English only
  with pytest.raises(ValueError, match=r"'en-us\+nosuchvariant'.*VARIANT one of \[.*'f2'"):
    speech.synthesize(engine, "en-us+nosuchvariant", 175, 50, "one")
  with pytest.raises(ValueError, match=r"'xx-nope\+m1'.*ACCENT one of \['en-029'"):
    speech.synthesize(engine, "xx-nope+m1", 175, 50, "one")
  with pytest.raises(ValueError, match=r"'en-us':.*ACCENT\+VARIANT"):
    speech.synthesize(engine, "en-us", 175, 50, "one")  # no variant
  with pytest.raises(SynthesisError, match="xx-nope"):
    engine.synthesize("xx-nope", 175, 50, "one")  # the engine itself, unchecked
  assert len(speech.raw_samples(engine, "en-us+m1", 175, 50, "one")[1]) > 5000  # still serving


def test_cache_key_names_the_engine(library):
  assert library.identity.startswith("libespeak-ng 1.5")
  assert "espeakng-loader" in library.identity
  params = speech.cache_params(config(), library)
  assert params["engine"] == library.identity

  class OtherEngine:
    identity = "espeak-ng program 1.51"

  other = speech.cache_params(config(), OtherEngine())
  assert cache_key("spoken_digits", params) != cache_key("spoken_digits", other)


def test_library_speaks_as_the_espeak_ng_program_does(library):
  """Against the Debian program, where installed: the same samples for a voice without
  a noise source. (Debian 12's program is 1.51; since 1.52 the noise of breathy and
  klatt voices comes from eSpeak NG's own generator, so those differ between versions.)"""
  require_program("espeak-ng", "espeak-ng")
  for voice, speed, pitch, word in [("en-us+m1", 130, 35, "seven"), ("en-gb+m2", 220, 65, "zero"),
                                    ("en-029+croak", 175, 50, "four")]:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          "--stdout", word], capture_output=True, check=True).stdout
    assert wav[:4] == b"RIFF" and wav[36:40] == b"data"  # a 44-byte header, then samples
    rate, samples = speech.raw_samples(library, voice, speed, pitch, word)
    np.testing.assert_array_equal(samples, np.frombuffer(wav[44:], "<i2"))
    rate, samples = speech.raw_samples(speech.get_engine("program"), voice, speed, pitch, word)
    np.testing.assert_array_equal(samples, np.frombuffer(wav[44:], "<i2"))


# ----------------------------------------------------------------- the task

def test_shapes_dtypes_and_masks_match_the_task_info(digits):
  info = digits.info
  assert (info.input_kind, info.input_size, info.output_kind, info.num_classes) == (
      "frames", 80, "per_sequence", 10)
  smoke = task_smoke("spoken_digits")
  n_utts = len(smoke["voices"]) * 10 * len(smoke["speeds"]) * len(smoke["pitches"])
  assert info.train_size + len(digits.evaluation["targets"]) == n_utts
  for split, meta in ((digits.train, digits.meta["train"]),
                      (digits.evaluation, digits.meta["eval"])):
    n = len(split["targets"])
    assert split["inputs"].shape == (n, info.max_length, 80) and split["inputs"].dtype == np.float32
    assert split["mask"].dtype == bool and split["targets"].dtype == np.int32
    lengths = meta["lengths"]
    assert 5 < lengths.min() and lengths.max() <= info.max_length
    # real frames first, then padding, exactly as many as the utterance has frames
    np.testing.assert_array_equal(split["mask"], np.arange(info.max_length) < lengths[:, None])
    assert not split["inputs"][~split["mask"]].any()
    assert np.abs(split["inputs"][split["mask"]]).sum(-1).min() > 0
  batch = digits.train_batch(3, 8, seed=0)
  assert batch["inputs"].shape == (8, info.max_length, 80) and batch["targets"].shape == (8,)
  batches = list(digits.eval_batches(16))
  assert {b["inputs"].shape for b in batches} == {(16, info.max_length, 80)}
  assert sum(b["target_mask"].sum() for b in batches) == len(digits.evaluation["targets"])


def test_mask_length_is_the_frame_count_of_the_trimmed_word(digits, engine):
  cfg = config()
  meta = digits.meta["eval"]
  for row in (0, len(meta["word"]) - 1):
    voice, speed, pitch, word = (
        cfg["voices"][meta["voice"][row]], cfg["speeds"][meta["speed"][row]],
        cfg["pitches"][meta["pitch"][row]], speech.DIGIT_WORDS[meta["word"][row]])
    wave = speech.synthesize(engine, voice, speed, pitch, word)
    assert digits.evaluation["mask"][row].sum() == speech.frame_count(len(wave))
    # Silence trimmed: the 16 kHz wave keeps its loud part (above 2 % of the peak) and
    # 10 ms either side of it, where eSpeak NG's output has that much.
    rate, samples = speech.raw_samples(engine, voice, speed, pitch, word)
    assert rate == 22050
    full = speech.signal.resample_poly(samples / 32768.0, 320, 441)  # 16000 / 22050
    loud = np.nonzero(np.abs(full) > 0.02 * np.abs(full).max())[0]
    kept = full[max(0, loud[0] - 160):loud[-1] + 161]
    assert len(kept) < 0.9 * len(full)
    np.testing.assert_allclose(wave, kept, atol=1e-6)


def test_eval_voices_are_never_heard_in_training(digits):
  cfg = config()
  train_voices, eval_voices = set(digits.meta["train"]["voice"]), set(digits.meta["eval"]["voice"])
  assert len(eval_voices) == cfg["eval_voices"] and not train_voices & eval_voices
  assert train_voices | eval_voices == set(range(len(cfg["voices"])))
  variant = {i: v.split("+")[1] for i, v in enumerate(cfg["voices"])}
  assert not {variant[i] for i in train_voices} & {variant[i] for i in eval_voices}
  # the default voices hold distinct variants, so holding out a voice holds out its variant
  assert len({v.split("+")[1] for v in speech.DEFAULT_VOICES}) == len(speech.DEFAULT_VOICES)


def test_each_digit_is_equally_represented(digits):
  cfg = config()
  per_voice = len(cfg["speeds"]) * len(cfg["pitches"])
  for split, meta in ((digits.train, digits.meta["train"]),
                      (digits.evaluation, digits.meta["eval"])):
    n_voices = len(set(meta["voice"]))
    np.testing.assert_array_equal(np.bincount(split["targets"], minlength=10),
                                  [n_voices * per_voice] * 10)
    np.testing.assert_array_equal(split["targets"], meta["word"])  # the label is the word


def test_speaker_task_labels_voices_and_holds_out_utterances(smoke_dir, digits):
  task = get_task(config("spoken_digits:speaker", dir=smoke_dir))  # same cache as digits
  cfg = config()
  assert task.info.num_classes == len(cfg["voices"]) and task.class_names == tuple(cfg["voices"])
  for split, meta in ((task.train, task.meta["train"]), (task.evaluation, task.meta["eval"])):
    np.testing.assert_array_equal(split["targets"], meta["voice"])
    assert set(meta["voice"]) == set(range(len(cfg["voices"])))  # every speaker in both splits
  utterance = lambda m: set(zip(m["voice"], m["word"], m["speed"], m["pitch"]))
  assert not utterance(task.meta["train"]) & utterance(task.meta["eval"])
  styles = lambda m: set(zip(m["speed"], m["pitch"]))
  assert len(styles(task.meta["eval"])) == cfg["eval_styles"]
  assert not styles(task.meta["train"]) & styles(task.meta["eval"])
  with pytest.raises(ValueError, match="only variant is 'spoken_digits:speaker'"):
    get_task(config("spoken_digits:accent", dir=smoke_dir))


def test_same_seed_same_arrays_and_the_noise_follows_the_seed(tmp_path, engine):
  a = get_task(config(dir=str(tmp_path / "a"), **TINY))
  b = get_task(config(dir=str(tmp_path / "b"), **TINY))  # synthesized again from scratch
  for split in ("train", "evaluation"):
    for key in ("inputs", "mask", "targets"):
      np.testing.assert_array_equal(getattr(a, split)[key], getattr(b, split)[key])
  (npz,) = (tmp_path / "a").glob("spoken_digits-*.npz")
  with np.load(npz) as cached:  # seed 0, with noise, as built for `a`
    n0 = {k: cached[k] for k in cached.files}
  n1 = speech.build_utterances(config(**TINY, seed=1), engine)
  np.testing.assert_array_equal(n0["lengths"], n1["lengths"])  # the same words...
  assert not np.allclose(n0["frames"], n1["frames"], atol=1e-3)  # ...under other noise
  clean = speech.build_utterances(config(**TINY, snr_db=None), engine)
  # 20 dB of white noise raises the quietest (high-frequency) log-mel energies
  assert n0["frames"].min(0).mean() > clean["frames"].min(0).mean() + 1


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, capsys, engine):
  first = get_task(config(dir=str(tmp_path), **TINY))
  (npz,) = tmp_path.glob("spoken_digits-*.npz")
  data = bytearray(npz.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = b"\x00" * 64
  npz.write_bytes(bytes(data))
  capsys.readouterr()
  again = get_task(config(dir=str(tmp_path), **TINY))
  out = capsys.readouterr().out
  assert f"rebuilding {npz}" in out and "checksum does not match" in out
  np.testing.assert_array_equal(first.train["inputs"], again.train["inputs"])
  get_task(config(dir=str(tmp_path), **TINY))  # now intact: loaded without a rebuild
  assert "rebuilding" not in capsys.readouterr().out


def test_bad_settings_are_named(smoke_dir, digits):
  with pytest.raises(ValueError, match="'en-us\\+nosuchvariant'.*ACCENT\\+VARIANT"):
    get_task(config(dir=smoke_dir, voices=["en-us+m1", "en-us+nosuchvariant"]))
  with pytest.raises(ValueError, match="more than data.max_frames=10"):
    get_task(config(dir=smoke_dir, max_frames=10))
  with pytest.raises(ValueError, match="data.eval_voices=3 must be in \\[1, 2\\]"):
    get_task(config(dir=smoke_dir, eval_voices=3))
  with pytest.raises(ValueError, match="data.eval_styles=2 must be in \\[1, 1\\]"):
    get_task(config("spoken_digits:speaker", dir=smoke_dir, eval_styles=2))


def test_render_writes_a_spectrogram_png(digits, tmp_path):
  example = {k: v[0] for k, v in digits.train.items()}
  path = digits.render(example, tmp_path)
  assert path.startswith(str(tmp_path)) and path.endswith(".png")
  assert io.open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  assert speech.DIGIT_WORDS[int(example["targets"])] in path
