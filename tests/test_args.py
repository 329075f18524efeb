"""The NAME:ARG grammar (attn_research/args.py) every setting after a colon is read with:
kernels (performer:64), positions (floater:solver=tsit5), datasets (tfds:mnist) and
experiment files (experiments/x.py:copy,smoke)."""
import pytest

from attn_research import args

FLOATER_LIKE = dict(solver="midpoint", dt=0.1, hidden=32, sinusoidal=True)


def test_values_take_the_type_of_their_default():
  got = args.parse_arg("solver=tsit5,dt=5e-2,hidden=7,sinusoidal=false", **FLOATER_LIKE)
  assert got == dict(solver="tsit5", dt=0.05, hidden=7, sinusoidal=False)
  assert type(got["dt"]) is float and type(got["hidden"]) is int
  assert args.parse_arg("dt=1", **FLOATER_LIKE)["dt"] == 1.0  # an int is a valid float
  assert args.parse_arg(None, **FLOATER_LIKE) == FLOATER_LIKE  # nothing given: the defaults
  assert args.parse_arg("", k=(None, int)) == {"k": None}  # a (default, type) pair
  assert args.parse_arg("k=3", k=(None, int)) == {"k": 3}


def test_unknown_key_lists_every_valid_key_and_its_type():
  with pytest.raises(ValueError) as err:
    args.parse_arg("speed=3", where="model.position", what="floater setting", **FLOATER_LIKE)
  message = str(err.value)
  assert message.startswith("model.position: floater setting 'speed=3' is not KEY=VALUE")
  for listed in ("solver: str = 'midpoint'", "dt: float = 0.1", "hidden: int = 32",
                 "sinusoidal: bool = True"):
    assert listed in message, message


@pytest.mark.parametrize("arg,named", [
    ("hidden=many", "give setting hidden an int; got hidden='many'"),
    ("dt=fast", "give setting dt a float; got dt='fast'"),
    ("hidden=1.5", "give setting hidden an int; got hidden='1.5'"),
    ("sinusoidal=maybe", "give setting sinusoidal a bool; got sinusoidal='maybe'"),
])
def test_bad_value_names_key_value_and_type(arg, named):
  with pytest.raises(ValueError) as err:
    args.parse_arg(arg, **FLOATER_LIKE)
  assert named in str(err.value) and "solver: str = 'midpoint'" in str(err.value)


def test_a_bare_value_is_the_first_non_bool_key():
  assert args.parse_arg("64", num_features=256) == {"num_features": 64}
  assert args.split("performer:64") == ("performer", "64")
  assert args.split("softmax") == ("softmax", None) == args.split("softmax:")
  name, arg = args.split("floater:tsit5,hidden=8")
  assert args.parse_arg(arg, **FLOATER_LIKE) == dict(FLOATER_LIKE, solver="tsit5", hidden=8)
  with pytest.raises(ValueError, match=r"unknown setting\(s\) \['32'\]; valid: one value"):
    args.parse_arg("64,32", num_features=256)  # one value more than keys
  with pytest.raises(ValueError, match="give setting num_features an int; got num_features='x'"):
    args.parse_arg("x", num_features=256)


def test_bare_words_turn_bool_keys_on():
  flags = dict(smoke=False, copy=False, paper=False)
  assert args.parse_arg("copy,smoke", **flags) == dict(smoke=True, copy=True, paper=False)
  assert args.parse_flags("copy,smoke") == ["copy", "smoke"]
  assert args.parse_flags("copy,smoke=false,paper=1") == ["copy", "paper"]
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['tiny'\]; valid: "
                                       r"\['smoke', 'copy', 'paper'\]"):
    args.parse_arg("copy,tiny", what="config argument", **flags)
  with pytest.raises(ValueError, match="words, each on .*got 'steps=3'"):
    args.parse_flags("smoke,steps=3")


def test_a_key_given_twice_is_refused():
  with pytest.raises(ValueError, match="dt is given twice"):
    args.parse_arg("dt=0.1,dt=0.2", **FLOATER_LIKE)
  with pytest.raises(ValueError, match="solver is given twice"):
    args.parse_arg("euler,solver=heun", **FLOATER_LIKE)


def test_defaults_of_other_types_are_a_programming_error():
  with pytest.raises(TypeError, match="k=None"):
    args.parse_arg("", k=None)
