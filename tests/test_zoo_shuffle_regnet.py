"""ShuffleNetV2 and RegNetY-400MF equal torchvision's models; import-weights reads torchvision's
`block1-0` as the dlspec name `block1_0`."""

import subprocess

import numpy as np
from conftest import PYTHON
from test_zoo import check_against_torchvision

import dlspec


def test_shufflenet_v2_x1_0_equals_torchvision(tmp_path):
    check_against_torchvision("shufflenet_v2_x1_0", tmp_path)


def test_regnet_y_400mf_equals_torchvision(tmp_path):
    check_against_torchvision("regnet_y_400mf", tmp_path)


SPEC = """\
dlspec: 1
name: staged
inputs:
  x: {shape: [4]}
layers:
  - {name: trunk.block1_0, type: dense, units: 3}
  - {name: fc, type: dense, units: 2}
"""


def import_weights(tmp_path, state):
    import torch

    torch.save(state, tmp_path / "state.pth")
    (tmp_path / "staged.yaml").write_text(SPEC)
    command = ["import-weights", "--from", "torchvision", str(tmp_path / "staged.yaml"), str(tmp_path / "state.pth"),
               "-o", str(tmp_path / "w.safetensors")]
    return subprocess.run([PYTHON, "-m", "dlspec", *command], capture_output=True, text=True)


def state_dict(**renamed):
    import torch

    torch.manual_seed(0)
    state = {"trunk.block1-0.weight": torch.randn(3, 4), "trunk.block1-0.bias": torch.randn(3),
             "fc.weight": torch.randn(2, 3), "fc.bias": torch.randn(2)}
    return {renamed.get(k, k): v for k, v in state.items()}


def test_import_reads_a_dash_in_a_key_as_underscore(tmp_path):
    state = state_dict()
    result = import_weights(tmp_path, state)
    assert result.returncode == 0, result.stderr
    weights = dlspec.load_weights(tmp_path / "w.safetensors", dlspec.load(tmp_path / "staged.yaml"))
    assert sorted(weights) == ["fc.bias", "fc.weight", "trunk.block1_0.bias", "trunk.block1_0.weight"]
    np.testing.assert_array_equal(weights["trunk.block1_0.weight"], state["trunk.block1-0.weight"].numpy())


def test_import_refuses_two_keys_for_one_name(tmp_path):
    state = state_dict()
    state["trunk.block1_0.bias"] = state["trunk.block1-0.bias"]
    result = import_weights(tmp_path, state)
    assert result.returncode == 2
    assert result.stderr == (f"error: {tmp_path / 'state.pth'}: tensors 'trunk.block1-0.bias' and "
                             "'trunk.block1_0.bias' both give the tensor 'trunk.block1_0.bias' ('-' in a key is read "
                             "as '_')\n")
    assert not (tmp_path / "w.safetensors").exists()


def test_import_names_an_unknown_dashed_key_as_written(tmp_path):
    result = import_weights(tmp_path, state_dict(**{"trunk.block1-0.bias": "trunk.block1-1.bias"}))
    assert result.returncode == 2
    assert result.stderr == (f"error: {tmp_path / 'state.pth'}: weights do not fit model 'staged': missing tensor "
                             "'trunk.block1_0.bias' of shape [3]; unexpected tensor 'trunk.block1-1.bias'\n")
