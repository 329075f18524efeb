"""Paper reproductions: `./launch.sh reproduce NAME [--tier tiny|full]` writes
reports/NAME/report.md, results.json and its figures. One module per claim.

Every module of this package is imported here, so a new claim is one file that
registers itself (`@register_reproduction`), without an edit to this file; base and
common register nothing and __main__ (the command line) is skipped.
"""
import importlib
import pkgutil

from attn_research.reproduce.base import (REPRODUCTIONS, TIERS, Report, markdown_table,
                                          register_reproduction, reproduce)

for _module in pkgutil.iter_modules(__path__):
  if not _module.name.startswith("_"):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REPRODUCTIONS", "TIERS", "Report", "markdown_table", "register_reproduction",
           "reproduce"]
