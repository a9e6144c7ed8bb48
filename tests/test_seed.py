"""The seed check: the primer's MLP, hand-written in PyTorch, equals dlspec's three backends."""

import numpy as np
import pytest
import torch
from conftest import SPECS
from torch import nn

import dlspec
from dlspec.backends import keras as keras_backend
from dlspec.backends import onnx as onnx_backend
from dlspec.backends import torch as torch_backend

SEED_PARAMS = 235_146  # 784*256+256 + 256*128+128 + 128*10+10


@pytest.fixture(scope="module")
def mlp():
    return dlspec.load(SPECS / "mnist_mlp.yaml")


@pytest.fixture(scope="module")
def weights(mlp):
    return dlspec.init_weights(mlp, seed=0)


def test_parameter_count_in_every_backend(mlp, weights):
    assert mlp.graph.param_count() == SEED_PARAMS
    assert torch_backend.count_params(dlspec.build(mlp, "torch", weights)) == SEED_PARAMS
    assert keras_backend.count_params(dlspec.build(mlp, "keras", weights)) == SEED_PARAMS
    assert onnx_backend.count_params(dlspec.build(mlp, "onnx", weights)) == SEED_PARAMS


def test_seed_sequential_matches_every_backend(mlp, weights):
    seed_model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                               nn.Linear(128, 10))
    mapping = {"0": "dense_1", "3": "dense_2", "5": "logits"}
    seed_model.load_state_dict({f"{i}.{p}": torch.from_numpy(weights[f"{name}.{p}"])
                                for i, name in mapping.items() for p in ("weight", "bias")})
    seed_model.eval()
    x = np.random.default_rng(1).random((32, 784), dtype=np.float32)  # pixel-like inputs in [0, 1)
    with torch.no_grad():
        expected = seed_model(torch.from_numpy(x)).numpy()
    assert np.std(expected) > 0.05
    for name, backend in (("torch", torch_backend), ("keras", keras_backend), ("onnx", onnx_backend)):
        got = backend.run(dlspec.build(mlp, name, weights), [x])[0]
        assert got.shape == (32, 10)
        assert np.max(np.abs(got - expected)) <= 1e-5, name
    # the same weights loaded the other way: dlspec's torch model holds exactly the seed's tensors
    ours = dlspec.build(mlp, "torch", weights).state_dict()
    for i, name in mapping.items():
        assert torch.equal(ours[f"{name}.weight"], seed_model.state_dict()[f"{i}.weight"])


def test_dropout_is_active_in_training_and_identity_in_inference(mlp, weights):
    model = dlspec.build(mlp, "torch", weights)
    x = torch.ones(4, 784)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        assert not torch.equal(model(x), model.eval()(x))
