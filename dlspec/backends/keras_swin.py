"""Keras emitter for Swin's shifted-window attention: a helper layer on the logical [N, H, W, C] layout."""

from __future__ import annotations

from .. import ir
from ..ir.swin import compact, windows
from .keras_emit import HELPERS, LOGICAL, KerasContext, KerasLayer, T, _init, _w, declare
from .registry import emitter
from .source import call

HELPERS["WindowAttention"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class WindowAttention(keras.layers.Layer):
    """torchvision's ShiftedWindowAttention (Swin v1) on [N, H, W, C]: multi-head self-attention inside windows
    (H, W zero-padded to multiples of the window) with a relative position bias; with a shift, the sample is
    rolled by -shift first and back after, and keys from another region of the rolled sample get -100. An axis
    that one window covers is not shifted (torchvision's rule)."""

    def __init__(
        self,
        heads,
        window,
        shift,
        kernel_initializer="glorot_uniform",
        table_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.heads = heads
        self.window = [window, window] if isinstance(window, int) else list(window)
        self.shift = [shift, shift] if isinstance(shift, int) else list(shift)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.table_initializer = keras.initializers.get(table_initializer)

    def build(self, input_shape):
        _, h, w, c = input_shape
        (wh, ww), heads = self.window, self.heads
        kernel = self.kernel_initializer
        self.qkv_kernel = self.add_weight(
            shape=(c, 3 * c),
            initializer=kernel,
            name="qkv_kernel",
        )
        self.qkv_bias = self.add_weight(
            shape=(3 * c,),
            initializer="zeros",
            name="qkv_bias",
        )
        self.proj_kernel = self.add_weight(
            shape=(c, c),
            initializer=kernel,
            name="proj_kernel",
        )
        self.proj_bias = self.add_weight(
            shape=(c,),
            initializer="zeros",
            name="proj_bias",
        )
        self.relative_position_bias_table = self.add_weight(
            shape=((2 * wh - 1) * (2 * ww - 1), heads),
            initializer=self.table_initializer,
            name="relative_position_bias_table",
        )
        grid = np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")
        y, x = (a.flatten() for a in grid)
        dy = y[:, None] - y[None, :] + wh - 1
        dx = x[:, None] - x[None, :] + ww - 1
        index = (dy * (2 * ww - 1) + dx).flatten().astype("float32")
        self.relative_position_index = self.add_weight(
            shape=(index.size,),
            initializer=keras.initializers.Constant(index),
            trainable=False,
            name="relative_position_index",
        )
        self.padded = (h + -h % wh, w + -w % ww)
        covered = [k >= size for k, size in zip(self.window, self.padded, strict=True)]
        self.rolled = [0 if f else s for f, s in zip(covered, self.shift, strict=True)]
        mask = self.window_mask(*self.padded) if any(self.rolled) else None
        self.shift_mask = mask

    def partition(self, x, h, w):
        """[N, H, W, C] -> [N, windows, tokens, C], windows and tokens row-major."""
        (wh, ww), c = self.window, x.shape[-1]
        x = keras.ops.reshape(x, (-1, h // wh, wh, w // ww, ww, c))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return keras.ops.reshape(x, (-1, h * w // (wh * ww), wh * ww, c))

    def window_mask(self, h, w):
        """[windows, 1, tokens, tokens]: -100 where query and key lie in different regions of the rolled
        sample."""
        (wh, ww), (sh, sw) = self.window, self.rolled

        def regions(size, window, shift):
            # 0, 1, 2 for rows [0, size - window), [.., size - shift), the rest
            r = np.arange(size)
            if not shift:
                return np.zeros(size, int)
            return (r >= size - window).astype(int) + (r >= size - shift)

        label = 3 * regions(h, wh, sh)[:, None] + regions(w, ww, sw)[None, :]
        label = label.reshape(h // wh, wh, w // ww, ww).transpose(0, 2, 1, 3)
        label = label.reshape(-1, wh * ww)
        same = label[:, None, :, None] == label[:, None, None, :]
        return np.where(same, 0.0, -100.0).astype("float32")

    def call(self, x):
        (h, w, c), (wh, ww), (ph, pw) = x.shape[1:], self.window, self.padded
        heads, tokens, windows = self.heads, wh * ww, ph * pw // (wh * ww)
        x = keras.ops.pad(x, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]])
        if any(self.rolled):
            x = keras.ops.roll(x, shift=[-s for s in self.rolled], axis=[1, 2])
        qkv = keras.ops.matmul(self.partition(x, ph, pw), self.qkv_kernel)
        qkv = qkv + self.qkv_bias
        qkv = keras.ops.reshape(qkv, (-1, windows, tokens, 3, heads, c // heads))
        # q, k, v: [N, windows, heads, tokens, C / heads]
        q, k, v = keras.ops.unstack(keras.ops.transpose(qkv, (3, 0, 1, 4, 2, 5)), 3)
        keys = keras.ops.swapaxes(k, -1, -2)
        scores = keras.ops.matmul(q * (c // heads) ** -0.5, keys)
        index = keras.ops.cast(self.relative_position_index, "int32")
        bias = keras.ops.take(self.relative_position_bias_table, index, axis=0)
        bias = keras.ops.reshape(bias, (tokens, tokens, heads))
        scores = scores + keras.ops.transpose(bias, (2, 0, 1))
        if self.shift_mask is not None:
            scores = scores + self.shift_mask
        out = keras.ops.matmul(keras.ops.softmax(scores, axis=-1), v)
        out = keras.ops.transpose(out, (0, 1, 3, 2, 4))
        out = keras.ops.reshape(out, (-1, windows, tokens, c))
        out = keras.ops.matmul(out, self.proj_kernel) + self.proj_bias
        out = keras.ops.reshape(out, (-1, ph // wh, pw // ww, wh, ww, c))
        out = keras.ops.transpose(out, (0, 1, 3, 2, 4, 5))
        out = keras.ops.reshape(out, (-1, ph, pw, c))
        if any(self.rolled):
            out = keras.ops.roll(out, shift=self.rolled, axis=[1, 2])
        return out[:, :h, :w]

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads,
            "window": self.window,
            "shift": self.shift,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "table_initializer": keras.initializers.serialize(self.table_initializer),
        }
'''


@emitter("keras", ir.swin.WindowAttention)
def _window_attention(ctx: KerasContext) -> KerasLayer:
    g, node = windows(ctx.node.attrs, ctx.in_shape), ctx.node
    params = {p.name: p for p in node.params}
    # the spec's shift: the layer applies torchvision's rule (no shift on an axis one window covers) itself
    layer = call("WindowAttention", heads=g.heads, window=compact(g.window), shift=compact(node.attrs["shift"]),
                 kernel_initializer=_init(params["qkv.weight"]),
                 table_initializer=_init(params["relative_position_bias_table"]), name=node.name)
    weights = [_w(node, "qkv.weight", T), _w(node, "qkv.bias"), _w(node, "proj.weight", T), _w(node, "proj.bias"),
               _w(node, "relative_position_bias_table"), _w(node, "relative_position_index")]
    return KerasLayer(layer, weights, LOGICAL, helpers=("WindowAttention",))


declare(_window_attention, LOGICAL)
