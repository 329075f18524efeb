#!/usr/bin/env bash
# attn_research launcher: sets up the environment if needed, then runs a verb.
#   ./launch.sh [--config.KEY=VALUE ...]  the default experiment (experiments/compare.py)
#   ./launch.sh run CONFIG[:ARG] [--workdir DIR] [--config.KEY=VALUE ...]
#   ./launch.sh sweep CONFIG[:ARG] [--parallel N] [--seeds K] [--sweep-dir DIR] [--config.KEY=VALUE ...]
#   ./launch.sh report SWEEP_DIR     a sweep's results.csv, results.md and plots
#   ./launch.sh tensorboard DIR      TensorBoard on a workdir or sweep directory (optional extra)
#   ./launch.sh reproduce NAME|all [--tier tiny|full] [--jobs N]   a paper claim -> reports/NAME/
#   ./launch.sh data NAME            prepare a task's data and show an example
#   ./launch.sh test [--slow|--all] [PYTEST ARGS]   the fast test tier (--slow: the slow tier)
#   ./launch.sh doctor               which tasks this machine can run, and how to get the rest
#   ./launch.sh help                 verbs and experiments
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.attn_research_installed"

say() { printf '[launch] %s\n' "$*" >&2; }
die() { printf '[launch] error: %s\n' "$*" >&2; exit 1; }

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

install_hash() { cat setup.py constraints.txt | sha256sum | cut -d' ' -f1; }

bootstrap() {
  # An already active environment that has the package is used as it is.
  if [ -n "${VIRTUAL_ENV:-}" ] && [ "${VIRTUAL_ENV}" != "$VENV" ] &&
     python -c 'import attn_research, pytest' >/dev/null 2>&1; then
    PY="$(command -v python)"; say "using the active environment $VIRTUAL_ENV"; return
  fi
  PY="$VENV/bin/python"
  if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(install_hash)" ]; then
    return
  fi
  local base
  if ! base="$(find_python)"; then
    local seen
    seen="$(command -v python3 >/dev/null 2>&1 && python3 --version 2>&1 || echo 'no python3')"
    die "Python 3.11 or newer is needed; found $seen on PATH (install python3.11, or set PYTHON=/path/to/python3.11)"
  fi
  if [ ! -x "$PY" ]; then
    say "creating $VENV with $base ($("$base" --version 2>&1))"
    "$base" -m venv "$VENV" || die "could not create a virtual environment (on Debian: apt-get install python3-venv)"
  fi
  # pip's own output (pages of it, setuptools warnings included) goes to a log that is
  # shown only when something fails.
  local log="$VENV/install.log"
  say "installing attn_research and its pinned dependencies (constraints.txt) into .venv"
  say "(minutes the first time; pip's output goes to $log)"
  if ! { "$PY" -m pip install --upgrade pip &&
         "$PY" -m pip install -c constraints.txt -e ".[test]"; } >"$log" 2>&1; then
    printf '%s\n' "--- last lines of $log:" >&2
    tail -n 25 "$log" >&2
    die "pip install failed; the whole log is $log"
  fi
  install_hash > "$STAMP"
  say "environment ready: $("$PY" -m pip list --format=freeze 2>/dev/null | wc -l) packages; ./launch.sh doctor lists the tasks this machine can run"
}

list_experiments() {
  "$PY" - <<'PY'
import ast, pathlib
for path in sorted(pathlib.Path("experiments").rglob("*.py")):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    print(f"  {str(path):36s} {doc.splitlines()[0] if doc else ''}")
PY
}

usage() {
  cat <<USAGE
usage: ./launch.sh [VERB] [ARGS]

verbs:
  (none)                         run the default experiment: experiments/compare.py
                                 (Transformer vs CNN vs BiLSTM on digits; table + plot)
  run CONFIG[:ARG] [--workdir DIR] [--config.KEY=VALUE ...]
                                 train one experiment; a workdir with a checkpoint is resumed
  sweep CONFIG[:ARG] [--parallel N] [--seeds K] [--sweep-dir DIR] [--dry-run] [--config.KEY=VALUE ...]
                                 run every setting of the config's sweep(add), N at a time,
                                 under workdirs/sweeps/NAME[_ARG]; finished runs are skipped
                                 (--launcher slurm [--slurm KEY=VALUE ...]: write a SLURM
                                 job array, one task per run, instead of running here)
  report SWEEP_DIR               aggregate a sweep: results.csv, results.md, one plot per axis
  tensorboard DIR [ARGS]         TensorBoard on a workdir or sweep directory (needs the
                                 optional extra: .venv/bin/pip install -e '.[tensorboard]')
  reproduce NAME|all [--tier tiny|full] [--jobs N]
                                 reproduce a paper claim: reports/NAME/report.md, results.json,
                                 figures (tiny: under 10 min on a 2-core CPU; full: ~15 min GPU);
                                 all: N claims at a time, one core each (default: one per core
                                 on a CPU at the tiny tier), then the timed claims alone
  data NAME [--config.KEY=VALUE ...]
                                 prepare a task's data, print its summary and one example
  test [--slow|--all] [PYTEST ARGS]
                                 run the fast test tier (under 5 min on 2 cores); --slow
                                 the slow tier (multi-process runs, reproduction smokes),
                                 --all both
  doctor                         which tasks this machine can run: programs, pip packages,
                                 Debian corpora, prepared TFDS data, and how to get the rest
  help                           this text

experiments (CONFIG; add :smoke to any for a seconds-long run):
USAGE
  list_experiments
  echo
  echo "reproductions (./launch.sh reproduce NAME):"
  "$PY" - <<'PY'
import ast, pathlib
for path in sorted(pathlib.Path("attn_research/reproduce").glob("*.py")):
    if path.stem in ("__init__", "__main__", "base", "common"):
        continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    print(f"  {path.stem:36s} {doc.splitlines()[0] if doc else ''}")
PY
}

verb="${1:-default}"
case "$verb" in
  --*) verb=default ;;  # ./launch.sh --config.KEY=VALUE ...: options for the default run
  *) [ $# -gt 0 ] && shift ;;
esac
case "$verb" in
  help|-h|--help) bootstrap; usage ;;
  default) bootstrap; exec "$PY" -m attn_research.main --config experiments/compare.py "$@" ;;
  run)
    [ $# -ge 1 ] || die "run needs a config, e.g. ./launch.sh run experiments/base.py"
    bootstrap; config="$1"; shift
    exec "$PY" -m attn_research.main --config "$config" "$@" ;;
  data)
    [ $# -ge 1 ] || die "data needs a task name, e.g. ./launch.sh data listops"
    bootstrap; exec "$PY" -m attn_research.prepare "$@" ;;
  test)
    # Two worker processes (ATTN_TEST_WORKERS to change): compiling dominates the suite
    # and is single-threaded, so two workers use both cores of a small machine.
    tier=(-m "not slow")
    case "${1:-}" in
      --slow) tier=(-m slow); shift ;;
      --all) tier=(); shift ;;
    esac
    bootstrap; exec "$PY" -m pytest -n "${ATTN_TEST_WORKERS:-2}" "${tier[@]}" tests "$@" ;;
  doctor) bootstrap; exec "$PY" -m attn_research.doctor "$@" ;;
  sweep)
    [ $# -ge 1 ] || die "sweep needs a config that defines sweep(add), e.g. ./launch.sh sweep experiments/base.py --seeds 3"
    bootstrap; exec "$PY" -m attn_research.sweep "$@" ;;
  tensorboard)
    [ $# -ge 1 ] || die "tensorboard needs a workdir or sweep directory, e.g. ./launch.sh tensorboard workdirs/sweeps/base"
    bootstrap; exec "$PY" -m attn_research.tensorboard_cli "$@" ;;
  report)
    [ $# -ge 1 ] || die "report needs a sweep directory, e.g. ./launch.sh report workdirs/sweeps/base"
    bootstrap; exec "$PY" -m attn_research.report.sweep "$@" ;;
  reproduce)
    [ $# -ge 1 ] || die "reproduce needs a name (or 'all'), e.g. ./launch.sh reproduce cordonnier2020 --tier tiny; ./launch.sh help lists them"
    bootstrap; exec "$PY" -m attn_research.reproduce "$@" ;;
  *) bootstrap; usage; die "unknown verb '$verb'" ;;
esac
