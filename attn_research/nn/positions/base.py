"""What a positional encoding is, and the registry that finds one by name
(`--config.model.position=NAME`, or `NAME:SETTINGS` for an encoding that takes settings).

Self-attention alone is permutation-equivariant: without positions a Transformer sees
a set, not a sequence. An encoding acts in one or more of these places, each the
identity here, and overrides the ones it uses:
  __call__(x_BTD)                 absolute: added to the input vectors
                                  (sinusoidal, learned)
  in_attention(q, k, causal)      relative: rotates queries and keys, or returns a
                                  bias added to the scores (rotary, alibi, relative)
  layer_encodings(T)              per layer: [num_layers, T, D] vectors that the model
                                  adds before each block (floater)
and, one position t at a time for generation (models/generate.py), the same three acts:
  decode_add(x_BD, t)             the absolute encoding of position t
  decode_rotate(x_BHD, t)         query or key t rotated
  decode_bias(t, S)               query t's bias over cache slots 0..S-1
An encoding that cannot run one position at a time says why in `cannot_decode`.
One module is shared by every layer of a model. `needs_bias` marks the encodings that
need the score matrix (a bias), which linear attention never forms.
"""
from __future__ import annotations

from flax import nnx

from attn_research import args
from attn_research.registry import Registry

POSITIONAL = Registry("model.position")
register_positional = POSITIONAL.register


def get_positional(name: str, d_model: int, max_length: int, num_heads: int, *,
                   rngs: nnx.Rngs, num_layers: int = 1):
  """NAME, or NAME:SETTINGS for an encoding that takes settings (`setting_defaults`)."""
  base, settings = args.split(name)
  if settings is not None and base in POSITIONAL and not POSITIONAL.get(base).setting_defaults:
    raise ValueError(f"model.position={name!r}: {base!r} takes no settings after ':'")
  cls = POSITIONAL.get(name)
  options = {}
  if cls.setting_defaults:
    options["settings"] = settings or ""
  if cls.per_layer:
    options["num_layers"] = num_layers
  return cls(d_model, max_length, num_heads, rngs=rngs, **options)


def decodable_positions():
  """The registered encodings that run one position at a time, sorted."""
  return [name for name in POSITIONAL.names() if POSITIONAL.get(name).cannot_decode is None]


class Position(nnx.Module):
  """The identity in every place; encodings override the places they act in.

  Class attributes an encoding may set:
    needs_bias        True when it adds a bias to the attention scores.
    setting_defaults  the typed settings read after its name (attn_research.args
                      grammar, e.g. floater:solver=tsit5); the constructor then takes
                      `settings`, the text. Empty: the encoding takes no settings.
    per_layer         True when it gives per-layer encodings; the constructor then
                      takes `num_layers`.
    cannot_decode     None when the decode_* methods run it one position at a time;
                      otherwise the reason it cannot, for the error message.
  """
  needs_bias = False
  setting_defaults: dict = {}
  per_layer = False
  cannot_decode: str | None = None

  def __init__(self, d_model, max_length, num_heads, *, rngs):
    del d_model, max_length, num_heads, rngs

  def __call__(self, x_BTD):
    return x_BTD

  def in_attention(self, q_BTHD, k_BSHD, *, causal: bool):
    del causal
    return q_BTHD, k_BSHD, None

  def layer_encodings(self, length: int):
    """[num_layers, length, D] added before each block, or None (nothing per layer)."""
    del length
    return None

  def check_length(self, length: int, why: str = ""):
    """Raises ValueError when the encoding cannot place `length` positions (why: what
    asked for them, for the message); any length is fine unless an encoding says so."""
    del length, why

  def decode_add(self, x_BD, t):
    """x_BD (the token vectors at position t, a scalar int) plus position t's encoding."""
    del t
    return x_BD

  def decode_rotate(self, x_BHD, t):
    """Query or key vectors of position t as attention sees them."""
    del t
    return x_BHD

  def decode_bias(self, t, capacity: int):
    """Query t's bias over keys 0..capacity-1, [1, num_heads, 1, capacity], or None."""
    del t, capacity
    return None


@register_positional("none")
class NoPosition(Position):
  """No positional information: the model sees a set of vectors."""
