"""Canonical weights: drawn by dlspec with numpy, stored as one safetensors file.

Tensor names are ``<node>.<param>``; layouts follow PyTorch (dense weight is
(out_features, in_features)); dtype is float32. Every backend reads and writes this file.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from pathlib import Path

from .errors import DataError
from .ir import Graph, Param, weight_name


def _draw(param: Param, rng):
    import numpy as np

    if param.init in ("zeros", "ones"):
        return (np.zeros if param.init == "zeros" else np.ones)(param.shape, dtype=np.float32)
    if param.init.startswith("constant:"):
        return np.full(param.shape, float(param.init.split(":")[1]), dtype=np.float32)
    kind, scale = param.scale()
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
    import numpy as np
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in sorted(weights.items())},
                metadata={"format": "dlspec"})
    return write_atomic(path, data)


def load_weights(path: str | os.PathLike, model=None) -> dict:
    """Read a safetensors file; with ``model``, check that names and shapes fit it."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        weights = load(Path(path).read_bytes())
    except OSError as err:
        raise DataError(f"{path}: cannot read the weights file: {err.strerror}") from None
    except SafetensorError as err:
        raise DataError(f"{path}: not a safetensors file ({err})") from None
    if model is not None:
        check_weights(weights, model, str(path))
    return weights


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


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write a file via a temporary file and a rename, so readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _graph(model) -> Graph:
    return model if isinstance(model, Graph) else model.graph
