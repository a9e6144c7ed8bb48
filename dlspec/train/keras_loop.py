"""The Keras side of training: a custom step with torch's loss, clipping and optimizer formulas.

Keras' own optimizers differ from torch's (Adam adds epsilon before bias correction; weight decay is
decoupled; RMSprop's defaults differ), so the step below implements torch's update rules exactly
with TensorFlow operations.

With ``replicas > 1`` the step runs under ``tf.distribute.MirroredStrategy``: one replica per GPU that
TensorFlow sees, otherwise the CPU split into that many logical devices. Each replica takes a contiguous
share of the global batch and weights its mean loss by share / batch, so the all-reduced (summed)
gradient is the global batch's mean-loss gradient and N replicas train like one, up to rounding.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable

from ..api import Model, build
from ..errors import UsageError
from ..spec import train as spec
from . import registry
from .registry import Registry


class KerasTrainer:
    """One optimizer step at a time on the generated Keras model."""

    def __init__(self, model: Model, weights: dict, cfg, frozen=frozenset(), replicas: int = 1):
        """``replicas > 1``: train under MirroredStrategy (see the module docstring)."""
        check_replicas(cfg, replicas)
        tf = _import_tensorflow(replicas)
        self.tf, self.cfg, self.graph, self.replicas = tf, cfg, model.graph, replicas
        self.strategy = _strategy(tf, replicas) if replicas > 1 else None
        tf.random.set_seed(cfg.seed)
        with self.strategy.scope() if self.strategy else contextlib.nullcontext():  # variables become mirrored
            self._build(model, weights, frozen)
        self.t = 0
        self.loss_spec = cfg.loss_spec()
        self._step = tf.function(self._distributed_step_fn if self.strategy else self._step_fn,
                                 reduce_retracing=True)
        self._eval = tf.function(self._eval_fn, reduce_retracing=True)

    def _build(self, model: Model, weights: dict, frozen) -> None:
        tf = self.tf
        self.net = build(model, "keras", weights)
        for layer in self.net.layers:
            if layer.name in frozen:
                layer.trainable = False
        self.vars = list(self.net.trainable_variables)
        self.penalties = []
        for key, (l1, l2) in model.regularizers().items():
            layer = self.net.get_layer(key.rsplit(".", 1)[0])
            if layer.trainable:
                self.penalties.append((layer.trainable_weights[0], l1, l2))
        self.o = self.cfg.optimizer
        self.state = {name: [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]
                      for name in self._state_names()}
        if self.strategy:
            self._decorrelate_dropout()

    def _decorrelate_dropout(self) -> None:
        # Mirrored copies of a dropout layer's seed state are equal, so every replica would drop the same
        # positions of its share; a distinct key per replica gives independent masks, as one batch has.
        for var in self.net.non_trainable_variables:
            if var.path.endswith("seed_generator_state"):
                for r, copy in enumerate(var.value.values):
                    copy.assign(copy + self.tf.constant([r * 1_000_003, 0], copy.dtype))

    def _state_names(self):
        return OPTIMIZERS[self.o].state(self.o)

    def _loss(self, out, y):
        return LOSSES[self.loss_spec](self.tf, self.loss_spec, out, y)

    def _clip(self, grads):
        tf, clip = self.tf, self.cfg.clip
        if clip is None:
            return grads
        grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]  # None: no gradient, as in torch
        if clip.value is not None:
            return [None if g is None else tf.clip_by_value(g, -clip.value, clip.value) for g in grads]
        total = tf.norm(tf.stack([tf.norm(g) for g in grads if g is not None]))
        coef = tf.minimum(clip.norm / (total + 1e-6), 1.0)
        return [None if g is None else g * coef for g in grads]

    def _update(self, grads, h):
        """torch's update rules; ``h`` holds this step's scalars computed in Python as torch does. A variable
        without a gradient (it does not reach the loss: a second output's head) is left alone, as torch's
        optimizers skip a parameter whose ``grad`` is None (no weight decay, no state)."""
        for i, (p, g) in enumerate(zip(self.vars, grads)):
            if g is not None:
                self._update_one(i, p, g, h)

    def _update_one(self, i: int, p, g, h):
        # ``p``: variable i, or one replica's copy of it (its optimizer state then reads and writes that
        # replica's copies too, because MirroredStrategy's update context makes them local)
        o = self.o
        g = self.tf.convert_to_tensor(g)  # embeddings give sparse IndexedSlices; torch's rules are dense
        if isinstance(o, spec.AdamW):
            p.assign(p * h["decay"])
        elif o.weight_decay:
            g = g + o.weight_decay * p
        OPTIMIZERS[o].update(self, i, p, g, h)

    def _adam(self, i, p, g, h):
        o, m, v = self.o, self.state["m"][i], self.state["v"][i]
        m.assign(m + (g - m) * (1 - o.betas[0]))
        v.assign(v * o.betas[1] + g * g * (1 - o.betas[1]))
        denom = self.tf.sqrt(v) / h["bc2_sqrt"] + o.eps
        p.assign(p - h["step_size"] * (m / denom))

    def _sgd(self, i, p, g, h):
        o = self.o
        if o.momentum:
            buf = self.state["buf"][i]
            buf.assign(h["first"] * g + (1 - h["first"]) * (buf * o.momentum + g * (1 - o.dampening)))
            g = g + o.momentum * buf if o.nesterov else buf
        p.assign(p - h["lr"] * g)

    def _rmsprop(self, i, p, g, h):
        o, s = self.o, self.state
        sq = s["square"][i]
        sq.assign(sq * o.alpha + g * g * (1 - o.alpha))
        if o.centered:
            ga = s["grad_avg"][i]
            ga.assign(ga + (g - ga) * (1 - o.alpha))
            avg = self.tf.sqrt(sq - ga * ga) + o.eps
        else:
            avg = self.tf.sqrt(sq) + o.eps
        if o.momentum:
            buf = s["buf"][i]
            buf.assign(buf * o.momentum + g / avg)
            p.assign(p - h["lr"] * buf)
        else:
            p.assign(p - h["lr"] * (g / avg))

    def _forward(self, x, training):
        out = self.net(x, training=training)
        return out[0] if isinstance(out, (list, tuple)) else out

    def _penalty(self):
        tf, total = self.tf, 0.0
        for weight, l1, l2 in self.penalties:  # in the objective, not in the reported loss
            total = total + l1 * tf.reduce_sum(tf.abs(weight)) + l2 * tf.reduce_sum(tf.square(weight))
        return total

    def _step_fn(self, x, y, h):
        with self.tf.GradientTape() as tape:
            out = self._forward(x, True)
            loss = self._loss(out, y)
            objective = loss + self._penalty()
        grads = self._clip(tape.gradient(objective, self.vars))
        self._update(grads, h)
        return loss, out

    def _distributed_step_fn(self, x, y, h):
        s = self.strategy
        losses, outs = s.run(self._replica_step, args=(x, y, h))
        # the replicas' losses are already weighted by their shares: their sum is the global mean loss
        return s.reduce("SUM", losses, axis=None), self.tf.concat(s.experimental_local_results(outs), axis=0)

    def _replica_step(self, x, y, h):
        tf, ctx = self.tf, self.tf.distribute.get_replica_context()
        r, count, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync, tf.shape(x)[0]
        lo, hi = n * r // count, n * (r + 1) // count  # contiguous shares, in the global batch's order
        with tf.GradientTape() as tape:
            out = self._forward(x[lo:hi], True)
            loss = self._loss(out, y[lo:hi]) * tf.cast(hi - lo, out.dtype) / tf.cast(n, out.dtype)
            first = tf.cast(tf.equal(r, 0), out.dtype)  # replica 0 alone adds the penalties: counted once
            objective = loss + first * self._penalty()
        grads = [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(objective, self.vars)]
        some = [i for i, g in enumerate(grads) if g is not None]  # the same on every replica
        reduced = dict(zip(some, ctx.all_reduce("SUM", [grads[i] for i in some])))
        grads = self._clip([reduced.get(i) for i in range(len(grads))])  # clipping sees the global gradient
        ctx.merge_call(lambda strategy, reduced: self._apply(strategy, reduced, h), args=(grads,))
        return loss, out

    def _apply(self, strategy, grads, h):
        # each replica applies the same reduced gradient to its own copies of the variables
        for i, (p, g) in enumerate(zip(self.vars, grads)):
            if g is not None:
                strategy.extended.update(p.value, lambda copy, grad, i=i: self._update_one(i, copy, grad, h),
                                         args=(g,), group=False)

    def _eval_fn(self, x, y):
        out = self._forward(x, False)
        return self._loss(out, y), out

    is_main = True

    def tensors(self, x, y):
        """Data as TensorFlow constants."""
        return self.tf.constant(x), self.tf.constant(y)

    def indices(self, order: list) -> list:
        """An epoch's batch indices (numpy; gathered by TensorFlow). With replicas, checks before the epoch
        starts that every batch can be shared out."""
        sizes = [len(idx) for idx in order]
        self._check_batch(min(sizes, default=self.replicas), sum(sizes))
        return order

    def _check_batch(self, size: int, samples: int | None = None) -> None:
        if size < self.replicas:
            where = f" (the last batch of {samples} training samples)" if samples else ""
            raise UsageError(f"--replicas {self.replicas} splits every batch into {self.replicas} shares, so a batch "
                             f"needs at least {self.replicas} samples; change batch_size or the number of samples. "
                             f"Received: a batch of {size}{where}")

    def scalars(self, values: list) -> list[float]:
        """Loss tensors as floats."""
        return [float(v) for v in values]

    def take(self, tensor, index):
        """Rows ``index`` (a numpy array) of a tensor."""
        return self.tf.gather(tensor, index)

    def step(self, x, y, lr: float):
        """One optimizer step; returns (loss, outputs)."""
        import math

        self._check_batch(int(x.shape[0]))
        self.t += 1
        o, t = self.o, self.t
        h = {"lr": lr, "first": 1.0 if t == 1 else 0.0}
        if isinstance(o, spec.Adam):  # AdamW too
            h["step_size"] = lr / (1 - o.betas[0] ** t)
            h["bc2_sqrt"] = math.sqrt(1 - o.betas[1] ** t)
            h["decay"] = 1 - lr * (o.weight_decay if isinstance(o, spec.AdamW) else 0.0)
        h = {k: self.tf.constant(v, self.tf.float32) for k, v in h.items()}
        return self._step(x, y, h)

    def evaluate(self, x, y, batch_size: int):
        """Mean loss and outputs in inference mode."""
        tf = self.tf
        outs, total = [], 0.0
        n = int(x.shape[0])
        for i in range(0, n, batch_size):
            loss, out = self._eval(x[i:i + batch_size], y[i:i + batch_size])
            total += float(loss) * int(out.shape[0])
            outs.append(out)
        return total / n, tf.concat(outs, axis=0)

    def fetch(self, outputs: list):
        """Outputs of several steps as one numpy array."""
        return self.tf.concat(outputs, axis=0).numpy()

    def numpy(self, tensor):
        """A tensor as a numpy array."""
        return tensor.numpy()

    def close(self) -> None:
        """Nothing to release."""

    native_file = "model.keras"

    def save_native(self, path) -> None:
        """The trained model in Keras' format (``model.keras``; ``path`` is a temporary ending in .keras)."""
        self.net.save(path)

    def weights(self) -> dict:
        """Canonical weights."""
        from ..backends.keras import export_weights

        return export_weights(self.net, self.graph)


def check_replicas(cfg, replicas: int) -> None:
    """Reject what MirroredStrategy cannot train exactly like one replica, before TensorFlow starts."""
    if replicas < 1:
        raise UsageError(f"--replicas must be a positive whole number. Received: {replicas}")
    if replicas > 1 and cfg.batch_size < replicas:
        raise UsageError(f"--replicas {replicas} splits every batch into {replicas} shares, so batch_size must be "
                         f"at least {replicas}. Received: batch_size {cfg.batch_size}")


def _import_tensorflow(replicas: int):
    """TensorFlow, after Keras' import (``import_keras``); with replicas and no GPU, first the CPU split into
    that many logical devices, which must happen before TensorFlow's runtime starts."""
    from ..backends.keras import import_keras, import_tensorflow, quiet_tensorflow

    if replicas > 1:
        tf = import_tensorflow()
        with quiet_tensorflow():
            _split_cpu(tf, replicas)
    import_keras()
    import tensorflow as tf

    return tf


def _split_cpu(tf, replicas: int) -> None:
    if tf.config.list_physical_devices("GPU"):
        return  # one replica per GPU
    cpu = tf.config.list_physical_devices("CPU")[0]
    with contextlib.suppress(RuntimeError):  # the runtime has started: its devices are fixed (checked below)
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    found = len(tf.config.list_logical_devices("CPU"))
    if found != replicas:
        raise UsageError(f"--replicas {replicas} needs the CPU split into {replicas} logical devices before "
                         f"TensorFlow starts, and TensorFlow already runs in this process with {found}; train "
                         f"in a new process (dlspec train does). Received: {found} logical CPU devices")


_STRATEGIES: dict = {}


def _strategy(tf, replicas: int):
    """MirroredStrategy over the first ``replicas`` GPUs, or the logical CPU devices; one per process and
    device count, because every new MirroredStrategy numbers its collective operations from the same keys,
    and the runtime then mixes them up with an earlier strategy's (a shape mismatch when models differ)."""
    if replicas not in _STRATEGIES:
        _STRATEGIES[replicas] = _new_strategy(tf, replicas)
    return _STRATEGIES[replicas]


def _new_strategy(tf, replicas: int):
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus if gpus else tf.config.list_logical_devices("CPU")
    if len(devices) < replicas:
        kind = "GPUs" if gpus else "logical CPU devices"
        raise UsageError(f"--replicas {replicas} needs {replicas} devices. Received: {len(devices)} {kind}")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:replicas]])


class Rule(typing.NamedTuple):
    """torch's update rule for one optimizer: the state tensors it keeps per variable, and the step."""

    state: Callable  # optimizer config -> names of the per-variable state tensors
    update: Callable  # (trainer, i, variable, gradient, step scalars) -> None


OPTIMIZERS = Registry("optimizer", "keras", registry.OPTIMIZERS)
OPTIMIZERS.register(spec.Adam, spec.AdamW)(Rule(lambda o: ("m", "v"), KerasTrainer._adam))
OPTIMIZERS.register(spec.SGD)(Rule(lambda o: ("buf",) if o.momentum else (), KerasTrainer._sgd))
OPTIMIZERS.register(spec.RMSprop)(Rule(
    lambda o: ("square",) + (("grad_avg",) if o.centered else ()) + (("buf",) if o.momentum else ()),
    KerasTrainer._rmsprop))

LOSSES = Registry("loss", "keras", registry.LOSSES)


@LOSSES.register(spec.CrossEntropy)
def _cross_entropy(tf, s, out, y):
    logp = tf.nn.log_softmax(out, axis=-1)
    nll = -tf.gather(logp, y, axis=1, batch_dims=1)
    if s.label_smoothing:
        smooth = -tf.reduce_sum(logp, axis=-1) / tf.cast(tf.shape(out)[-1], out.dtype)
        return tf.reduce_mean((1 - s.label_smoothing) * nll + s.label_smoothing * smooth)
    return tf.reduce_mean(nll)


@LOSSES.register(spec.BinaryCrossEntropy)
def _binary_cross_entropy(tf, s, out, y):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.reshape(y, tf.shape(out)), logits=out))


@LOSSES.register(spec.MSE)
def _mse(tf, s, out, y):
    return tf.reduce_mean(tf.square(out - tf.reshape(y, tf.shape(out))))


@LOSSES.register(spec.L1)
def _l1(tf, s, out, y):
    return tf.reduce_mean(tf.abs(out - tf.reshape(y, tf.shape(out))))


@LOSSES.register(spec.Huber)
def _huber(tf, s, out, y):
    d = out - tf.reshape(y, tf.shape(out))
    a = tf.abs(d)
    return tf.reduce_mean(tf.where(a < s.delta, 0.5 * d * d, s.delta * (a - 0.5 * s.delta)))
