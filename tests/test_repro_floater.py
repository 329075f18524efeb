"""floater2020's fixes (nn/positions/, data/synthetic.py, reproduce/floater2020.py): the
token / position scales, direction-aware ALiBi, filler recall with fixed pairs, the
position-blind rate and the verdict rule. Each test is small and can fail."""
import math

import jax
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.data.synthetic import filler_recall_blind_rate
from attn_research.kernels import relative
from attn_research.modes.extrapolation import scaled_data, split_data
from attn_research.nn.positions import get_positional
from attn_research.reproduce import floater2020
from conftest import make_config

D = 64


def position(name, num_heads=4, max_length=16):
  return get_positional(name, D, max_length, num_heads, rngs=nnx.Rngs(0), num_layers=2)


def tokens_and_position_norms(name, T=16):
  """Mean norm of the token part and of the position part of position(x) for token
  vectors drawn as nnx.Embed draws them (std 1 / sqrt(d))."""
  pos = position(name, max_length=T)
  x_BTD = jax.random.normal(jax.random.key(1), (4, T, D)) / math.sqrt(D)
  added = pos(np.zeros_like(x_BTD))  # the encoding alone
  scaled_tokens = pos(x_BTD) - added
  return (float(np.linalg.norm(scaled_tokens, axis=-1).mean()),
          float(np.linalg.norm(added, axis=-1).mean()))


@pytest.mark.parametrize("name,ratio_range", [
    ("sinusoidal", (0.0, 0.25)),               # the old default: tokens swamped
    ("sinusoidal:scale_tokens", (1.0, 2.0)),   # tokens x sqrt(d): norm 8 vs 5.7
    ("learned", (3.0, 10.0)),                  # BERT's 0.02: positions barely there
    ("learned:init=tokens", (0.7, 1.4)),       # the tokens' std: equal footing
])
def test_token_and_position_scales(name, ratio_range):
  tokens, positions = tokens_and_position_norms(name)
  lo, hi = ratio_range
  assert lo <= tokens / positions <= hi, (name, tokens, positions)


def test_floater_scale_tokens_scales_the_tokens_only():
  x = np.ones((1, 3, D), np.float32)
  np.testing.assert_allclose(position("floater:scale_tokens")(x), x * math.sqrt(D), rtol=1e-6)
  np.testing.assert_allclose(position("floater")(x), x)


def test_split_alibi_tells_left_from_right_and_symmetric_cannot():
  q = k = np.zeros((1, 7, 4, 8), np.float32)
  i = 3
  _, _, split = position("alibi:bidirectional=split").in_attention(q, k, causal=False)
  _, _, sym = position("alibi").in_attention(q, k, causal=False)
  split, sym = np.asarray(split)[0], np.asarray(sym)[0]
  assert np.all(sym[:, i, i - 1] == sym[:, i, i + 1])
  assert np.all(split[:, i, i - 1] != split[:, i, i + 1])
  slopes = np.asarray(relative.alibi_slopes(4))
  # Even heads look left, odd heads right, each with its ALiBi slope and 0 on itself.
  np.testing.assert_allclose(split[0::2, i, i - 2], -2 * slopes[0::2], rtol=1e-6)
  np.testing.assert_allclose(split[1::2, i, i + 2], -2 * slopes[1::2], rtol=1e-6)
  assert np.all(split[:, i, i] == 0) and np.all(split[0::2, i, i + 1] < -1e8)
  assert np.all(split[1::2, i, i - 1] < -1e8)
  # Causal attention keeps the paper's form whatever the setting.
  _, _, causal = position("alibi:bidirectional=split").in_attention(q, k, causal=True)
  np.testing.assert_array_equal(causal, relative.alibi_bias(4, np.arange(7), np.arange(7)))


def test_bad_position_settings_raise():
  with pytest.raises(ValueError, match="bidirectional"):
    position("alibi:bidirectional=both")
  with pytest.raises(ValueError, match="init"):
    position("learned:init=big")


def recall_config():
  return make_config("experiments/positions.py")


def test_filler_recall_keeps_pairs_fixed_and_only_adds_filler():
  config = recall_config()
  d = config.data
  L = get_task(d).info.max_length
  for f in (1, 2, 4):
    task = get_task(scaled_data(d, f))
    b = task.train_batch(0, 32, 0)
    x, T = b["inputs"], f * L
    assert x.shape == (32, T) and task.info.max_length == T
    context = x[:, :T - d.num_queries]
    is_key = (context >= 1) & (context <= d.num_keys)
    is_value = (context > d.num_keys) & (context <= d.num_keys + d.num_values)
    filler = context == d.num_keys + d.num_values + 1
    assert np.all(is_key.sum(1) == d.num_pairs) and np.all(is_value.sum(1) == d.num_pairs)
    assert np.all(is_key | is_value | filler)
    assert np.all(is_value[:, 1:] == is_key[:, :-1]) and not is_value[:, 0].any()
    # Each query is labelled with the value right after its key.
    for row in range(4):
      for t in range(T - d.num_queries, T):
        (where,) = np.nonzero(context[row] == x[row, t])
        assert b["targets"][row, t] == context[row, where[0] + 1] - 1 - d.num_keys
        assert b["target_mask"][row, t]
    assert b["target_mask"].sum() == 32 * d.num_queries


def test_validation_and_test_streams_differ():
  d = recall_config().data
  first = lambda split: next(get_task(split_data(d, split)).eval_batches(8))["inputs"]  # noqa: E731
  assert not np.array_equal(first("validation"), first("test"))


def test_blind_rate_by_hand():
  # num_keys 2, num_values 3: tokens 1-2 keys, 3-5 values, 6 filler.
  batch = {"inputs": np.array([[1, 3, 2, 3, 1], [1, 3, 2, 4, 2]]),
           "targets": np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]),
           "target_mask": np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]], bool)}
  # Row 0: values (0, 0), the commonest is 0, right; row 1: values (0, 1) tie, half.
  assert filler_recall_blind_rate(batch, num_keys=2, num_values=3) == pytest.approx(0.75)


def test_verdict_rule():
  F, S, Lr = floater2020.FLOATER, floater2020.SINUSOIDAL, floater2020.LEARNED
  at_L = {F: [0.99, 0.98, 0.97], S: [1.0] * 3, Lr: [1.0] * 3}
  flat = {F: [True] * 3, S: [True] * 3, Lr: [True] * 3}
  better = {F: [0.8, 0.82, 0.85], S: [0.5, 0.55, 0.52], Lr: [0.4, 0.45, 0.41]}
  assert floater2020.verdict(at_L, better, flat)[0] == "supported"
  worse = dict(better, **{F: [0.3, 0.31, 0.33]})
  assert floater2020.verdict(at_L, worse, flat)[0] == "not supported"
  noisy = dict(better, **{F: [0.9, 0.3, 0.6]})
  assert floater2020.verdict(at_L, noisy, flat)[0] == "inconclusive"
  unlearned = dict(at_L, **{F: [0.4, 0.5, 0.45]})
  assert floater2020.verdict(unlearned, better, flat)[0] == "inconclusive"
  # Baselines that did not learn at L, or runs still improving, decide nothing.
  assert floater2020.verdict(dict(at_L, **{S: [0.5] * 3}), better, flat)[0] == "inconclusive"
  rising = dict(flat, **{S: [True, False, True]})
  assert floater2020.verdict(at_L, better, rising)[0] == "inconclusive"
  assert floater2020.verdict(at_L, better)[0] == "inconclusive"  # plateaus unknown


def test_lm_verdict_rule():
  from attn_research.reproduce import floater2020_lm as lm
  F, S, Lr = lm.FLOATER, lm.SINUSOIDAL, lm.LEARNED
  unigram = 3.0
  at_L = {F: [1.58, 1.59, 1.57], S: [1.60] * 3, Lr: [1.61] * 3}
  flat = {F: [True] * 3, S: [True] * 3, Lr: [True] * 3}
  lower = {F: [2.0, 2.1, 2.05], S: [2.3, 2.35, 2.4], Lr: [2.4, 2.5, 2.45]}  # lower is better
  assert lm.verdict(at_L, lower, unigram, flat)[0] == "supported"
  higher = dict(lower, **{F: [2.6, 2.7, 2.65]})
  assert lm.verdict(at_L, higher, unigram, flat)[0] == "not supported"
  noisy = dict(lower, **{F: [1.9, 2.6, 2.2]})
  assert lm.verdict(at_L, noisy, unigram, flat)[0] == "inconclusive"
  # A model no better than the unigram rate at L, or a run still improving, decides nothing.
  assert lm.verdict(dict(at_L, **{S: [3.1] * 3}), lower, unigram, flat)[0] == "inconclusive"
  rising = dict(flat, **{Lr: [True, None, True]})
  assert lm.verdict(at_L, lower, unigram, rising)[0] == "inconclusive"
  assert lm.verdict(at_L, higher, unigram)[0] == "inconclusive"  # plateaus unknown
  _, tests = lm.verdict(at_L, lower, unigram, flat)
  assert tests[S]["differences"] == pytest.approx([0.3, 0.25, 0.35])  # baseline minus FLOATER


def test_all_paired_verdict():
  from attn_research.reproduce import protocol
  up, down, flat = (protocol.paired_test(d) for d in ([1.0, 1.1, 0.9], [-1.0, -0.8, -1.1],
                                                     [1.0, -0.9, 0.2]))
  assert protocol.all_paired_verdict([up, up]) == "supported"
  assert protocol.all_paired_verdict([up, down]) == "not supported"
  assert protocol.all_paired_verdict([up, flat]) == "inconclusive"
  assert protocol.all_paired_verdict([]) == "inconclusive"


@pytest.mark.slow  # two smoke trainings of the full tier's model: ~10 s on 2 cores
def test_full_tier_finetunes_floater_from_each_seeds_sinusoidal_run(tmp_path, capsys):
  """The full tier's extra arm (FLOATER_FINETUNE): FLOATER initialised from the trained
  sinusoidal run of the same seed, its position parameters fresh, trained for half the
  steps, then scored at every length like the other arms."""
  import json
  import pathlib
  from attn_research.modes.extrapolation import train_and_test_lengths
  config = make_config("experiments/positions.py:full,smoke")
  with config.unlocked():  # as floater2020.tier_config sets every tier
    config.data.eval_split = "validation"
    config.train.keep_best = "accuracy"
  spec = config.extrapolation.finetune
  source = train_and_test_lengths(config, tmp_path, (0,), encodings=(spec.source,),
                                  factors=(1, 2))
  capsys.readouterr()
  got = floater2020.finetune_floater(config, source, tmp_path, (0,), (1, 2))
  # The sinusoidal run's weights are loaded, FLOATER's position parameters start fresh.
  import re
  init = re.search(r"\[init_from\] .* loaded (\d+) parameters .* newly initialised (\d+) ",
                   capsys.readouterr().out)
  assert init and int(init.group(1)) > 0 and int(init.group(2)) > 0, init
  name = f"{spec.position} from {spec.source}"
  assert list(got) == [name] and len(got[name]) == 1
  run = got[name][0]
  assert sorted(e["factor"] for e in run["evals"]) == [1, 2]
  saved = json.loads((pathlib.Path(run["workdir"]) / "config.json").read_text())
  assert saved["init_from"] == str(source[spec.source][0]["workdir"])
  assert saved["init_skip"] == spec.init_skip
  assert saved["train"]["num_steps"] == max(1, int(config.train.num_steps
                                                    * spec.steps_fraction))
  # Without a sinusoidal run to start from, the arm is left out, not trained from scratch.
  assert floater2020.finetune_floater(config, {}, tmp_path, (0,), (1, 2)) == {}
