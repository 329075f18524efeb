"""Every hard dependency (setup.py install_requires) is installed in its declared range and
imports. A test that skipped on a missing package would hide a broken install; the
package is required, so its absence is a failure, named here."""
import ast
import importlib
import importlib.metadata
import re

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT


def install_requires():
  """The install_requires list of setup.py, read without running setup()."""
  tree = ast.parse((ROOT / "setup.py").read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.keyword) and node.arg == "install_requires":
      return [Requirement(r) for r in ast.literal_eval(node.value)]
  raise AssertionError("setup.py has no install_requires")


def normalise(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def main_module(distribution: str) -> str:
  """The module a distribution installs under its own name (or its only module)."""
  provided = sorted({module for module, dists in
                     importlib.metadata.packages_distributions().items()
                     if distribution in map(normalise, dists)})
  named = [m for m in provided if normalise(m) == distribution]
  if named or len(provided) == 1:
    return (named or provided)[0]
  raise AssertionError(f"{distribution} provides modules {provided}; name the one to import")


REQUIREMENTS = install_requires()


def test_setup_lists_the_packages_the_tasks_need():
  names = {normalise(r.name) for r in REQUIREMENTS}
  assert {"jax", "flax", "optax", "mnist1d", "networkx", "scikit-learn"} <= names


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=[r.name for r in REQUIREMENTS])
def test_hard_dependency_is_installed_in_range_and_imports(requirement):
  name = normalise(requirement.name)
  try:
    version = importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    pytest.fail(f"{requirement} (setup.py install_requires) is not installed: "
                f"pip install -c constraints.txt -e .")
  assert requirement.specifier.contains(version, prereleases=True), (
      f"{name} {version} is outside setup.py's range {requirement.specifier}")
  importlib.import_module(main_module(name))
