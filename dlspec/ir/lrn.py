"""IR op for local response normalisation across channels.

:func:`lrn_window` is the single place where the channel window is computed; every backend reads it.
"""

from __future__ import annotations

from .. import spec
from .ops import Op, ShapeError, op


def lrn_window(size: int) -> tuple[int, int]:
    """Channels summed before and after channel c: torch's window [c - size//2, c + (size-1)//2]."""
    return size // 2, (size - 1) // 2


@op(spec.lrn.LRN)
class LRN(Op):
    """y[n, c, ...] = x[n, c, ...] / (k + alpha / size * S[n, c, ...]) ** beta, where S sums x[n, c', ...]^2 over
    c' in [c - size//2, c + (size-1)//2] clipped to the channels (torch.nn.LocalResponseNorm; ONNX LRN for odd size,
    whose window for an even size is one channel later). Samples are [C, *spatial] with at least one spatial axis."""

    def infer(self, attrs, inputs):
        if len(inputs[0]) < 2:
            raise ShapeError("lrn needs samples of rank 2 or more ([C, L], [C, H, W], ...)", inputs[0])
        return inputs[0]
