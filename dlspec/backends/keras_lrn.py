"""Keras emitter for local response normalisation (channels-last inside)."""

from __future__ import annotations

from .. import ir
from ..ir.lrn import lrn_window
from .keras_emit import CHANNELS_LAST, HELPERS, KerasContext, KerasLayer, declare
from .registry import emitter
from .source import call

HELPERS["LocalResponseNorm"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class LocalResponseNorm(keras.layers.Layer):
    """torch's LocalResponseNorm on channels-last input: x / (k + alpha / size * S) ** beta, S the sum of squares
    over the channels [c - before, c + after], channels outside counting as zero."""

    def __init__(self, size, alpha, beta, k, before, after, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k, self.before, self.after = (
            size,
            alpha,
            beta,
            k,
            before,
            after,
        )

    def call(self, x):
        channels = x.shape[-1]
        pads = [[0, 0]] * (len(x.shape) - 1) + [[self.before, self.after]]
        square = keras.ops.pad(keras.ops.square(x), pads)
        total = square[..., 0:channels]
        for i in range(1, self.size):
            total = total + square[..., i : i + channels]
        return x / keras.ops.power(self.k + self.alpha / self.size * total, self.beta)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "before": self.before,
            "after": self.after,
        }
'''


@emitter("keras", ir.lrn.LRN)
def _lrn(ctx: KerasContext) -> KerasLayer:
    a = ctx.node.attrs
    before, after = lrn_window(a["size"])
    layer = call("LocalResponseNorm", size=a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"], before=before,
                 after=after, name=ctx.node.name)
    return KerasLayer(layer, wants=CHANNELS_LAST, helpers=("LocalResponseNorm",))


# What each emitter's layer needs of its inputs' layout (see keras_emit.declare)
declare(_lrn, CHANNELS_LAST)
