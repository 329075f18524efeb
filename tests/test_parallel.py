"""Data parallelism: 8 (virtual CPU) devices give the 1-device run's numbers."""

import jax
import pytest

from attn_research.train.loop import run
from tests.conftest import ROOT, make_config, last_json_line, run_on_devices

SETTINGS = dict(train__num_steps=3, train__batch_size=16, train__eval_batch_size=64,
                train__log_every=1)

SCRIPT = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import jax
from tests.conftest import make_config
from attn_research.train.loop import run
assert jax.device_count() == 8, jax.devices()
from attn_research.train.parallel import DataParallel
try:
  DataParallel(12)
  raise SystemExit("batch 12 over 8 devices was accepted")
except ValueError as e:
  assert "batch_size=12 must be a multiple of the 8 devices" in str(e), e
summary = run(make_config(**{SETTINGS!r}), sys.argv[1], progress=False)
print(json.dumps(summary))
"""


@pytest.mark.slow  # 8 forced devices in a subprocess: ~50 s on 2 cores
def test_eight_devices_match_one(tmp_path):
  assert jax.device_count() == 1
  single = run(make_config(**SETTINGS), tmp_path / "one", progress=False)
  multi = last_json_line(run_on_devices(8, SCRIPT, tmp_path / "eight", timeout=300))
  assert multi["device"]["count"] == 8 and single["device"]["count"] == 1
  for split in ("final_train", "final_eval"):
    for key in ("loss", "accuracy"):
      assert multi[split][key] == pytest.approx(single[split][key], rel=1e-5, abs=1e-6), (split, key)

