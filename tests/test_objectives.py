"""A new objective plugs into the shared loop from one file: a toy regression objective
(squared error against one-hot targets) defined here trains through train/loop.run,
resumes after an interrupt to the same final metrics, and is refused by name when a
config asks for an objective nobody registered."""
import jax
import jax.numpy as jnp
import pytest

from attn_research.objectives import OBJECTIVES, Objective, register_objective
from attn_research.workdir import read_metrics
from attn_research.train.loop import prepare, run
from tests.conftest import make_config

if "toy_regression" not in OBJECTIVES:
  @register_objective("toy_regression")
  class ToyRegression(Objective):
    """Mean over examples of the squared error between the logits and one-hot targets."""
    progress_metrics = ("loss",)

    def loss_and_sums(self, logits, batch):
      target = jax.nn.one_hot(batch["targets"], logits.shape[-1])
      squared = ((logits.astype(jnp.float32) - target) ** 2).sum(-1)
      count = jnp.asarray(squared.shape[0], jnp.float32)
      return squared.mean(), {"loss": squared.sum(), "count": count}

STEPS = 120
OVERRIDES = dict(objective="toy_regression", train__num_steps=STEPS, train__eval_every=40,
                 train__checkpoint_every=40, train__log_every=10, train__warmup_steps=2,
                 train__learning_rate=1e-2)


def _interrupt_at(p, step):
  """Makes the prepared run's task raise KeyboardInterrupt (Ctrl-C) when the loop asks for
  the batch of `step`, as a user's Ctrl-C between steps would."""
  original = p.task.train_batch

  def train_batch(s, *args, **kwargs):
    if s == step:
      raise KeyboardInterrupt
    return original(s, *args, **kwargs)

  p.task.train_batch = train_batch


def test_toy_objective_trains_and_resumes_to_identical_metrics(tmp_path):
  straight = run(make_config(**OVERRIDES), tmp_path / "straight", progress=False)
  assert straight["objective"] == "toy_regression"
  assert set(straight["final_eval"]) == {"loss"}  # the objective's metrics, nothing else
  # It learned: the eval squared error fell well below the 0.9 of predicting 0.1 for
  # every class (the best constant) and below half of the first logged train error.
  assert straight["final_eval"]["loss"] < 0.75, straight["final_eval"]
  first = read_metrics(tmp_path / "straight", "train")[0]["loss"]
  assert straight["final_train"]["loss"] < first / 2, (first, straight["final_train"])

  config = make_config(**OVERRIDES)
  p = prepare(config, tmp_path / "interrupted")
  _interrupt_at(p, 50)
  with pytest.raises(KeyboardInterrupt):
    run(config, p.workdir, progress=False, prepared=p)
  resumed = run(make_config(**OVERRIDES), tmp_path / "interrupted", progress=False)
  assert resumed["resumed_from_step"] == 50
  assert resumed["final_eval"] == straight["final_eval"]
  assert resumed["final_train"] == straight["final_train"]


def test_unknown_objective_is_refused_before_compiling(tmp_path):
  with pytest.raises(ValueError, match=r"objective='nope' is not registered; valid: .*classification"):
    prepare(make_config(objective="nope"), tmp_path / "w")
