"""Keras emitters of the tensor ops, the broadcasting arithmetic, concat and ``parameter``.

Values may be fed channels-last (see keras_emit). Slices, selections, reductions and permutes
read their axes in the layout they are fed, so no Permute is inserted for them; a user permute
that the layout already realises (NCHW -> NHWC on a channels-last value, and back) is no layer at
all. A parameter keeps its logical shape and is reshaped and transposed to the batched inputs'
layout inside the arithmetic layer, so [C, 1, 1] meets the channel axis, wherever that is.
"""

from __future__ import annotations

from .. import ir
from ..ir.tensor import open_slice, permutation, reduce_axes, roll_shifts, sample_axis
from .codegen import channels_last_perm
from .keras_emit import (
    ANY,
    CHANNELS_LAST,
    FIRST,
    HELPERS,
    LOGICAL,
    KerasContext,
    KerasLayer,
    _init,
    _w,
    declare,
    wanted,
)
from .registry import emitter
from .source import call

HELPERS["Parameter"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Parameter(keras.layers.Layer):
    """A learned tensor without batch axis. It is called on a model input, which it ignores, so that it
    takes part in the functional graph."""

    def __init__(self, value_shape, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.value_shape, self.initializer = (
            tuple(value_shape),
            keras.initializers.get(initializer),
        )

    def build(self, input_shape):
        self.value = self.add_weight(
            shape=self.value_shape,
            initializer=self.initializer,
            name="value",
        )

    def call(self, x):
        return keras.ops.convert_to_tensor(self.value)

    def compute_output_shape(self, input_shape):
        return self.value_shape

    def get_config(self):
        return {
            **super().get_config(),
            "value_shape": self.value_shape,
            "initializer": keras.initializers.serialize(self.initializer),
        }
'''

HELPERS["Arithmetic"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Arithmetic(keras.layers.Layer):
    """x0 op x1 op ... with numpy broadcasting. Input i is first reshaped to shapes[i] and transposed by
    perms[i] where those are given: a parameter brought to the layout of the batched inputs."""

    def __init__(self, op, shapes, perms, **kwargs):
        super().__init__(**kwargs)
        self.op, self.shapes, self.perms = op, list(shapes), list(perms)

    def call(self, inputs):
        values = []
        for x, shape, perm in zip(inputs, self.shapes, self.perms, strict=True):
            if shape is not None:
                x = keras.ops.reshape(x, shape)
            if perm is not None:
                x = keras.ops.transpose(x, perm)
            values.append(x)
        out = values[0]
        for x in values[1:]:
            out = getattr(keras.ops, self.op)(out, x)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "op": self.op,
            "shapes": self.shapes,
            "perms": self.perms,
        }
'''

HELPERS["Index"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Index(keras.layers.Layer):
    """x[..., start:stop:step, ...] on one axis, or x[..., index, ...] (the axis removed) when index is given."""

    def __init__(self, axis, start=0, stop=None, step=1, index=None, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.start, self.stop, self.step, self.index = (
            axis,
            start,
            stop,
            step,
            index,
        )

    def call(self, x):
        item = self.index
        if item is None:
            item = slice(self.start, self.stop, self.step)
        return x[(slice(None),) * self.axis + (item,)]

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "start": self.start,
            "stop": self.stop,
            "step": self.step,
            "index": self.index,
        }
'''

HELPERS["Roll"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Roll(keras.layers.Layer):
    """torch.roll: shifts elements cyclically along axes (counting the batch as axis 0)."""

    def __init__(self, shifts, axes, **kwargs):
        super().__init__(**kwargs)
        self.shifts, self.axes = list(shifts), list(axes)

    def call(self, x):
        return keras.ops.roll(x, shift=self.shifts, axis=self.axes)

    def get_config(self):
        return {**super().get_config(), "shifts": self.shifts, "axes": self.axes}
'''

HELPERS["Reduce"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class Reduce(keras.layers.Layer):
    """keras.ops.mean, max or sum over axes."""

    def __init__(self, op, axes, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.op, self.axes, self.keepdims = op, tuple(axes), keepdims

    def call(self, x):
        return getattr(keras.ops, self.op)(x, axis=self.axes, keepdims=self.keepdims)

    def get_config(self):
        return {
            **super().get_config(),
            "op": self.op,
            "axes": self.axes,
            "keepdims": self.keepdims,
        }
'''

HELPERS["MatMul"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class MatMul(keras.layers.Layer):
    """a @ b with broadcasting of the leading axes (torch.matmul on values of rank 3 or more)."""

    def call(self, inputs):
        return keras.ops.matmul(inputs[0], inputs[1])
'''

HELPERS["ConcatExpand"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class ConcatExpand(keras.layers.Layer):
    """Concatenation along axis, after expanding the inputs flagged in expand from (1, ...) to the batch."""

    def __init__(self, axis, expand, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.expand = axis, list(expand)

    def call(self, inputs):
        batch = keras.ops.shape(inputs[self.expand.index(False)])[0]
        values = [
            keras.ops.broadcast_to(x, (batch, *x.shape[1:])) if e else x
            for x, e in zip(inputs, self.expand, strict=True)
        ]
        return keras.ops.concatenate(values, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "expand": self.expand}
'''


@emitter("keras", ir.tensor.Parameter)
def _parameter(ctx: KerasContext) -> KerasLayer:
    (param,) = ctx.node.params
    layer = call("Parameter", value_shape=param.shape, initializer=_init(param, exact_fans=False), name=ctx.node.name)
    return KerasLayer(layer, [_w(ctx.node, "")], ANY, ("Parameter",))


_NATIVE = {"add": "Add", "multiply": "Multiply", "subtract": "Subtract"}


def _arithmetic(ctx: KerasContext) -> KerasLayer:
    node = ctx.node
    batched = [ctx.graph.is_batched(v) for v in node.inputs]
    if all(batched) and len(set(ctx.in_shapes)) == 1 and node.op in _NATIVE:
        return KerasLayer(call(f"keras.layers.{_NATIVE[node.op]}", name=node.name), wants=FIRST)
    full = len(node.shape) + 1
    shapes, perms = [], []
    for shape, b in zip(ctx.in_shapes, batched):
        if b or ctx.layout != CHANNELS_LAST or full <= 2:
            shapes.append(None)
            perms.append(None)
        else:  # right-aligned against (N, *shape), then to channels-last like the batched inputs
            shapes.append((1,) * (full - len(shape)) + tuple(shape))
            perms.append((0, *channels_last_perm(full - 1)))
    layer = call("Arithmetic", op=node.op, shapes=shapes, perms=perms, name=node.name)
    return KerasLayer(layer, wants=FIRST, helpers=("Arithmetic",))


for _op in (ir.merge.Add, ir.merge.Multiply, ir.merge.Subtract, ir.merge.Divide):
    emitter("keras", _op)(_arithmetic)


@emitter("keras", ir.merge.Concat)
def _concat(ctx: KerasContext) -> KerasLayer:
    batched = [ctx.graph.is_batched(v) for v in ctx.node.inputs]
    if all(batched):
        layer = call("keras.layers.Concatenate", axis=ctx.axis(ctx.node.attrs["axis"]), name=ctx.node.name)
        return KerasLayer(layer, wants=FIRST)
    rank = len(ctx.node.shape) + 1
    layer = call("ConcatExpand", axis=ctx.node.attrs["axis"] % rank, expand=[not b for b in batched],
                 name=ctx.node.name)
    return KerasLayer(layer, wants=LOGICAL, helpers=("ConcatExpand",))


def _positions(layout: str, rank: int) -> list[int]:
    """Physical position (0-based, batch excluded) of each logical sample axis."""
    if layout != CHANNELS_LAST or rank < 2:
        return list(range(rank))
    return [rank - 1] + list(range(rank - 1))


def _permute(ctx: KerasContext) -> KerasLayer:
    rank, order = len(ctx.in_shape), permutation(ctx.node.attrs, ctx.in_shape)
    where = _positions(ctx.layout, rank)
    logical = [where[order[i]] for i in range(rank)]  # output physical i <- input physical logical[i]
    last = [where[order[(j + 1) % rank]] for j in range(rank)] if rank >= 2 else logical
    if logical == list(range(rank)):
        return KerasLayer(None, wants=ANY, out=LOGICAL, alias=True)
    if last == list(range(rank)):  # the output's channels-last layout is the input as it is
        return KerasLayer(None, wants=ANY, out=CHANNELS_LAST, alias=True)
    out = _preferred_layout(ctx)
    dims = tuple(d + 1 for d in (last if out == CHANNELS_LAST else logical))
    return KerasLayer(call("keras.layers.Permute", dims=dims, name=ctx.node.name), wants=ANY, out=out)


def _preferred_layout(ctx: KerasContext) -> str:
    """The layout a real Permute should produce: channels-last if a reader wants it, or if no reader wants
    the logical layout and the value is an image (rank >= 3); else logical."""
    from .registry import emitters

    table, wants = emitters("keras"), set()
    values, seen = [ctx.node.name], set()
    while values:  # readers that take any layout pass it on: look through them (layernorm, activation, ...)
        value = values.pop()
        for reader in ctx.graph.nodes:
            if value in reader.inputs and reader.name not in seen:
                seen.add(reader.name)
                shapes = [ctx.graph.shape_of(v) for v in reader.inputs]
                emit = table[reader.op]  # what it declares, not what it emits: no emitter runs twice
                want, keeps, _ = wanted(emit, KerasContext(ctx.graph, reader, list(reader.inputs), shapes))
                wants.add(want)
                if want == ANY and keeps and len(reader.inputs) == 1 and len(seen) < 16:
                    values.append(reader.name)
    if CHANNELS_LAST in wants or (LOGICAL not in wants and len(ctx.node.shape) >= 3):
        return CHANNELS_LAST
    return LOGICAL


emitter("keras", ir.tensor.Permute)(_permute)
emitter("keras", ir.tensor.Transpose)(_permute)


def _dropped_layout(ctx: KerasContext, removed: set[int]) -> str:
    """Layout of the result of removing logical axes ``removed`` from the input as fed."""
    if ctx.layout == CHANNELS_LAST and len(ctx.in_shape) >= 2 and 0 not in removed:
        return CHANNELS_LAST
    return LOGICAL


@emitter("keras", ir.tensor.Slice)
def _slice(ctx: KerasContext) -> KerasLayer:
    axis, start, stop, step = open_slice(ctx.node.attrs, ctx.in_shape)
    layer = call("Index", axis=ctx.axis(axis + 1), start=start, stop=stop, step=step, name=ctx.node.name,
                 defaults={"start": 0, "stop": None, "step": 1})
    return KerasLayer(layer, wants=ANY, helpers=("Index",))


@emitter("keras", ir.tensor.Select)
def _select(ctx: KerasContext) -> KerasLayer:
    axis = sample_axis(ctx.node.attrs["axis"], len(ctx.in_shape))
    index = ctx.node.attrs["index"] % ctx.in_shape[axis]
    layer = call("Index", axis=ctx.axis(axis + 1), index=index, name=ctx.node.name)
    return KerasLayer(layer, wants=ANY, helpers=("Index",), out=_dropped_layout(ctx, {axis}))


@emitter("keras", ir.tensor.Roll)
def _roll(ctx: KerasContext) -> KerasLayer:
    rolls = roll_shifts(ctx.node.attrs, ctx.in_shape)
    if not rolls:
        return KerasLayer(None, wants=ANY, alias=True)
    layer = call("Roll", shifts=[s for _, _, s in rolls], axes=[ctx.axis(a + 1) for a, _, _ in rolls],
                 name=ctx.node.name)
    return KerasLayer(layer, wants=ANY, helpers=("Roll",))


def _reduce(op: str):
    def emit(ctx: KerasContext) -> KerasLayer:
        axes = reduce_axes(ctx.node.attrs, ctx.in_shape)
        keep = ctx.node.attrs["keepdims"]
        layer = call("Reduce", op=op, axes=tuple(sorted(ctx.axis(a + 1) for a in axes)), keepdims=keep,
                     name=ctx.node.name)
        out = ctx.layout if keep else _dropped_layout(ctx, set(axes))
        return KerasLayer(layer, wants=ANY, helpers=("Reduce",), out=out)

    return declare(emit, ANY, keeps=False)


emitter("keras", ir.tensor.ReduceMean)(_reduce("mean"))
emitter("keras", ir.tensor.ReduceMax)(_reduce("max"))
emitter("keras", ir.tensor.ReduceSum)(_reduce("sum"))


@emitter("keras", ir.tensor.MatMul)
def _matmul(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(call("MatMul", name=ctx.node.name), wants=LOGICAL, helpers=("MatMul",))


# What each emitter's layer needs of its inputs' layout (see keras_emit.declare)
declare(_parameter, ANY)
declare(_arithmetic, FIRST)
declare(_concat, lambda ctx: FIRST if all(ctx.graph.is_batched(v) for v in ctx.node.inputs) else LOGICAL)
declare(_permute, ANY, keeps=False)
declare(_slice, ANY)
declare(_roll, ANY)
declare(_select, ANY, keeps=False)
declare(_matmul, LOGICAL)
