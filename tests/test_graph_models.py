"""Graph attention (attend only neighbours) and the GCN baseline."""
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.data import TaskInfo
from attn_research.models import count_params, get_model, model_defaults

T, F = 5, 3
# A path 0-1-2 and an edge 3-4; node 4 of graph 1 is padding.
ADJ = np.zeros((2, T, T), bool)
for i, j in [(0, 1), (1, 2), (3, 4)]:
  ADJ[:, i, j] = ADJ[:, j, i] = True
ADJ[1, 3, 4] = ADJ[1, 4, 3] = False
MASK = jnp.asarray([[True] * T, [True] * 4 + [False]])


def graph_info(kind="per_vector"):
  return TaskInfo(input_kind="graph_nodes", input_size=F, output_kind=kind, num_classes=2,
                  max_length=T)


def model(name):
  cfg = dict(model_defaults(name), d_model=8, num_layers=1)
  if name == "graph_attention":
    cfg.update(num_heads=2, mlp_ratio=2)
  return get_model(cfg, graph_info())


X = jnp.asarray(np.random.default_rng(0).normal(size=(2, T, F)), jnp.float32)


@pytest.mark.parametrize("name", ["graph_attention", "gcn"])
def test_a_node_sees_its_neighbours_and_nothing_else(name):
  m = model(name)
  base = m(X, MASK, train=False, adjacency=jnp.asarray(ADJ))
  # Node 2's neighbour is 1; node 3 and 4 are in another component.
  far = m(X.at[0, 3].add(5.0), MASK, train=False, adjacency=jnp.asarray(ADJ))
  np.testing.assert_allclose(far[0, :3], base[0, :3], atol=1e-6)  # one layer: 0-2 unaffected
  assert not np.allclose(far[0, 4], base[0, 4])  # 4 is 3's neighbour
  near = m(X.at[0, 1].add(5.0), MASK, train=False, adjacency=jnp.asarray(ADJ))
  assert not np.allclose(near[0, 2], base[0, 2])  # 2's neighbour changed
  np.testing.assert_allclose(near[0, 3:], base[0, 3:], atol=1e-6)


def test_gcn_parameter_count():
  d, C = 8, 2
  layer = 2 * d + (d * d + d)
  assert count_params(model("gcn")) == (F * d + d) + layer + (2 * d + d * C + C)


def test_graph_models_refuse_tasks_without_a_graph():
  info = TaskInfo(input_kind="tokens", input_size=5, output_kind="per_sequence",
                  num_classes=2, max_length=T)
  with pytest.raises(ValueError, match="reads a graph's adjacency; task input kind 'tokens'"):
    get_model(dict(model_defaults("gcn")), info)
  with pytest.raises(ValueError, match="graph_attention pools by 'mean'"):
    get_model(dict(model_defaults("graph_attention"), pooling="cls"), graph_info("per_sequence"))
