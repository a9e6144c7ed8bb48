"""Generated source as an expert writes it: frozen parts frozen in the built models, line comments naming the
file that defined each layer (issue 10)."""

import re

import pytest
from conftest import SPECS

import dlspec
from dlspec.summary import summary


def _trainable(model) -> int:
    return int(re.search(r"Trainable params: ([\d,]+)", summary(model)).group(1).replace(",", ""))


@pytest.fixture(scope="module")
def digits():
    return dlspec.load(SPECS / "resnet18_digits.yaml")


def test_torch_freezes_what_the_spec_freezes(digits):
    weights = dlspec.init_weights(digits, 0)
    net = dlspec.build(digits, "torch", weights)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == _trainable(digits) == 8_399_562
    net.train()  # frozen stages keep BatchNorm in inference mode, the rest trains
    assert not net.layer1[0].bn1.training and not net.layer3[1].bn2.training
    assert net.layer4[0].bn1.training and net.bn1.training
    assert not net.layer2[0].conv1.weight.requires_grad and net.layer4[0].conv1.weight.requires_grad


def test_keras_freezes_what_the_spec_freezes(digits):
    net = dlspec.build(digits, "keras", dlspec.init_weights(digits, 0))
    assert sum(int(w.numpy().size) for w in net.trainable_weights) == _trainable(digits)
    assert not net.get_layer("layer1.0.conv1").trainable and net.get_layer("layer4.0.conv1").trainable


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_line_comments_name_the_file_that_defined_the_layer(digits, backend):
    source = dlspec.generate(digits, backend)
    base = (SPECS / "resnet18.yaml").read_text().splitlines()
    derived = (SPECS / "resnet18_digits.yaml").read_text().splitlines()
    comments = re.findall(r"# (resnet18(?:_digits)?\.yaml):(\d+)$", source, re.M)
    assert {f for f, _ in comments} == {"resnet18.yaml", "resnet18_digits.yaml"}
    for file, line in comments:  # each comment points at a layer's line in the file it names
        text = (derived if file == "resnet18_digits.yaml" else base)[int(line) - 1]
        assert "type:" in text, (file, line, text)
    assert "# resnet18_digits.yaml:10" in source  # the replaced stem: conv1 of the derived file
    assert "# resnet18.yaml:13" in source  # layer1.0.conv1: a line of the base's block
    assert "# resnet18_digits.yaml:13" not in source  # the old bug: the base's line under the derived name
