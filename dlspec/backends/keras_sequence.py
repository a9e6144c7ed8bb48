"""Keras emitters for sequence layers. Samples stay [T, features] (Keras' own layout for sequences)."""

from __future__ import annotations

from .. import ir
from .keras_emit import HELPERS, LOGICAL, Arg, KerasContext, KerasLayer, T, _init, _w, declare
from .registry import emitter
from .source import Kw, Lit, call

HELPERS["PositionalEmbedding"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class PositionalEmbedding(keras.layers.Layer):
    """Adds a learned vector per position: y[t] = x[t] + embeddings[t]."""

    def __init__(self, max_length, embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.max_length, self.embeddings_initializer = (
            max_length,
            keras.initializers.get(embeddings_initializer),
        )

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def call(self, x):
        return x + self.embeddings[: keras.ops.shape(x)[1]]

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer,
            ),
        }
'''


@emitter("keras", ir.sequence.Embedding)
def _embedding(ctx: KerasContext) -> KerasLayer:
    a, node = ctx.node.attrs, ctx.node
    layer = call("keras.layers.Embedding", input_dim=a["vocabulary"], output_dim=a["units"],
                 embeddings_initializer=_init(node.params[0], exact_fans=False), name=node.name)
    return KerasLayer(layer, [_w(node, "weight")], LOGICAL)


@emitter("keras", ir.sequence.PositionalEmbedding)
def _positional(ctx: KerasContext) -> KerasLayer:
    node = ctx.node
    layer = call("PositionalEmbedding", max_length=node.attrs["max_length"],
                 embeddings_initializer=_init(node.params[0], exact_fans=False), name=node.name)
    return KerasLayer(layer, [_w(node, "weight")], LOGICAL, helpers=("PositionalEmbedding",))


# torch stacks gates as LSTM (i, f, g, o) and GRU (r, z, n); Keras as LSTM (i, f, c, o) and GRU (z, r, h).
_GRU_TO_KERAS = ("gates", (1, 0, 2))


def _gates(node, name: str, kind: str, h: int, transpose: bool) -> tuple:
    steps = ((_GRU_TO_KERAS,) if kind == "gru" else ()) + ((T,) if transpose else ())
    return _w(node, name, *steps)


def _recurrent(kind: str):
    def emit(ctx: KerasContext) -> KerasLayer:
        a, node = ctx.node.attrs, ctx.node
        h = a["units"]
        cell = "LSTM" if kind == "lstm" else "GRU"
        extra = {"reset_after": True} if kind == "gru" else {}
        inner = call(f"keras.layers.{cell}", units=h, return_sequences=a["return_sequences"], **extra)
        weights = []
        for suffix in ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",):
            w_ih = _gates(node, f"weight_ih{suffix}", kind, h, True)
            w_hh = _gates(node, f"weight_hh{suffix}", kind, h, True)
            b_ih, b_hh = (_gates(node, f"bias_{x}{suffix}", kind, h, False) for x in ("ih", "hh"))
            bias = {"sum" if kind == "lstm" else "stack": (b_ih, b_hh)}  # Keras' LSTM keeps one bias
            weights += [w_ih, w_hh, bias]
        if a["bidirectional"]:
            layer = call("keras.layers.Bidirectional", inner, merge_mode="concat", name=node.name)
        else:
            layer = inner.plus(name=node.name)
        return KerasLayer(layer, weights, LOGICAL)

    return declare(emit, LOGICAL)


emitter("keras", ir.sequence.LSTM)(_recurrent("lstm"))
emitter("keras", ir.sequence.GRU)(_recurrent("gru"))


@emitter("keras", ir.sequence.Attention)
def _attention(ctx: KerasContext) -> KerasLayer:
    a, node, (_, e) = ctx.node.attrs, ctx.node, ctx.in_shape
    heads = a["heads"]
    d = e // heads
    layer = call("keras.layers.MultiHeadAttention", num_heads=heads, key_dim=d, name=node.name)
    weights = []
    for i in range(3):  # query, key, value: kernel (E, heads, d), bias (heads, d)
        rows = ("rows", (i * e, (i + 1) * e))
        weights += [_w(node, "in_proj_weight", rows, T, ("reshape", (e, heads, d))),
                    _w(node, "in_proj_bias", rows, ("reshape", (heads, d)))]
    weights += [_w(node, "out_proj.weight", T, ("reshape", (heads, d, e))), _w(node, "out_proj.bias")]
    # A second input is the key padding mask: MultiHeadAttention casts value_mask to bool (nonzero = attend) and
    # replaces a masked score by -0.7 * 3.38953e38, which, like the spec's lowest float32, gives weight 0 and
    # uniform weights to a query whose every key is masked.
    args = (Arg(1), Arg(1), Kw("value_mask", Arg(2))) if len(ctx.args) == 2 else (Arg(0), Arg(0))
    args += (Kw("use_causal_mask", Lit(True)),) if a["causal"] else ()
    return KerasLayer(layer, weights, LOGICAL, call=args)


@emitter("keras", ir.sequence.SequenceMean)
def _sequence_mean(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(call("keras.layers.GlobalAveragePooling1D", name=ctx.node.name), wants=LOGICAL)


# What each emitter's layer needs of its inputs' layout (see keras_emit.declare)
declare(_embedding, LOGICAL)
declare(_positional, LOGICAL)
declare(_attention, LOGICAL)
declare(_sequence_mean, LOGICAL)
