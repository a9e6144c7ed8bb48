"""Embedded datasets: the digits file's contents, the loader's API and its framework-free imports."""

import hashlib
import subprocess

import numpy as np
import pytest
from conftest import PYTHON

import dlspec
from dlspec.data import DATASETS, describe, load_dataset

# Observed from scikit-learn 1.9.1 `load_digits()` when the file was made (see dlspec/data/README.md);
# the per-class counts equal the UCI page's counts for the optdigits test partition.
COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
FIRST_IMAGE = [[0, 0, 5, 13, 9, 1, 0, 0], [0, 0, 13, 15, 10, 15, 5, 0], [0, 3, 15, 2, 0, 11, 8, 0],
               [0, 4, 12, 0, 0, 8, 8, 0], [0, 5, 8, 0, 0, 9, 8, 0], [0, 4, 11, 0, 1, 12, 7, 0],
               [0, 2, 14, 5, 10, 12, 0, 0], [0, 0, 6, 13, 10, 0, 0, 0]]
X_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_datasets_lists_digits():
    assert DATASETS == ("digits",)


def test_digits_shapes_and_dtypes(digits):
    assert set(digits) == {"x_train", "y_train"}
    x, y = digits["x_train"], digits["y_train"]
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64


def test_digits_values_are_sixteenths_in_unit_range(digits):
    x = digits["x_train"]
    assert x.min() == 0.0 and x.max() == 1.0
    counts = x * 16
    assert np.array_equal(counts, np.rint(counts))
    assert set(np.unique(counts).tolist()) == set(range(17))


def test_digits_label_counts(digits):
    y = digits["y_train"]
    assert y.min() == 0 and y.max() == 9
    counts = np.bincount(y, minlength=10).tolist()
    assert counts == COUNTS
    assert all(170 <= c <= 190 for c in counts)
    assert sum(counts) == 1797


def test_digits_keep_sklearn_order_and_pixels(digits):
    x, y = digits["x_train"], digits["y_train"]
    assert y[0] == 0  # sklearn's load_digits().target[0]
    assert y[:10].tolist() == list(range(10))
    assert y[-5:].tolist() == [9, 0, 8, 9, 8]
    assert (x[0, 0] * 16).astype(np.int64).tolist() == FIRST_IMAGE
    raw = np.rint(x * 16).astype(np.uint8)
    assert hashlib.sha256(raw.tobytes()).hexdigest() == X_SHA256


def test_each_load_returns_fresh_arrays(digits):
    again = load_dataset("digits")
    again["x_train"][0] = 5.0
    again["y_train"][0] = 7
    fresh = load_dataset("digits")
    for data in (fresh, digits):
        assert (data["x_train"][0, 0] * 16).astype(np.int64).tolist() == FIRST_IMAGE
        assert data["y_train"][0] == 0


def test_unknown_dataset_is_a_data_error():
    with pytest.raises(dlspec.DataError) as info:
        load_dataset("x")
    assert str(info.value) == "unknown dataset 'x'; embedded datasets: digits"
    with pytest.raises(dlspec.DataError) as info:
        load_dataset("x.npy")
    assert str(info.value) == "unknown dataset 'x.npy' (data files are .npz or .csv); embedded datasets: digits"
    with pytest.raises(dlspec.DataError, match="unknown dataset 'mnist'; embedded datasets: digits"):
        describe("mnist")


def test_describe_names_source_and_licence():
    text = describe("digits")
    assert "\n" not in text
    for part in ("Optical Recognition of Handwritten Digits", "Alpaydin and Kaynak", "UCI", "CC BY 4.0", "1797"):
        assert part in text


def test_loading_digits_imports_no_framework():
    code = ("import sys, dlspec.data; before = 'numpy' in sys.modules; "
            "d = dlspec.data.load_dataset('digits'); assert d['x_train'].shape == (1797, 1, 8, 8); "
            "print(before, sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"
