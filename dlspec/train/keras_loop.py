"""The Keras side of training: a custom step with torch's loss, clipping and optimizer formulas.

Keras' own optimizers differ from torch's (Adam adds epsilon before bias correction; weight decay is
decoupled; RMSprop's defaults differ), so the step below implements torch's update rules exactly
with TensorFlow operations.
"""

from __future__ import annotations

from ..api import Model, build


class KerasTrainer:
    """One optimizer step at a time on the generated Keras model."""

    def __init__(self, model: Model, weights: dict, cfg, frozen=frozenset(), replicas: int = 1):
        from ..backends.keras import import_keras

        import_keras()
        import tensorflow as tf

        self.tf, self.cfg, self.graph = tf, cfg, model.graph
        tf.random.set_seed(cfg.seed)
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
        self.o = cfg.optimizer
        self.state = {name: [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]
                      for name in self._state_names()}
        self.t = 0
        self.loss_spec = cfg.loss_spec()
        self._step = tf.function(self._step_fn, reduce_retracing=True)
        self._eval = tf.function(self._eval_fn, reduce_retracing=True)

    def _state_names(self):
        o = self.o
        if o.type in ("adam", "adamw"):
            return ("m", "v")
        if o.type == "sgd":
            return ("buf",) if o.momentum else ()
        return ("square",) + (("grad_avg",) if o.centered else ()) + (("buf",) if o.momentum else ())

    def _loss(self, out, y):
        tf, s = self.tf, self.loss_spec
        if s.type == "cross_entropy":
            logp = tf.nn.log_softmax(out, axis=-1)
            nll = -tf.gather(logp, y, axis=1, batch_dims=1)
            if s.label_smoothing:
                smooth = -tf.reduce_sum(logp, axis=-1) / tf.cast(tf.shape(out)[-1], out.dtype)
                return tf.reduce_mean((1 - s.label_smoothing) * nll + s.label_smoothing * smooth)
            return tf.reduce_mean(nll)
        y = tf.reshape(y, tf.shape(out))
        if s.type == "binary_cross_entropy":
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=out))
        d = out - y
        if s.type == "mse":
            return tf.reduce_mean(tf.square(d))
        if s.type == "l1":
            return tf.reduce_mean(tf.abs(d))
        a = tf.abs(d)
        return tf.reduce_mean(tf.where(a < s.delta, 0.5 * d * d, s.delta * (a - 0.5 * s.delta)))

    def _clip(self, grads):
        tf, clip = self.tf, self.cfg.clip
        if clip is None:
            return grads
        grads = [tf.convert_to_tensor(g) for g in grads]
        if clip.value is not None:
            return [tf.clip_by_value(g, -clip.value, clip.value) for g in grads]
        total = tf.norm(tf.stack([tf.norm(g) for g in grads]))
        coef = tf.minimum(clip.norm / (total + 1e-6), 1.0)
        return [g * coef for g in grads]

    def _update(self, grads, h):
        """torch's update rules; ``h`` holds this step's scalars computed in Python as torch does."""
        o, s = self.o, self.state
        for i, (p, g) in enumerate(zip(self.vars, grads)):
            g = self.tf.convert_to_tensor(g)  # embeddings give sparse IndexedSlices; torch's rules are dense
            if o.type == "adamw":
                p.assign(p * h["decay"])
            elif o.weight_decay:
                g = g + o.weight_decay * p
            if o.type in ("adam", "adamw"):
                m, v = s["m"][i], s["v"][i]
                m.assign(m + (g - m) * (1 - o.betas[0]))
                v.assign(v * o.betas[1] + g * g * (1 - o.betas[1]))
                denom = self.tf.sqrt(v) / h["bc2_sqrt"] + o.eps
                p.assign(p - h["step_size"] * (m / denom))
            elif o.type == "sgd":
                if o.momentum:
                    buf = s["buf"][i]
                    buf.assign(h["first"] * g + (1 - h["first"]) * (buf * o.momentum + g * (1 - o.dampening)))
                    g = g + o.momentum * buf if o.nesterov else buf
                p.assign(p - h["lr"] * g)
            else:
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

    def _step_fn(self, x, y, h):
        tf = self.tf
        with tf.GradientTape() as tape:
            out = self._forward(x, True)
            loss = self._loss(out, y)
            objective = loss
            for weight, l1, l2 in self.penalties:  # in the objective, not in the reported loss
                objective = objective + l1 * tf.reduce_sum(tf.abs(weight)) + l2 * tf.reduce_sum(tf.square(weight))
        grads = self._clip(tape.gradient(objective, self.vars))
        self._update(grads, h)
        return loss, out

    def _eval_fn(self, x, y):
        out = self._forward(x, False)
        return self._loss(out, y), out

    is_main = True

    def tensors(self, x, y):
        """Data as TensorFlow constants."""
        return self.tf.constant(x), self.tf.constant(y)

    def indices(self, order: list) -> list:
        """An epoch's batch indices (numpy; gathered by TensorFlow)."""
        return order

    def scalars(self, values: list) -> list[float]:
        """Loss tensors as floats."""
        return [float(v) for v in values]

    def take(self, tensor, index):
        """Rows ``index`` (a numpy array) of a tensor."""
        return self.tf.gather(tensor, index)

    def step(self, x, y, lr: float):
        """One optimizer step; returns (loss, outputs)."""
        import math

        self.t += 1
        o, t = self.o, self.t
        h = {"lr": lr, "first": 1.0 if t == 1 else 0.0}
        if o.type in ("adam", "adamw"):
            h["step_size"] = lr / (1 - o.betas[0] ** t)
            h["bc2_sqrt"] = math.sqrt(1 - o.betas[1] ** t)
            h["decay"] = 1 - lr * (o.weight_decay if o.type == "adamw" else 0.0)
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

    def save_native(self, out) -> None:
        """The trained model in Keras' format: ``model.keras``."""
        self.net.save(out / "model.keras")

    def weights(self) -> dict:
        """Canonical weights."""
        from ..backends.keras import export_weights

        return export_weights(self.net, self.graph)
