"""MobileNetV3 (large, small), EfficientNet-B0 and EfficientNetV2-S: each spec, with weights imported
from torchvision's state dict, equals torchvision's model within 1e-4 in torch, Keras and onnxruntime."""

from test_zoo import check_against_torchvision


def test_mobilenet_v3_large_equals_torchvision(tmp_path):
    check_against_torchvision("mobilenet_v3_large", tmp_path)


def test_mobilenet_v3_small_equals_torchvision(tmp_path):
    check_against_torchvision("mobilenet_v3_small", tmp_path)


def test_efficientnet_b0_equals_torchvision(tmp_path):
    check_against_torchvision("efficientnet_b0", tmp_path)


def test_efficientnet_v2_s_equals_torchvision(tmp_path):
    check_against_torchvision("efficientnet_v2_s", tmp_path)
