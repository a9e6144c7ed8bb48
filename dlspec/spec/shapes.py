"""What an op's shape rule works with: shapes, parameters, the shape error and the shared axis helpers.

Each op's definition (its spec class) states its shape rule (``infer``) and its canonical parameters
(``params``) with these types; the IR (``dlspec.ir``) re-exports them. Shapes exclude the batch axis,
except for values that have none (parameters); the logical layout is channels-first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..activations import ACTIVATIONS
from ..initializers import INITIALIZERS

Shape = tuple[int, ...]  # one sample's shape: the batch axis is implicit


class ShapeError(Exception):
    """A shape rule failed; ``attr`` names the attribute at fault, if one is."""

    def __init__(self, rule: str, received: object, attr: str | None = None):
        super().__init__(rule)
        self.rule, self.received, self.attr = rule, received, attr


@dataclass(frozen=True)
class Param:
    """A tensor a node owns: canonical ``<node>.<name>`` in the weights file (``<node>`` when name is "").

    ``init`` names the initial distribution; ``fan_in``/``fan_out`` feed the scaled ones.
    Buffers (``trainable=False``) are state such as BatchNorm's running statistics. ``value`` (row-major, with
    ``init`` "fixed") is a computed constant buffer, such as Swin's relative position index.
    """

    name: str
    shape: Shape
    init: str
    fan_in: int = 1
    fan_out: int = 1
    trainable: bool = True
    value: tuple | None = None

    def scale(self) -> tuple[str, float]:
        """(distribution, limit, std or constant) of the initialiser (dlspec/initializers.py), from the fans;
        ``init`` "constant:V" is a fixed value that no spec names (PReLU's 0.25)."""
        if self.init.startswith("constant:"):
            return "constant", float(self.init.split(":")[1])
        entry = INITIALIZERS[self.init]
        return entry.dist, entry.scale(self.fan_in, self.fan_out)


@dataclass(frozen=True)
class Act:
    """An activation of the registry (dlspec/activations.py) and its parameters (only those its kind takes
    matter; the others keep the registry's defaults)."""

    kind: str
    negative_slope: float = 0.01
    alpha: float = 1.0
    approximate: str = "none"
    axis: int = -1
    beta: float = 1.0
    threshold: float = 20.0

    @classmethod
    def of(cls, attrs: dict) -> Act | None:
        """From lowered attributes; None for 'linear'."""
        if attrs is None or attrs["activation"] == "linear":
            return None
        kind = attrs["activation"]
        return cls(kind, **{a: attrs[a] for a in ACTIVATIONS[kind].attrs})


def sample_axis(axis: int, rank: int, attr: str = "axis") -> int:
    """0-based index into a sample shape of ``rank`` axes, of a spec axis (batch = 0, negatives allowed)."""
    full = rank + 1
    if not -full <= axis < full or axis % full == 0:
        raise ShapeError(f"{attr} must be a non-batch axis of a rank-{full} tensor (batch included: 1..{full - 1} "
                         f"or -{full - 1}..-1)", axis, attr)
    return axis % full - 1


def numel(dims) -> int:
    """Product of the sizes (1 for none)."""
    out = 1
    for d in dims:
        out *= d
    return out


def fans(shape) -> tuple[int, int]:
    """torch's fans of a tensor: (shape[1], shape[0]) times the product of the rest; a vector uses its size."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    rest = numel(shape[2:])
    return shape[1] * rest, shape[0] * rest
