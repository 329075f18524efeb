"""The measure home (attn_research/measure/) and the report helpers every table uses
(report/stats.py, report/table.py): each number checked against one computed by hand."""
import ast
import math
import pathlib

import jax
import jax.numpy as jnp
import pytest
from scipy import stats as scipy_stats

from attn_research.measure import (compile_with_memory, forward_flops, peak_bytes, provenance,
                                   time_and_memory, unrolled_flops)
from attn_research.measure.generation import table as generation_table
from attn_research.report.stats import Stats, summarize
from attn_research.report.table import markdown_table

MIB = 2**20
ONE_MIB_F32 = jax.ShapeDtypeStruct((512, 512), jnp.float32)  # 512 * 512 * 4 bytes
PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "attn_research"


def test_peak_counts_argument_and_output_and_a_donated_argument_once():
  # x * 2 has no intermediates: one 1 MiB argument and one 1 MiB output.
  compiled, peak = compile_with_memory(lambda x: x * 2, ONE_MIB_F32)
  assert peak == 2 * MIB == peak_bytes(compiled)
  # Donated, the output reuses the argument's buffer (alias): counted once.
  _, donated = compile_with_memory(lambda x: x * 2, ONE_MIB_F32, donate_argnums=0)
  assert donated == MIB


def test_peak_counts_temporaries():
  # a @ b is an intermediate of (a @ b) @ a (a matmul does not fuse into a matmul): at
  # least 1 MiB of temp on top of the two 1 MiB arguments and the 1 MiB output.
  compiled, peak = compile_with_memory(lambda a, b: (a @ b) @ a, ONE_MIB_F32, ONE_MIB_F32)
  assert compiled.memory_analysis().temp_size_in_bytes >= MIB
  assert peak >= 4 * MIB


def test_peak_is_none_where_the_backend_gives_no_analysis():
  class NoAnalysis:
    def memory_analysis(self):
      raise NotImplementedError

  assert peak_bytes(NoAnalysis()) is None


def test_too_large_a_program_is_reported_not_run():
  skipped = time_and_memory(lambda x: x * 2, [jnp.ones((512, 512))], max_bytes=MIB)
  assert skipped["bytes"] == 2 * MIB and skipped["seconds"] is None
  assert skipped["note"].startswith("not run")
  ran = time_and_memory(lambda x: x * 2, [jnp.ones((512, 512))], repeats=1, max_bytes=4 * MIB)
  assert ran["seconds"] > 0 and ran["note"] == ""


def test_matmul_flops_are_two_m_n_k_and_a_scan_counts_every_iteration():
  m, k, n = 8, 32, 24
  w = jnp.ones((k, n))
  one = unrolled_flops(lambda x: x @ w, jnp.ones((m, k)))
  assert one == 2 * m * n * k
  square = jnp.ones((k, k))
  one_square = unrolled_flops(lambda x: x @ square, jnp.ones((m, k)))

  def nested(x):  # 3 outer x 4 inner iterations: 12 matmuls
    def outer(c, _):
      return jax.lax.scan(lambda d, _: (d @ square, None), c, length=4)[0], None
    return jax.lax.scan(outer, x, length=3)[0]
  assert unrolled_flops(nested, jnp.ones((m, k))) == 12 * one_square


def test_forward_flops_read_only_shapes():
  # Abstract parameters (as nnx.eval_shape gives): a linear layer over one example.
  params = {"w": jax.ShapeDtypeStruct((16, 5), jnp.float32)}
  batch = {"inputs": jax.ShapeDtypeStruct((1, 16), jnp.float32)}
  assert forward_flops(lambda p, b: b["inputs"] @ p["w"], params, batch) == 2 * 16 * 5


def test_provenance_names_the_run_s_devices_and_versions():
  info = provenance(3)
  assert info["device"]["count"] == 3
  assert info["versions"]["jax"] == jax.__version__
  assert info["git_commit"] is None or len(info["git_commit"].split("+")[0]) == 40


def test_stats_against_hand_computed_values():
  s = summarize([0.8, None, 0.9, 0.85])  # None: a run without a number, not counted
  assert s.n == 3 and s.mean == pytest.approx(0.85)
  # deviations -0.05, 0.05, 0: sum of squares 0.005, / (n - 1) = 0.0025
  assert s.std == pytest.approx(0.05)
  assert s.ci95 == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3))
  assert s.ci95 == pytest.approx(4.302653 * 0.05 / math.sqrt(3))  # t table, 2 d.o.f.
  assert s.format() == "0.8500 ± 0.0500"
  assert s.format(".3f", spread="ci95", show_n=True) == "0.850 ± 0.124 (n=3)"
  assert summarize([0.8]) == Stats(0.8, None, 1, None)
  assert summarize([0.8]).format(show_n=True) == "0.8000 (n=1)"
  assert summarize([None]).format() == "n/a"
  with pytest.raises(ValueError, match="spread"):
    s.format(spread="sem")


def test_markdown_table_exact_text():
  assert markdown_table(("model", "accuracy"), [("a", 0.5), ["b", "n/a"]]) == (
      "| model | accuracy |\n|---|---|\n| a | 0.5 |\n| b | n/a |")


def test_generation_table_marks_skipped_lengths_and_the_ratio():
  rows = [dict(method="linear-state", context=256, ms_per_token=0.01, tokens_per_s=100000.0),
          dict(method="linear-state", context=512, ms_per_token=0.02, tokens_per_s=50000.0),
          dict(method="softmax-recompute", context=256, ms_per_token=2.0, tokens_per_s=500.0)]
  assert generation_table(rows) == (
      "| context | linear-state ms/token (tokens/s) | softmax-recompute ms/token (tokens/s) |\n"
      "|---|---|---|\n"
      "| 256 | 0.010 (100,000) | 2.000 (500) |\n"
      "| 512 | 0.020 (50,000) | skipped |\n"
      "| ratio longest / shortest | 2.00 (512 vs 256) | 1.00 (256 vs 256) |")


def _imports(folder):
  names = set()
  for path in (PACKAGE / folder).glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module:
        names.add(node.module)
      elif isinstance(node, ast.Import):
        names.update(a.name for a in node.names)
  return names


def test_layering_models_never_import_measure_and_measure_never_imports_train():
  assert not {m for m in _imports("models") if m.startswith("attn_research.measure")}
  assert not {m for m in _imports("measure")
              if m.startswith(("attn_research.train", "attn_research.modes",
                               "attn_research.objectives"))}
