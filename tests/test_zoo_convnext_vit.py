"""ConvNeXt-Tiny and ViT-B/16 equal torchvision's models in torch, Keras and onnxruntime, weight for weight;
and the code-generation details these two models needed."""

import importlib.util
import subprocess

import pytest
from conftest import PYTHON, SPECS
from test_zoo import TRAIN_STEP, check_against_torchvision

from dlspec.backends.codegen import render as wrap


def test_convnext_tiny_equals_torchvision(tmp_path):
    check_against_torchvision("convnext_tiny", tmp_path)


def test_vit_b_16_equals_torchvision(tmp_path):
    check_against_torchvision("vit_b_16", tmp_path)


def test_convnext_tiny_training_gradients_equal_torchvision():
    """Stochastic depth in training mode draws the same masks as torchvision's (none at rate 0, as torchvision
    skips the draw), so one training step's gradients are equal (an extra draw at rate 0 gave 1.15); the
    residual `+=` into the stochastic-depth output keeps autograd exact."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    result = subprocess.run([PYTHON, "-c", TRAIN_STEP, "convnext_tiny", str(SPECS / "convnext_tiny.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) <= 1e-4


def test_wrap_puts_the_comment_above_a_long_assignment_without_brackets():
    statement = "encoder_layer_0_2 = encoder_layer_0_mlp + encoder_layer_0  # v.yaml:24"
    assert wrap(statement, " " * 8, width=60) == (  # parentheses would join again under a longer line length
        "        # v.yaml:24\n"
        "        encoder_layer_0_2 = encoder_layer_0_mlp + encoder_layer_0")


def test_wrap_splits_a_group_whose_opening_line_fits():
    statement = 'encoder_layer_0_attention_add = keras.layers.Add(name="encoder.layers.encoder_layer_0.add")([a, b])'
    assert wrap(statement, "    ", width=60) == (
        "    encoder_layer_0_attention_add = keras.layers.Add(\n"
        '        name="encoder.layers.encoder_layer_0.add",\n'
        "    )([a, b])")


def test_wrap_adds_no_comma_that_would_make_a_tuple():
    """``w["key",]`` indexes by a tuple and ``(a + b,)`` is one: a single item there gets no trailing comma."""
    statement = 'kernel = weights["encoder.layers.encoder_layer_0.self_attention.in_proj_weight"][0:768].T'
    assert wrap(statement, "", width=40) == (
        "kernel = weights[\n"
        '    "encoder.layers.encoder_layer_0.self_attention.in_proj_weight"\n'
        "][0:768].T")
    assert wrap("y = (first_long_name + second_long_name).T", "", width=30) == (
        "y = (\n    first_long_name + second_long_name\n).T")
    assert wrap("y = torch.flatten(first_long_name_here)", "", width=30) == (
        "y = torch.flatten(\n    first_long_name_here,\n)")


def test_convnext_block_accumulates_in_place_where_nothing_else_reads():
    import dlspec

    source = dlspec.generate(dlspec.load(SPECS / "convnext_tiny.yaml"), "torch")
    assert "        out = out.add_(x)  # convnext_tiny.yaml:25\n" in source  # in the CNBlock class
