"""Generated source: stable to the byte, standalone, ruff-clean, and exactly what build() runs."""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import PYTHON, SPECS

import dlspec

STDLIB = {"json", "pathlib"}
FRAMEWORK = {"torch": {"torch", "numpy"}, "keras": {"keras", "numpy"}}
RICH = """\
dlspec: 1
name: rich_net
description: Every layer type in one model.
inputs:
  pixels: {shape: [48]}
layers:
  - {type: reshape, shape: [3, 4, 4]}
  - {type: batchnorm, eps: 1.0e-3, momentum: 0.05}
  - {type: flatten}
  - {type: dense, units: 32, activation: leaky_relu, kernel_initializer: he_normal, bias_initializer: lecun_uniform}
  - {type: layernorm}
  - {type: activation, activation: gelu, approximate: tanh}
  - {type: dropout, rate: 0.1}
  - {type: dense, units: 10, activation: softmax, name: probs}
"""


def generate_in_subprocess(path, backend, hashseed):
    code = f"import dlspec,sys; sys.stdout.write(dlspec.generate(dlspec.load({str(path)!r}), {backend!r}))"
    env = {**os.environ, "PYTHONHASHSEED": str(hashseed)}
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, check=True).stdout


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_source_is_byte_identical_across_runs(spec_file, backend):
    path = spec_file(RICH)
    first = dlspec.generate(dlspec.load(path), backend)
    assert first == dlspec.generate(dlspec.load(path), backend)
    assert first == generate_in_subprocess(path, backend, 1) == generate_in_subprocess(path, backend, 2)


def test_onnx_is_byte_identical(spec_file):
    path = spec_file(RICH)
    assert dlspec.generate(dlspec.load(path), "onnx") == dlspec.generate(dlspec.load(path), "onnx")


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_source_imports_only_its_framework_and_numpy(spec_file, backend):
    tree = ast.parse(dlspec.generate(dlspec.load(spec_file(RICH)), backend))

    def names(nodes):
        return {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names} \
            | {node.module.split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom)}

    assert names(tree.body) - STDLIB == FRAMEWORK[backend]
    # inside functions: only Keras' own TensorFlow backend, for BatchNorm's statistics across tf.distribute replicas
    assert names(ast.walk(tree)) - names(tree.body) == ({"tensorflow"} if backend == "keras" else set())


def test_source_reads_as_written_by_hand(spec_file):
    source = dlspec.generate(dlspec.load(spec_file(RICH)), "torch")
    assert "class RichNet(nn.Module):" in source
    assert "self.dense_1 = nn.Linear(in_features=48, out_features=32)\n" in source
    assert "        x = pixels.reshape(-1, 3, 4, 4)  # spec.yaml:7\n" in source
    assert "        x = F.leaky_relu(self.dense_1(x), negative_slope=0.01)  # spec.yaml:10\n" in source
    assert "        x = F.gelu(x, approximate=\"tanh\")  # spec.yaml:12\n" in source
    assert "def forward(self, pixels):" in source
    assert "return x\n" in source
    # one source comment per layer
    for line in range(7, 15):
        assert source.count(f"# spec.yaml:{line}\n") == 1, line


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_source_is_ruff_clean(spec_file, tmp_path, backend):
    out = tmp_path / f"rich_net_{backend}.py"
    out.write_text(dlspec.generate(dlspec.load(spec_file(RICH)), backend))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B",
                             "--line-length", "120", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


RUN_STANDALONE = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.build_model()
assert not any(name.startswith("dlspec") for name in sys.modules), "generated code imported dlspec"
if sys.argv[2] == "torch":
    print(sum(p.numel() for p in model.parameters()))
    print(float(model.eval()(__import__("torch").ones(2, 784)).sum()))
else:
    print(model.count_params())
    print(float(np.sum(model(np.ones((2, 784), np.float32), training=False))))
"""


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_built_source_runs_standalone_with_its_weights(tmp_path, backend):
    out = tmp_path / "out"
    result = subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_mlp.yaml"), "--backend", backend,
                             "-o", str(out), "--seed", "7"], capture_output=True, text=True, check=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"mnist_mlp_{backend}.py", "mnist_mlp.safetensors"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([PYTHON, "-c", RUN_STANDALONE, str(out / f"mnist_mlp_{backend}.py"), backend],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    count, total = run.stdout.split()
    assert int(count) == 235_146
    mlp = dlspec.load(SPECS / "mnist_mlp.yaml")
    expected = dlspec.build(mlp, "onnx", dlspec.init_weights(mlp, 7))
    from dlspec.backends import onnx

    reference = onnx.run(expected, [np.ones((2, 784), np.float32)])[0].sum()
    assert abs(float(total) - reference) < 1e-4, result.stdout


def test_build_runs_the_generated_source(spec_file):
    """dlspec.build executes exactly the text dlspec.generate returns."""
    model = dlspec.load(spec_file(RICH))
    torch_model = dlspec.build(model, "torch")
    assert type(torch_model).__module__ == "dlspec_generated.rich_net_torch"
    assert sys.modules[type(torch_model).__module__].__file__ == "<rich_net_torch.py>"
    import inspect

    forward = inspect.getsource(type(torch_model).forward)
    assert forward.startswith("    def forward(self, pixels):")
    assert forward in dlspec.generate(model, "torch")


def test_native_initialisers_follow_the_spec(spec_file):
    """Without weights, generated code draws with the spec's initialisers in each framework."""
    model = dlspec.load(spec_file(RICH))
    t = dlspec.build(model, "torch").state_dict()
    k = dlspec.build(model, "keras")
    for weights in (t["dense_1.weight"].numpy(), k.get_layer("dense_1").get_weights()[0]):
        assert weights.size == 48 * 32
        assert abs(weights.std() - (2 / 48) ** 0.5) < 0.02
        assert abs(weights).max() > 2 * (2 / 48) ** 0.5  # untruncated normal: tails beyond 2 std exist
    for bias in (t["dense_1.bias"].numpy(), k.get_layer("dense_1").get_weights()[1]):  # lecun_uniform on 48 in
        assert abs(bias).max() <= (3 / 48) ** 0.5 and abs(bias).max() > 0.5 * (3 / 48) ** 0.5
    glorot = (6 / (32 + 10)) ** 0.5  # probs: glorot_uniform, the default
    for weights in (t["probs.weight"].numpy(), k.get_layer("probs").get_weights()[0]):
        assert glorot * 0.9 < abs(weights).max() <= glorot
