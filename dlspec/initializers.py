"""The initialiser registry: one entry per initial distribution, the single list the spec, the IR, the
weights file and every backend are keyed by.

Each entry states its distribution and scale, so the IR's parameters compute their own limits (see
``ir.Param.scale``); the spec's ``Initializer`` literal is derived from the keys, and each backend keeps one
lowering per entry, which a test holds to the same keys. This module imports nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class InitializerDef:
    """One initial distribution.

    ``dist`` is "uniform" (on [-limit, limit]), "normal" (mean 0) or "constant". Scaled entries have
    limit or std = sqrt(numerator / fans), fans being fan_in ("in") or fan_in + fan_out ("avg");
    unscaled ones have the fixed ``value`` (std 1 for "normal", the constant for "constant")."""

    name: str
    doc: str
    dist: str
    numerator: float | None = None
    fans: str | None = None
    value: float = 1.0

    def scale(self, fan_in: int, fan_out: int) -> float:
        """The uniform limit, the normal std or the constant, for a tensor with these fans."""
        if self.numerator is None:
            return self.value
        return math.sqrt(self.numerator / (fan_in + fan_out if self.fans == "avg" else fan_in))


INITIALIZERS: dict[str, InitializerDef] = {}


def _define(name: str, doc: str, dist: str, numerator: float | None = None, fans: str | None = None,
            value: float = 1.0) -> None:
    INITIALIZERS[name] = InitializerDef(name, doc, dist, numerator, fans, value)


_define("glorot_uniform", "U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (torch xavier_uniform_, Keras GlorotUniform).",
        "uniform", 6.0, "avg")
_define("glorot_normal", "N(0, std), std = sqrt(2 / (fan_in + fan_out)), not truncated (torch xavier_normal_; "
                         "Keras' GlorotNormal truncates, so dlspec never emits it).", "normal", 2.0, "avg")
_define("he_uniform", "U(-a, a), a = sqrt(6 / fan_in) (torch kaiming_uniform_ for relu, Keras HeUniform).",
        "uniform", 6.0, "in")
_define("he_normal", "N(0, std), std = sqrt(2 / fan_in), not truncated (torch kaiming_normal_ for relu).",
        "normal", 2.0, "in")
_define("lecun_uniform", "U(-a, a), a = sqrt(3 / fan_in) (torch kaiming_uniform_ for linear, Keras LecunUniform).",
        "uniform", 3.0, "in")
_define("lecun_normal", "N(0, std), std = sqrt(1 / fan_in), not truncated (torch kaiming_normal_ for linear).",
        "normal", 1.0, "in")
_define("normal", "N(0, 1) (torch's nn.Embedding default).", "normal")
_define("zeros", "0 everywhere.", "constant", value=0.0)
_define("ones", "1 everywhere.", "constant", value=1.0)
