"""python -m attn_research.reproduce NAME|all [--tier tiny|full] [--reports DIR]"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

from attn_research.reproduce import REPRODUCTIONS, TIERS, reproduce


def main(argv=None):
  names = REPRODUCTIONS.names()
  parser = argparse.ArgumentParser(prog="launch.sh reproduce",
                                   description="Reproduce a paper claim; writes reports/NAME/.")
  parser.add_argument("name", help=f"one of {names}, or 'all'")
  parser.add_argument("--tier", default="tiny", choices=TIERS,
                      help="tiny: under 10 min on a 2-core CPU; full: about 15 min on one GPU")
  parser.add_argument("--reports", default="reports", help="where reports/NAME/ go")
  args = parser.parse_args(argv)
  if args.name != "all" and args.name not in REPRODUCTIONS:
    parser.exit(2, f"error: unknown reproduction {args.name!r}; valid: {names} or 'all'\n")
  from attn_research import compile_cache
  compile_cache.enable()
  failures, lines = [], []
  total = time.perf_counter()
  for name in names if args.name == "all" else [args.name]:
    start = time.perf_counter()
    print(f"[reproduce] {name} ({args.tier} tier)", flush=True)
    try:
      out = reproduce(name, args.tier, args.reports)
    except KeyboardInterrupt:
      sys.exit(130)
    except Exception as e:  # one failing reproduction does not stop the others
      traceback.print_exc()
      failures.append((name, f"{type(e).__name__}: {e}".splitlines()[0]))
      lines.append(f"{name:<30} FAILED ({failures[-1][1]})")
      continue
    seconds = time.perf_counter() - start
    print(f"[reproduce] {name}: {out / 'report.md'} ({seconds:.0f} s)", flush=True)
    verdict = json.loads((out / "results.json").read_text())["verdict"]
    lines.append(f"{name:<30} {verdict:<14} {seconds:6.0f} s  {out / 'report.md'}")
  print(f"[reproduce] summary ({args.tier} tier, {time.perf_counter() - total:.0f} s in all): "
        "one line per claim", flush=True)
  for line in lines:
    print(f"  {line}", flush=True)
  for name, error in failures:
    print(f"[reproduce] FAILED {name}: {error}", file=sys.stderr)
  sys.exit(1 if failures else 0)


if __name__ == "__main__":
  main()
