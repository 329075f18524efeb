"""Pretraining and transfer: BERT's masking draw (its shares counted over many draws), a
loss that only the selected positions move, a masked-token model that learns, loading an
encoder from another run's workdir under a fresh head, freezing by parameter path, the
chapter split that keeps pretraining text out of validation and test, the transfer run
mode, and every bad setting refused by name before training."""
import math
import re
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task, kjv_transfer, task_defaults, vocab
from attn_research.models import get_model
from attn_research.objectives import get_objective
from attn_research.objectives.masked_lm import mask_tokens, masking_settings
from attn_research.objectives.optim import param_paths
from attn_research.train.loop import prepare, run
from attn_research.train.restore import load_trained
from attn_research.workdir import read_metrics
from tests.conftest import make_config, missing_system, require_source

pytestmark = pytest.mark.usefixtures("needs_kjv")


@pytest.fixture
def needs_kjv():
  require_source("kjv_mlm")


# ----------------------------------------------------------------------- the draw

def _draws(n, *, rate, mask, random, seed=0):
  """n masking draws over a fixed batch: 48 x 96 tokens, the last quarter of every row
  padding, and the real tokens including a few special ids ([MASK]) that must never be
  selected. Counted in numpy."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, vocab.NUM_BYTES, (48, 96)).astype(np.int32)
  real = np.ones(tokens.shape, bool)
  real[:, 72:] = False
  tokens[:, 72:] = vocab.PAD
  tokens[:, 5] = vocab.MASK  # a special token among the real ones
  draw = jax.jit(lambda k: mask_tokens(k, jnp.asarray(tokens), jnp.asarray(real), rate=rate,
                                       mask=mask, random=random))
  outs = [jax.device_get(draw(jax.random.key(i))) for i in range(n)]
  return tokens, real, outs


@pytest.mark.parametrize("rate,mask,random", [(0.15, 0.8, 0.1), (0.3, 0.5, 0.25)])
def test_masking_shares_match_the_settings(rate, mask, random):
  tokens, real, outs = _draws(40, rate=rate, mask=mask, random=random)
  eligible = real & (tokens < vocab.NUM_BYTES)
  selected = changed_to_mask = changed_random = kept = 0
  for corrupted, sel in outs:
    assert not (sel & ~eligible).any(), "padding or a special token was selected"
    assert (corrupted[~sel] == tokens[~sel]).all(), "an unselected token changed"
    selected += sel.sum()
    changed_to_mask += (sel & (corrupted == vocab.MASK)).sum()
    changed_random += (sel & (corrupted != vocab.MASK) & (corrupted != tokens)).sum()
    kept += (sel & (corrupted == tokens)).sum()
    assert (corrupted[sel & (corrupted != vocab.MASK)] < vocab.NUM_BYTES).all()
  # 40 draws of 3,408 eligible tokens: the standard error of a share is below 0.003.
  assert selected / (40 * eligible.sum()) == pytest.approx(rate, abs=0.01)
  assert changed_to_mask / selected == pytest.approx(mask, abs=0.015)
  # A random byte equals the original with probability 1/256: it then counts as kept.
  assert changed_random / selected == pytest.approx(random * 255 / 256, abs=0.015)
  assert kept / selected == pytest.approx(1 - mask - random * 255 / 256, abs=0.015)


def test_masking_draws_differ_by_key_and_repeat_for_the_same_key():
  _, _, outs = _draws(2, rate=0.15, mask=0.8, random=0.1)
  _, _, again = _draws(1, rate=0.15, mask=0.8, random=0.1)
  assert not np.array_equal(outs[0][1], outs[1][1])
  assert np.array_equal(outs[0][1], again[0][1]) and np.array_equal(outs[0][0], again[0][0])


def _mlm_objective(**masking):
  config = make_config("experiments/pretrain.py:smoke")
  from attn_research.modes.transfer import pretrain_config
  config = pretrain_config(config)
  with config.unlocked():
    config.masking.update(masking)
  task = get_task(config.data)
  model = get_model(config.model, task.info, rngs=nnx.Rngs(0))
  return config, task, get_objective(config, model)


def test_loss_counts_the_selected_positions_only():
  _, task, objective = _mlm_objective()
  batch = jax.tree.map(jnp.asarray, task.train_batch(0, 8, 0))
  masked = objective.masked(batch, jax.random.key(3))
  sel = np.asarray(masked["target_mask"])
  assert 0 < sel.sum() < np.asarray(batch["mask"]).sum()
  assert np.array_equal(np.asarray(masked["targets"]), np.asarray(batch["inputs"]))
  logits = jax.random.normal(jax.random.key(1), batch["inputs"].shape + (vocab.SIZE,))
  loss, sums = objective.loss_and_sums(logits, masked)
  # The same loss in numpy: cross-entropy of the original tokens, selected positions only.
  lp = np.asarray(jax.nn.log_softmax(logits))
  targets = np.asarray(batch["inputs"])
  ce = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
  assert float(loss) == pytest.approx(ce[sel].mean(), rel=1e-5)
  assert float(sums["count"]) == sel.sum()
  # Anything at an unselected position changes nothing; at a selected one it does.
  other = jnp.where(jnp.asarray(sel)[..., None], logits, 50.0 * logits[::-1])
  assert float(objective.loss_and_sums(other, masked)[0]) == pytest.approx(float(loss), rel=1e-6)
  i, j = np.argwhere(sel)[0]
  bumped = logits.at[i, j, targets[i, j]].add(5.0)
  assert float(objective.loss_and_sums(bumped, masked)[0]) < float(loss)


def test_masked_lm_learns():
  """Loss at initialisation near ln(258), below half of it after 400 steps, and the
  masked-token accuracy above the unigram baseline (always the commonest byte of the
  selected tokens), both counted in numpy on the eval pieces' deterministic masking."""
  config, task, objective = _mlm_objective()
  steps, batch_size = 400, 32
  with config.unlocked():
    config.train.update(learning_rate=1e-2, warmup_steps=20, num_steps=steps)
  model = get_model(config.model.to_dict() | {"d_model": 32, "num_heads": 4, "num_layers": 2},
                    task.info, rngs=nnx.Rngs(0))
  objective = get_objective(config, model)
  raw = [task.train_batch(s, batch_size, 0) for s in range(steps)]
  batches = {k: np.stack([b[k] for b in raw]) for k in raw[0]}
  rng = jax.random.key(0)

  @jax.jit
  def train(state, batches):
    return jax.lax.scan(lambda s, b: objective.train_step(s, b, rng), state, batches)

  state, metrics = train(objective.initial_state(), batches)
  losses = np.asarray(metrics["loss"])
  assert abs(losses[0] - math.log(vocab.SIZE)) < 1.0, losses[0]
  assert losses[-10:].mean() < 0.5 * losses[0], (losses[0], losses[-10:].mean())
  correct = counted = 0
  counts = np.zeros(vocab.SIZE)
  forward = jax.jit(objective.forward)
  for batch in task.eval_batches(64):
    key = jax.random.key(int(np.asarray(batch["inputs"]).sum()))
    masked = jax.device_get(objective.masked(jax.tree.map(jnp.asarray, batch), key))
    sel = masked["target_mask"]
    pred = np.asarray(forward(state["params"], masked)).argmax(-1)
    correct += (pred[sel] == masked["targets"][sel]).sum()
    counted += sel.sum()
    counts += np.bincount(masked["targets"][sel], minlength=vocab.SIZE)
  unigram = counts.max() / counts.sum()
  assert correct / counted > unigram + 0.05, (correct / counted, unigram)


# ------------------------------------------------------------- init_from, frozen

# experiments/pretrain.py:smoke at 4 steps, with the learned positions of the fine-tuning
# configs below (experiments/base.py), so a longer fine-tuning length has a table to clash.
PRE = dict(train__num_steps=4, train__checkpoint_every=2, train__keep_checkpoints=2,
           train__eval_every=4, model__position="learned")


def _pretrain(workdir, **overrides):
  from attn_research.modes.transfer import pretrain_config
  config = pretrain_config(make_config("experiments/pretrain.py:smoke"))
  pairs = dict(PRE, **overrides)
  with config.unlocked():
    for key, value in pairs.items():
      node, leaf = key.split("__")
      config[node][leaf] = value
  return run(config, workdir, progress=False)


SMALL = dict(model__d_model=16, model__num_layers=1, model__num_heads=2)


def _finetune(model=SMALL, **overrides):
  base = dict(data__name="kjv_books", data__max_length=16, data__num_eval=64,
              train__num_steps=3, train__eval_every=3, train__checkpoint_every=3, **model)
  return make_config("experiments/base.py:smoke", **dict(base, **overrides))


def _params(state_or_model):
  return {k: np.asarray(v) for k, v in param_paths(state_or_model).items()}


@pytest.mark.slow  # pretrains a source run, then fine-tunes from it
def test_finetune_loads_the_encoder_and_a_fresh_head(tmp_path, capsys):
  _pretrain(tmp_path / "src")
  source = _params(nnx.state(load_trained(tmp_path / "src").model, nnx.Param))
  fresh = prepare(_finetune(), tmp_path / "fresh")
  p = prepare(_finetune(init_from=str(tmp_path / "src")), tmp_path / "ft")
  out = capsys.readouterr().out
  loaded, new = _params(p.objective.params), _params(fresh.objective.params)
  assert set(loaded) == set(new)
  heads = [k for k in loaded if k.startswith("head/")]
  assert heads and len(heads) < len(loaded)
  for name in loaded:
    if name in heads:  # the new model's own initialisation, not the source's
      assert np.array_equal(loaded[name], new[name]), name
      assert f"new      {name}" in out
    else:
      assert np.array_equal(loaded[name], source[name]), name
      assert not np.array_equal(loaded[name], new[name]), name
      assert f"loaded   {name} {'x'.join(map(str, source[name].shape))}" in out
  assert source["head/proj/kernel"].shape[-1] == vocab.SIZE != loaded["head/proj/kernel"].shape[-1]
  assert "skipped  head/proj/kernel" in out
  # WORKDIR:STEP loads that step, not the latest.
  step2 = prepare(_finetune(init_from=f"{tmp_path / 'src'}:2"), tmp_path / "ft2")
  emb = "embed/embed/embedding"
  assert not np.array_equal(_params(step2.objective.params)[emb], loaded[emb])
  assert "step 2 " in capsys.readouterr().out


@pytest.mark.slow  # pretrains a source run, then fine-tunes from it
def test_frozen_parameters_stay_bit_identical_and_have_no_optimizer_state(tmp_path):
  _pretrain(tmp_path / "src")
  config = _finetune(init_from=str(tmp_path / "src"), train__frozen="^(?!head/).*",
                     train__num_steps=6, train__learning_rate=0.05)
  p = prepare(config, tmp_path / "ft")
  start = _params(p.objective.params)
  state = p.objective.initial_state()
  mu_values = sum(x.size for x in jax.tree.leaves(state["opt_state"]) if x.ndim)
  head_values = sum(v.size for k, v in start.items() if k.startswith("head/"))
  assert mu_values == 2 * head_values  # Adam's two moments, for the head alone
  run(config, p.workdir, progress=False, prepared=p)
  end = _params(nnx.state(load_trained(tmp_path / "ft").model, nnx.Param))
  for name in start:
    same = np.array_equal(start[name], end[name])
    assert same != name.startswith("head/"), name  # frozen: identical; head: trained


@pytest.mark.slow  # pretrains a source run, then fine-tunes from it
def test_resuming_a_finetuning_run_never_reads_the_source_again(tmp_path, capsys):
  _pretrain(tmp_path / "src")
  config = _finetune(init_from=str(tmp_path / "src"), train__num_steps=4,
                     train__checkpoint_every=2)
  p = prepare(config, tmp_path / "ft")
  original = p.task.train_batch

  def interrupt(step, *args, **kwargs):
    if step == 3:
      raise KeyboardInterrupt
    return original(step, *args, **kwargs)

  p.task.train_batch = interrupt
  with pytest.raises(KeyboardInterrupt):
    run(config, p.workdir, progress=False, prepared=p)
  shutil.rmtree(tmp_path / "src")  # the source is gone: resuming must not need it
  summary = run(config, tmp_path / "ft", progress=False)
  assert summary["resumed_from_step"] == 3 and summary["step"] == 4
  assert "is not read again" in capsys.readouterr().out


@pytest.mark.slow  # pretrains a source run, then fine-tunes from it
def test_bad_init_from_and_frozen_are_refused_by_name(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match=r"init_from=.*empty.*not a trained run.*notes\.txt"):
    prepare(_finetune(init_from=str(tmp_path / "empty")), tmp_path / "a")
  with pytest.raises(ValueError, match=r"init_from=.*nowhere.*is not a directory"):
    prepare(_finetune(init_from=str(tmp_path / "nowhere")), tmp_path / "a")
  _pretrain(tmp_path / "src")
  src = str(tmp_path / "src")
  with pytest.raises(ValueError, match=r"model\.name='transformer'; this run has "
                                       r"model\.name='cnn'"):
    prepare(_finetune(dict(model__name="cnn", model__d_model=16), init_from=src),
            tmp_path / "a")
  with pytest.raises(ValueError, match=r"model\.d_model=16; this run has model\.d_model=24"):
    prepare(_finetune(init_from=src, model__d_model=24), tmp_path / "a")
  with pytest.raises(ValueError, match=r"parameter blocks/1/\S+ .* is not in the source run"):
    prepare(_finetune(init_from=src, model__num_layers=2), tmp_path / "a")
  with pytest.raises(ValueError, match=r"parameter blocks/0/attn/position/table_LD is 16x16 in "
                                       r"the source run but 24x16"):
    prepare(_finetune(init_from=src, data__max_length=24), tmp_path / "a")
  with pytest.raises(ValueError, match=r"init_skip='\(' is not a regular expression"):
    prepare(_finetune(init_from=src, init_skip="("), tmp_path / "a")
  with pytest.raises(ValueError, match=r"holds no checkpoint of step 3; its steps: \[2, 4\]"):
    prepare(_finetune(init_from=f"{src}:3"), tmp_path / "a")
  with pytest.raises(ValueError, match=r"train\.frozen='encoder/\.\*' matches no parameter "
                                       r"path.*blocks/0/attn/key/bias"):
    prepare(_finetune(train__frozen="encoder/.*"), tmp_path / "a")
  with pytest.raises(ValueError, match=r"train\.frozen='\.\*' matches all"):
    prepare(_finetune(train__frozen=".*"), tmp_path / "a")
  with pytest.raises(ValueError, match=r"train\.frozen='\(' is not a regular expression"):
    prepare(_finetune(train__frozen="("), tmp_path / "a")


@pytest.mark.parametrize("masking,message", [
    (dict(rate=1.5), r"masking\.rate=1\.5 must be in \(0, 1\)"),
    (dict(rate=0.0), r"masking\.rate=0\.0 must be in \(0, 1\)"),
    (dict(mask=0.8, random=0.3), r"masking\.mask=0\.8 \+ masking\.random=0\.3 = 1\.1 must be <= 1"),
])
def test_bad_masking_is_refused_by_name(masking, message, tmp_path):
  from attn_research.modes.transfer import pretrain_config
  config = make_config("experiments/pretrain.py:smoke", **{f"transfer__pretrain__masking__{k}": v
                                                             for k, v in masking.items()})
  with pytest.raises(ValueError, match=message):
    prepare(pretrain_config(config), tmp_path / "w")
  with pytest.raises(ValueError, match=r"masking \['size'\] is not a masking setting"):
    masking_settings(ml_collections.ConfigDict({"masking": {"size": 3}}))


def test_masked_lm_refuses_a_task_of_another_vocabulary(tmp_path):
  with pytest.raises(ValueError, match=r"shared byte vocabulary of 258 tokens.*data\.name='sort' "
                                       r"gives \d+ input tokens"):
    prepare(make_config("experiments/base.py:smoke", objective="masked_lm", data__name="sort"),
            tmp_path / "w")
  with pytest.raises(ValueError, match=r"label per vector.*data\.name='kjv_books'"):
    prepare(_finetune(objective="masked_lm"), tmp_path / "w")


# ------------------------------------------------------------------- the data

def _verses():
  cfg = dict(kjv_transfer.SPLIT_DEFAULTS)
  verses = kjv_transfer.read_verses(cfg)
  return verses, kjv_transfer.chapter_splits(verses, 0.1, 0)


def test_chapters_are_split_whole_and_every_group_is_in_every_split():
  verses, split = _verses()
  chapter = verses["book"].astype(int) * 1000 + verses["chapter"]
  for c in np.unique(chapter):
    assert len(set(split[chapter == c])) == 1, c
  groups = kjv_transfer.book_groups(verses)
  for s in range(3):
    assert set(groups[split == s]) == set(range(8)), s
  assert 0.05 < (split == 1).mean() < 0.15 and 0.05 < (split == 2).mean() < 0.15


def test_pretraining_text_is_the_training_chapters_only():
  """Every kjv_mlm training piece is a piece of a training-chapter verse."""
  verses, split = _verses()
  T = 64
  allowed = {kjv_transfer.verse_bytes(verses, i)[s:s + T]
             for i in np.nonzero(split == 0)[0]
             for s in range(0, len(kjv_transfer.verse_bytes(verses, i)), T)}
  task = get_task(ml_collections.ConfigDict(dict(task_defaults("kjv_mlm"), max_length=T)))
  pieces = {row[m].astype(np.uint8).tobytes() for row, m in zip(task.train["inputs"],
                                                                task.train["mask"])}
  assert pieces == allowed


def _texts(task):
  return {r[m].astype(np.uint8).tobytes() for r, m in zip(task.train["inputs"],
                                                          task.train["mask"])}


def test_label_subsets_are_nested_stratified_and_the_eval_split_is_chosen():
  def task(**kw):
    return get_task(ml_collections.ConfigDict(dict(task_defaults("kjv_books"), **kw)))
  rows = {}
  for frac in (0.01, 0.05, 1.0):
    t = task(label_fraction=frac)
    rows[frac] = _texts(t)
    assert set(t.train["targets"]) == set(range(8))  # every group, even at 1 %
  assert rows[0.01] <= rows[0.05] <= rows[1.0]
  assert len(rows[0.01]) < len(rows[0.05]) < len(rows[1.0])
  other = task(label_fraction=0.01, seed=1)
  assert _texts(other) != rows[0.01]
  val, test = task(eval_split="validation"), task(eval_split="test")
  assert len(val.evaluation["targets"]) != len(test.evaluation["targets"])
  with pytest.raises(ValueError, match=r"data\.label_fraction=0 must be in \(0, 1\]"):
    task(label_fraction=0)
  with pytest.raises(ValueError, match=r"data\.eval_split='train' is not valid"):
    task(eval_split="train")


def test_the_shared_vocabulary_fits_kjv_and_fortunes():
  kjv = get_task(ml_collections.ConfigDict(dict(task_defaults("kjv"), vocabulary="shared")))
  default = get_task(ml_collections.ConfigDict(task_defaults("kjv")))
  assert (kjv.info.input_size, kjv.info.num_classes) == (vocab.SIZE, vocab.SIZE)
  assert default.info.input_size == 64  # unchanged by default
  # The same window (same draw) of the same text: bytes in one, fitted ids in the other.
  window, ids = kjv.train_batch(0, 1, 0)["inputs"][0], default.train_batch(0, 1, 0)["inputs"][0]
  assert window.max() < vocab.NUM_BYTES and vocab.decode(window) == default.decode(ids)
  from attn_research.data.sources import task_source
  if not task_source("fortunes").available:
    missing_system("fortunes: apt-get install -y fortunes")
  shared = get_task(ml_collections.ConfigDict(dict(task_defaults("fortunes"),
                                                   vocabulary="shared")))
  plain = get_task(ml_collections.ConfigDict(task_defaults("fortunes")))
  assert (shared.info.input_size, plain.info.input_size) == (vocab.SIZE, 257)
  assert np.array_equal(shared.train["inputs"], plain.train["inputs"])


# ------------------------------------------------------------------- the mode

@pytest.mark.slow  # seven runs of the loop
def test_transfer_mode_smoke_runs_every_arm_and_scores_test_once(tmp_path):
  from attn_research.modes.transfer import run_transfer
  config = make_config("experiments/pretrain.py:smoke")
  data = run_transfer(config, tmp_path, progress=False)
  assert {(r["arm"], r["fraction"]) for r in data["runs"]} == {
      (a, f) for a in ("scratch", "finetune", "probe") for f in (0.05, 1.0)}
  for r in data["runs"]:
    assert r["test"]["examples"] == 64 and r["test"]["step"] <= 3
    assert read_metrics(r["workdir"], "eval")
  again = run_transfer(config, tmp_path, progress=False)  # every run reused, test read back
  assert [r["test"] for r in again["runs"]] == [r["test"] for r in data["runs"]]
  assert (tmp_path / "transfer.json").exists()


@pytest.mark.slow  # seven runs of the loop
def test_image_transfer_pretrains_a_classifier_and_finetunes_it_on_digits(tmp_path):
  """The image-family transfer (experiments/pretrain_images.py): a ViT trained as a
  classifier on rendered digits is the source; the fine-tuned runs load its encoder,
  draw a new head, and score scikit-learn's digits' whole test split once."""
  from attn_research.modes.transfer import run_transfer
  from attn_research.workdir import read_summary
  config = make_config("experiments/pretrain_images.py:smoke")
  data = run_transfer(config, tmp_path, progress=False)
  assert read_summary(tmp_path / "pretrain")["objective"] == "classification"
  assert read_summary(tmp_path / "pretrain")["task"] == "rendered_digits"
  test_size = data["test_rates"]["examples"]
  assert test_size == round(0.2 * 1797) and data["test_rates"]["chance"] == 0.1
  for r in data["runs"]:
    assert r["test"]["examples"] == test_size and r["test"]["split"] == "test"
  labels = {r["fraction"]: r["labels"] for r in data["runs"]}
  assert labels[1.0] == 1797 - 359 - 180 and labels[0.05] == 62


def test_transfer_refuses_masking_without_masked_lm_and_a_task_without_splits(tmp_path):
  from attn_research.modes.transfer import check
  config = make_config("experiments/pretrain_images.py:smoke")
  with config.unlocked():
    config.transfer.pretrain.objective = "masked_lm"
  with pytest.raises(ValueError, match="transfer.pretrain.masking is missing"):
    check(config)
  config = make_config("experiments/pretrain_images.py:smoke",
                       transfer__pretrain__objective="gan")
  with pytest.raises(ValueError, match=r"transfer.pretrain.objective='gan'; valid"):
    check(config)
  config = make_config("experiments/pretrain_images.py:smoke", data__name="mnist1d")
  with pytest.raises(ValueError, match="data.name='mnist1d' has no label_fraction"):
    check(config)


@pytest.mark.parametrize("settings, message", [
    (dict(eval_split="validation"), "needs data.validation_fraction > 0"),
    (dict(eval_split="train"), "data.eval_split='train' is not valid; choose from ('test', 'validation')"),
    (dict(label_fraction=0.0), "label_fraction=0.0 must be in (0, 1]"),
    (dict(validation_fraction=0.8), "must leave at least 10 %"),
])
def test_digits_split_settings_are_checked(settings, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    get_task(dict(task_defaults("digits"), **settings))


def test_digits_validation_and_label_subsets_leave_the_test_split_alone():
  base = get_task(task_defaults("digits"))
  val = get_task(dict(task_defaults("digits"), validation_fraction=0.1, eval_split="test",
                      label_fraction=0.2))
  np.testing.assert_array_equal(base.evaluation["inputs"], val.evaluation["inputs"])
  counts = np.bincount(val.train["targets"], minlength=10)
  assert val.info.train_size == counts.sum() and counts.min() >= 20
  seen = {a.tobytes() for a in val.train["inputs"]}
  assert not seen & {a.tobytes() for a in base.evaluation["inputs"]}


def test_bert_tiny_tier_trains_only_the_judged_shares():
  from attn_research.reproduce.bert2019_transfer import JUDGED_FRACTIONS, tiny_judged_only
  config = make_config("experiments/pretrain.py:tiny")
  steps = dict(zip(config.transfer.label_fractions, config.transfer.num_steps))
  assert tiny_judged_only(config) == (0.2, 1.0)
  assert config.transfer.label_fractions == JUDGED_FRACTIONS
  assert config.transfer.num_steps == tuple(steps[f] for f in JUDGED_FRACTIONS)
