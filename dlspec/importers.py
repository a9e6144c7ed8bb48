"""Importing weights from other frameworks' files into dlspec's canonical form."""

from __future__ import annotations

import os

from .errors import DataError
from .weights import check_weights

SOURCES = ("torchvision",)


def dlspec_name(key: str) -> str:
    """The tensor name that a torchvision state-dict key maps to when it is not a name of the spec.

    torchvision names some modules with a ``-`` (RegNet's ``trunk_output.block1.block1-0``), which a
    dlspec name cannot hold; the spec writes ``_`` instead (``trunk_output.block1.block1_0``).
    """
    return key.replace("-", "_")


def import_torchvision(model, path: str | os.PathLike) -> dict:
    """Canonical weights from a torchvision state dict saved with ``torch.save``.

    dlspec's zoo specs use torchvision's module names, so tensors map by name; BatchNorm's
    ``num_batches_tracked`` counters are dropped. A key that is not a tensor name of the spec but
    becomes one under :func:`dlspec_name` (``-`` read as ``_``) is stored under that name; if the file
    also holds that name itself, the import fails. Loading uses ``weights_only=True``: the file
    cannot run code. Mismatched or missing tensors are named in the error.
    """
    import numpy as np
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as err:  # torch raises many types for a bad or unsafe pickle
        raise DataError(f"{path}: not a loadable torch state dict ({type(err).__name__}: {err})") from None
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a state dict mapping names to tensors, got {type(state).__name__}")
    weights = {name: tensor.detach().to(torch.float32).numpy().astype(np.float32, copy=True)
               for name, tensor in state.items() if not name.endswith("num_batches_tracked")}
    weights = _rename(weights, model, path)
    check_weights(weights, model, str(path))
    return weights


def _rename(weights: dict, model, path) -> dict:
    graph = getattr(model, "graph", model)
    expected = {f"{n.name}.{p.name}" for n in graph.nodes for p in n.params}
    renamed, origin = {}, {}
    for key, value in weights.items():
        name = dlspec_name(key) if key not in expected and dlspec_name(key) in expected else key
        if name in origin:
            raise DataError(f"{path}: tensors {origin[name]!r} and {key!r} both give the tensor {name!r} "
                            "('-' in a key is read as '_')")
        renamed[name], origin[name] = value, key
    return renamed
