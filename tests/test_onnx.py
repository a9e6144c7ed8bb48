"""The direct ONNX lowering: checked, dynamic batch, nodes named after the spec, no framework."""

import subprocess

import numpy as np
import onnx
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.backends import onnx as onnx_backend


@pytest.fixture(scope="module")
def mlp():
    return dlspec.load(SPECS / "mnist_mlp.yaml")


def test_full_check_and_dynamic_batch(mlp):
    model = dlspec.build(mlp, "onnx", dlspec.init_weights(mlp, 0))
    onnx.checker.check_model(model, full_check=True)
    [inp], [out] = model.graph.input, model.graph.output
    assert inp.name == "x" and out.name == "logits"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 784]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 10]
    for batch in (1, 7):
        y = onnx_backend.run(model, [np.zeros((batch, 784), np.float32)])[0]
        assert y.shape == (batch, 10)


def test_nodes_are_named_after_spec_nodes(mlp):
    model = dlspec.build(mlp, "onnx", dlspec.init_weights(mlp, 0))
    assert [(n.name, n.op_type) for n in model.graph.node] == [
        ("dense_1/gemm", "Gemm"), ("dense_1", "Relu"), ("dropout_1", "Identity"),
        ("dense_2/gemm", "Gemm"), ("dense_2", "Relu"), ("logits", "Gemm")]
    assert sorted(t.name for t in model.graph.initializer) == sorted(dlspec.init_weights(mlp, 0))
    assert model.producer_name == "dlspec"
    assert model.opset_import[0].version == 17


def test_lowering_needs_neither_torch_nor_tensorflow(tmp_path):
    code = (f"import sys, dlspec; dlspec.build(dlspec.load({str(SPECS / 'mnist_mlp.yaml')!r}), 'onnx'); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_build_onnx_embeds_given_weights(mlp, tmp_path):
    weights = dlspec.init_weights(mlp, 4)
    path = dlspec.save_weights(weights, tmp_path / "w.safetensors")
    subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_mlp.yaml"), "--backend", "onnx",
                    "--weights", str(path), "-o", str(tmp_path / "o")], check=True, capture_output=True)
    model = onnx.load(tmp_path / "o" / "mnist_mlp.onnx")
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    from dlspec.backends import torch as torch_backend

    expected = torch_backend.run(dlspec.build(mlp, "torch", weights), [x])[0]
    assert np.max(np.abs(onnx_backend.run(model, [x])[0] - expected)) <= 1e-5


@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_at_old_and_new_opsets(opset):
    model = dlspec.loads("dlspec: 1\nname: g\ninputs: {x: {shape: [5]}}\nlayers:\n"
                         "  - {type: activation, activation: gelu}\n"
                         "  - {type: activation, activation: gelu, approximate: tanh}\n")
    proto = dlspec.build(model, "onnx", opset=opset)
    ops = [n.op_type for n in proto.graph.node]
    assert ("Gelu" in ops) == (opset >= 20)
    import torch

    x = np.linspace(-4, 4, 10, dtype=np.float32).reshape(2, 5)
    expected = torch.nn.functional.gelu(torch.nn.functional.gelu(torch.from_numpy(x)), approximate="tanh").numpy()
    assert np.max(np.abs(onnx_backend.run(proto, [x])[0] - expected)) <= 1e-6


def test_opset_out_of_range_is_a_usage_error(mlp, tmp_path):
    with pytest.raises(dlspec.UsageError, match=r"--opset must be between 17 .* Received: 11"):
        dlspec.build(mlp, "onnx", opset=11)
    result = subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_mlp.yaml"), "--backend", "onnx",
                             "--opset", "11", "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_dense_on_sequences_ships_the_transposed_weight_folded():
    model = dlspec.loads("dlspec: 1\nname: s\ninputs: {x: {shape: [5, 4]}}\nlayers: [{type: dense, units: 3}]\n")
    weights = dlspec.init_weights(model, 0)
    proto = dlspec.build(model, "onnx", weights)
    from onnx import numpy_helper

    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert sorted(stored) == ["dense_1.bias", "dense_1/weight_t"]  # the Transpose ran at build time
    assert np.array_equal(stored["dense_1/weight_t"], weights["dense_1.weight"].T)
    assert [(n.name, n.op_type) for n in proto.graph.node] == [("dense_1/matmul", "MatMul"), ("dense_1", "Add")]
