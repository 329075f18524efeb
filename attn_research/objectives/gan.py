"""Adversarial training of models/gan.py's generator G and discriminator D (SAGAN, Zhang et
al. 2019, arXiv 1805.08318): the hinge loss, Adam with beta1 = 0 and beta2 = 0.9, two
time-scale learning rates and n_dis D updates per G update.

  D minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]     (x real)
  G minimises -E[D(G(z))]

Settings: train.learning_rate is G's learning rate (SAGAN: 1e-4), gan.d_learning_rate
D's (4e-4); both follow train.schedule / warmup_steps (objectives/optim.make_schedule);
train.optimizer must be adam (or adamw, with train.weight_decay) with gan.beta1, beta2;
train.grad_clip > 0 clips each network's gradients; train.frozen is refused (a GAN has
two parameter groups trained in turn). config.gan (optional) over GAN_DEFAULTS.

One train step = n_dis D updates, then one G update. The loop's batch of B real images is
split into n_dis parts of B / n_dis (rows i, i + n_dis, ...: each device's rows stay on
it), one per D update, so every D update sees its own real images; each D update also
sees B / n_dis fresh generated images (real and generated go through D as one batch: one
spectral-norm power step per D update), and the G update B / n_dis more. Conditional
GANs draw generated labels uniformly. All noise of step s comes from fold_in(rng, s),
so a resumed run computes exactly what an uninterrupted one would.

Non-parameter state, carried and checkpointed in state["stats"]: G's batch-norm running
statistics (updated by every train-mode G forward pass) and the spectral-norm iterates u
(nn/spectral_norm.py; D's advance once per D update, G's once per G forward pass; the G
update reads D in eval mode, so D's u is not moved by it).

Evaluation (summed over eval batches, then reduced on the host): for each real eval batch
as many generated images (G in eval mode: running statistics; noise keyed by the batch
so the same parameters give the same numbers; conditional: the real batch's labels), the
moment sums of both in the feature space of a small classifier trained on the real
training images (measure/feature_net.py, cached), and D's outputs. Metrics: fd (the
squared Fréchet distance, measure/frechet.py), d_real, d_fake, d_loss, the classifier's
accuracy on the real eval images (real_accuracy) and, when conditional, on the
generated ones with the labels they were asked for (generated_accuracy).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from attn_research.data import get_task
from attn_research.measure import feature_net
from attn_research.measure.frechet import frechet_from_sums, moment_sums
from attn_research.models.gan import GAN
from attn_research.models.image_grid import vectors_to_grid
from attn_research.nn.spectral_norm import PowerIterate
from attn_research.objectives.base import Objective, check_accumulate_steps, register_objective
from attn_research.objectives.optim import make_schedule

GAN_DEFAULTS = dict(n_dis=1, d_learning_rate=4e-4, beta1=0.0, beta2=0.9,
                    feature_steps=400, feature_width=16, feature_dim=64)
STATS = (nnx.BatchStat, PowerIterate)
EVAL_KEY = 0x6576616C  # "eval"


def gan_settings(config) -> dict:
  """config.gan over GAN_DEFAULTS, refused when a key is unknown or a value out of range."""
  given = dict(config.get("gan") or {})
  unknown = sorted(set(given) - set(GAN_DEFAULTS))
  if unknown:
    raise ValueError(f"gan {unknown} is not a GAN setting; valid: {sorted(GAN_DEFAULTS)}")
  s = dict(GAN_DEFAULTS, **given)
  if not (isinstance(s["n_dis"], int) and not isinstance(s["n_dis"], bool) and s["n_dis"] >= 1):
    raise ValueError(f"gan.n_dis={s['n_dis']!r} must be an int >= 1: discriminator updates "
                     "per generator update (SAGAN: 1, SNGAN: 5)")
  if not s["d_learning_rate"] > 0:
    raise ValueError(f"gan.d_learning_rate={s['d_learning_rate']!r} must be > 0 (SAGAN: 4e-4)")
  for key in ("beta1", "beta2"):
    if not 0 <= s[key] < 1:
      raise ValueError(f"gan.{key}={s[key]!r} must be in [0, 1) (SAGAN: beta1 0, beta2 0.9)")
  for key in ("feature_steps", "feature_width", "feature_dim"):
    if not (isinstance(s[key], int) and s[key] >= 1):
      raise ValueError(f"gan.{key}={s[key]!r} must be a positive int")
  return s


def check_train_settings(tc, n_dis: int):
  if tc.optimizer not in ("adam", "adamw"):
    raise ValueError(f"train.optimizer={tc.optimizer!r}: objective 'gan' trains with Adam "
                     "(gan.beta1, gan.beta2); use 'adam' or 'adamw'")
  if tc.optimizer == "adam" and tc.weight_decay:
    raise ValueError(f"train.optimizer='adam' has no weight decay (got weight_decay="
                     f"{tc.weight_decay}); use 'adamw' or set weight_decay=0")
  if tc.get("frozen", ""):
    raise ValueError(f"train.frozen={tc.frozen!r}: objective 'gan' trains two networks in "
                     "turn and freezes none; set train.frozen=''")
  if tc.grad_clip < 0:
    raise ValueError(f"train.grad_clip={tc.grad_clip} must be >= 0 (0 = no clipping)")
  devices = jax.device_count()
  if tc.batch_size % (n_dis * devices):
    raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of gan.n_dis="
                     f"{n_dis} x {devices} device(s): each D update takes its own "
                     "B / n_dis real images")


class Net:
  """One network (G or D) as a pure function of (params, stats)."""

  def __init__(self, module):
    self.graphdef, self.params, self.stats, self.rest = nnx.split(module, nnx.Param, STATS, ...)

  def module(self, params, stats):
    # Fresh copies of the Variables in the current trace: flax refuses to let a module
    # update a variable (BN statistics, u) created at another trace level.
    copy = lambda tree: jax.tree.map(lambda x: x, tree)  # noqa: E731
    return nnx.merge(self.graphdef, copy(params), copy(stats), copy(self.rest))

  def apply(self, params, stats, *args, train: bool):
    """(output, the stats after the call)."""
    module = self.module(params, stats)
    return module(*args, train=train), nnx.state(module, STATS)


@register_objective("gan")
class GANObjective(Objective):
  """Hinge-loss GAN training and Fréchet-distance evaluation (module docstring)."""

  finite_metrics = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
  progress_metrics = ("d_loss", "g_loss", "fd")
  accumulates = False
  one_network = False  # generator and discriminator: init_from and load_trained refuse it

  def __init__(self, config, model):
    if not isinstance(model, GAN):
      raise ValueError(f"objective='gan' trains a generator and a discriminator: it needs "
                       f"model.name='gan'; got model {type(model).__name__} "
                       f"(model.name={config.model.get('name')!r})")
    self.config = config
    self.settings = gan_settings(config)
    tc = config.train
    check_train_settings(tc, self.settings["n_dis"])
    self.accumulate_steps = check_accumulate_steps(config, type(self))
    self.image_shape, self.patch = model.image_shape, model.task_patch
    self.conditional, self.num_classes = model.conditional, model.num_classes
    self.noise_dim = model.noise_dim
    self.G, self.D = Net(model.generator), Net(model.discriminator)
    self.g_schedule = make_schedule(tc)
    d_tc = ml_collections.ConfigDict(dict(tc.to_dict(),
                                          learning_rate=self.settings["d_learning_rate"]))
    self.d_schedule = make_schedule(d_tc)
    self.tx_g, self.tx_d = self._adam(tc, self.g_schedule), self._adam(tc, self.d_schedule)
    self.schedule = self.g_schedule
    task = get_task(config.data)
    self.feature_params, self.feature_accuracy = feature_net.load_or_train(
        config.data, task, dict(features=self.settings["feature_dim"],
                                width=self.settings["feature_width"],
                                steps=self.settings["feature_steps"]))

  def _adam(self, tc, schedule):
    s = self.settings
    if tc.optimizer == "adamw":
      opt = optax.adamw(schedule, b1=s["beta1"], b2=s["beta2"], weight_decay=tc.weight_decay)
    else:
      opt = optax.adam(schedule, b1=s["beta1"], b2=s["beta2"])
    return optax.chain(optax.clip_by_global_norm(tc.grad_clip), opt) if tc.grad_clip else opt

  # State ------------------------------------------------------------------------------
  def init_state(self, params):
    # Copies: the loop donates the state to the train step, and forward() still reads
    # the model's own statistics.
    stats = jax.tree.map(jnp.copy, {"generator": self.G.stats, "discriminator": self.D.stats})
    return {"step": jnp.zeros((), jnp.int32), "params": jax.tree.map(jnp.copy, params),
            "stats": stats,
            "opt_g": self.tx_g.init(params["generator"]),
            "opt_d": self.tx_d.init(params["discriminator"])}

  def initial_state(self):
    return self.init_state({"generator": self.G.params, "discriminator": self.D.params})

  def abstract_state(self):
    return jax.eval_shape(self.initial_state)

  # Pieces -----------------------------------------------------------------------------
  def images(self, inputs_BTF):
    """The batch's vectors as images [B, H, W, C] in [0, 1]."""
    return vectors_to_grid(inputs_BTF.astype(jnp.float32), self.image_shape, self.patch)

  def noise(self, key, n: int):
    """(z [n, noise_dim], labels [n] or None) for n generated images."""
    k_z, k_y = jax.random.split(key)
    z = jax.random.normal(k_z, (n, self.noise_dim), jnp.float32)
    y = jax.random.randint(k_y, (n,), 0, self.num_classes) if self.conditional else None
    return z, y

  def generate(self, state, z, labels=None):
    """Images [n, H, W, C] in [0, 1] from G in eval mode (running statistics)."""
    fake, _ = self.G.apply(state["params"]["generator"], state["stats"]["generator"], z,
                           labels, train=False)
    return (fake + 1) / 2

  # Steps ------------------------------------------------------------------------------
  def train_step(self, state, batch, rng):
    key = jax.random.fold_in(rng, state["step"])
    n = self.settings["n_dis"]
    real = self.images(batch["inputs"]) * 2 - 1
    labels = batch["targets"] if self.conditional else None
    split = lambda x: jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)  # noqa: E731
    real_N, labels_N = split(real), (split(labels) if labels is not None else None)
    b = real.shape[0] // n
    gp, dp = state["params"]["generator"], state["params"]["discriminator"]
    gs, ds = state["stats"]["generator"], state["stats"]["discriminator"]
    opt_d = state["opt_d"]
    d_logs = []
    for i in range(n):
      z, y_fake = self.noise(jax.random.fold_in(key, i), b)
      fake, gs = self.G.apply(gp, gs, z, y_fake, train=True)
      x = jnp.concatenate([real_N[i], jax.lax.stop_gradient(fake)])
      y = None if labels_N is None else jnp.concatenate([labels_N[i], y_fake])

      def d_loss_fn(dp, ds=ds, x=x, y=y):
        out, new_ds = self.D.apply(dp, ds, x, y, train=True)
        out_real, out_fake = out[:b], out[b:]
        loss = jnp.mean(jax.nn.relu(1 - out_real)) + jnp.mean(jax.nn.relu(1 + out_fake))
        return loss, (new_ds, jnp.mean(out_real), jnp.mean(out_fake))

      (d_loss, (ds, d_real, d_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(dp)
      updates, opt_d = self.tx_d.update(d_grads, opt_d, dp)
      dp = optax.apply_updates(dp, updates)
      d_logs.append(dict(d_loss=d_loss, d_real=d_real, d_fake=d_fake,
                         d_grad_norm=optax.tree.norm(d_grads)))
    z, y_fake = self.noise(jax.random.fold_in(key, n), b)

    def g_loss_fn(gp):
      fake, new_gs = self.G.apply(gp, gs, z, y_fake, train=True)
      out, _ = self.D.apply(dp, ds, fake, y_fake, train=False)
      return -jnp.mean(out), new_gs

    (g_loss, gs), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(gp)
    updates, opt_g = self.tx_g.update(g_grads, state["opt_g"], gp)
    gp = optax.apply_updates(gp, updates)
    metrics = {k: jnp.mean(jnp.stack([m[k] for m in d_logs])) for k in d_logs[0]}
    metrics.update(g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads),
                   g_param_norm=optax.tree.norm(gp), d_param_norm=optax.tree.norm(dp),
                   g_learning_rate=jnp.asarray(self.g_schedule(state["step"]), jnp.float32),
                   d_learning_rate=jnp.asarray(self.d_schedule(state["step"]), jnp.float32))
    new_state = {"step": state["step"] + 1,
                 "params": {"generator": gp, "discriminator": dp},
                 "stats": {"generator": gs, "discriminator": ds},
                 "opt_g": opt_g, "opt_d": opt_d}
    return new_state, metrics

  def eval_step(self, state, batch):
    real01 = self.images(batch["inputs"])
    w = batch["target_mask"].astype(jnp.float32)
    B = real01.shape[0]
    T = batch["inputs"].shape[1]
    digest = jnp.sum(jnp.round(batch["inputs"][..., 0] * 255).astype(jnp.int32)
                     * (jnp.arange(T, dtype=jnp.int32) + 1))
    z, _ = self.noise(jax.random.fold_in(jax.random.key(EVAL_KEY), digest), B)
    labels = batch["targets"] if self.conditional else None
    fake01 = self.generate(state, z, labels)
    f_real, logits_real = feature_net.apply(self.feature_params, real01)
    f_fake, logits_fake = feature_net.apply(self.feature_params, fake01)
    out, _ = self.D.apply(state["params"]["discriminator"], state["stats"]["discriminator"],
                          jnp.concatenate([real01, fake01]) * 2 - 1,
                          None if labels is None else jnp.concatenate([labels, labels]),
                          train=False)
    out_real, out_fake = out[:B], out[B:]
    sums = {"real": moment_sums(f_real, w), "fake": moment_sums(f_fake, w), "count": w.sum(),
            "d_real": jnp.sum(w * out_real), "d_fake": jnp.sum(w * out_fake),
            "d_loss": jnp.sum(w * (jax.nn.relu(1 - out_real) + jax.nn.relu(1 + out_fake))),
            "real_accuracy": jnp.sum(w * (jnp.argmax(logits_real, -1) == batch["targets"]))}
    if self.conditional:
      sums["generated_accuracy"] = jnp.sum(w * (jnp.argmax(logits_fake, -1) == labels))
    return sums

  def reduce_eval(self, sums) -> dict:
    count = max(float(sums["count"]), 1.0)
    out = {"fd": frechet_from_sums(sums["real"], sums["fake"])}
    out.update({k: float(v) / count for k, v in sums.items()
                if k not in ("real", "fake", "count")})
    return out

  def forward(self, params, batch):
    """D's logits for the batch's real images (FLOPs counting)."""
    labels = batch["targets"] if self.conditional else None
    out, _ = self.D.apply(params["discriminator"], self.D.stats,
                          self.images(batch["inputs"]) * 2 - 1, labels, train=False)
    return out

  def summary_fields(self, state) -> dict:
    return {"feature_net_eval_accuracy": self.feature_accuracy, "gan": dict(self.settings)}
