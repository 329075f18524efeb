"""Autoregressive generation from a decoder-only Transformer, one jitted scan per shape.

`generate(model, prompt_BT, num_new_tokens)` continues every prompt by num_new_tokens
tokens, greedily (temperature 0) or by sampling softmax(logits / temperature). Methods:

  "cache"      softmax (or additive) attention with a KV cache per layer:
               per token O(T_max d) attention work per layer, T_max = T + N - 1, as the
               whole preallocated cache is read, masked (static shapes).
  "state"      linear attention as an RNN ("Transformers are RNNs", Katharopoulos et al.
               2020, arXiv 2006.16236, section 3.4): per token O(d^2 / H) attention work
               per layer on a constant-size state, whatever the context length.
  "recompute"  no cache: every step runs the full causal model over the whole token
               buffer [B, T + N - 1] (positions after t do not change position t's
               logits) and reads row t: per token the cost of a forward pass, O(T_max^2 d)
               for softmax. The baseline of the paper's "4000x faster" generation claim.
  "auto"       the kernel's own decode_mode: "state" for linear attention, "cache" for
               softmax and additive.

Two jitted phases, each a lax.scan compiled once per shape (model, batch, prompt
length, num_new_tokens, method; greedy or sampling): `prefill` feeds the prompt through
the same step function, one position per scan step, and `decode` generates the new
tokens; `generate` is the one then the other (benchmarks/generation.py times `decode`).

Each module runs its own step: the position encoding adds, rotates or biases position t
(nn/positions, decode_*), each nn/transformer.DecoderOnlyBlock runs decode_step with
the sublayers of its __call__, and the attention kernel (nn/attention, decode_mode,
init_decode_cache, decode_step) keeps the cache or state; this file only loops.

Prompts: one [B, T] array of equal-length prompts, every token real (no padding
support: pad-free prompts of one length per call). Dropout is off. Sampling draws step
t's token with jax.random.fold_in(rng, t), so all methods sample alike from equal logits.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct


METHODS = ("auto", "cache", "state", "recompute")


@struct.dataclass
class Decoding:
  """Where a generation stands: the token buffer (prompt, tokens generated so far, zeros
  after), the index of the next token to generate, and each layer's cache or state
  holding positions < position - 1 (the token at position - 1 is not fed yet)."""
  tokens_BL: jax.Array
  position: jax.Array  # int32 scalar
  caches: tuple
  method: str = struct.field(pytree_node=False)


# ----------------------------------------------------------------------------- checks

def resolve_method(model, method: str) -> str:
  """The method that runs for `method` on this model; ValueError before any compiling."""
  if method not in METHODS:
    raise ValueError(f"method={method!r} is not a generation method; valid: {METHODS}")
  for name in ("embed", "position", "blocks", "head"):
    if not hasattr(model, name):
      raise ValueError(f"generate needs the Transformer model (attn_research.models."
                       f"transformer); got {type(model).__name__}, which has no {name!r}")
  if model.head.kind != "sequence":
    raise ValueError(f"generate needs a causal (decoder-only) model, one built for "
                     f"output_kind 'sequence'; this one has output_kind {model.head.kind!r}")
  if not model.embed.tokens:
    raise ValueError("generate feeds tokens back in: the model must read tokens "
                     "(input_kind 'tokens'), not feature vectors")
  vocab, classes = model.embed.embed.num_embeddings, model.head.proj.out_features
  if classes > vocab:
    raise ValueError(f"the head predicts {classes} classes but the embedding knows only "
                     f"{vocab} tokens, so generated tokens could not be fed back")
  if method == "recompute":
    return method
  modes = sorted({block.attn.decode_mode() for block in model.blocks})
  if len(modes) != 1:
    raise ValueError(f"layers need different decoding methods {modes}; use 'recompute'")
  mode = modes[0]
  if method == "auto":
    return mode
  if method != mode:
    kernel = type(model.blocks[0].attn.kernel).__name__
    raise ValueError(f"method={method!r} does not fit this model's attention ({kernel}): "
                     f"use method={mode!r}, 'auto' or 'recompute'")
  return method


def _check_prompt(model, prompt_BT, num_new_tokens):
  if isinstance(num_new_tokens, (bool, np.bool_)) or not (
      isinstance(num_new_tokens, (int, np.integer)) and num_new_tokens >= 1):
    raise ValueError(f"num_new_tokens must be a positive int; got {num_new_tokens!r}")
  shape = getattr(prompt_BT, "shape", None)
  if shape is None or len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
    raise ValueError(f"prompt must be an int array [batch, length] with batch, length >= 1 "
                     f"(equal-length prompts, no padding); got shape {shape}")
  if not jnp.issubdtype(prompt_BT.dtype, jnp.integer):
    raise ValueError(f"prompt must hold integer tokens; got dtype {prompt_BT.dtype}")
  vocab = model.embed.embed.num_embeddings
  try:
    values = np.asarray(prompt_BT)
  except jax.errors.TracerArrayConversionError:
    values = None
  if values is not None and (values.min() < 0 or values.max() >= vocab):
    raise ValueError(f"prompt tokens must lie in [0, {vocab}); got values in "
                     f"[{values.min()}, {values.max()}]")
  fed = shape[1] + num_new_tokens - 1  # positions fed through the model
  model.position.check_length(fed, f"prompt length {shape[1]} + num_new_tokens "
                                   f"{num_new_tokens} - 1 = {fed} exceeds it")


def _check_sampling(temperature, rng):
  if isinstance(temperature, (bool, np.bool_)) or not (
      isinstance(temperature, (int, float, np.number)) and temperature >= 0):
    raise ValueError(f"temperature must be a number >= 0 (0 = greedy); got {temperature!r}")
  if temperature > 0 and rng is None:
    raise ValueError(f"temperature={temperature} samples tokens: pass rng (a jax.random key)")
  return temperature == 0, jnp.float32(max(temperature, 1e-30)), (
      jax.random.key(0) if rng is None else rng)


# ------------------------------------------------------------------- the pure cores

def _feed(model, caches, token_B, t):
  """Token token_B at position t through every layer: (caches, logits_BV at t)."""
  x_BD = model.position.decode_add(model.embed(token_B), t)
  new_caches = []
  for block, cache in zip(model.blocks, caches):
    cache, x_BD = block.decode_step(cache, x_BD, t)
    new_caches.append(cache)
  return tuple(new_caches), model.head(x_BD, None)


def _prefill(model, prompt_BT, num_new, method) -> Decoding:
  B, T = prompt_BT.shape
  L = T + num_new
  tokens_BL = jnp.zeros((B, L), jnp.int32).at[:, :T].set(prompt_BT.astype(jnp.int32))
  caches = ()
  if method != "recompute":
    caches = tuple(block.init_decode_cache(B, L - 1) for block in model.blocks)

    def feed_prompt(caches, t):  # prompt positions 0..T-2; T-1 is fed by the first decode step
      caches, _ = _feed(model, caches, tokens_BL[:, t], t)
      return caches, None

    caches, _ = jax.lax.scan(feed_prompt, caches, jnp.arange(T - 1, dtype=jnp.int32))
  return Decoding(tokens_BL, jnp.int32(T), caches, method)


def _decode(model, decoding: Decoding, num_steps, greedy, temperature, rng):
  L = decoding.tokens_BL.shape[1]
  mask_BT = jnp.ones((decoding.tokens_BL.shape[0], L - 1), bool)

  def step(carry, _):
    tokens_BL, p, caches = carry  # p: the position to generate; p - 1 is fed now
    if decoding.method == "recompute":
      logits_BTV = model(tokens_BL[:, :L - 1], mask_BT, train=False)
      logits_BV = jax.lax.dynamic_index_in_dim(logits_BTV, p - 1, 1, keepdims=False)
    else:
      prev_B = jax.lax.dynamic_index_in_dim(tokens_BL, p - 1, 1, keepdims=False)
      caches, logits_BV = _feed(model, caches, prev_B, p - 1)
    if greedy:
      next_B = jnp.argmax(logits_BV, axis=-1)
    else:
      next_B = jax.random.categorical(jax.random.fold_in(rng, p), logits_BV / temperature)
    next_B = next_B.astype(jnp.int32)
    tokens_BL = jax.lax.dynamic_update_slice(tokens_BL, next_B[:, None], (0, p))
    return (tokens_BL, p + 1, caches), (next_B, logits_BV)

  (tokens_BL, p, caches), (new_NB, logits_NBV) = jax.lax.scan(
      step, (decoding.tokens_BL, decoding.position, decoding.caches), None, length=num_steps)
  return (Decoding(tokens_BL, p, caches, decoding.method), new_NB.T,
          jnp.swapaxes(logits_NBV, 0, 1))


@functools.partial(jax.jit, static_argnames=("graphdef", "num_new", "method"))
def _prefill_jit(graphdef, state, prompt_BT, *, num_new, method):
  return _prefill(nnx.merge(graphdef, state), prompt_BT, num_new, method)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "greedy"))
def _decode_jit(graphdef, state, decoding, temperature, rng, *, num_steps, greedy):
  return _decode(nnx.merge(graphdef, state), decoding, num_steps, greedy, temperature, rng)


# ----------------------------------------------------------------------------- public

def generate(model, prompt_BT, num_new_tokens: int, *, method: str = "auto",
             temperature: float = 0.0, rng=None, return_logits: bool = False):
  """Continues equal-length prompts by num_new_tokens tokens.

  Args:
    model: a Transformer built for output_kind "sequence" (causal) on tokens.
    prompt_BT: int [B, T] prompts, all of length T (no padding), tokens in the vocabulary.
    num_new_tokens: N >= 1.
    method: one of METHODS (see the module docstring).
    temperature: 0 = greedy (argmax); > 0 samples softmax(logits / temperature), needs rng.
    rng: a jax.random key, used when temperature > 0.
    return_logits: also return the logits [B, N, V] that chose each new token (those of
      positions T-1 .. T+N-2, as the full causal forward gives them).
  Returns:
    tokens [B, T + N] int32 (the prompt, then the new tokens), and the logits when asked.
  """
  _check_sampling(temperature, rng)  # before prefill compiles anything
  decoding = prefill(model, prompt_BT, num_new_tokens, method=method)
  decoding, _, logits_BNV = decode(model, decoding, int(num_new_tokens),
                                   temperature=temperature, rng=rng)
  tokens_BL = decoding.tokens_BL
  return (tokens_BL, logits_BNV) if return_logits else tokens_BL


def prefill(model, prompt_BT, num_new_tokens: int, *, method: str = "auto") -> Decoding:
  """Phase one of generate: room for num_new_tokens more tokens, the prompt fed through
  the caches or states (nothing for "recompute"). Jitted; compiled once per shape."""
  method = resolve_method(model, method)
  _check_prompt(model, prompt_BT, num_new_tokens)
  graphdef, state = nnx.split(model)
  return _prefill_jit(graphdef, state, jnp.asarray(prompt_BT), num_new=int(num_new_tokens),
                      method=method)


def decode(model, decoding: Decoding, num_steps: int, *, temperature: float = 0.0, rng=None):
  """Phase two: num_steps more tokens; (decoding, new tokens [B, num_steps], their logits
  [B, num_steps, V]). Pure: the given decoding is unchanged, so it can be rerun."""
  return decode_fn(model, num_steps, temperature=temperature, rng=rng)(decoding)


def decode_fn(model, num_steps: int, *, temperature: float = 0.0, rng=None):
  """`decode` with the model split once: a function decoding -> decode's result, whose
  calls skip nnx.split (milliseconds for a small model), for timing and serving loops."""
  if isinstance(num_steps, (bool, np.bool_)) or not (
      isinstance(num_steps, (int, np.integer)) and num_steps >= 1):
    raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
  greedy, temperature, rng = _check_sampling(temperature, rng)
  graphdef, state = nnx.split(model)

  def run(decoding: Decoding):
    room = decoding.tokens_BL.shape[1] - int(decoding.position)
    if num_steps > room:
      raise ValueError(f"num_steps={num_steps} exceeds the room left for new tokens, {room} "
                       "(prefill's num_new_tokens fixes it)")
    return _decode_jit(graphdef, state, decoding, temperature, rng, num_steps=int(num_steps),
                       greedy=greedy)

  return run
