"""Stage 3: the framework-free intermediate representation."""

import importlib as _importlib
import pkgutil as _pkgutil

from ..spec.layers import OPS
from ..spec.shapes import Act, ShapeError
from .graph import Graph, Input, Node, Param, Shape, weight_name

# Each op is defined (and registered in OPS) by its spec class; every module of this package re-exports one
# group of them with its helpers (ir.tensor.Roll is spec.tensor.Roll) and is imported here, none listed by hand.
for _info in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["OPS", "Act", "Graph", "Input", "Node", "Param", "Shape", "ShapeError", "weight_name"]
