"""Keras emitter of ``pad``. It pads the axes in whatever layout the value is fed, so no Permute is inserted."""

from __future__ import annotations

from .. import ir
from ..ir.pad import pad_widths
from .keras_emit import ANY, HELPERS, KerasContext, KerasLayer, declare
from .registry import emitter
from .source import call

HELPERS["Pad"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Pad(keras.layers.Layer):
    """Constant padding: pad_width holds (before, after) for every axis, the batch's first."""

    def __init__(self, pad_width, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.pad_width, self.value = [list(w) for w in pad_width], value

    def call(self, x):
        return keras.ops.pad(x, self.pad_width, constant_values=self.value)

    def get_config(self):
        return {
            **super().get_config(),
            "pad_width": self.pad_width,
            "value": self.value,
        }
'''


@emitter("keras", ir.pad.Pad)
def _pad(ctx: KerasContext) -> KerasLayer:
    widths = pad_widths(ctx.node.attrs, ctx.in_shape)
    if not widths:
        return KerasLayer(None, wants=ANY, alias=True)
    pad_width = [[0, 0] for _ in range(len(ctx.in_shape) + 1)]
    for axis, b, a in widths:
        pad_width[ctx.axis(axis + 1)] = [b, a]
    value = ctx.node.attrs["value"]
    layer = call("Pad", pad_width=pad_width, **({"value": value} if value else {}), name=ctx.node.name)
    return KerasLayer(layer, wants=ANY, helpers=("Pad",))


declare(_pad, ANY)
