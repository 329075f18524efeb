"""Model families: shapes for every output kind, parameter counts, causality, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import TaskInfo
from attn_research.models import count_params, get_model, model_defaults
from attn_research.nn.attention import MultiHeadSelfAttention

B, T, F = 2, 6, 3
FAMILIES = ("transformer", "cnn", "rnn")


def info(output_kind, input_kind="frames", classes=3):
  size = 5 if input_kind == "tokens" else F
  return TaskInfo(input_kind=input_kind, input_size=size, output_kind=output_kind,
                  num_classes=classes, max_length=T)


def tiny(name, **settings):
  cfg = dict(model_defaults(name), d_model=8, num_layers=1)
  if name == "transformer":
    cfg.update(num_heads=2, mlp_ratio=2)
  if name == "cnn":
    cfg.update(kernel_size=3)
  cfg.update(settings)
  return cfg


def inputs(kind="frames"):
  rng = np.random.default_rng(0)
  if kind == "tokens":
    return jnp.asarray(rng.integers(0, 5, (B, T)), jnp.int32)
  return jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32)


MASK = jnp.asarray([[True] * T, [True] * 4 + [False] * 2])


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("kind,shape", [("per_sequence", (B, 3)), ("per_vector", (B, T, 3)),
                                        ("sequence", (B, T, 3))])
def test_output_shapes_for_every_output_kind(name, kind, shape):
  settings = {"bidirectional": False} if name == "rnn" and kind == "sequence" else {}
  model = get_model(tiny(name, **settings), info(kind))
  out = model(inputs(), MASK, train=False)
  assert out.shape == shape and bool(jnp.all(jnp.isfinite(out)))


def test_parameter_counts_match_hand_calculation():
  d, C, V = 8, 3, 5
  ln, head = 2 * d, 2 * d + d * C + C
  # transformer on tokens: embedding, learned positions, one pre-LN block, head.
  block = ln + 3 * (d * d + d) + (d * d + d) + ln + (d * 2 * d + 2 * d) + (2 * d * d + d)
  expected = V * d + T * d + block + head
  assert count_params(get_model(tiny("transformer"), info("per_sequence", "tokens"))) == expected
  # cnn on features: linear embedding, one residual conv block, head.
  embed = F * d + d
  assert count_params(get_model(tiny("cnn"), info("per_sequence"))) == (
      embed + ln + (3 * d * d + d) + head)
  # LSTM: four gates, each an input map (no bias) and a recurrent map (with bias).
  lstm = 4 * (d * d) + 4 * (d * d + d)
  assert count_params(get_model(tiny("rnn", bidirectional=False), info("per_sequence"))) == (
      embed + lstm + head)
  # Bidirectional: two LSTMs of d/2 units reading d inputs.
  h = d // 2
  bilstm = 2 * (4 * (d * h) + 4 * (h * h + h))
  assert count_params(get_model(tiny("rnn"), info("per_sequence"))) == embed + bilstm + head


def _output_gradients(model, t):
  """|d out[0, t] / d x[0, s]| summed over features, for every position s."""
  x = inputs()
  # Merged inside the transform, with the parameters traced at the same level as x
  # (flax refuses to mix trace levels inside its own scan).
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def out_t(x, params):
    model = nnx.merge(graphdef, params, rest)
    return model(x, jnp.ones((B, T), bool), train=False)[0, t].sum()

  g, _ = jax.grad(out_t, argnums=(0, 1))(x, params)
  return np.abs(np.asarray(g[0])).sum(-1)


@pytest.mark.parametrize("name", FAMILIES)
def test_sequence_outputs_do_not_see_the_future(name):
  settings = {"bidirectional": False} if name == "rnn" else {}
  model = get_model(tiny(name, **settings), info("sequence"))
  t = 2
  g = _output_gradients(model, t)
  assert np.all(g[t + 1:] == 0.0), g
  assert np.all(g[:t + 1] > 0.0), g


def test_bidirectional_rnn_reads_both_directions():
  model = get_model(tiny("rnn"), info("per_vector"))
  assert _output_gradients(model, 0)[-1] > 0  # first output sees the last input
  assert _output_gradients(model, T - 1)[0] > 0  # and the last output the first input


def test_padding_does_not_change_real_outputs():
  for name in FAMILIES:
    model = get_model(tiny(name), info("per_sequence"))
    x = inputs()
    noisy = x.at[1, 4:].set(100.0)  # change only the padded vectors of example 1
    np.testing.assert_allclose(model(x, MASK, train=False), model(noisy, MASK, train=False),
                               atol=1e-5, err_msg=name)


def test_cls_pooling_adds_one_vector():
  model = get_model(tiny("transformer", pooling="cls"), info("per_sequence"))
  mean = get_model(tiny("transformer"), info("per_sequence"))
  assert count_params(model) == count_params(mean) + 8
  assert model(inputs(), MASK, train=False).shape == (B, 3)


def test_attention_weights_are_returned_by_the_module():
  attn = MultiHeadSelfAttention(8, 2, rngs=nnx.Rngs(0))
  y, w = attn(jnp.ones((B, T, 8)), MASK, return_weights=True)
  assert y.shape == (B, T, 8) and w.shape == (B, 2, T, T)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  assert float(jnp.abs(w[1, :, :, 4:]).max()) == 0.0  # padded keys get no weight


@pytest.mark.parametrize("cfg,message", [
    (dict(num_heads=3), "num_heads=3 must divide model.d_model=8"),
    (dict(attention="banana"), "model.attention='banana' is not registered"),
    (dict(position="banana"), "model.position='banana' is not registered"),
    (dict(pooling="max"), "model.pooling='max' is not valid"),
    (dict(attention_impl="fast"), "impl='fast' is not an attention implementation"),
])
def test_bad_transformer_settings_are_named(cfg, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    get_model(tiny("transformer", **cfg), info("per_sequence"))


def test_bad_family_settings_are_named():
  with pytest.raises(ValueError, match="model.name='mamba' is not registered; valid: .*rnn"):
    get_model({"name": "mamba"}, info("per_sequence"))
  with pytest.raises(ValueError, match=r"model 'cnn' does not use \['num_heads'\]"):
    get_model(dict(tiny("cnn"), num_heads=2), info("per_sequence"))
  with pytest.raises(ValueError, match="bidirectional=True reads the future"):
    get_model(tiny("rnn"), info("sequence"))
  with pytest.raises(ValueError, match="model.cell='rnn' is not valid"):
    get_model(tiny("rnn", cell="rnn"), info("per_sequence"))


def test_linear_attention_transformer_is_causal_and_masks_padding():
  model = get_model(tiny("transformer", attention="linear"), info("sequence"))
  g = _output_gradients(model, 2)
  assert np.all(g[3:] == 0.0) and np.all(g[:3] > 0.0), g
  enc = get_model(tiny("transformer", attention="linear"), info("per_sequence"))
  x = inputs()
  np.testing.assert_allclose(enc(x, MASK, train=False),
                             enc(x.at[1, 4:].set(100.0), MASK, train=False), atol=1e-5)


def test_linear_attention_rejects_softmax_only_settings():
  with pytest.raises(ValueError, match="attention_impl='reference' is not a linear attention form"):
    get_model(tiny("transformer", attention="linear", attention_impl="reference"),
              info("per_sequence"))


@pytest.mark.parametrize("position", ["none", "sinusoidal", "learned", "rotary", "alibi",
                                      "relative"])
def test_every_position_encoding_trains_causally(position):
  model = get_model(tiny("transformer", position=position), info("sequence"))
  g = _output_gradients(model, 2)
  assert np.all(g[3:] == 0.0) and np.all(g[:3] > 0.0), (position, g)


def test_positions_inside_attention_make_order_matter():
  """Without positions a Transformer encoder is permutation-equivariant per vector."""
  perm = np.array([3, 1, 0, 2, 5, 4])
  x, full = inputs(), jnp.ones((B, T), bool)
  for position, equivariant in [("none", True), ("rotary", False), ("alibi", False),
                                ("relative", False)]:
    model = get_model(tiny("transformer", position=position), info("per_vector"))
    if position == "relative":  # a zero-initialised bias table starts position-blind
      model.position.table_NH[...] = jnp.linspace(-1, 1, 64).reshape(32, 2)
    out, out_perm = model(x, full, train=False), model(x[:, perm], full, train=False)
    same = np.allclose(out[:, perm], out_perm, atol=1e-5)
    assert same == equivariant, position


def test_bias_encodings_are_refused_with_linear_attention():
  with pytest.raises(ValueError, match="adds a bias to the attention scores, which "
                                       "attention='linear' never forms"):
    get_model(tiny("transformer", attention="linear", position="alibi"), info("sequence"))
