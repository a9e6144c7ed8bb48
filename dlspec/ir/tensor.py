"""The tensor ops (permute, transpose, slice, select, roll, parameter, reductions, matmul) and their shape
helpers, re-exported from their definitions in dlspec/spec/tensor.py."""

from ..spec.shapes import sample_axis
from ..spec.tensor import (
    MatMul,
    Parameter,
    Permute,
    ReduceMax,
    ReduceMean,
    ReduceSum,
    Roll,
    Select,
    Slice,
    Transpose,
    open_slice,
    permutation,
    reduce_axes,
    roll_shifts,
    slice_range,
)

__all__ = ["MatMul", "Parameter", "Permute", "ReduceMax", "ReduceMean", "ReduceSum", "Roll", "Select", "Slice",
           "Transpose", "permutation", "reduce_axes", "roll_shifts", "sample_axis", "slice_range", "open_slice"]
