"""specs/bert_small.yaml equals transformers.BertModel: a random BertModel's state dict imported with
`dlspec import-weights --from transformers` gives its last_hidden_state and pooler_output in torch, Keras and
onnxruntime, for a padded batch with mixed token types."""

import importlib.util
import json
import subprocess

import numpy as np
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.backends import keras as keras_backend
from dlspec.backends import onnx as onnx_backend
from dlspec.backends import torch as torch_backend

pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                reason="transformers is not installed")

BERT_PARAMS = 4_385_920  # sum(p.numel() for p in BertModel(config).parameters())
OUTPUTS = ("last_hidden_state", "pooler_output")

# transformers runs in a process of its own, as torchvision does in test_zoo.py: torch extensions and
# TensorFlow do not share a process well.
REFERENCE = """
import json, sys
import numpy as np
import torch
from transformers import BertConfig, BertModel
directory = sys.argv[1]
torch.manual_seed(0)
config = BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512,
                    vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                    layer_norm_eps=1e-12)
model = BertModel(config).eval()
with torch.no_grad():  # BERT's init zeroes biases and sets LayerNorm to identity: make every term count
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
        elif "LayerNorm" in name:
            p.uniform_(0.5, 1.5)
rng = np.random.default_rng(0)
ids = rng.integers(1, 30522, (2, 16)).astype(np.int64)
mask = np.ones((2, 16), np.int64)
mask[1, 11:] = 0  # the second sample is 11 tokens and 5 of padding
ids[1, 11:] = 0
types = np.zeros((2, 16), np.int64)
types[0, 7:] = 1
types[1, 6:11] = 1
with torch.no_grad():
    out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))
    unmasked = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types))
torch.save(model.state_dict(), f"{directory}/bert.pth")
np.savez(f"{directory}/bert.npz", input_ids=ids, attention_mask=mask, token_type_ids=types,
         last_hidden_state=out.last_hidden_state.numpy(), pooler_output=out.pooler_output.numpy(),
         unmasked=unmasked.last_hidden_state.numpy())
print(json.dumps({"keys": list(model.state_dict()), "params": sum(p.numel() for p in model.parameters())}))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bert")
    result = subprocess.run([PYTHON, "-c", REFERENCE, str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory, json.loads(result.stdout.strip().splitlines()[-1])


def import_weights(directory, state_dict="bert.pth"):
    out = directory / "bert.safetensors"
    return out, subprocess.run([PYTHON, "-m", "dlspec", "import-weights", "--from", "transformers",
                                str(SPECS / "bert_small.yaml"), str(directory / state_dict), "-o", str(out)],
                               capture_output=True, text=True)


def test_parameter_count_equals_transformers(reference):
    _, info = reference
    assert info["params"] == BERT_PARAMS
    assert dlspec.load(SPECS / "bert_small.yaml").graph.param_count() == BERT_PARAMS


@pytest.mark.parametrize("backend", ["torch", "keras", "onnx"])
def test_bert_small_equals_transformers(reference, backend):
    directory, info = reference
    out, result = import_weights(directory)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"imported 31 tensors ({BERT_PARAMS:,} parameters)")
    model = dlspec.load(SPECS / "bert_small.yaml")
    weights = dlspec.load_weights(out, model)
    data = np.load(directory / "bert.npz")
    # the mask matters: the second sample's unpadded tokens change when padding is attended to
    assert np.abs(data["unmasked"][1, :11] - data["last_hidden_state"][1, :11]).max() > 1e-2
    inputs = [data["input_ids"], data["attention_mask"], data["token_type_ids"]]
    runner = {"torch": torch_backend, "keras": keras_backend, "onnx": onnx_backend}[backend]
    got = runner.run(dlspec.build(model, backend, weights), inputs)
    for name, y in zip(OUTPUTS, got):
        want = data[name]
        assert y.shape == want.shape
        assert np.abs(y - want).max() <= 1e-4 * max(1.0, np.abs(want).max()), (name, np.abs(y - want).max())


def test_import_names_a_missing_projection(reference, tmp_path):
    import torch

    directory, _ = reference
    state = torch.load(directory / "bert.pth", weights_only=True)
    del state["encoder.layer.1.attention.self.key.bias"]
    torch.save(state, tmp_path / "bert.pth")
    out, result = import_weights(tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"error: {tmp_path / 'bert.pth'}: missing tensor "
                             "'encoder.layer.1.attention.self.key.bias', which the attention rule needs\n")
    assert not out.exists()
