"""Canonical weights: seeded numpy initialisation, one safetensors file for every backend."""

import numpy as np
import pytest
from conftest import SPECS

import dlspec
from dlspec.backends.codegen import READ_SAFETENSORS


@pytest.fixture(scope="module")
def mlp():
    return dlspec.load(SPECS / "mnist_mlp.yaml")


def test_init_is_seeded_and_follows_the_initialiser(mlp):
    a, b, c = dlspec.init_weights(mlp, 0), dlspec.init_weights(mlp, 0), dlspec.init_weights(mlp, 1)
    assert list(a) == ["dense_1.weight", "dense_1.bias", "dense_2.weight", "dense_2.bias", "logits.weight",
                       "logits.bias"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["dense_1.weight"], c["dense_1.weight"])
    w = a["dense_1.weight"]
    assert w.shape == (256, 784) and w.dtype == np.float32
    limit = np.sqrt(6 / (784 + 256))  # glorot_uniform
    assert w.max() <= limit and w.min() >= -limit
    assert abs(w.std() - limit / np.sqrt(3)) < 1e-3
    assert not a["dense_1.bias"].any()  # zeros


def test_a_tensor_depends_only_on_seed_and_name(spec_file):
    small = dlspec.loads("dlspec: 1\nname: a\ninputs: {x: {shape: [4]}}\nlayers:\n"
                         "  - {type: dense, units: 3, name: head}\n")
    bigger = dlspec.loads("dlspec: 1\nname: b\ninputs: {x: {shape: [4]}}\nlayers:\n"
                          "  - {type: layernorm}\n  - {type: dense, units: 3, name: head}\n")
    assert np.array_equal(dlspec.init_weights(small, 5)["head.weight"], dlspec.init_weights(bigger, 5)["head.weight"])


def test_save_load_round_trip_and_generated_reader(mlp, tmp_path):
    weights = dlspec.init_weights(mlp, 3)
    path = dlspec.save_weights(weights, tmp_path / "w.safetensors")
    loaded = dlspec.load_weights(path, mlp)
    assert all(np.array_equal(weights[k], loaded[k]) for k in weights)
    namespace = {"json": __import__("json"), "np": np}
    exec(READ_SAFETENSORS, namespace)  # the reader every generated file carries
    read = namespace["read_safetensors"](path)
    assert sorted(read) == sorted(weights) and all(np.array_equal(weights[k], read[k]) for k in weights)
    assert not list(tmp_path.glob(".w.safetensors.*"))  # no temporary left behind


def test_mismatched_weights_are_named(mlp, tmp_path):
    weights = dlspec.init_weights(mlp, 0)
    del weights["logits.bias"]
    weights["dense_1.weight"] = weights["dense_1.weight"][:, :10]
    weights["extra.weight"] = np.zeros(2, np.float32)
    path = dlspec.save_weights(weights, tmp_path / "w.safetensors")
    with pytest.raises(dlspec.DataError) as info:
        dlspec.build(mlp, "torch", str(path))
    assert str(info.value) == (
        f"{path}: weights do not fit model 'mnist_mlp': missing tensor 'logits.bias' of shape [10]; "
        "unexpected tensor 'extra.weight'; tensor 'dense_1.weight' has shape [256, 10], the model needs [256, 784]")


def test_not_a_safetensors_file(tmp_path, mlp):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"not a weights file")
    with pytest.raises(dlspec.DataError, match=r"w.safetensors: not a safetensors file"):
        dlspec.load_weights(path, mlp)


def test_saved_weights_load_into_every_backend(mlp, tmp_path):
    weights = dlspec.init_weights(mlp, 11)
    path = dlspec.save_weights(weights, tmp_path / "w.safetensors")
    torch_model = dlspec.build(mlp, "torch", path)
    keras_model = dlspec.build(mlp, "keras", path)
    onnx_model = dlspec.build(mlp, "onnx", path)
    assert np.array_equal(torch_model.dense_1.weight.detach().numpy(), weights["dense_1.weight"])
    assert np.array_equal(keras_model.get_layer("dense_1").get_weights()[0], weights["dense_1.weight"].T)
    init = {t.name: t for t in onnx_model.graph.initializer}
    from onnx import numpy_helper

    assert np.array_equal(numpy_helper.to_array(init["dense_1.weight"]), weights["dense_1.weight"])
