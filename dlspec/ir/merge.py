"""IR ops that combine several inputs."""

from __future__ import annotations

from .ops import Op, ShapeError, op


def _at_least_two(inputs, what):
    if len(inputs) < 2:
        raise ShapeError(f"{what} needs two or more inputs", len(inputs), "inputs")


def _same_shapes(inputs, what):
    _at_least_two(inputs, what)
    if any(s != inputs[0] for s in inputs[1:]):
        raise ShapeError(f"{what} needs inputs of one shape", [tuple(s) for s in inputs], "inputs")
    return inputs[0]


@op("add")
class Add(Op):
    """y = x0 + x1 + ... (same shapes, no broadcasting)."""

    arity = None

    def infer(self, attrs, inputs):
        return _same_shapes(inputs, "add")


@op("multiply")
class Multiply(Op):
    """y = x0 * x1 * ... (same shapes, no broadcasting)."""

    arity = None

    def infer(self, attrs, inputs):
        return _same_shapes(inputs, "multiply")


@op("concat")
class Concat(Op):
    """Concatenation along ``axis`` (batch = 0); other axes must match."""

    arity = None

    def infer(self, attrs, inputs):
        _at_least_two(inputs, "concat")
        rank = len(inputs[0]) + 1
        if not -rank <= attrs["axis"] < rank or attrs["axis"] % rank == 0:
            raise ShapeError(f"axis must be a non-batch axis of rank-{rank} tensors", attrs["axis"], "axis")
        axis = attrs["axis"] % rank - 1
        for s in inputs[1:]:
            if len(s) != len(inputs[0]) or any(a != b for i, (a, b) in enumerate(zip(s, inputs[0])) if i != axis):
                raise ShapeError(f"inputs must match except on axis {attrs['axis']}", [tuple(s) for s in inputs],
                                 "inputs")
        out = list(inputs[0])
        out[axis] = sum(s[axis] for s in inputs)
        return tuple(out)
