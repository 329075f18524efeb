"""Ablation sweeps: expand a config file's `sweep(add)`, run every run, aggregate.

A config file (experiments/NAME.py) may define, beside get_config(arg):

    def sweep(add):
      add(**{"model.attention": ["softmax", "linear"]})    # one axis
      add(**{"model.position": ["none", "learned"]})       # times the axis above
      add(zip={"model.d_model": [32, 64], "model.num_heads": [2, 4]})  # one axis, zipped

Every key given to `add` is one axis; the runs are the product of all axes, in the
order added (the first varies slowest). `add(zip={...})` makes one axis of lists of
equal length stepped together. `--seeds K` appends `seed` = 0..K-1 as the innermost
axis (the model's initialisation and batch order; the data split is `data.seed`).
The example gives 2 x 2 x 2 = 8 settings, 24 runs with `--seeds 3`; the first is named
`model.attention=softmax,model.position=none,model.d_model=32,model.num_heads=2,seed=0`
(names are `key=value` joined by commas; characters outside [A-Za-z0-9._+=,-] become _).

    ./launch.sh sweep experiments/NAME.py[:ARG] [--parallel N] [--seeds K]
                      [--sweep-dir DIR] [--dry-run] [--config.KEY=VALUE ...]

runs each run as its own process, N at a time: `python -m attn_research.main --config
experiments/NAME.py[:ARG] --workdir DIR/RUN --no-progress --config.KEY=VALUE ...`, the
command-line overrides first (they apply to every run), then the run's settings. DIR
defaults to workdirs/sweeps/NAME[_ARG]; each run's stdout and stderr are appended to
DIR/RUN/log.txt, and DIR/sweep.json records the expansion (settings -> workdir, and
each run's full config).

Refused before anything runs: a config file without `sweep`, an unknown key or a bad
value in any run (every run's config is loaded with attn_research.config.load_config,
the CLI's own loader), a command-line override of a swept key, runs that would share a
workdir or that resolve to the same config, and a DIR whose sweep.json records another
expansion (the differences are listed; results are never overwritten).
The same command again skips finished runs (summary.json) and resumes the others from
their checkpoints. A failing run does not stop the others; the final summary names each
failure's last log line and its log, and the exit status is 1. At the end
attn_research.report.sweep writes results.csv, results.md and one plot per axis (also
`./launch.sh report DIR`, from the files alone).

`--launcher slurm` writes a SLURM job array instead of running anything (sweep/slurm.py:
one array task per run, the same skip/resume rules).

Modules: expand (axes, settings, names), plan (checks, sweep.json), runner (processes,
logs), slurm (job arrays), cli (the command); python -m attn_research.sweep runs cli.main.
"""
from attn_research.sweep.cli import main
from attn_research.sweep.expand import collect_axes, expand, run_name
from attn_research.sweep.plan import Plan, check_sweep_dir, plan_sweep
from attn_research.sweep.runner import main_command, run_all

__all__ = ["main", "collect_axes", "expand", "run_name", "Plan", "check_sweep_dir",
           "plan_sweep", "main_command", "run_all"]
