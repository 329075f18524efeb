"""./launch.sh tensorboard DIR [TENSORBOARD ARGS]: TensorBoard on a workdir or a sweep.

Every run writes a TensorBoard event file beside its metrics.jsonl (train/writer.py),
so a sweep directory shows one curve per run. The TensorBoard app itself is an optional
extra: without it this prints how to install it and exits with status 1.
"""
from __future__ import annotations

import os
import pathlib
import sys

INSTALL_HINT = (".venv/bin/pip install -c constraints.txt -e '.[tensorboard]' "
                "(or: pip install 'tensorboard>=2.21,<3')")


def tensorboard_installed() -> bool:
  """Imports it rather than looking it up: a broken install counts as missing."""
  try:
    import tensorboard  # noqa: F401
  except ImportError:
    return False
  return True


def command(logdir: pathlib.Path, extra=()) -> list:
  """The TensorBoard command line; extra arguments (--port, --bind_all) go to it as they are."""
  return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), *extra]


def main(argv=None):
  args = list(sys.argv[1:] if argv is None else argv)
  if not args or args[0] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0 if args else 2)
  logdir, extra = pathlib.Path(args[0]), args[1:]
  if not logdir.is_dir():
    sys.exit(f"error: {str(logdir)!r} is not a directory; pass a run's workdir (e.g. "
             "workdirs/base) or a sweep directory (e.g. workdirs/sweeps/base)")
  if not tensorboard_installed():
    sys.exit("error: the TensorBoard app is not installed (runs still write their event "
             f"files). Install it with:\n  {INSTALL_HINT}\nthen run this again.")
  if not any(logdir.rglob("events.out.tfevents.*")):
    print(f"note: no TensorBoard event files under {logdir} yet; runs appear as they "
          "write them", file=sys.stderr)
  cmd = command(logdir, extra)
  print("starting: " + " ".join(cmd[1:]), file=sys.stderr)
  os.execv(cmd[0], cmd)


if __name__ == "__main__":
  main()
