"""The importer's intermediate form: one record per dlspec layer, before names are made and YAML is written."""

from __future__ import annotations

from dataclasses import dataclass, field


class Refused(Exception):
    """A node the importer cannot express exactly; ``reason`` says why (collected, never raised to users)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Layer:
    """A dlspec layer in the making. ``inputs`` and ``output`` are ONNX value names; ``weights`` maps the layer's
    canonical parameter names to arrays; ``source`` lists the ONNX nodes it came from (op and name)."""

    type: str
    attrs: dict
    inputs: list[str]
    output: str
    weights: dict = field(default_factory=dict)
    source: list[str] = field(default_factory=list)
    hint: str = ""  # where the name comes from: an initializer's prefix, else the node name, else the output
    name: str = ""
    origin: str = ""  # a parameter's initializer (its name names the layer, rule 1)
