"""Ring attention (kernels/ring.py) on 4 forced CPU devices equals the reference kernel,
forward and backward, non-causal and causal (load-balanced zigzag and contiguous), with a
key padding mask; masked blocks are really skipped; bad input is refused by name.

The 4-device cases run in one subprocess (the device count is fixed when jax starts),
with tiny shapes: T = 16 gives 2-position chunks, so every kind of sub-block occurs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from attn_research.kernels import dot_product_attention
from attn_research.kernels import ring as ring_lib
from tests.conftest import ROOT, run_on_devices

SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
from attn_research.kernels import dot_product_attention
from attn_research.kernels import ring as R
assert jax.device_count() == 4, jax.devices()
n = 4
mesh = Mesh(np.asarray(jax.devices()), ("sequence",))
rng = np.random.default_rng(0)
B, T, H, D = 2, 16, 2, 4
q, k, v = (jnp.asarray(rng.standard_normal((B, T, H, D)), jnp.float32) for _ in range(3))
valid = rng.random((B, T)) < 0.6
valid[0, 0] = True
valid[1, 0] = False  # causal: query 0 of row 1 sees no key -> zeros
valid = jnp.asarray(valid)

def loss(o):  # a loss whose gradient differs per position
  return jnp.sum(o * jnp.cos(o))

def ref(q, k, v, causal, m):
  return dot_product_attention(q, k, v, causal=causal, impl="reference",
                               mask=None if m is None else m[:, None, None, :])

def ring(q, k, v, causal, m, layout):
  z = (lambda x: x if x is None else R.to_zigzag(x, n)) if layout == "zigzag" else (lambda x: x)
  out = R.ring_attention(z(q), z(k), z(v), mesh=mesh, causal=causal, layout=layout,
                         key_mask=z(m))
  return R.from_zigzag(out, n) if layout == "zigzag" else out

def compare(name, fn_ring, fn_ref):
  grad = lambda f: jax.jit(jax.grad(lambda *a: (loss(o := f(*a)), o), argnums=(0, 1, 2),
                                    has_aux=True))
  (g0, o0), (g1, o1) = grad(fn_ref)(q, k, v), grad(fn_ring)(q, k, v)
  np.testing.assert_allclose(o1, o0, rtol=1e-5, atol=2e-6, err_msg=name + " forward")
  for x, a, b in zip("qkv", g1, g0):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6, err_msg=f"{{name}} d{{x}}")
  print("ok", name, flush=True)

compare("non-causal+padding", lambda q, k, v: ring(q, k, v, False, valid, "contiguous"),
        lambda q, k, v: ref(q, k, v, False, valid))
compare("causal zigzag+padding", lambda q, k, v: ring(q, k, v, True, valid, "zigzag"),
        lambda q, k, v: ref(q, k, v, True, valid))
compare("causal contiguous", lambda q, k, v: ring(q, k, v, True, None, "contiguous"),
        lambda q, k, v: ref(q, k, v, True, None))
o = ring(q, k, v, True, valid, "zigzag")
assert float(jnp.abs(o[1, 0]).max()) == 0.0, o[1, 0]

# impl="ring" through dot_product_attention, natural order, a data x sequence mesh.
mesh2 = Mesh(np.asarray(jax.devices()).reshape(2, 2), ("data", "sequence"))
with jax.set_mesh(mesh2):
  compare("impl=ring causal, data 2 x sequence 2",
          lambda q, k, v: dot_product_attention(q, k, v, causal=True, impl="ring"),
          lambda q, k, v: ref(q, k, v, True, None))

# Skipping is real: NaN values in the last chunk (positions 14, 15) reach no query before
# it, which a computed-then-masked block would turn into NaN (0 * NaN).
v_nan = v.at[:, 14:].set(jnp.nan)
o = jax.jit(lambda q, k, v: ring(q, k, v, True, None, "zigzag"))(q, k, v_nan)
assert bool(jnp.all(jnp.isfinite(o[:, :14]))), "a fully masked block was computed"
assert not bool(jnp.any(jnp.isfinite(o[:, 14:]))), "the NaN chunk was not reached"
print("ok skipping", flush=True)

try:
  R.ring_attention(q[:, :12], k[:, :12], v[:, :12], mesh=mesh, causal=True)
  raise SystemExit("T=12 causal over 4 devices was accepted")
except ValueError as e:
  assert "T=12" in str(e) and "divisible by 8" in str(e), e
print("ok bad T", flush=True)
"""


@pytest.mark.slow  # a 4-device subprocess: 13-35 s on 2 cores
def test_four_devices_match_reference():
  proc = run_on_devices(4, SCRIPT, timeout=300)
  assert proc.stdout.count("ok ") == 6, proc.stdout


def test_zigzag_order_round_trip():
  assert list(ring_lib.zigzag_order(2)) == [0, 3, 1, 2]
  x = jnp.arange(8)[None]
  z = ring_lib.to_zigzag(x, 2)
  assert z.tolist() == [[0, 1, 6, 7, 2, 3, 4, 5]]  # device 0: chunks 0, 3; device 1: 1, 2
  assert ring_lib.from_zigzag(z, 2).tolist() == x.tolist()


def qkv(T=6, B=1, H=2, D=4):
  x = jnp.zeros((B, T, H, D), jnp.float32)
  return x, x, x


@pytest.mark.parametrize("call, message", [
    (lambda: ring_lib.ring_attention(*qkv(), mesh=Mesh(np.asarray(jax.devices()), ("data",))),
     "mesh axis 'sequence', which the mesh lacks; mesh axes: {'data': 1}"),
    (lambda: ring_lib.ring_attention(*qkv(T=5), causal=True,
                                     mesh=Mesh(np.asarray(jax.devices()), ("sequence",))),
     "T=5 and keys S=5 divisible by 2"),
    (lambda: ring_lib.ring_attention(*qkv(), layout="striped",
                                     mesh=Mesh(np.asarray(jax.devices()), ("sequence",))),
     "layout='striped' is not a ring layout"),
    (lambda: ring_lib.ring_attention(*qkv(), key_mask=jnp.ones((1, 5), bool),
                                     mesh=Mesh(np.asarray(jax.devices()), ("sequence",))),
     "key_mask must be a boolean [batch, keys] = (1, 6)"),
    (lambda: dot_product_attention(*qkv(), impl="ring"),
     "impl='ring' needs a mesh with a 'sequence' axis set by jax.set_mesh"),
    (lambda: dot_product_attention(*qkv(), impl="ring", window=(1, 1)),
     "impl='ring' takes no bias and no window"),
])
def test_bad_input(call, message):
  with pytest.raises(ValueError) as e:
    call()
  assert message in str(e.value)
