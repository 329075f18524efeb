"""The Long Range Arena picture (Tay et al. 2020, arXiv 2011.04006) at CPU scale: accuracy,
training speed and memory of softmax, local, linear, Performer and Linformer attention at
equal parameter budgets.

Question: do the efficient transformers trade accuracy for speed and memory as LRA's
          Table 1 and Figure 3 say? ListOps as in LRA (shorter expressions), and two
          stand-ins for LRA's text and image tasks: `fortunes` (byte-level text
          classification) and `digits` read as 64 pixel vectors (sequential image).
Command:  ./launch.sh reproduce lra2020 [--tier tiny|full]
          (one task: ./launch.sh run experiments/repro/lra2020.py:tiny,listops)
Expected: reports/lra2020/report.md: per task and kernel the accuracy, train examples/s
          and peak train-step memory, the speed-accuracy scatter, LRA's numbers beside.
Runtime:  tiny: 3 tasks x 5 kernels of 200 steps, about 10 minutes on a 2-core CPU;
          full: LRA's ListOps lengths (500-2,000 tokens) and longer training, for a GPU.
"""
from attn_research.experiment import base_config, finalize, make_comparison, parse_arg
from attn_research.models import model_defaults

TASKS = {
    "listops": ("listops", dict(min_length=32, max_length=128, num_train=5_000)),
    "fortunes": ("fortunes", dict(max_length=128)),
    "digits": ("digits", dict(view="pixels")),
}
FULL_TASKS = {"listops": dict(min_length=500, max_length=2000, num_train=96_000,
                              num_eval=2_000)}
KERNELS = {
    "softmax": dict(attention="softmax"),
    "local": dict(attention="softmax", window=8),
    "linear": dict(attention="linear"),
    "performer": dict(attention="performer"),
    "linformer": dict(attention="linformer"),
}


def get_config(arg=None):
  words = parse_arg(arg)
  full = "full" in words
  task_words = [w for w in words if w in TASKS]
  if len(task_words) > 1:
    raise ValueError(f"name one task of {tuple(TASKS)}; got {task_words}")
  task = task_words[0] if task_words else "listops"
  data_name, settings = TASKS[task]
  if full and task in FULL_TASKS:
    settings = FULL_TASKS[task]
  config = base_config(data_name, **settings)
  base = dict(model_defaults("transformer"), d_model=64, num_layers=2, num_heads=4,
              position="sinusoidal")
  # Widths are solved for one budget: Linformer's length projections cost parameters.
  make_comparison(config, {name: dict(base, **kernel) for name, kernel in KERNELS.items()},
                  params=42_000 if not full else 400_000)
  config.train.update(num_steps=3000 if full else 200, eval_every=100 if not full else 500)
  if task == "fortunes":
    config.train.batch_size = 32
  return finalize(config, words, known=("tiny", "full", *TASKS))
