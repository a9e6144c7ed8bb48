"""Importing weights from other frameworks' files into dlspec's canonical form."""

from __future__ import annotations

import os

from .errors import DataError
from .weights import check_weights

SOURCES = ("torchvision", "transformers")

# Index buffers transformers keeps in some versions' state dicts (embeddings.position_ids, token_type_ids): they
# hold 0..max-1 and zeros, not weights; dlspec computes positions itself.
_INDEX_BUFFERS = ("position_ids", "token_type_ids")


def dlspec_name(key: str) -> str:
    """The tensor name that a torchvision state-dict key maps to when it is not a name of the spec.

    torchvision names some modules with a ``-`` (RegNet's ``trunk_output.block1.block1-0``), which a
    dlspec name cannot hold; the spec writes ``_`` instead (``trunk_output.block1.block1_0``).
    """
    return key.replace("-", "_")


def _read_state_dict(path: str | os.PathLike) -> dict:
    """A state dict saved with ``torch.save``, as float32 numpy arrays. ``weights_only=True``: the file cannot
    run code."""
    import numpy as np
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as err:  # torch raises many types for a bad or unsafe pickle
        raise DataError(f"{path}: not a loadable torch state dict ({_load_failure(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a state dict mapping names to tensors, got {type(state).__name__}")
    return {name: tensor.detach().to(torch.float32).numpy().astype(np.float32, copy=True)
            for name, tensor in state.items()}


def _load_failure(err: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed; torch's own text runs over several lines with
    terminal escapes and advice to load unsafely."""
    import re

    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds a pickled {found.group(1)}, not only tensors; save the model's state_dict() "
                f"with torch.save")
    if "Weights only load failed" in text:
        return "not a file written by torch.save, or one holding objects other than tensors"
    if not text:
        return f"{type(err).__name__}: the file is empty or cut short"
    return f"{type(err).__name__}: {text[:200]}"


def import_torchvision(model, path: str | os.PathLike) -> dict:
    """Canonical weights from a torchvision state dict saved with ``torch.save``.

    dlspec's zoo specs use torchvision's module names, so tensors map by name; BatchNorm's
    ``num_batches_tracked`` counters are dropped. A key that is not a tensor name of the spec but
    becomes one under :func:`dlspec_name` (``-`` read as ``_``) is stored under that name; if the file
    also holds that name itself, the import fails. Mismatched or missing tensors are named in the error.
    """
    weights = {name: w for name, w in _read_state_dict(path).items() if not name.endswith("num_batches_tracked")}
    weights = _rename(weights, model, path)
    check_weights(weights, model, str(path))
    return weights


def import_transformers(model, path: str | os.PathLike) -> dict:
    """Canonical weights from a transformers (BERT-style) state dict saved with ``torch.save(model.state_dict())``.

    See :func:`transformers_to_canonical` for the name rule. Mismatched or missing tensors are named in the error.
    """
    weights = transformers_to_canonical(model, _read_state_dict(path), str(path))
    check_weights(weights, model, str(path))
    return weights


def transformers_to_canonical(model, state: dict, source: str = "state dict") -> dict:
    """Rename a transformers state dict to canonical names.

    The rule: for every ``attention`` node of the spec, named ``<P>.<leaf>`` (bert_small: ``encoder.layer.0.
    attention.self_attn``; ``self`` itself is a reserved name in dlspec),

    - ``<P>.self.query``, ``<P>.self.key``, ``<P>.self.value`` (``.weight`` (E, E), ``.bias`` (E,)) are
      concatenated in that order along axis 0 into ``<node>.in_proj_weight`` (3E, E) and ``<node>.in_proj_bias``
      (3E,), torch.nn.MultiheadAttention's packed layout;
    - ``<P>.output.dense.weight`` / ``.bias`` become ``<node>.out_proj.weight`` / ``.bias``.

    Every other tensor keeps its name (the spec uses transformers' module names, e.g.
    ``encoder.layer.0.intermediate.dense.weight``), and the index buffers ``*.position_ids`` and
    ``*.token_type_ids`` are dropped.
    """
    import numpy as np

    from .weights import _graph

    state = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in _INDEX_BUFFERS}
    out, used = {}, set()

    def take(name: str):
        if name not in state:
            raise DataError(f"{source}: missing tensor {name!r}, which the attention rule needs")
        used.add(name)
        return state[name]

    for node in _graph(model).nodes:
        if node.op != "attention":
            continue
        parent = node.name.rsplit(".", 1)[0] if "." in node.name else ""
        p = f"{parent}." if parent else ""
        for kind in ("weight", "bias"):
            out[f"{node.name}.in_proj_{kind}"] = np.concatenate(
                [take(f"{p}self.{part}.{kind}") for part in ("query", "key", "value")], axis=0)
            out[f"{node.name}.out_proj.{kind}"] = take(f"{p}output.dense.{kind}")
    out.update({k: v for k, v in state.items() if k not in used})
    return out


def _rename(weights: dict, model, path) -> dict:
    expected = set(getattr(model, "graph", model).weight_names())
    renamed, origin = {}, {}
    for key, value in weights.items():
        name = dlspec_name(key) if key not in expected and dlspec_name(key) in expected else key
        if name in origin:
            raise DataError(f"{path}: tensors {origin[name]!r} and {key!r} both give the tensor {name!r} "
                            "('-' in a key is read as '_')")
        renamed[name], origin[name] = value, key
    return renamed
