"""Training data: reading, checking against the spec, splitting, and the batch order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..files import Unreadable, check_regular


@dataclass
class Dataset:
    """Arrays for training and validation (validation may be empty)."""

    x_train: object
    y_train: object
    x_val: object
    y_val: object
    source: str


def read(source: str):
    """Arrays from an .npz file (x_train, y_train), a .csv file (label last) or an embedded dataset name."""
    import zipfile
    import zlib

    import numpy as np

    path = Path(source)
    if path.suffix in (".npz", ".csv"):
        try:
            check_regular(path)  # a FIFO would block numpy, a device would flood it
        except Unreadable as err:
            raise DataError(f"{source}: cannot read the data file: {err}") from None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            why = "it is not a complete .npz archive (truncated?)" if isinstance(err, (zipfile.BadZipFile, EOFError,
                                                                                        zlib.error)) else err
            raise DataError(f"{source}: cannot read the data file: {' '.join(str(why).split())}") from None
        for key in ("x_train", "y_train"):
            if key not in arrays:
                raise DataError(f"{source}: an .npz data file needs arrays x_train and y_train; it has "
                                f"{', '.join(sorted(arrays)) or 'none'}")
        return arrays
    if path.suffix == ".csv":
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except (OSError, ValueError) as err:
            raise DataError(f"{source}: cannot read the CSV file (numbers only, label last): {err}") from None
        return {"x_train": table[:, :-1], "y_train": table[:, -1]}
    from ..data import load_dataset

    return load_dataset(source)


def check(model, arrays: dict, source: str, classes: int | None, loss: str):
    """Cast and check x/y against the spec's input and output; DataError names the problem."""
    import numpy as np

    inp = model.graph.inputs[0]
    x = np.asarray(arrays["x_train"])
    y = np.asarray(arrays["y_train"])
    for key, array in (("x_train", x), ("y_train", y)):
        if array.dtype.kind not in "biuf":
            kind = {"U": "strings", "S": "byte strings", "M": "dates", "m": "time spans", "c": "complex numbers",
                    "O": "Python objects"}.get(array.dtype.kind, "records")
            raise DataError(f"{source}: {key} holds {kind} (dtype {array.dtype}); training data must be numbers")
        if array.ndim == 0:
            raise DataError(f"{source}: {key} is a single number; it needs one entry per sample")
    if len(x) == 0:
        raise DataError(f"{source}: x_train holds no samples")
    want = (len(x), *inp.shape)
    flat = x.ndim == 2 or (x.ndim == 3 and len(inp.shape) == 3 and inp.shape[0] == 1)
    if x.shape[1:] != tuple(inp.shape) and flat and x[0].size == int(np.prod(inp.shape)):
        x = x.reshape(want)  # flat pixels, or one-channel HxW images, for a [C, H, W] input
    if x.shape[1:] != tuple(inp.shape):
        raise DataError(f"{source}: x_train has samples of shape {list(x.shape[1:])}, but input "
                        f"{inp.name!r} takes {list(inp.shape)}")
    if len(y) != len(x):
        raise DataError(f"{source}: x_train has {len(x)} samples but y_train has {len(y)}")
    if inp.dtype == "float32" and not np.all(np.isfinite(x)):
        raise DataError(f"{source}: x_train holds NaN or infinite values (first at sample "
                        f"{int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])})")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{source}: y_train holds NaN or infinite values")
    if inp.dtype == "int64":
        _check_tokens(model, inp.name, x, source)
    x = x.astype(np.int64 if inp.dtype == "int64" else np.float32)
    if loss == "cross_entropy":
        if y.ndim != 1 or np.any(y != np.round(y)):
            raise DataError(f"{source}: cross_entropy needs integer class labels, one per sample")
        top = classes if classes is not None else 2 ** 62  # checked before the cast, which would wrap 1e20
        if np.any((y < 0) | (y >= top)):
            bad = y[(y < 0) | (y >= top)][0]
            raise DataError(f"{source}: label {int(bad)} is out of range: " + (
                f"the model has {classes} classes (labels 0..{classes - 1})" if classes is not None else
                "labels are class numbers from 0"))
        y = y.astype(np.int64)
    else:
        out = model.graph.shape_of(model.graph.outputs[0])
        if y.shape[1:] != tuple(out) and y[0].size == int(np.prod(out)):
            y = y.reshape(len(y), *out)
        if y.shape[1:] != tuple(out):
            raise DataError(f"{source}: y_train has targets of shape {list(y.shape[1:])}, but the output "
                            f"{model.graph.outputs[0]!r} has shape {list(out)}")
        y = y.astype(np.float32)
    return x, y


def _check_tokens(model, name: str, x, source: str):
    """Token ids of an int64 input: whole numbers, within [0, vocabulary) of every embedding that reads them
    (torch would fail mid-step, Keras would look up a wrong or clipped row)."""
    import numpy as np

    flat = x.reshape(len(x), -1)
    if x.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.round(flat))
        if bad.any():
            raise DataError(f"{source}: input {name!r} takes whole numbers (token ids); x_train has fractions or "
                            f"non-finite values (first at sample {int(np.argwhere(bad)[0][0])})")
    for node in model.graph.nodes:
        if node.op == "embedding" and node.inputs[0] == name:
            vocabulary = node.attrs["vocabulary"]
            bad = (flat < 0) | (flat >= vocabulary)
            if bad.any():
                sample, position = (int(i) for i in np.argwhere(bad)[0])
                raise DataError(f"{source}: token {int(flat[sample, position])} (sample {sample}) is out of range: "
                                f"embedding {node.name!r} has a vocabulary of {vocabulary} (ids 0..{vocabulary - 1})")


def split(x, y, fraction: float, source: str) -> Dataset:
    """The last ``fraction`` of the samples, before any shuffling, for validation (as Keras does)."""
    n_val = int(len(x) * fraction)
    n_train = len(x) - n_val
    if n_train < 1:
        raise DataError(f"{source}: no training samples left after validation_split={fraction}")
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], source)


def batches(n: int, batch_size: int, epoch: int, seed: int, shuffle: bool) -> list:
    """Index arrays for one epoch: a permutation from numpy's generator seeded with (seed, epoch)."""
    import numpy as np

    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
