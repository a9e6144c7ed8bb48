"""MobileNetV3 (large, small), EfficientNet-B0 and EfficientNetV2-S: each spec, with weights imported
from torchvision's state dict, equals torchvision's model within 1e-4 in torch, Keras and onnxruntime;
in training mode the generated torch model's gradients equal torchvision's."""

import importlib.util
import subprocess

import pytest
from conftest import PYTHON, SPECS
from test_zoo import TRAIN_STEP, check_against_torchvision


def test_mobilenet_v3_large_equals_torchvision(tmp_path):
    check_against_torchvision("mobilenet_v3_large", tmp_path)


def test_mobilenet_v3_small_equals_torchvision(tmp_path):
    check_against_torchvision("mobilenet_v3_small", tmp_path)


def test_efficientnet_b0_equals_torchvision(tmp_path):
    check_against_torchvision("efficientnet_b0", tmp_path)


def test_efficientnet_v2_s_equals_torchvision(tmp_path):
    check_against_torchvision("efficientnet_v2_s", tmp_path)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_v2_s"])
def test_training_gradients_equal_torchvision(name):
    """One training step from torchvision's initial weights: hardswish, hardsigmoid and squeeze-excitation
    (mobilenet_v3_small); SiLU, FusedMBConv and stochastic depth, which drops the same samples as torchvision's
    under the same seed, including drawing nothing at rate 0 (efficientnet_v2_s's first block)."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    result = subprocess.run([PYTHON, "-c", TRAIN_STEP, name, str(SPECS / f"{name}.yaml")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) <= 1e-4
