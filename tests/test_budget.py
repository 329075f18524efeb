"""Parameter budgets: widths solved within tolerance; an unfair comparison refuses to run."""
import pytest

from attn_research.data import get_task
from attn_research.models import count_params, get_model
from attn_research.models.budget import param_count
from attn_research.modes.comparison import apply_budget
from tests.conftest import make_config


def test_shape_only_count_equals_the_built_model():
  config = make_config("experiments/compare.py")
  info = get_task(config.data).info
  for model_cfg in config.models.values():
    assert param_count(dict(model_cfg), info) == count_params(get_model(dict(model_cfg), info))


@pytest.mark.parametrize("target", [20_000, 50_000, 120_000])
def test_widths_land_within_tolerance_of_the_budget(target):
  config = make_config("experiments/compare.py", budget__params=target)
  counts = apply_budget(config)
  assert set(counts) == {"transformer", "cnn", "rnn"}
  for name, n in counts.items():
    assert abs(n / target - 1) <= 0.05, (name, n)
    assert config.models[name].d_model % (2 if name != "transformer" else 4) == 0


def test_unfair_comparison_refuses_with_the_table_unless_told_not_to(tmp_path):
  config = make_config("experiments/compare.py", budget__max_spread=0.05)
  with pytest.raises(ValueError, match=r"differ by 9% in parameters \(budget.max_spread=5%\)"
                                       r"[\s\S]*transformer\s+58,138"):
    apply_budget(config)
  relaxed = make_config("experiments/compare.py", budget__max_spread=0.05, budget__enforce=False)
  assert apply_budget(relaxed)["cnn"] == 63_114


def test_unreachable_budget_is_named():
  with pytest.raises(ValueError, match="from budget.params=3,000 \\(tolerance 5%\\)"):
    apply_budget(make_config("experiments/compare.py:smoke", budget__params=3000))
