"""The zoo: every spec builds in every backend and passes parity; the torchvision-structured
models equal torchvision's own, weight for weight, in torch, Keras and onnxruntime."""

import atexit
import importlib.util
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.backends import keras as keras_backend
from dlspec.backends import onnx as onnx_backend
from dlspec.backends import torch as torch_backend
from dlspec.importers import dlspec_name
from dlspec.parity import parity

ZOO = sorted(p.stem for p in SPECS.glob("*.yaml"))
# Trainable parameters as torchvision counts them (sum of p.numel() over model.parameters()).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
                      "convnext_tiny": 28_589_128, "vit_b_16": 86_567_656, "mobilenet_v3_small": 2_542_856,
                      "mobilenet_v3_large": 5_483_032, "shufflenet_v2_x1_0": 2_278_604,
                      "efficientnet_b0": 5_288_548, "efficientnet_v2_s": 21_458_488, "regnet_y_400mf": 4_344_144,
                      "swin_t": 28_288_354}
LARGE = set(TORCHVISION_PARAMS) & set(ZOO)  # checked against torchvision itself, not by random parity


@pytest.mark.parametrize("name", sorted(set(ZOO) - LARGE))
def test_small_zoo_specs_pass_parity(name):
    report = parity(dlspec.load(SPECS / f"{name}.yaml"), batch=4)
    assert report.ok, report.table()


@pytest.mark.parametrize("name", sorted(LARGE))
def test_parameter_counts_equal_torchvision(name):
    model = dlspec.load(SPECS / f"{name}.yaml")
    trainable = sum(np.prod(p.shape) for n in model.graph.nodes for p in n.params if p.trainable)
    assert trainable == TORCHVISION_PARAMS[name]


# torchvision segfaults when imported after TensorFlow in one process (torch 2.14.1 + TF 2.21 on
# this machine), so everything torchvision does runs in a subprocess of its own.
REFERENCE = """
import json, sys
import numpy as np
import torch, torchvision
name, directory = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = getattr(torchvision.models, name)(weights=None).eval()
with torch.no_grad():
    for module in model.modules():  # calibrate BatchNorm on random images, so activations stay alive
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0.0, 0.1)
    for p in model.parameters():  # constant initial values hide errors: zero heads, layer scale 1e-6, LayerNorm
        if bool((p == p.flatten()[0]).all()):
            p.copy_(torch.empty_like(p).uniform_(0.5, 1.5) if p.flatten()[0] != 0 else 0.1 * torch.randn_like(p))
    if any(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules()):  # ViT, ConvNeXt: none
        model.train()
        for _ in range(2):
            model(torch.randn(8, 3, 224, 224))
        model.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    # classifier initialisations such as MobileNetV3's normal(0, 0.01) leave the logits near 0.01, where an
    # absolute 1e-4 says little: the last Linear is scaled so the logits have unit standard deviation
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    scale = model(torch.from_numpy(x)).std()
    head.weight /= scale
    head.bias /= scale
    y = model(torch.from_numpy(x)).numpy()
torch.save(model.state_dict(), f"{directory}/{name}.pth")
np.savez(f"{directory}/{name}.npz", x=x, y=y)
print(json.dumps(list(model.state_dict())))
"""


_REFERENCES = Path(tempfile.mkdtemp(prefix="dlspec-torchvision-"))  # one dump per model, shared by the tests
atexit.register(shutil.rmtree, _REFERENCES, ignore_errors=True)


def torchvision_reference(name, directory):
    """Copies <name>.pth (state dict) and <name>.npz (input x, output y) into ``directory``; returns the
    state-dict keys. torchvision runs once per model and test session; later calls reuse its dump."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    keys = _REFERENCES / f"{name}.json"
    if not keys.exists():
        result = subprocess.run([PYTHON, "-c", REFERENCE, name, str(_REFERENCES)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        keys.write_text(result.stdout)
    for suffix in (".pth", ".npz"):
        shutil.copyfile(_REFERENCES / f"{name}{suffix}", Path(directory) / f"{name}{suffix}")
    return json.loads(keys.read_text())


def check_against_torchvision(name, tmp_path, backends=("torch", "keras", "onnx")):
    keys = torchvision_reference(name, tmp_path)
    out = tmp_path / f"{name}.safetensors"
    result = subprocess.run([PYTHON, "-m", "dlspec", "import-weights", "--from", "torchvision",
                             str(SPECS / f"{name}.yaml"), str(tmp_path / f"{name}.pth"), "-o", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = dlspec.load_weights(out, model)
    assert sorted(weights) == sorted(dlspec_name(k) for k in keys if not k.endswith("num_batches_tracked"))
    data = np.load(tmp_path / f"{name}.npz")
    x, expected = data["x"], data["y"]
    assert np.std(expected) > 0.1 and np.max(np.abs(expected[0] - expected[1])) > 0.1  # depends on the input
    runners = {"torch": torch_backend, "keras": keras_backend, "onnx": onnx_backend}
    diffs = {}
    for backend in backends:
        got = runners[backend].run(dlspec.build(model, backend, weights), [x])[0]
        diffs[backend] = float(np.max(np.abs(got - expected)))
    assert all(d <= 1e-4 for d in diffs.values()), diffs
    return diffs


def test_resnet18_equals_torchvision(tmp_path):
    check_against_torchvision("resnet18", tmp_path)


def test_mobilenet_v2_equals_torchvision(tmp_path):
    check_against_torchvision("mobilenet_v2", tmp_path)


@pytest.mark.slow
def test_resnet50_equals_torchvision(tmp_path):
    check_against_torchvision("resnet50", tmp_path)


def test_torch_state_dict_keys_are_torchvision_keys(tmp_path):
    for name in sorted(LARGE):
        ours = dlspec.build(dlspec.load(SPECS / f"{name}.yaml"), "torch").state_dict()
        # regnet's `block1-0` is `block1_0` in the spec: import-weights reads '-' in a key as '_'. The order may
        # differ where torchvision registers modules out of data-flow order (swin's PatchMerging: reduction
        # before norm); load_state_dict matches by name.
        theirs = [dlspec_name(k) for k in torchvision_reference(name, tmp_path)]
        assert sorted(ours) == sorted(theirs) and len(ours) == len(theirs), name


def test_import_names_mismatched_tensors(tmp_path):
    import torch

    torchvision_reference("resnet18", tmp_path)
    state = torch.load(tmp_path / "resnet18.pth", weights_only=True)
    state["fc.weight"] = state["fc.weight"][:10]
    state["extra"] = torch.zeros(2)
    del state["layer1.0.bn1.running_var"]
    torch.save(state, tmp_path / "bad.pth")
    result = subprocess.run([PYTHON, "-m", "dlspec", "import-weights", "--from", "torchvision",
                             str(SPECS / "resnet18.yaml"), str(tmp_path / "bad.pth"), "-o", str(tmp_path / "w.st")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {tmp_path / 'bad.pth'}: weights do not fit model 'resnet18': missing tensor "
        "'layer1.0.bn1.running_var' of shape [64]; unexpected tensor 'extra'; tensor 'fc.weight' has shape "
        "[10, 512], the model needs [1000, 512]\n")
    assert not (tmp_path / "w.st").exists()


def test_import_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Evil()))
    result = subprocess.run([PYTHON, "-m", "dlspec", "import-weights", "--from", "torchvision",
                             str(SPECS / "resnet18.yaml"), str(tmp_path / "evil.pth"), "-o", str(tmp_path / "w")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "owned" not in result.stdout
    assert "not a loadable torch state dict" in result.stderr


@pytest.mark.parametrize("name", ZOO)
def test_zoo_source_is_ruff_clean_and_every_backend_builds(name, tmp_path):
    import sys

    model = dlspec.load(SPECS / f"{name}.yaml")
    for backend in ("torch", "keras"):
        (tmp_path / f"{name}_{backend}.py").write_text(dlspec.generate(model, backend))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B",
                             "--line-length", "120", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    import onnx

    onnx.checker.check_model(dlspec.build(model, "onnx"), full_check=True)


TRAIN_STEP = """
import sys
import torch, torchvision
import dlspec
name, spec = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
reference = getattr(torchvision.models, name)(weights=None).train()
weights = {k: v.numpy() for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
ours = dlspec.build(dlspec.load(spec), "torch", weights).train()  # generated code uses in-place ops
x = torch.randn(4, 3, 64, 64)
for model in (reference, ours):
    torch.manual_seed(1)  # the same dropout mask in both
    model(x).square().mean().backward()
worst = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max())
            for a, b in zip(ours.parameters(), reference.parameters()))
print(worst)
"""


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_training_gradients_equal_torchvision(name):
    """In-place relu and add in the generated torch code keep autograd exact in training mode."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    result = subprocess.run([PYTHON, "-c", TRAIN_STEP, name, str(SPECS / f"{name}.yaml")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) <= 1e-4


def test_readme_zoo_table_states_true_parameter_counts():
    """Parameters (frozen ones included, as torchvision counts them), of them frozen, and buffers."""
    import re

    from conftest import ROOT

    rows = re.findall(r"\| `specs/(\w+)\.yaml` \| [^|]+ \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|",
                      (ROOT / "README.md").read_text())
    assert sorted(name for name, *_ in rows) == ZOO
    for name, *counts in rows:
        model = dlspec.load(SPECS / f"{name}.yaml")
        sizes = [(int(np.prod(p.shape)), p.trainable, n.trainable) for n in model.graph.nodes for p in n.params]
        expected = (sum(s for s, weight, _ in sizes if weight),
                    sum(s for s, weight, node in sizes if weight and not node),
                    sum(s for s, weight, _ in sizes if not weight))
        assert tuple(int(c.replace(",", "")) for c in counts) == expected, name
