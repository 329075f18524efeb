"""The import graph of attn_research/, read from the source with ast (nothing imported):
no module imports itself through others when it is imported, and the layer rules of
DESIGN.md hold, every violation named by module.

An import counts where it appears: one inside a function runs when the function is
called, so it cannot close an import-time cycle, but it still depends on its target, so
the layer rules read every import. A package whose __init__ imports all its modules
(pkgutil.iter_modules, the registration convention) imports each of them but private
ones (a name starting with "_", e.g. __main__).
"""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attn_research"

# Layer -> the attn_research layers (first name under attn_research) it may import.
MAY_IMPORT = {
    "kernels": {"kernels"},
    "nn": {"nn", "kernels", "registry", "args"},
    "models": {"models", "nn", "kernels", "registry", "args"},
}
# Layer -> the attn_research layers it must not import.
MUST_NOT_IMPORT = {
    "data": {"models"},
    "report": {"train", "models", "objectives", "modes"},
    "train": {"report", "modes"},
    "objectives": {"train", "modes"},
}
# Layer -> the only layers that may import it (besides itself): the loop is driven from
# the top (the CLI, the run modes, sweeps and reproductions), never from below.
ONLY_IMPORTED_BY = {
    "train": {"main", "modes", "sweep", "reproduce"},
}
# kernels/ is pure JAX: besides the standard library, only these third-party packages.
KERNEL_THIRD_PARTY = {"jax", "numpy"}
# Known violations the lead is removing, each with who and why; remove the entry with it.
KNOWN: set = set()


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
  """"attn_research.nn.attention.base" -> "nn"; a top-level module is its own layer."""
  return module.split(".")[1] if "." in module else module


def _resolve(name: str, level: int, importer: str, is_package: bool) -> str:
  """The absolute module name of `from <level dots><name>` inside importer."""
  if not level:
    return name
  base = importer.split(".")
  base = base[:len(base) - level + (1 if is_package else 0)]
  return ".".join(base + ([name] if name else []))


def _imports(module: str, path: pathlib.Path):
  """(target, at_import_time, third-party top-level name or None) of each import."""
  tree = ast.parse(path.read_text(), filename=str(path))
  is_package = path.name == "__init__.py"
  found = []

  def visit(node, at_import_time):
    for child in ast.iter_child_nodes(node):
      runs_now = at_import_time and not isinstance(
          child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
      if isinstance(child, ast.Import):
        for alias in child.names:
          found.append((alias.name, at_import_time))
      elif isinstance(child, ast.ImportFrom):
        base = _resolve(child.module or "", child.level, module, is_package)
        for alias in child.names:
          sub = f"{base}.{alias.name}"
          found.append((sub if sub in MODULES else base, at_import_time))
      elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
            and child.func.attr == "iter_modules" and is_package):
        # The registration convention: this package imports every module it holds but
        # private ones (__main__).
        found.extend((m, at_import_time) for m in MODULES
                     if m.rsplit(".", 1)[0] == module and m != module
                     and not m.rsplit(".", 1)[1].startswith("_"))
      visit(child, runs_now)

  visit(tree, True)
  out = []
  for target, now in found:
    if target.split(".")[0] == "attn_research":
      # "from attn_research.x import name": the deepest module of the dotted path.
      while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
      out.append((target, now, None))
    else:
      out.append((target, now, target.split(".")[0]))
  return out


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(edges):
  """Strongly connected components with more than one module (or a self-import)."""
  index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]

  def strongconnect(v):  # Tarjan's algorithm
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, ()):
      if w not in index:
        strongconnect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in edges.get(v, ()):
        components.append(sorted(component))

  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, 10 * len(edges) + 100))
  try:
    for v in sorted(edges):
      if v not in index:
        strongconnect(v)
  finally:
    sys.setrecursionlimit(limit)
  return components


def test_the_graph_is_read():
  """The walk finds the modules and the imports it is meant to check (a broken walk
  would pass every rule below)."""
  assert {"attn_research.nn.attention.multi_head", "attn_research.kernels",
          "attn_research.models.transformer"} <= set(MODULES)
  targets = {t for t, _, _ in IMPORTS["attn_research.models.transformer"]}
  assert "attn_research.nn.transformer" in targets
  auto = {t for t, _, _ in IMPORTS["attn_research.nn.positions"]}
  assert "attn_research.nn.positions.floater" in auto  # pkgutil: every module of the package
  assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
  assert _cycles({"a": ["a"]}) == [["a"]] and _cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycle():
  edges = {m: sorted({t for t, now, third in imports if now and third is None and t != m})
           for m, imports in IMPORTS.items()}
  cycles = _cycles(edges)
  assert not cycles, "import cycles (modules importing each other when imported):\n" + "\n".join(
      " -> ".join(c) for c in cycles)


def _violations():
  found = []
  for module, imports in IMPORTS.items():
    source = layer(module)
    for target, _, third in imports:
      if third is not None:
        if (source == "kernels" and third not in KERNEL_THIRD_PARTY
            and third not in sys.stdlib_module_names and third != "__future__"):
          found.append((module, third, "kernels/ imports only jax and numpy"))
        continue
      dest = layer(target)
      if source in MAY_IMPORT and dest not in MAY_IMPORT[source]:
        found.append((module, target, f"{source}/ imports only {sorted(MAY_IMPORT[source])}"))
      if dest in MUST_NOT_IMPORT.get(source, ()):
        found.append((module, target, f"{source}/ never imports {dest}/"))
      allowed = ONLY_IMPORTED_BY.get(dest)
      if allowed is not None and source != dest and source not in allowed:
        found.append((module, target, f"only {sorted(allowed)} import {dest}/"))
  return found


def test_layer_rules_hold():
  found = [v for v in _violations() if (v[0], layer(v[1])) not in KNOWN]
  assert not found, "layer rules of DESIGN.md broken:\n" + "\n".join(
      f"  {module} imports {target}: {rule}" for module, target, rule in sorted(found))


def test_known_exceptions_still_exist():
  """A known exception that no longer happens is stale: remove it from KNOWN."""
  happening = {(module, layer(target)) for module, target, _ in _violations()}
  stale = sorted(KNOWN - happening)
  assert not stale, f"remove these from KNOWN, they no longer happen: {stale}"


@pytest.mark.parametrize("source,target,rule", [
    ("attn_research.kernels.x", "attn_research.nn.attention", "kernels/ imports only"),
    ("attn_research.nn.x", "attn_research.models", "nn/ imports only"),
    ("attn_research.data.x", "attn_research.models.registry", "data/ never imports models/"),
    ("attn_research.report.x", "attn_research.train.loop", "report/ never imports train/"),
    ("attn_research.measure.x", "attn_research.train.loop", "only ['main', 'modes', "),
])
def test_a_violation_would_be_named(monkeypatch, source, target, rule):
  monkeypatch.setitem(IMPORTS, source, [(target, False, None)])
  assert any(m == source and r.startswith(rule) for m, _, r in _violations())
