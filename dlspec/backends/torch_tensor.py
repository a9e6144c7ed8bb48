"""PyTorch emitters of the tensor ops (permute, slice, reductions, matmul) and of ``parameter``."""

from __future__ import annotations

from .. import ir
from ..ir.tensor import open_slice, permutation, reduce_axes, roll_shifts, sample_axis
from .context import EmitContext
from .registry import emitter
from .source import Atom, Subscript, call, method
from .torch_emit import TorchLayer, init_statement


@emitter("torch", ir.tensor.Parameter)
def _parameter(ctx: EmitContext) -> TorchLayer:
    (param,) = ctx.node.params
    module = call("nn.Parameter", call("torch.zeros", *param.shape))
    inits = [] if param.init == "zeros" else [init_statement(param, ctx.module)]
    return TorchLayer(ctx.module, module, inits)


@emitter("torch", ir.tensor.Permute)
def _permute(ctx: EmitContext) -> TorchLayer:
    order = (0,) + tuple(d + 1 for d in permutation(ctx.node.attrs, ctx.in_shape))
    return TorchLayer(method(ctx.x, "permute", *order))


@emitter("torch", ir.tensor.Transpose)
def _transpose(ctx: EmitContext) -> TorchLayer:
    a, b = (sample_axis(x, len(ctx.in_shape), "axes") + 1 for x in ctx.node.attrs["axes"])
    return TorchLayer(method(ctx.x, "transpose", a, b))


def _index(axis: int, item: str) -> tuple[Atom, ...]:
    return tuple(Atom(i) for i in [":"] * (axis + 1) + [item])


@emitter("torch", ir.tensor.Slice)
def _slice(ctx: EmitContext) -> TorchLayer:
    axis, start, stop, step = open_slice(ctx.node.attrs, ctx.in_shape)
    item = f"{start or ''}:{'' if stop is None else stop}" + (f":{step}" if step != 1 else "")
    return TorchLayer(Subscript(ctx.x, _index(axis, item)))


@emitter("torch", ir.tensor.Select)
def _select(ctx: EmitContext) -> TorchLayer:
    axis = sample_axis(ctx.node.attrs["axis"], len(ctx.in_shape))
    return TorchLayer(Subscript(ctx.x, _index(axis, str(ctx.node.attrs["index"] % ctx.in_shape[axis]))))


@emitter("torch", ir.tensor.Roll)
def _roll(ctx: EmitContext) -> TorchLayer:
    rolls = roll_shifts(ctx.node.attrs, ctx.in_shape)
    if not rolls:
        return TorchLayer(ctx.x)
    shifts, dims = tuple(s for _, _, s in rolls), tuple(a + 1 for a, _, _ in rolls)
    return TorchLayer(call("torch.roll", ctx.x, shifts=shifts, dims=dims))


def _reduce(name: str):
    def emit(ctx: EmitContext) -> TorchLayer:
        dims = tuple(a + 1 for a in reduce_axes(ctx.node.attrs, ctx.in_shape))
        return TorchLayer(method(ctx.x, name, dim=dims, keepdim=ctx.node.attrs["keepdims"]))

    return emit


emitter("torch", ir.tensor.ReduceMean)(_reduce("mean"))
emitter("torch", ir.tensor.ReduceMax)(_reduce("amax"))
emitter("torch", ir.tensor.ReduceSum)(_reduce("sum"))


@emitter("torch", ir.tensor.MatMul)
def _matmul(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(call("torch.matmul", ctx.args[0], ctx.args[1]))
