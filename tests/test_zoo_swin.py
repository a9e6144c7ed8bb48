"""Swin-T equals torchvision's swin_t in torch, Keras and onnxruntime, weight for weight (its window attention
with the relative position index imported as a buffer), and is counted as torchvision counts it."""

import numpy as np
from conftest import SPECS
from test_zoo import check_against_torchvision

import dlspec


def test_swin_t_equals_torchvision(tmp_path):
    diffs = check_against_torchvision("swin_t", tmp_path)
    assert set(diffs) == {"torch", "keras", "onnx"}


def test_swin_t_counts_parameters_and_buffers_as_torchvision():
    """28,288,354 parameters; the buffers are the 12 blocks' relative_position_index, 49 * 49 each."""
    model = dlspec.load(SPECS / "swin_t.yaml")
    sizes = [(int(np.prod(p.shape)), p.trainable) for n in model.graph.nodes for p in n.params]
    assert sum(s for s, trainable in sizes if trainable) == 28_288_354
    assert sum(s for s, trainable in sizes if not trainable) == 12 * 49 * 49 == 28_812
