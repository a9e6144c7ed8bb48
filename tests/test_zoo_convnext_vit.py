"""ConvNeXt-Tiny and ViT-B/16 equal torchvision's models in torch, Keras and onnxruntime, weight for weight."""

from test_zoo import check_against_torchvision


def test_convnext_tiny_equals_torchvision(tmp_path):
    check_against_torchvision("convnext_tiny", tmp_path)


def test_vit_b_16_equals_torchvision(tmp_path):
    check_against_torchvision("vit_b_16", tmp_path)
