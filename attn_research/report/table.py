"""The markdown table every report, reproduction and benchmark harness prints."""
from __future__ import annotations


def markdown_table(columns, rows) -> str:
  """A GitHub markdown table: a header row of columns, a '---' rule, then one line per
  row, each cell written with str(); no trailing newline."""
  lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)
