"""The direct ONNX lowering agrees with torch.onnx.export of the generated torch module (1e-5)."""

import io
import warnings

import numpy as np
import pytest
import torch
from conftest import SPECS

import dlspec
from dlspec.backends import onnx as onnx_backend
from dlspec.parity import random_inputs, random_weights


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn", "resnet18", "mobilenet_v2", "text_lstm",
                                  "text_transformer"])
def test_direct_lowering_matches_torch_onnx_export(name):
    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = random_weights(model, 0)
    inputs = random_inputs(model, 2, 0)
    module = dlspec.build(model, "torch", weights)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; it needs no onnxscript
        torch.onnx.export(module, tuple(torch.from_numpy(x) for x in inputs), buffer, dynamo=False,
                          input_names=[i.name for i in model.graph.inputs], output_names=model.graph.outputs)
    exported = onnx_backend.run(buffer.getvalue(), inputs)[0]
    direct = onnx_backend.run(dlspec.build(model, "onnx", weights), inputs)[0]
    assert np.std(direct) > 1e-3
    assert np.max(np.abs(direct - exported)) <= 1e-5 * max(1.0, float(np.max(np.abs(exported))))
