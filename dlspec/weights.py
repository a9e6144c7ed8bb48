"""Canonical weights: drawn by dlspec with numpy, stored as one safetensors file.

Tensor names are ``<node>.<param>``; layouts follow PyTorch (dense weight is
(out_features, in_features)); dtype is float32. Every backend reads and writes this file.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

from .errors import DataError
from .files import Unreadable, read_bytes, write_atomic
from .ir import Graph, Param, weight_name


def _draw(param: Param, rng):
    import numpy as np

    if param.value is not None:
        return np.asarray(param.value, dtype=np.float32).reshape(param.shape)
    kind, scale = param.scale()
    if kind == "constant":
        return np.full(param.shape, scale, dtype=np.float32)
    if kind == "uniform":
        return rng.uniform(-scale, scale, size=param.shape).astype(np.float32)
    return rng.normal(0.0, scale, size=param.shape).astype(np.float32)


def init_weights(model, seed: int = 0) -> dict:
    """Initial weights for every parameter, following each layer's initialiser.

    Each tensor has its own generator seeded by ``(seed, crc32(name))``, so a tensor's
    values depend only on the seed and its name, not on the rest of the model.
    """
    import numpy as np

    graph = _graph(model)
    out = {}
    for node in graph.nodes:
        for p in node.params:
            name = weight_name(node.name, p.name)
            out[name] = _draw(p, np.random.default_rng([seed, zlib.crc32(name.encode())]))
    return out


def save_weights(weights: dict, path: str | os.PathLike) -> Path:
    """Write weights to a safetensors file atomically (no partial file on failure)."""
    return write_atomic(path, weights_bytes(weights))


def weights_bytes(weights: dict) -> bytes:
    """The safetensors file of canonical weights, in memory (tensors sorted by name)."""
    import numpy as np
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in sorted(weights.items())}, metadata={"format": "dlspec"})


def load_weights(path: str | os.PathLike, model=None) -> dict:
    """Read a safetensors file; with ``model``, check that names and shapes fit it. bfloat16 and float16
    tensors (checkpoints often ship in bf16) become float32. A FIFO or a device is refused unread."""
    try:
        data = read_bytes(path)
    except Unreadable as err:
        raise DataError(f"{path}: cannot read the weights file: {err}") from None
    weights = parse_safetensors(data, str(path))
    if model is not None:
        check_weights(weights, model, str(path))
    return weights


SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                      "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
MAX_HEADER_BYTES = 100_000_000  # as the safetensors library


def parse_safetensors(data: bytes, source: str) -> dict:
    """Arrays from the bytes of a safetensors file, every offset checked; F16 and BF16 become float32."""
    import json

    import numpy as np

    def bad(why):
        return DataError(f"{source}: not a safetensors file ({why})")

    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else None
    if size is None or size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise bad(f"the header does not fit in the file's {len(data):,} bytes")
    try:
        header = json.loads(data[8:8 + size])
    except (ValueError, RecursionError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    header.pop("__metadata__", None)
    body, out = len(data) - 8 - size, {}
    for name, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}; dlspec reads {', '.join(SAFETENSORS_DTYPES)}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise bad(f"tensor {name!r} has no valid shape and data_offsets")
        item = np.dtype(SAFETENSORS_DTYPES[dtype])
        begin, end = offsets
        if not 0 <= begin <= end <= body or end - begin != math.prod(shape) * item.itemsize:
            raise bad(f"tensor {name!r} of shape {shape} does not fit its data_offsets {offsets}")
        array = np.frombuffer(data, item, math.prod(shape), 8 + size + begin).reshape(shape)
        if dtype == "BF16":  # bfloat16 is the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out[name] = array.astype(np.float32) if dtype == "F16" else array.copy()
    return out


def check_weights(weights: dict, model, source: str = "weights") -> None:
    """Raise :class:`DataError` naming every missing, unexpected or misshapen tensor."""
    graph = _graph(model)
    expected = {weight_name(n.name, p.name): p.shape for n in graph.nodes for p in n.params}
    problems = [f"missing tensor {k!r} of shape {list(s)}" for k, s in expected.items() if k not in weights]
    problems += [f"unexpected tensor {k!r}" for k in weights if k not in expected]
    problems += [f"tensor {k!r} has shape {list(weights[k].shape)}, the model needs {list(s)}"
                 for k, s in expected.items() if k in weights and tuple(weights[k].shape) != tuple(s)]
    problems += [f"tensor {k!r} has dtype {weights[k].dtype}, the model needs float32"
                 for k in expected if k in weights and str(weights[k].dtype) != "float32"]
    if problems:
        shown = "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
        raise DataError(f"{source}: weights do not fit model {graph.name!r}: {shown}")


def merge_weights(fresh: dict, given: dict, source: str) -> tuple[dict, list[str], list[str]]:
    """Start from ``given`` where a tensor's name and shape fit, keep ``fresh`` elsewhere (a replaced head,
    a new stem). Returns (weights, names taken from ``given``, names kept fresh)."""
    taken = [k for k in fresh if k in given and tuple(given[k].shape) == tuple(fresh[k].shape)]
    if not taken:
        raise DataError(f"{source}: no tensor fits the model (names and shapes all differ)")
    merged = {k: (given[k].astype("float32") if k in taken else v) for k, v in fresh.items()}
    return merged, taken, [k for k in fresh if k not in taken]


def _graph(model) -> Graph:
    return model if isinstance(model, Graph) else model.graph
