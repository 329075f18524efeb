"""Spoken-digit strings labelled per frame (data/speech_strings.py): frame labels by hand,
strings whose labels line up with their words, splits that never leak a voice,
determinism, and the truncated_speech verdict rule."""
import numpy as np
import pytest

from attn_research.data import get_task, task_defaults, task_smoke
from attn_research.data import speech, speech_strings
from attn_research.data.speech_strings import SILENCE
from attn_research.reproduce import truncated_speech
from tests.conftest import require_source


def config(**settings):
  return dict(task_defaults("spoken_digit_strings"),
              **dict(task_smoke("spoken_digit_strings"), name="spoken_digit_strings",
                     **settings))


def runs(labels):
  """[(label, length)] of the runs of equal labels."""
  out = []
  for x in labels:
    if out and out[-1][0] == x:
      out[-1][1] += 1
    else:
      out.append([x, 1])
  return [tuple(r) for r in out]


# ----------------------------------------------------------------- no synthesis

def test_frame_labels_by_hand():
  # 800 silent samples, 1,600 of digit 3, 400 silent: frame t covers samples
  # [160 t, 160 t + 400), centre 160 t + 200, so frames 4..13 (centres 840..2280) are 3.
  sample_labels = np.concatenate([np.full(800, SILENCE), np.full(1600, 3), np.full(400, SILENCE)])
  labels = speech_strings.frame_labels(sample_labels.astype(np.int8))
  assert len(labels) == speech.frame_count(2800) == 16
  assert runs(labels.tolist()) == [(SILENCE, 4), (3, 10), (SILENCE, 2)]


def fake_bank(num_voices=2):
  """A WordBank of tones: word w of voice v lasts 1,000 * (w + 2) + 37 * v samples."""
  cfg = dict(voices=[f"v{i}" for i in range(num_voices)], speeds=[150], pitches=[50])
  grid = speech_strings.word_grid(cfg)
  waves = [np.sin(np.arange(1000 * (w + 2) + 37 * v) * 0.05 * (w + 1)).astype(np.float32)
           for v, w, _, _ in grid]
  columns = np.asarray(grid, np.int32)
  words = {"waves": np.concatenate(waves), "lengths": np.array([len(x) for x in waves]),
           "voice": columns[:, 0], "word": columns[:, 1], "speed": columns[:, 2],
           "pitch": columns[:, 3]}
  return speech_strings.WordBank(words, cfg), cfg


def test_string_labels_line_up_with_its_words():
  bank, cfg = fake_bank()
  cfg = dict(cfg, min_digits=3, max_digits=6, gap_ms=[20, 80], edge_ms=[30, 60])
  rng = np.random.default_rng(0)
  for _ in range(5):
    wave, sample_labels, digits, (v, s, p) = speech_strings.draw_string(rng, bank, [1], cfg)
    assert v == 1 and len(wave) == len(sample_labels)
    spoken = runs(sample_labels.tolist())
    assert spoken[0][0] == spoken[-1][0] == SILENCE
    words = [r for r in spoken if r[0] != SILENCE]
    # Every digit in order, each exactly as long as its word, each word's samples in place.
    assert [d for d, _ in words] == list(digits)
    assert [n for _, n in words] == [len(bank.wave(1, d, s, p)) for d in digits]
    first = int(np.argmax(sample_labels != SILENCE))
    np.testing.assert_array_equal(wave[first:first + words[0][1]], bank.wave(1, digits[0], s, p))
    assert not wave[sample_labels == SILENCE].any()  # the gaps are silent before the noise
    # Frame labels: the same digits in order, each run as long as its word in frames (+-1).
    frames = [r for r in runs(speech_strings.frame_labels(sample_labels).tolist())
              if r[0] != SILENCE]
    assert [d for d, _ in frames] == list(digits)
    for (_, n_frames), (_, n_samples) in zip(frames, words):
      assert abs(n_frames - n_samples / speech.HOP) <= 1


def test_batched_features_equal_the_speech_features():
  rng = np.random.default_rng(1)
  waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (250, 4000, 9999)]
  for ours, theirs in zip(speech_strings.log_mels(waves), map(speech.log_mel, waves)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_voice_splits_are_disjoint_and_seeded():
  cfg = dict(voices=[f"v{i}" for i in range(16)], validation_voices=3, test_voices=3, seed=0)
  split = speech_strings.split_voices(cfg)
  sizes = {k: len(v) for k, v in split.items()}
  assert sizes == {"train": 10, "validation": 3, "test": 3}
  assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(16))
  again = speech_strings.split_voices(cfg)
  assert all((split[k] == again[k]).all() for k in split)
  other = speech_strings.split_voices(dict(cfg, seed=1))
  assert any(set(split[k]) != set(other[k]) for k in ("validation", "test"))


@pytest.mark.parametrize("bad, match", [
    (dict(validation_voices=1, test_voices=2), "leave at least one"),
    (dict(min_digits=4, max_digits=3), "min_digits"),
    (dict(gap_ms=[100, 50]), "gap_ms"),
    (dict(eval_split="train"), "eval_split"),
])
def test_bad_settings_are_refused_before_synthesis(bad, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    get_task(config(dir=str(tmp_path), **bad))


def test_verdict_rule():
  def results(diffs_16, ci, full=0.8, flops_16=1.0):
    return {"models": {"full_attention": {"test_accuracy": [full] * 3, "flops_per_example": 2.0},
                       "window_4": {"flops_per_example": 0.5},
                       "window_16": {"flops_per_example": flops_16}},
            "paired": {"window_4": {"mean": -0.05, "ci95": 0.01, "n": 3},
                       "window_16": {"mean": diffs_16, "ci95": ci, "n": 3}},
            "rates": {"majority": 0.2}}
  assert truncated_speech.verdict(results(-0.002, 0.005)) == "supported"
  assert truncated_speech.verdict(results(-0.002, 0.005, flops_16=3.0)) == "inconclusive"
  assert truncated_speech.verdict(results(-0.002, 0.02)) == "inconclusive"
  assert truncated_speech.verdict(results(-0.03, 0.01)) == "not supported"
  assert truncated_speech.verdict(results(-0.002, 0.005, full=0.25)) == "inconclusive"


# ----------------------------------------------------------------- with eSpeak NG

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  require_source("spoken_digit_strings")
  return str(tmp_path_factory.mktemp("strings_data"))


def test_task_batches_splits_and_determinism(data_dir):
  val = get_task(config(dir=data_dir))
  test = get_task(config(dir=data_dir, eval_split="test"))
  split = speech_strings.split_voices(config())
  assert set(val.meta["voice"]) <= set(split["validation"])
  assert set(test.meta["voice"]) <= set(split["test"])
  ev = val.evaluation
  T = config()["max_frames"]
  assert ev["inputs"].shape == (8, T, speech.NUM_MELS) and ev["targets"].shape == (8, T)
  assert (ev["target_mask"] == ev["mask"]).all() and (ev["mask"].sum(1) == val.meta["lengths"]).all()
  assert not ev["inputs"][~ev["mask"]].any()
  real = ev["targets"][ev["mask"]]
  assert real.max() == SILENCE and real.min() >= 0 and (real < SILENCE).any()
  assert val.info.output_kind == "per_vector" and val.info.num_classes == 11
  # Training batches: a pure function of (seed, step); different steps differ.
  a, b = val.train_batch(3, 4, 0), val.train_batch(3, 4, 0)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert not np.array_equal(a["targets"], val.train_batch(4, 4, 0)["targets"])
  again = get_task(config(dir=data_dir, prefetch=2))  # from the cache: the same strings
  assert all(np.array_equal(ev[k], again.evaluation[k]) for k in ev)
  # Batches made ahead in threads are the batches made on demand, in any call order.
  for step in (3, 4, 5, 9, 4):
    ahead, now = again.train_batch(step, 4, 0), val.train_batch(step, 4, 0)
    assert all(np.array_equal(ahead[k], now[k]) for k in now), step
