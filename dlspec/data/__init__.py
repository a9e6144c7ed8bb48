"""Small real datasets embedded in the package, so examples and tests need no download.

Only numpy is used, and it is imported when a dataset is loaded, not when this module is imported.
No deep-learning framework is imported.

>>> from dlspec.data import load_dataset
>>> data = load_dataset("digits")
>>> data["x_train"].shape, data["x_train"].dtype, data["y_train"].dtype
((1797, 1, 8, 8), dtype('float32'), dtype('int64'))

See ``README.md`` next to this file for the source, licence and how the files were produced.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from ..errors import DataError

DATASETS = ("digits",)
"""Names accepted by :func:`load_dataset` and :func:`describe`."""

_FILES = {"digits": "digits.npz"}

_DESCRIPTIONS = {
    "digits": (
        "UCI Optical Recognition of Handwritten Digits (Alpaydin and Kaynak, 1998; test partition, "
        "as in sklearn.datasets.load_digits): 1797 8x8 images, 1 channel, pixels 0..16 scaled to [0, 1], "
        "labels 0..9; UCI Machine Learning Repository, doi:10.24432/C50P49, licence CC BY 4.0."
    ),
}


def _check(name: str) -> str:
    if name not in _FILES:
        files = " (data files are .npz or .csv)" if "." in name else ""
        raise DataError(f"unknown dataset {name!r}{files}; embedded datasets: {', '.join(DATASETS)}")
    return name


def load_dataset(name: str) -> dict[str, Any]:
    """Load an embedded dataset by name.

    Returns ``{"x_train": float32 array, "y_train": int64 array}``. For ``"digits"`` the images have
    shape ``(1797, 1, 8, 8)`` (channels-first), pixel counts 0..16 divided by 16 so values lie in
    [0, 1], and labels 0..9 of shape ``(1797,)``, in the original sample order. Each call returns
    fresh arrays. An unknown name raises :class:`dlspec.errors.DataError`.
    """
    import numpy as np

    resource = files("dlspec.data") / _FILES[_check(name)]
    with resource.open("rb") as fh, np.load(fh) as npz:
        x = npz["x"]
        y = npz["y"]
    return {"x_train": x.astype(np.float32) / np.float32(16), "y_train": y.astype(np.int64)}


def describe(name: str) -> str:
    """One-line description of an embedded dataset: what it holds, its source and its licence."""
    return _DESCRIPTIONS[_check(name)]


__all__ = ["DATASETS", "describe", "load_dataset"]
