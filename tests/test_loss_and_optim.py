"""The loss, the optimizers and one train step, each against a value computed by hand.

A trainer can look healthy (finite loss, accuracy in [0, 1], a step counter that
advances) while it never updates the parameters or while it scores padding. These
tests compute what the numbers must be, in numpy or in closed form, from the same
inputs, so either mistake fails here with a message naming it.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from attn_research.objectives import get_objective
from attn_research.objectives.classification import loss_sums
from attn_research.objectives.optim import make_optimizer, make_schedule
from tests.conftest import make_config


def log_softmax_np(x):
  x = np.asarray(x, np.float64)
  shifted = x - x.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def numpy_sums(logits, targets, weights):
  """(summed cross-entropy, summed correct, count) over the weighted targets."""
  logp = log_softmax_np(logits)
  ce = -np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]
  correct = (np.asarray(logits).argmax(-1) == targets).astype(np.float64)
  return (ce * weights).sum(), (correct * weights).sum(), weights.sum()


# ------------------------------------------------------------------------------ the loss

def per_vector_batch(seed=0):
  """3 sequences of 6 vectors, 4 classes: real lengths 6, 4, 2 (padding last) and a
  target_mask that scores only some real positions, with some predictions right."""
  rng = np.random.default_rng(seed)
  B, T, C = 3, 6, 4
  logits = rng.normal(size=(B, T, C)).astype(np.float32)
  targets = rng.integers(0, C, size=(B, T)).astype(np.int32)
  mask = np.arange(T)[None] < np.array([6, 4, 2])[:, None]
  target_mask = mask & (np.arange(T)[None] % 2 == 1)  # every other real position
  target_mask[0, 0] = True
  # Make the prediction right at a few scored and a few unscored positions.
  for b, t in [(0, 1), (0, 3), (1, 1), (0, 2), (2, 0)]:
    logits[b, t, targets[b, t]] += 6.0
  batch = {"inputs": np.zeros((B, T), np.int32), "mask": mask, "targets": targets,
           "target_mask": target_mask}
  return logits, batch


def test_loss_sums_match_numpy_on_padding_and_a_partial_target_mask():
  logits, batch = per_vector_batch()
  got = jax.device_get(loss_sums(jnp.asarray(logits), batch))
  want_loss, want_correct, want_count = numpy_sums(logits, batch["targets"],
                                                   batch["target_mask"].astype(np.float64))
  assert want_count == 7 and 0 < want_correct < want_count  # the batch tests something
  assert float(got["count"]) == want_count, (
      f"loss_sums counted {got['count']} targets; the target_mask scores {want_count} "
      "(padding or unscored positions counted?)")
  np.testing.assert_allclose(float(got["loss"]), want_loss, rtol=1e-5)
  assert float(got["accuracy"]) == want_correct


def test_masked_out_targets_and_logits_change_nothing():
  logits, batch = per_vector_batch()
  before = jax.device_get(loss_sums(jnp.asarray(logits), batch))
  unscored = ~batch["target_mask"]
  changed_logits = np.where(unscored[..., None], np.float32(1e4) * np.eye(4)[3], logits)
  changed = dict(batch, targets=np.where(unscored, (batch["targets"] + 1) % 4,
                                         batch["targets"]))
  after = jax.device_get(loss_sums(jnp.asarray(changed_logits), changed))
  for key in ("loss", "accuracy", "count"):
    assert float(after[key]) == float(before[key]), (
        f"{key} moved from {before[key]} to {after[key]} when only unscored targets and "
        "logits changed: the loss reads positions the target_mask leaves out")
  # The same change at a scored position does move the loss (the test can fail).
  scored = dict(batch, targets=batch["targets"].copy())
  scored["targets"][0, 1] = (scored["targets"][0, 1] + 1) % 4
  assert float(jax.device_get(loss_sums(jnp.asarray(logits), scored))["loss"]) != float(
      before["loss"])


def test_without_target_mask_per_vector_uses_the_input_mask_per_sequence_every_example():
  logits, batch = per_vector_batch(1)
  no_target_mask = {k: v for k, v in batch.items() if k != "target_mask"}
  got = jax.device_get(loss_sums(jnp.asarray(logits), no_target_mask))
  want = numpy_sums(logits, batch["targets"], batch["mask"].astype(np.float64))
  np.testing.assert_allclose([float(got[k]) for k in ("loss", "accuracy", "count")], want,
                             rtol=1e-5, err_msg="(loss, correct, count) of a per-vector batch "
                             "without target_mask must count the real vectors (mask) only")
  seq_logits = logits[:, 0]  # [B, C]: one label per sequence
  seq_batch = {"inputs": batch["inputs"], "mask": batch["mask"],
               "targets": batch["targets"][:, 0]}
  got = jax.device_get(loss_sums(jnp.asarray(seq_logits), seq_batch))
  want = numpy_sums(seq_logits, seq_batch["targets"], np.ones(3))
  np.testing.assert_allclose([float(got[k]) for k in ("loss", "accuracy", "count")], want,
                             rtol=1e-5)


# ----------------------------------------------------------------------- one train step

@pytest.fixture(scope="module")
def copy_step():
  """The copy task's smoke Transformer (decoder-only, loss on the second copy only) with
  plain SGD at a constant rate: the first update is exactly -lr * gradient."""
  config = make_config("experiments/copy.py:smoke", train__optimizer="sgd",
                       train__weight_decay=0.0, train__grad_clip=0.0,
                       train__schedule="constant", train__warmup_steps=0,
                       train__learning_rate=0.5)
  task = get_task(config.data)
  model = nnx.jit(lambda: get_model(config.model, task.info, rngs=nnx.Rngs(0)))()
  objective = get_objective(config, model)
  batch = task.train_batch(0, 4, 0)
  state = objective.initial_state()
  new_state, metrics = jax.jit(objective.train_step)(state, batch, jax.random.key(0))
  return config, objective, batch, state, new_state, jax.device_get(metrics)


def test_train_step_applies_minus_lr_times_the_gradient_of_the_masked_loss(copy_step):
  config, objective, batch, state, new_state, metrics = copy_step
  tm = batch["target_mask"]
  assert 0 < tm.sum() < batch["mask"].sum()  # unscored real tokens exist

  def hand_loss(params):
    """Mean cross-entropy over the target_mask, written here, not taken from the library."""
    logits = objective.forward(params, batch)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    ce = -jnp.take_along_axis(logp, batch["targets"][..., None], -1)[..., 0]
    return (ce * tm).sum() / tm.sum()

  loss, grads = jax.jit(jax.value_and_grad(hand_loss))(state["params"])
  num_classes = get_task(config.data).info.num_classes
  # At initialisation the model guesses: the loss is near ln(classes) (margin 1 nat:
  # logits of about unit variance add about 0.5 nats to ln(classes)).
  assert abs(float(loss) - math.log(num_classes)) < 1.0, (float(loss), num_classes)
  np.testing.assert_allclose(metrics["loss"], float(loss), rtol=1e-5, err_msg=(
      "the step's loss is not the mean cross-entropy over the target_mask"))
  np.testing.assert_allclose(metrics["grad_norm"], float(optax.tree.norm(grads)), rtol=1e-4)
  assert float(metrics["learning_rate"]) == pytest.approx(0.5)
  assert int(new_state["step"]) == int(state["step"]) + 1
  lr = config.train.learning_rate
  moved = jax.tree.map(lambda new, old: np.abs(np.asarray(new) - np.asarray(old)).max(),
                       new_state["params"], state["params"])
  assert max(jax.tree.leaves(moved)) > 1e-3, (
      "train_step returned the parameters unchanged: the optimizer's update is not applied")
  jax.tree.map(lambda new, old, g: np.testing.assert_allclose(
      np.asarray(new), np.asarray(old) - lr * np.asarray(g), rtol=1e-4, atol=1e-6,
      err_msg="new params != params - lr * grad of the masked loss (SGD's first step)"),
      new_state["params"], state["params"], grads)


# -------------------------------------------------------------------- schedules by hand

def train_config(**overrides):
  return make_config("experiments/base.py", **{f"train__{k}": v for k, v in overrides.items()})


@pytest.mark.parametrize("step", [0, 1, 5, 9, 10, 11, 40, 77, 99, 100])
def test_warmup_then_cosine_is_the_closed_form(step):
  tc = train_config(schedule="cosine", learning_rate=0.02, warmup_steps=10,
                    num_steps=100).train
  if step < 10:  # linear warm-up from 0
    want = 0.02 * step / 10
  else:  # half a cosine from lr down to 0 over the remaining 90 steps
    want = 0.02 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
  assert float(make_schedule(tc)(step)) == pytest.approx(want, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("warmup", [0, 10])
@pytest.mark.parametrize("step", [0, 15, 29, 30, 31, 99])
def test_step_decay_divides_by_ten_after_the_decay_fraction(step, warmup):
  tc = train_config(schedule="step", learning_rate=0.01, warmup_steps=warmup,
                    num_steps=100, decay_fraction=0.3).train
  if step < warmup:
    want = 0.01 * step / warmup
  else:
    want = 0.01 if step < 30 else 0.001  # the drop happens at step int(0.3 * 100)
  assert float(make_schedule(tc)(step)) == pytest.approx(want, rel=1e-5)


def test_constant_schedule_after_warmup():
  tc = train_config(schedule="constant", learning_rate=0.003, warmup_steps=4,
                    num_steps=50).train
  got = [float(make_schedule(tc)(s)) for s in (0, 2, 4, 20, 49)]
  np.testing.assert_allclose(got, [0.0, 0.0015, 0.003, 0.003, 0.003], rtol=1e-6)


# ------------------------------------------------------------------- optimizers by hand

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.25, -1.0])}


def first_update(grads, **train):
  tc = train_config(schedule="constant", warmup_steps=0, num_steps=10, **train).train
  tx, _ = make_optimizer(tc)
  updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  return jax.tree.map(np.asarray, updates)


def grads_of_norm(norm):
  g = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.array([0.0, 0.0])}  # norm 5
  return jax.tree.map(lambda x: x * norm / 5.0, g)


@pytest.mark.parametrize("norm,clip,scale", [
    (10.0, 1.0, 0.1),   # clipped: g * clip / |g|
    (0.5, 1.0, 1.0),    # under the threshold: untouched
    (10.0, 0.0, 1.0),   # clip 0 = no clipping
])
def test_gradient_clipping_by_global_norm(norm, clip, scale):
  grads = grads_of_norm(norm)
  got = first_update(grads, optimizer="sgd", learning_rate=0.1, weight_decay=0.0,
                     grad_clip=clip)
  for k in PARAMS:  # SGD's first step (momentum trace = g): -lr * clipped g
    np.testing.assert_allclose(got[k], -0.1 * scale * np.asarray(grads[k]), rtol=1e-6,
                               atol=1e-8)


@pytest.mark.parametrize("optimizer", ["adamw", "radam", "sgd"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_weight_decay_is_applied_as_configured(optimizer, weight_decay):
  """With zero gradients the only update is decoupled weight decay: -lr * wd * params."""
  zeros = jax.tree.map(jnp.zeros_like, PARAMS)
  got = first_update(zeros, optimizer=optimizer, learning_rate=0.1, weight_decay=weight_decay,
                     grad_clip=1.0)
  for k in PARAMS:
    np.testing.assert_allclose(got[k], -0.1 * weight_decay * np.asarray(PARAMS[k]),
                               rtol=1e-6, atol=1e-12)


def test_adam_first_step_is_minus_lr_times_the_gradient_sign():
  grads = {"w": jnp.array([[0.3, -2.0], [1e-3, 5.0]]), "b": jnp.array([-0.7, 4.0])}
  got = first_update(grads, optimizer="adam", learning_rate=0.01, weight_decay=0.0,
                     grad_clip=0.0)
  for k in PARAMS:  # bias-corrected m / sqrt(v) = g / |g| at the first step (eps 1e-8)
    g = np.asarray(grads[k])
    np.testing.assert_allclose(got[k], -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-5)
  with pytest.raises(ValueError, match="'adam' has no weight decay"):
    first_update(grads, optimizer="adam", learning_rate=0.01, weight_decay=0.1)
