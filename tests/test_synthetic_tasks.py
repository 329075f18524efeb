"""ListOps (checked by an evaluator written apart from the generator), associative
recall and sort."""
import re

import numpy as np
import pytest

from attn_research.data import get_task, task_defaults, task_smoke
from attn_research.data import listops as listops_lib


def evaluate_bracket_string(text: str) -> int:
  """Evaluates '[MAX 4 3 [MIN 2 3 ] 1 0 ]' with a stack, knowing nothing of the generator."""
  stack = [[]]
  ops = []
  for word in text.split():
    if word.startswith("["):
      ops.append(word[1:])
      stack.append([])
    elif word == "]":
      args, op = stack.pop(), ops.pop()
      if op == "MIN":
        value = min(args)
      elif op == "MAX":
        value = max(args)
      elif op == "SM":
        value = sum(args) % 10
      elif op == "MED":
        value = int(np.floor(np.median(args)))
      else:
        raise AssertionError(op)
      stack[-1].append(value)
    else:
      stack[-1].append(int(word))
  (value,) = stack[0]
  return value


def depth_of(text: str) -> int:
  depth = deepest = 0
  for word in text.split():
    depth += word.startswith("[")
    deepest = max(deepest, depth)
    depth -= word == "]"
  return deepest


def test_evaluator_on_the_lra_example():
  assert evaluate_bracket_string("[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]") == 5
  assert evaluate_bracket_string("[SM 9 8 [MED 1 2 ] ]") == 8  # 9 + 8 + 1 = 18


def test_listops_labels_match_an_independent_evaluator(tmp_path):
  task = get_task(dict(task_defaults("listops"), min_length=20, max_length=120, max_depth=6,
                       num_train=300, num_eval=20, dir=str(tmp_path)))
  data = task.train
  for tokens, mask, label in zip(data["inputs"], data["mask"], data["targets"]):
    text = listops_lib.to_string(tokens)
    assert re.fullmatch(r"\[(MIN|MAX|MED|SM) .* \]", text)
    assert evaluate_bracket_string(text) == label
    assert 20 <= mask.sum() <= 120 and len(text.split()) == mask.sum()
    assert depth_of(text) <= 6
    for match in re.finditer(r"\[(MIN|MAX|MED|SM)((?: \d)+) \]", text):  # innermost operators
      assert 2 <= len(match.group(2).split()) <= task_defaults("listops")["max_args"]
  shares = np.bincount(data["targets"], minlength=10) / len(data["targets"])
  assert shares.max() < 0.35 and (shares > 0).sum() >= 8


def test_listops_cache_is_reused_and_rebuilt_when_corrupt(tmp_path, capsys):
  cfg = dict(task_defaults("listops"), **task_smoke("listops"), dir=str(tmp_path))
  first = get_task(cfg).train["inputs"]
  (npz,) = tmp_path.glob("listops-*.npz")
  stamp = npz.stat().st_mtime_ns
  np.testing.assert_array_equal(get_task(cfg).train["inputs"], first)
  assert npz.stat().st_mtime_ns == stamp  # read, not rebuilt
  raw = bytearray(npz.read_bytes())
  raw[len(raw) // 2] ^= 0xFF
  npz.write_bytes(bytes(raw))
  capsys.readouterr()
  np.testing.assert_array_equal(get_task(cfg).train["inputs"], first)
  assert "checksum does not match" in capsys.readouterr().out


def test_listops_bad_settings_are_named():
  with pytest.raises(ValueError, match="need 1 <= data.min_length <= data.max_length; got 50, 10"):
    get_task(dict(task_defaults("listops"), min_length=50, max_length=10))


def test_associative_recall_labels_are_the_paired_values():
  task = get_task(dict(task_defaults("associative_recall")))
  b = task.train_batch(3, 8, seed=0)
  P, K = 16, 32
  for inputs, targets, scored in zip(b["inputs"], b["targets"], b["target_mask"]):
    pairs = dict(zip(inputs[0:2 * P:2].tolist(), inputs[1:2 * P:2].tolist()))
    assert len(pairs) == P  # distinct keys
    queries = inputs[2 * P:]
    assert scored[2 * P:].all() and not scored[:2 * P].any()
    for q, label in zip(queries, targets[2 * P:]):
      assert pairs[int(q)] - 1 - K == label


def test_sort_labels_are_the_sorted_inputs():
  b = get_task(dict(task_defaults("sort"))).train_batch(0, 4, seed=1)
  np.testing.assert_array_equal(b["targets"], np.sort(b["inputs"] - 1, axis=1))


@pytest.mark.parametrize("name", ["copy", "associative_recall", "sort"])
def test_generated_tasks_are_deterministic_and_seeded(name):
  task = get_task(dict(task_defaults(name), **task_smoke(name)))
  a, again, other = (task.train_batch(5, 4, seed=s) for s in (0, 0, 1))
  for key in a:
    np.testing.assert_array_equal(a[key], again[key])
  assert not np.array_equal(a["inputs"], other["inputs"])
  assert a["inputs"].shape == (4, task.info.max_length)
  evals = list(task.eval_batches(8))
  assert sum(int(bool(m.any())) for e in evals for m in e["target_mask"]) == task_smoke(name)["num_eval"]
