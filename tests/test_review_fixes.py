"""Defects found by trying dlspec as a new user would, each with the exact behaviour after its fix."""

import numpy as np
import pytest
from conftest import SPECS

import dlspec
from dlspec.train import prepare

TOKENS_SPEC = f"""\
dlspec: 1
base: {SPECS / "text_lstm.yaml"}
name: tokens_train
train:
  loss: cross_entropy
  optimizer: {{type: adam, lr: 0.01}}
  epochs: 1
"""

LABELS = np.zeros(4, np.int64)


@pytest.mark.parametrize("x, message", [
    (np.full((4, 64), 3, np.int64) + np.eye(4, 64, 5, dtype=np.int64) * 9997,
     "token 10000 (sample 0) is out of range: embedding 'embedding' has a vocabulary of 10000 (ids 0..9999)"),
    (np.full((4, 64), 3, np.int64) - np.eye(4, 64, 2, dtype=np.int64) * 4,
     "token -1 (sample 0) is out of range: embedding 'embedding' has a vocabulary of 10000 (ids 0..9999)"),
    (np.concatenate([np.ones((2, 64)), np.full((2, 64), 0.5)]),
     "input 'tokens' takes whole numbers (token ids); x_train has fractions or non-finite values (first at sample 2)"),
    (np.concatenate([np.ones((3, 64)), np.full((1, 64), np.nan)]),
     "input 'tokens' takes whole numbers (token ids); x_train has fractions or non-finite values (first at sample 3)"),
])
def test_token_ids_outside_the_vocabulary_are_named(tmp_path, x, message):
    (tmp_path / "spec.yaml").write_text(TOKENS_SPEC)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=LABELS)
    with pytest.raises(dlspec.DataError) as info:
        prepare(dlspec.load(tmp_path / "spec.yaml"), str(tmp_path / "data.npz"))
    assert str(info.value) == f"{tmp_path / 'data.npz'}: {message}"


def test_whole_token_ids_in_a_float_array_are_accepted(tmp_path):
    (tmp_path / "spec.yaml").write_text(TOKENS_SPEC)
    x = np.arange(4 * 64).reshape(4, 64).astype(np.float64) * 39  # 0 .. 9945
    np.savez(tmp_path / "data.npz", x_train=x, y_train=LABELS)
    data = prepare(dlspec.load(tmp_path / "spec.yaml"), str(tmp_path / "data.npz"))
    assert data.x_train.dtype == np.int64
    assert data.x_train.max() == 9945
