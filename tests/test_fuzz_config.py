"""Fuzzing the front door: random override keys, values, experiment arguments, command
lines, sweep(add) expansions and NAME:ARG settings. Every outcome must be a locked
config that survives config.json (or a planned sweep whose commands can run), or a
ValueError whose message names an offending key or value; never another exception.

Each @example is an input the fuzzer once crashed on, kept after the fix.
"""
import contextlib
import io
import json
import os
import tempfile

import pytest
from flax import nnx
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from attn_research import args as args_lib
from attn_research import main as cli
from attn_research.config import flat_keys, load_config, parse_override_args
from attn_research.data.base import TASKS, get_task, task_defaults
from attn_research.models import MODELS
from attn_research.nn import attention as attention_lib
from attn_research.nn.attention import base as attention_base
from attn_research.nn.attention import multi_head
from attn_research.nn.positions import POSITIONAL, floater, get_positional
from attn_research.sweep import plan as plan_lib
from tests.conftest import ROOT


def fuzz(max_examples):
  """Deterministic (the same examples every run), no deadline: compiling takes its time."""
  return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


# Configs whose keys cover every kind of value: scalars (base), None (kjv: data.dir), lists
# (spoken_digits: data.voices), tuples (positions: extrapolation.factors), several models
# (compare: models.*), and arguments of their own (lra2020: task names, full).
SPECS = ["experiments/base.py", "experiments/kjv.py", "experiments/spoken_digits.py",
         "experiments/positions.py", "experiments/compare.py", "experiments/repro/lra2020.py"]
NOT_CONFIGS = ["README.md", "launch.sh", "experiments", "experiments/missing.py",
               "attn_research/registry.py"]
VALID_KEYS = sorted({k for spec in SPECS for k in flat_keys(load_config(str(ROOT / spec)))})
GROUPS = sorted({k.rsplit(".", 1)[0] for k in VALID_KEYS if "." in k})
NAMES = sorted({*MODELS.names(), *TASKS.names(), *attention_lib.ATTENTION_KERNELS.names(),
                *POSITIONAL.names(), "tfds", "cnn"})

short_text = st.text(max_size=10)
word = st.sampled_from(["smoke", "full", "listops", "text", "nonsense", ""]) | short_text
spec_st = st.builds(
    lambda path, words: str(ROOT / path) + ("" if words is None else ":" + ",".join(words)),
    st.sampled_from(SPECS + NOT_CONFIGS), st.none() | st.lists(word, max_size=3))
key_st = st.one_of(st.sampled_from(VALID_KEYS), st.sampled_from(GROUPS),
                   st.builds(lambda k, s: k + s, st.sampled_from(VALID_KEYS), short_text),
                   short_text)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), short_text,
                   st.binary(max_size=3), st.complex_numbers(max_magnitude=10))
literal = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=2),
    st.frozensets(st.integers(), max_size=2)), max_leaves=6)
name_arg = st.builds(lambda n, sep, a: n + sep + a, st.sampled_from(NAMES),
                     st.sampled_from(["", ":"]), short_text)
raw_st = st.one_of(short_text, literal.map(repr), name_arg,
                   st.sampled_from(["1e999", "nan", "-0", "1_0", "٣", "True", "None", "()",
                                    "[]", "{}", "{[1]: 2}", "set()", "1" * 5000, "(" * 300]))


def names_culprit(message, keys=(), values=()):
  """True when the message names one of keys (quoted, as KEY= or as --config.KEY) or
  values (quoted)."""
  return (any(repr(k) in message or f"{k}=" in message or f"--config.{k}" in message
              for k in keys)
          or any(repr(v) in message or (isinstance(v, str) and len(v) > 2 and v in message)
                 for v in values))


def check_config(config):
  """A usable config: locked, and written to config.json (and read back) as it is."""
  assert config.is_locked
  json.loads(json.dumps(config.to_dict()))


def spec_parts(spec):
  path, _, arg = spec.partition(":")
  return [path, *arg.split(",")] if arg else [path]


@fuzz(200)
@given(spec=spec_st, overrides=st.lists(st.tuples(key_st, raw_st), max_size=4))
# Crashes found by this test, kept after their fixes:
@example(spec=str(ROOT / "README.md"), overrides=[])  # AttributeError: no loader for .md
@example(spec=str(ROOT / "experiments/kjv.py"), overrides=[("data.dir", "{[1]: 2}")])  # TypeError
@example(spec=str(ROOT / "experiments/kjv.py"), overrides=[("data.dir", "b'x'")])  # bytes in config.json
@example(spec=str(ROOT / "experiments/kjv.py"), overrides=[("data.dir", "{(1, 2): 3}")])
@example(spec=str(ROOT / "experiments/spoken_digits.py"), overrides=[("data.voices", "[1j]")])
# Accepted and then silently dropped (the argument after ':'):
@example(spec=str(ROOT / "experiments/base.py"), overrides=[("model.name", "transformer:xyz")])
@example(spec=str(ROOT / "experiments/base.py"), overrides=[("data.name", "digits:xyz")])
def test_config_loader_gives_a_config_or_a_named_value_error(spec, overrides):
  try:
    config = load_config(spec, overrides)
  except ValueError as e:
    event("refused")
    assert names_culprit(str(e), [k for k, _ in overrides],
                         [raw for _, raw in overrides] + spec_parts(spec)), str(e)[:500]
    return
  check_config(config)


@pytest.mark.parametrize("key,value", [("model.name", "transformer:xyz"),
                                       ("data.name", "digits:3")])
def test_an_argument_to_an_entry_that_takes_none_is_refused(key, value):
  with pytest.raises(ValueError, match=f"{value!r}: '.*' takes no argument after ':'"):
    load_config(str(ROOT / "experiments/base.py"), [(key, value)])


flag_st = st.one_of(
    st.builds(lambda k, v: f"--config.{k}={v}", key_st, raw_st),
    st.builds(lambda k: f"--config.{k}", key_st),
    st.sampled_from(["--workdir", "--no-progress", "--config", "--", "-x", "--lr", "="]),
    short_text.filter(lambda t: not t.startswith("-h") and not t.startswith("--h")))


@fuzz(200)
@given(args=st.lists(flag_st, max_size=5))
def test_override_arguments_parse_or_name_the_bad_one(args):
  try:
    pairs = parse_override_args(args)
  except ValueError as e:
    assert names_culprit(str(e), values=args), str(e)
    return
  assert all(f"--config.{k}={v}" in args or f"--config.{k}" in args for k, v in pairs)


@fuzz(40)
@given(spec=spec_st, args=st.lists(flag_st, max_size=4))
def test_command_line_runs_a_locked_config_or_exits_naming_the_problem(spec, args, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("cli"))
  argv = ["--config", spec, "--workdir", workdir, *args]
  started = []
  err = io.StringIO()
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr("attn_research.modes.get_mode",
               lambda config: lambda c, w, progress: started.append(c) or "stub")
    mp.setattr("attn_research.modes.attention_maps.save_all_attention_maps", lambda w: None)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
      try:
        cli.main(argv)
      except SystemExit as e:
        event("refused")
        assert e.code == 2, (e.code, err.getvalue())
        message = err.getvalue()
        keys = [a[len("--config."):].partition("=")[0] for a in argv if a.startswith("--config.")]
        # argparse's own errors name the option unquoted ("argument --workdir: ...").
        options = [a.split("=")[0] for a in argv if a.startswith("--") and len(a) > 2]
        assert (names_culprit(message, keys, argv + spec_parts(spec))
                or any(o in message for o in options)), message[:500]
        return
  assert len(started) == 1
  check_config(started[0])


# Half of the axes sweep a key over values it takes, so that many plans succeed too.
GOOD_AXES = {"model.attention": ["softmax", "linear", "performer:8", "linformer"],
             "model.position": ["none", "learned", "rotary", "floater:dt=0.5"],
             "model.d_model": [16, 32], "train.learning_rate": [1e-3, 0.01, 1],
             "data.view": ["patches", "pixels"], "model.name": ["cnn", "rnn", "transformer"]}
good_axis = st.sampled_from(sorted(GOOD_AXES)).flatmap(
    lambda k: st.lists(st.sampled_from(GOOD_AXES[k]), min_size=1, max_size=3, unique=True)
    .map(lambda values: {k: values}))
sweep_value = st.one_of(st.booleans(), st.integers(-3, 3), st.floats(), short_text,
                        st.sampled_from(NAMES), st.none(), st.binary(max_size=2),
                        st.lists(st.integers(0, 3) | short_text, max_size=2))
sweep_key = st.sampled_from(["model.attention", "model.position", "model.d_model", "seed",
                             "model.name", "train.learning_rate", "data.view"]) | key_st
axis_st = good_axis | st.dictionaries(sweep_key, st.lists(sweep_value, max_size=3)
                                      | sweep_value, max_size=2)


@fuzz(60)
@given(axes=st.lists(good_axis, min_size=1, max_size=2)
       | st.lists(axis_st | st.builds(lambda a: {"zip": a}, axis_st), max_size=3),
       seeds=st.none() | st.integers(-1, 3) | st.booleans(),
       overrides=st.just([]) | st.lists(st.tuples(sweep_key, raw_st), max_size=2))
# A value the config takes but a command line cannot carry (NUL): refused when expanded.
@example(axes=[{"model.attention": ["soft\x00max"]}], seeds=None, overrides=[])
@example(axes=[{"model.attention": ["\ud800"]}], seeds=None, overrides=[])
def test_sweep_expansion_plans_runnable_runs_or_names_the_bad_setting(axes, seeds, overrides):
  def sweep(add):
    for axis in axes:
      add(**axis)

  spec = str(ROOT / "experiments/base.py:smoke")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(plan_lib, "load_sweep_fn", lambda path: sweep)
    try:
      plan = plan_lib.plan_sweep(spec, overrides, seeds=seeds, sweep_dir=tempfile.gettempdir())
    except ValueError as e:
      event("refused")
      keys = [k for a in axes for k in a.get("zip", a)] + [k for k, _ in overrides]
      values = [v for a in axes for vs in a.get("zip", a).values()
                for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
      values += [vs for a in axes for vs in a.get("zip", a).values()]
      values += [a["zip"] for a in axes if "zip" in a]
      values += [raw for _, raw in overrides] + ([] if seeds is None else [seeds])
      message = str(e)
      # Nothing to name: a sweep of no axes, or an add() call with none.
      no_axis = (not axes and "has no axis" in message) or (
          {} in axes and "add() needs at least one axis" in message)
      assert no_axis or names_culprit(message, keys, values), message[:500]
      return
  for run in plan.runs:
    assert run.config["train"]["num_steps"] >= 1  # a whole config, resolved
    for flag in run.flags:
      assert "\x00" not in flag
      os.fsencode(flag)  # a command-line argument the run's process can be given


positional_names = st.builds(lambda n, sep, a: n + sep + a,
                             st.sampled_from(POSITIONAL.names() + ["nope"]),
                             st.sampled_from(["", ":"]), short_text)
floater_item = st.builds(lambda k, v: f"{k}={v}",
                         st.sampled_from(sorted(floater.DEFAULTS) + ["speed"]),
                         st.sampled_from(["0", "-1", "1e-3", "nan", "inf", "2", "bogus",
                                         "tsit5", "zeros"]) | short_text)
floater_settings = st.lists(floater_item | short_text, max_size=3).map(",".join)


@fuzz(60)
@given(name=positional_names | floater_settings.map(lambda s: "floater:" + s))
@example(name="floater:solver=bogus")
@example(name="none:")
def test_position_settings_resolve_or_name_the_bad_one(name):
  base, _, settings_text = name.partition(":")
  try:
    if base == "floater":  # the parser alone: a valid hidden=10**9 would be built for real
      floater.parse_settings(settings_text)
    else:
      get_positional(name, 4, 4, 1, rngs=nnx.Rngs(0))
  except ValueError as e:
    items = [s for s in settings_text.split(",") if s]
    keys = [s.partition("=")[0] for s in items]
    values = [name, settings_text, *items, *(s.partition("=")[2] for s in items)]
    assert names_culprit(str(e), keys, values), str(e)


attention_names = st.builds(lambda n, sep, a: n + sep + a,
                            st.sampled_from(attention_lib.ATTENTION_KERNELS.names() + ["nope"]),
                            st.sampled_from(["", ":"]),
                            st.sampled_from(["xyz", "0", "-2", "16", " 8 ", "1_0", "٣", ""])
                            | short_text)


@fuzz(60)
@given(kernel=attention_names)
@example(kernel="performer:xyz")
def test_attention_arguments_resolve_or_name_the_bad_one(kernel):
  """The two steps a kernel name goes through when a model is built: the registry and
  its constructor options, then the argument (performer:M, linformer:K)."""
  name, _, arg = kernel.partition(":")
  try:
    kernel_cls = attention_lib.ATTENTION_KERNELS.get(kernel)
    options = multi_head._kernel_options(kernel, kernel_cls, 16)
    if options.get("settings") is not None:
      value = attention_base.positive_int_setting(kernel_cls, name, options["settings"],
                                                  "the argument")
      assert value is None or value >= 1
  except ValueError as e:
    assert names_culprit(str(e), values=[kernel, arg]), str(e)


@fuzz(25)
@given(name=st.builds(lambda n, a: f"{n}:{a}", st.sampled_from(["tfds", "spoken_digits", "digits"]),
                      short_text))
@example(name="tfds:")
@example(name="spoken_digits:bogus")
def test_task_arguments_resolve_or_name_the_bad_one(name):
  """tfds:NAME reads prepared datasets only: every name is refused here (an empty data
  dir), naming it; spoken_digits:MODE knows one mode; other tasks take no argument."""
  base, _, arg = name.partition(":")
  assume(not (base == "spoken_digits" and arg in ("", "speaker")))  # would build the data
  try:
    with tempfile.TemporaryDirectory() as empty:
      cfg = dict(task_defaults(name), **({"dir": empty} if base == "tfds" else {}))
      get_task(cfg)
  except ValueError as e:
    assert names_culprit(str(e), values=[name, arg]), str(e)
  else:
    raise AssertionError(f"{name!r} built a task")


arg_default = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                        st.text(max_size=3), st.sampled_from([(None, int), (None, float)]))


@fuzz(150)
@given(defaults=st.dictionaries(st.sampled_from(["a", "dt", "solver", "smoke"]), arg_default,
                                max_size=3),
       arg=st.none() | st.text(st.sampled_from(list("adt=,1.-e xTrufalsmok_\u0663")), max_size=12)
       | short_text)
def test_the_name_arg_grammar_parses_or_names_the_bad_item(defaults, arg):
  """attn_research.args.parse_arg, which every NAME:ARG reader above goes through."""
  try:
    settings_ = args_lib.parse_arg(arg, where="fuzz", what="setting", **defaults)
  except ValueError as e:
    assert names_culprit(str(e), values=args_lib.items(arg)), str(e)
    return
  assert set(settings_) == set(defaults)
