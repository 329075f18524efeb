"""Every objective and every model family learns a tiny task, far above chance.

A trainer that never applies its update, or that scores padding, still writes finite
losses and accuracies in [0, 1]; only learning tells it apart. Each case trains a few
hundred steps (one jitted lax.scan over the objective's own train_step, so a case costs
one compilation) and asserts, with the numbers stated here:

  - the loss at initialisation (step 1, before any update) is within LOSS_AT_INIT_MARGIN
    of ln(classes): a model that guesses;
  - the final training loss (mean of the last 10 steps) is below half the first;
  - eval accuracy, counted here in numpy from the logits and the target_mask (not by the
    library's loss_sums), reaches the case's min_accuracy, far above chance (1/classes).

One test drives the real training loop (train/loop.run writing a workdir) and checks its
eval accuracy against the same numpy count of the restored checkpoint's predictions.
The image ResNets (cnn2d, sagan_cnn) are slow: XLA's CPU convolution gradients cost
tens of ms per step at these sizes, so they are marked `slow`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time

import jax
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from attn_research.objectives import get_objective
from tests.conftest import make_config

# Logits of about unit variance at initialisation (LayerNorm, then a lecun-initialised
# head) add about 0.5 nats to ln(classes); an unnormalised or mis-scored loss lands
# several nats away.
LOSS_AT_INIT_MARGIN = 1.0
DIGITS = "experiments/base.py:smoke"   # sklearn digits, 16 patch vectors, 10 classes
FAST = dict(train__batch_size=32, train__learning_rate=1e-2, train__warmup_steps=10,
            train__eval_batch_size=128)
KARATE = dict(train__batch_size=1, train__eval_batch_size=1, train__learning_rate=1e-2,
              train__warmup_steps=10)


@dataclasses.dataclass(frozen=True)
class Case:
  spec: str
  overrides: dict
  steps: int
  min_accuracy: float


CASES = {
    # objective: a label per vector (sort 16 symbols; chance 1/16)
    "transformer/per_vector/sort": Case(
        DIGITS, dict(FAST, data__name="sort", model__d_model=32, model__num_heads=4,
                     model__num_layers=2), 300, 0.9),
    # objective: next token, decoder-only, scored on the second copy only (chance 1/12)
    "transformer/next_token/copy": Case("experiments/copy.py:smoke", FAST, 300, 0.8),
    # objective: seq2seq with teacher forcing (reverse 2-4 symbols + end; chance 1/7)
    "encoder_decoder/seq2seq/reverse": Case("experiments/reverse.py:smoke", FAST, 300, 0.9),
    # families on one label per sequence (digits; chance 0.1)
    "cnn/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="cnn", model__d_model=16,
                                                 model__num_layers=2), 300, 0.8),
    "rnn/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="rnn", model__d_model=32,
                                                 model__num_layers=1), 300, 0.8),
    "mlp/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="mlp", model__d_model=32),
                                    200, 0.8),
    "vit/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="vit", model__d_model=32,
                                                 model__num_layers=1, model__num_heads=2,
                                                 model__pooling="mean"), 300, 0.8),
    # graph families on karate: 8 labelled members train, the other 26 score (chance 0.5)
    "gcn/per_vector/karate": Case("experiments/karate.py:identity,smoke",
                                  dict(KARATE, model__name="gcn", model__d_model=16), 100,
                                  0.75),
    "graph_attention/per_vector/karate": Case(
        "experiments/karate.py:identity,smoke",
        dict(KARATE, model__name="graph_attention", model__d_model=16, model__num_heads=2),
        100, 0.75),
}
SLOW_CASES = {
    "cnn2d/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="cnn2d", model__d_model=8,
                                                   train__schedule="constant",
                                                   train__warmup_steps=5), 120, 0.8),
    "sagan_cnn/per_sequence/digits": Case(DIGITS, dict(FAST, model__name="sagan_cnn",
                                                       model__d_model=8,
                                                       train__schedule="constant",
                                                       train__warmup_steps=5), 120, 0.8),
}


def numpy_accuracy(logits, batch) -> tuple[float, float]:
  """(correct, counted) over the batch's scored targets (target_mask), in numpy."""
  w = np.asarray(batch["target_mask"], bool)
  right = np.asarray(logits).argmax(-1) == np.asarray(batch["targets"])
  return float((right & w).sum()), float(w.sum())


def eval_accuracy(forward, params, task, eval_batch_size) -> float:
  correct = counted = 0.0
  for batch in task.eval_batches(eval_batch_size):
    c, n = numpy_accuracy(forward(params, batch), batch)
    correct, counted = correct + c, counted + n
  return correct / counted


@dataclasses.dataclass
class Learned:
  losses: np.ndarray     # the training loss of every step, before its update
  accuracy: float        # eval accuracy, counted in numpy
  classes: int
  seconds: float

  @property
  def first(self):
    return float(self.losses[0])

  @property
  def final(self):
    return float(self.losses[-10:].mean())


def learn(case: Case) -> Learned:
  """Trains case's config for case.steps steps with the objective's train_step."""
  start = time.perf_counter()
  config = make_config(case.spec, train__num_steps=case.steps, **case.overrides)
  task = get_task(config.data)
  model = nnx.jit(lambda: get_model(config.model, task.info,
                                    rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1)))()
  objective = get_objective(config, model)
  rng = jax.random.key(config.seed)
  raw = [task.train_batch(s, config.train.batch_size, config.seed) for s in range(case.steps)]
  batches = {k: np.stack([b[k] for b in raw]) for k in raw[0]}

  @jax.jit
  def train(state, batches):
    return jax.lax.scan(lambda s, b: objective.train_step(s, b, rng), state, batches)

  state, metrics = train(objective.initial_state(), batches)
  accuracy = eval_accuracy(jax.jit(objective.forward), state["params"], task,
                           config.train.eval_batch_size)
  return Learned(np.asarray(metrics["loss"]), accuracy, task.info.num_classes,
                 time.perf_counter() - start)


def check_learned(name, learned: Learned, min_accuracy: float):
  chance = 1 / learned.classes
  ln_c = math.log(learned.classes)
  assert abs(learned.first - ln_c) < LOSS_AT_INIT_MARGIN, (
      f"{name}: loss at initialisation {learned.first:.3f} is not within "
      f"{LOSS_AT_INIT_MARGIN} of ln({learned.classes}) = {ln_c:.3f}")
  assert learned.final < 0.5 * learned.first, (
      f"{name}: final training loss {learned.final:.3f} is not below half the first "
      f"{learned.first:.3f}: the parameters did not learn (is the update applied?)")
  assert learned.accuracy >= min_accuracy, (
      f"{name}: eval accuracy {learned.accuracy:.3f} < {min_accuracy} (chance {chance:.3f})")


def learn_and_check(name, case):
  """Trains one case, prints what it reached, and applies check_learned."""
  learned = learn(case)
  print(f"{name}: loss {learned.first:.3f} -> {learned.final:.3f}, eval accuracy "
        f"{learned.accuracy:.3f}, {learned.seconds:.1f} s")
  check_learned(name, learned, case.min_accuracy)


@pytest.mark.parametrize("name", sorted(CASES))
def test_learns(name):
  learn_and_check(name, CASES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_CASES))
def test_image_resnets_learn(name):
  learn_and_check(name, SLOW_CASES[name])


def test_training_loop_learns_digits_and_counts_eval_accuracy_right(tmp_path):
  """The real loop (train/loop.run): a Transformer learns digits (one label per image),
  and the eval accuracy in summary.json is the fraction of the 359 eval images the
  checkpoint classifies right: the last eval batch's padding rows are not counted."""
  from attn_research.train.loop import run
  from attn_research.train.restore import load_trained
  steps = 300
  config = make_config(DIGITS, train__num_steps=steps, train__log_every=1,
                       train__eval_every=steps, train__checkpoint_every=steps, **FAST)
  summary = run(config, tmp_path, progress=False)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = np.array([r["loss"] for r in rows if r["split"] == "train"])
  assert len(losses) == steps
  trained = load_trained(tmp_path)
  assert trained.step == steps
  model = trained.model

  @nnx.jit
  def forward(model, batch):
    return model(batch["inputs"], batch["mask"])

  accuracy = eval_accuracy(lambda _, b: forward(model, b), None, trained.task,
                           config.train.eval_batch_size)
  eval_count = sum(b["target_mask"].sum() for b in trained.task.eval_batches(128))
  assert eval_count == 359 and 359 % config.train.eval_batch_size  # padding exists
  assert summary["final_eval"]["accuracy"] == pytest.approx(accuracy, abs=1e-6), (
      f"the loop's eval accuracy {summary['final_eval']['accuracy']} is not the checkpoint's "
      f"{accuracy} over the {eval_count} scored eval examples (padding counted?)")
  check_learned("loop/transformer/digits", Learned(losses, accuracy, 10, 0.0), 0.8)
