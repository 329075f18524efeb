"""python -m attn_research.sweep ...: see attn_research/sweep/__init__.py."""
import sys

from attn_research.sweep.cli import main

sys.exit(main())
