"""Paper reproductions: `./launch.sh reproduce NAME [--tier tiny|full]` writes
reports/NAME/report.md, results.json and its figures. One module per claim."""
from attn_research.reproduce.base import (REPRODUCTIONS, TIERS, Report, markdown_table,
                                          register_reproduction, reproduce)
from attn_research.reproduce import (  # noqa: F401  (each registers itself)
    cordonnier2020, floater2020, gat_karate, katharopoulos2020_copy,
    katharopoulos2020_generation, katharopoulos2020_scaling, lra2020, mnist1d2020,
    truncated_speech, vit2020_datasize)

__all__ = ["REPRODUCTIONS", "TIERS", "Report", "markdown_table", "register_reproduction",
           "reproduce"]
