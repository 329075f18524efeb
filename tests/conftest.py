"""Shared helpers: configs are loaded exactly as the CLI loads them."""
import os
import pathlib
import tempfile

# Test programs are tiny: compiling them dominates the suite, and XLA's CPU backend
# compiles about 30 % faster without its LLVM optimisations (measured on 2 cores). Set
# before JAX starts its backend; subprocesses the tests start inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

import pytest  # noqa: E402

from attn_research import compile_cache
from attn_research.config import load_config

# Tests compile the same small programs many times over: share them on disk.
# (The environment variable reaches the CLI and subprocesses the tests start, too.)
os.environ.setdefault("ATTN_JAX_CACHE", "/tmp/attn_research_test_jax_cache")
compile_cache.enable(os.environ["ATTN_JAX_CACHE"])
# Prepared data goes to a fresh folder per test session, never the user's cache.
os.environ["ATTN_RESEARCH_DATA"] = tempfile.mkdtemp(prefix="attn_research_test_data_")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def forced_devices_env(count: int, **extra) -> dict:
  """The environment of a subprocess that sees `count` CPU devices (XLA's forced host
  device count; the device count is fixed when JAX starts, so it needs its own process)."""
  flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
  return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu", **extra)


def run_on_devices(count: int, script: str, *args, timeout: int = 600):
  """Runs `python -c script *args` on `count` forced CPU devices from the repository root;
  asserts it succeeded and returns its completed process (stdout holds what it printed)."""
  import subprocess
  import sys
  proc = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                        env=forced_devices_env(count), capture_output=True, text=True,
                        timeout=timeout, cwd=ROOT)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc


def last_json_line(proc):
  """The JSON object a subprocess printed last (a run's summary, a dict of results)."""
  import json
  return json.loads(proc.stdout.strip().splitlines()[-1])


def make_config(spec="experiments/base.py:smoke", **overrides):
  """Loads ROOT/spec with --config overrides given as keyword args (dots as '__')."""
  path, _, arg = spec.partition(":")
  pairs = [(k.replace("__", "."), str(v)) for k, v in overrides.items()]
  return load_config(str(ROOT / path) + (f":{arg}" if arg else ""), pairs)


def pytest_configure(config):
  # Two tiers: `./launch.sh test` runs the fast one (-m "not slow", under 5 minutes on
  # 2 cores); `./launch.sh test --slow` runs the slow one; .ci/run runs both.
  config.addinivalue_line("markers", "slow: heavier checks (multi-process runs, tiny "
                          "reproductions); `./launch.sh test --slow` runs them")


@pytest.fixture
def config_factory():
  return make_config


def missing_system(message: str):
  """Skips the calling test for something this machine lacks (the message says how to get
  it); with ATTN_RESEARCH_REQUIRE_SYSTEM=1 (set by .ci/run) fails it instead, so CI,
  which installs everything, never passes by skipping."""
  if os.environ.get("ATTN_RESEARCH_REQUIRE_SYSTEM") == "1":
    pytest.fail(message)
  pytest.skip(message)


def require_program(program: str, apt_package: str):
  """Skips (or, under ATTN_RESEARCH_REQUIRE_SYSTEM=1, fails) the calling test when a
  system program is missing, naming the package."""
  import shutil
  if shutil.which(program) is None:
    missing_system(f"needs {program!r}: apt-get install -y {apt_package}")


def require_source(task_name: str):
  """Skips (or, under ATTN_RESEARCH_REQUIRE_SYSTEM=1, fails) the calling test when the
  task's data source is missing here (attn_research.data.sources), naming how to get it.
  Tasks without a probe need nothing beyond the installed packages."""
  from attn_research.data.sources import task_source
  source = task_source(task_name)
  if source is not None and not source.available:
    missing_system(f"{task_name} needs {source.source}: {source.hint}")
