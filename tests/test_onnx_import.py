"""`dlspec import`: ONNX files become specs with blocks and canonical weights that build equal in every backend.

The light model-zoo networks that onnx ships (onnx/backend/test/data/light) are imported and built in torch, Keras
and onnxruntime; each must give the shipped output for the input onnx's backend test feeds them
(arange(n) / n in the input's shape, `generate_dummy_data(random=False)` in onnx/backend/test/runner), within the
test data's tolerance (rtol 1e-3, atol 1e-7; densenet121 rtol 2e-3) and within 1e-5 relative to max(1, |ref|).
Their shipped weights are constants (ConstantOfShape), so the outputs barely depend on the input; each network is
therefore also run with random weights (the same file with every weight replaced by a random initializer, and its
final Softmax removed so logits are compared), against onnxruntime running that ONNX file itself.
"""

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import PYTHON, ROOT
from onnx import helper, numpy_helper

import dlspec
from dlspec.backends import keras as keras_backend
from dlspec.backends import onnx as onnx_backend
from dlspec.backends import torch as torch_backend
from dlspec.onnx_import import UnsupportedModel, import_onnx

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
# vgg19 (548 MB of weights) and zfnet512 (349 MB) take over a minute each and 4 GB: slow tests
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
          pytest.param("vgg19", marks=pytest.mark.slow), pytest.param("zfnet512", marks=pytest.mark.slow)]
RTOL = {"densenet121": 2e-3}
RUNNERS = {"torch": torch_backend, "keras": keras_backend, "onnx": onnx_backend}
ROWS: dict[str, tuple] = {}  # model -> row of the coverage table, filled by the tests that check it


def built_outputs(model, weights, x):
    return {b: r.run(dlspec.build(model, b, weights), [x])[0] for b, r in RUNNERS.items()}


def shipped_input(path):
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    x = next(i for i in model.graph.input if i.name not in inits)
    shape = tuple(d.dim_value for d in x.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def randomized(src, dst, seed=0):
    """``src`` with every weight random (He-scaled tensors; positive scales and variances) and no final Softmax."""
    rng = np.random.default_rng(seed)
    model = onnx.load(str(src))
    g = model.graph
    given = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def draw(name, shape):
        if len(shape) >= 2:
            return (rng.standard_normal(shape) * np.sqrt(2 / np.prod(shape[1:]))).astype(np.float32)
        if any(k in name.lower() for k in ("bias", "_b_0", "mean", "_rm_")):
            return rng.normal(0, 0.2, shape).astype(np.float32)
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)

    kept = []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in given:
            shape = [int(d) for d in given[node.input[0]]]
            g.initializer.append(numpy_helper.from_array(draw(node.output[0], shape), node.output[0]))
        else:
            kept.append(node)
    last = kept[-1]
    if last.op_type == "Softmax":  # compare logits: a softmax would hide differences
        kept = kept[:-1]
        for o in g.output:
            if o.name == last.output[0]:
                o.name = last.input[0]
    del g.node[:]
    g.node.extend(kept)
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and t.name in given:
            t.CopyFrom(numpy_helper.from_array(draw(t.name, a.shape), t.name))
    onnx.save(model, str(dst))


@pytest.mark.parametrize("name", MODELS)
def test_light_model_imports_and_builds_equal(name, tmp_path):
    import onnxruntime as ort

    path = LIGHT / f"light_{name}.onnx"
    text, weights = import_onnx(path)
    model = dlspec.loads(text, f"light_{name}.yaml")
    x = shipped_input(path)
    expected = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"light_{name}_output_0.pb")))
    for backend, y in built_outputs(model, weights, x).items():
        y = y.reshape(expected.shape)
        np.testing.assert_allclose(y, expected, rtol=RTOL.get(name, 1e-3), atol=1e-7, err_msg=backend)
        assert np.max(np.abs(y - expected)) <= 1e-5 * max(1.0, np.max(np.abs(expected))), backend
    randomized(path, tmp_path / "random.onnx")
    text_r, weights_r = import_onnx(tmp_path / "random.onnx")
    model_r = dlspec.loads(text_r)
    xr = np.random.default_rng(1).standard_normal((2, *x.shape[1:])).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "random.onnx"), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    ref = np.concatenate([session.run(None, {feed: xr[i:i + 1]})[0] for i in range(2)])  # the file's batch is 1
    assert np.std(ref) > 1e-2
    worst = 0.0
    for backend, y in built_outputs(model_r, weights_r, xr).items():
        diff = float(np.max(np.abs(y.reshape(ref.shape) - ref)) / max(1.0, np.max(np.abs(ref))))
        assert diff <= 1e-5, (backend, diff)
        worst = max(worst, diff)
    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    ROWS[name] = (nodes, len(text.splitlines()), len(model.spec.blocks), "imported, equal", f"{worst:.1e}")


def coverage_table(rows) -> str:
    lines = ["| model | ONNX nodes | spec lines | blocks | status | max diff, random weights |",
             "|---|---|---|---|---|---|"]
    for name, (nodes, spec_lines, blocks, status, diff) in sorted(rows.items()):
        lines.append(f"| {name} | {nodes} | {spec_lines} | {blocks} | {status} | {diff} |")
    return "\n".join(lines)


def test_light_coverage_table_is_in_the_docs(capsys):
    """Runs after the tests above: prints the coverage table, and docs/spec.md holds each row measured here."""
    table = coverage_table(ROWS)
    with capsys.disabled():
        print(f"\nlight model-zoo coverage (dlspec import):\n{table}")
    docs = (ROOT / "docs" / "spec.md").read_text()
    for row in table.splitlines()[2:]:
        name = row.split("|")[1].strip()
        documented = next((line for line in docs.splitlines() if line.startswith(f"| {name} |")), None)
        assert documented is not None, name
        assert documented.split("|")[1:6] == row.split("|")[1:6], (documented, row)  # the diff column may vary


def test_cli_writes_spec_and_weights(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "import", str(LIGHT / "light_squeezenet.onnx"), "-o",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"wrote {tmp_path / 'light_squeezenet.yaml'}\n"
                             f"wrote {tmp_path / 'light_squeezenet.safetensors'}\n")
    model = dlspec.load(tmp_path / "light_squeezenet.yaml")
    weights = dlspec.load_weights(tmp_path / "light_squeezenet.safetensors", model)
    assert weights["conv1.weight"].shape == (64, 3, 3, 3)
    text = (tmp_path / "light_squeezenet.yaml").read_text()
    assert "  - {name: conv1, type: conv2d, filters: 64, kernel: 3, stride: 2, activation: relu, inputs: [data_0]}" \
           "  # onnx: Conv n0, Relu n1\n" in text


def unsupported_model(path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3, 1), np.float32)[..., 0], "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Sin", ["c"], ["s1"], name="sin1"),
             helper.make_node("Cos", ["s1"], ["c1"], name="cos1"),
             helper.make_node("Sin", ["c1"], ["s2"], name="sin2"),
             helper.make_node("MaxPool", ["s2"], ["y"], name="pool", kernel_shape=[2, 2], dilations=[2, 2])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                                opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_unsupported_ops_are_listed_and_nothing_is_written(tmp_path):
    unsupported_model(tmp_path / "odd.onnx")
    out = tmp_path / "out"
    result = subprocess.run([PYTHON, "-m", "dlspec", "import", str(tmp_path / "odd.onnx"), "-o", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {tmp_path / 'odd.onnx'}: cannot import 4 nodes (nothing written):\n"
        "  Cos: no dlspec layer for this op: 1 node (cos1)\n"
        "  MaxPool: dilated pooling: 1 node (pool)\n"
        "  Sin: no dlspec layer for this op: 2 nodes (sin1, sin2)\n")
    assert not out.exists()
    with pytest.raises(UnsupportedModel) as err:
        import_onnx(tmp_path / "odd.onnx")
    assert err.value.refused == {"Cos: no dlspec layer for this op": ["cos1"], "MaxPool: dilated pooling": ["pool"],
                                 "Sin: no dlspec layer for this op": ["sin1", "sin2"]}


def test_unreadable_file_is_a_data_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    result = subprocess.run([PYTHON, "-m", "dlspec", "import", str(tmp_path / "bad.onnx")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'bad.onnx'}: not a readable ONNX model (")


# torchvision segfaults when imported after TensorFlow in one process (see tests/test_zoo.py), so the export runs in
# a subprocess: random BatchNorm statistics (calibrated on random images), the legacy exporter at opset 17 (the
# dynamo exporter needs onnxscript), a dynamic batch axis.
EXPORT = """
import sys
import numpy as np
import torch, torchvision
name, directory, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX export at opset 17
model = getattr(torchvision.models, name)(weights=None, **({"image_size": size} if size != 224 else {})).eval()
with torch.no_grad():
    if name.startswith("vit"):  # its zero-initialised head, class token and biases would hide differences
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0.0, 0.1)
    if any(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules()):
        model.train()
        for _ in range(2):
            model(torch.randn(8, 3, size, size))
        model.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    y = model(torch.from_numpy(x)).numpy()
    torch.onnx.export(model, (torch.from_numpy(x[:1]),), f"{directory}/{name}.onnx", opset_version=17, dynamo=False,
                      input_names=["image"], dynamic_axes={"image": {0: "batch"}})
state = {k: v.numpy() for k, v in model.state_dict().items() if k.startswith("encoder.layers.encoder_layer_0.")}
np.savez(f"{directory}/{name}.npz", x=x, y=y, **state)
"""


def torchvision_export(name, directory, size=224):
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    result = subprocess.run([PYTHON, "-c", EXPORT, name, str(directory), str(size)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(directory / f"{name}.npz")
    return directory / f"{name}.onnx", data["x"], data["y"]


@pytest.mark.parametrize("name, lines", [pytest.param("resnet50", 35, marks=pytest.mark.slow),
                                         ("mobilenet_v3_large", 99),
                                         pytest.param("convnext_tiny", 188, marks=pytest.mark.slow)])
def test_torchvision_export_imports_equal(name, lines, tmp_path):
    path, x, expected = torchvision_export(name, tmp_path)
    text, weights = import_onnx(path)
    model = dlspec.loads(text, f"{name}.yaml")
    for backend, y in built_outputs(model, weights, x).items():
        assert np.max(np.abs(y - expected)) <= 1e-4 * max(1.0, np.max(np.abs(expected))), backend
    assert len(text.splitlines()) == lines  # specs/resnet50.yaml: 55 lines; torch folds BatchNorm into conv
    if name == "convnext_tiny":  # torch's exporter shares equal tensors; each copy keeps its name through Identity
        assert "  - {name: features.1.2.layer_scale, type: parameter, shape: [96, 1, 1]}" in text


VIT_LINES = 40  # dlspec/zoo/vit_b_16.yaml: 48 lines


@pytest.mark.parametrize("size", [64, pytest.param(224, marks=pytest.mark.slow)])
def test_torchvision_vit_b_16_imports_equal(size, tmp_path):
    """torchvision's vit_b_16, its attention exported sequence-first (fast path off), comes back with one
    `attention` layer per encoder layer, holding torchvision's own tensors under their names, in one block used by
    the 12 encoder layers. At image_size 64 (16 patches and the class token: the same network, weights and ONNX
    pattern as at 224, at a sixth of the time) in every run; at 224 as a slow test."""
    path, x, expected = torchvision_export("vit_b_16", tmp_path, size)
    state = np.load(tmp_path / "vit_b_16.npz")
    text, weights = import_onnx(path)
    model = dlspec.loads(text, "vit_b_16.yaml")
    for backend, y in built_outputs(model, weights, x).items():
        assert np.max(np.abs(y - expected)) <= 1e-4 * max(1.0, np.max(np.abs(expected))), backend
    assert len(text.splitlines()) == VIT_LINES
    assert list(model.spec.blocks) == ["encoder_layer"]
    assert "      - {name: self_attention, type: attention, heads: 12}  # onnx: 30 nodes, Transpose " \
           "/encoder/layers/encoder_layer_0/self_attention/Transpose ... Transpose " \
           "/encoder/layers/encoder_layer_0/self_attention/Transpose_7\n" in text
    for k in range(12):
        assert f"  - {{name: encoder.layers.encoder_layer_{k}, type: block, block: encoder_layer}}" in text
    for key in ("self_attention.in_proj_weight", "self_attention.in_proj_bias", "self_attention.out_proj.weight",
                "self_attention.out_proj.bias", "mlp.3.bias"):
        name = f"encoder.layers.encoder_layer_0.{key}"
        assert np.array_equal(weights[name], state[name]), name
    assert weights["class_token"].shape == (1, 1, 768)
    assert weights["encoder.pos_embedding"].shape == ((size // 16) ** 2 + 1, 768)


MHA = """import sys
import numpy as np
import torch
directory, need, opset = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(12, 3, batch_first=True)
        self.fc = torch.nn.Linear(12, 5)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=need)
        return self.fc(y + x)


torch.manual_seed(0)
torch.backends.mha.set_fastpath_enabled(False)
model = Model().eval()
x = np.random.default_rng(0).standard_normal((3, 7, 12)).astype(np.float32)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.5)
    y = model(torch.from_numpy(x)).numpy()
    torch.onnx.export(model, (torch.from_numpy(x[:1]),), f"{directory}/mha.onnx", opset_version=opset, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
np.savez(f"{directory}/mha.npz", x=x, y=y)
"""


@pytest.mark.parametrize("need_weights, opset, nodes", [(False, 17, 30), (True, 17, 25), (False, 20, 30)])
def test_multihead_attention_imports_as_one_layer(need_weights, opset, nodes, tmp_path):
    """nn.MultiheadAttention(12, 3, batch_first=True) with random weights: both of torch's code paths
    (need_weights=False: scaled_dot_product_attention; True: the explicit bmm and softmax), at opset 17 and at 20
    (the newest torch's TorchScript exporter writes), become one `attention` layer. With q's Gather index changed
    to k's, the region has the same structure but computes something else: the numerical check refuses it, and its
    nodes are refused one by one."""
    result = subprocess.run([PYTHON, "-c", MHA, str(tmp_path), str(int(need_weights)), str(opset)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(tmp_path / "mha.npz")
    text, weights = import_onnx(tmp_path / "mha.onnx")
    model = dlspec.loads(text)
    for backend, y in built_outputs(model, weights, data["x"]).items():
        assert np.max(np.abs(y - data["y"])) <= 1e-5 * max(1.0, np.max(np.abs(data["y"]))), backend
    assert f"  - {{name: attn, type: attention, heads: 3, inputs: [x]}}  # onnx: {nodes} nodes, Transpose " \
           "/attn/Transpose ... Transpose /attn/Transpose_" in text
    onnx_model = onnx.load(str(tmp_path / "mha.onnx"))
    made = {o: n for n in onnx_model.graph.node for o in n.output}
    q = next(n for n in onnx_model.graph.node if n.op_type == "Gather" and made[n.input[0]].op_type == "Squeeze")
    onnx_model.graph.initializer.append(numpy_helper.from_array(np.array(1, np.int64), "one"))
    q.input[1] = "one"
    onnx.save(onnx_model, str(tmp_path / "q_is_k.onnx"))
    with pytest.raises(UnsupportedModel) as err:
        import_onnx(tmp_path / "q_is_k.onnx")
    assert "Transpose: perm [1, 0, 2] moves the batch axis" in err.value.refused


def normalized(model):
    """The IR graph as data: (name, op, attrs, inputs) per node, with padding written as the amounts it gives
    (`same` and explicit numbers mean one thing at a known shape), dropout (an inference ONNX graph holds it as
    Identity) left out, and an activation layer right after a conv or dense, its only reader, fused into it (as
    the importer writes it)."""
    from dlspec.ir.vision import conv_geometry

    readers = {}
    for n in model.graph.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    ops = {n.name: n for n in model.graph.nodes}
    skip = {n.name: n.inputs[0] for n in model.graph.nodes if n.op == "dropout"}
    fused = {}
    for n in model.graph.nodes:
        src = ops.get(n.inputs[0]) if n.inputs else None
        if n.op == "activation" and src is not None and src.op in ("conv1d", "conv2d", "dense") \
                and readers[src.name] == 1 and src.attrs["activation"]["activation"] == "linear" \
                and n.attrs["activation"] not in ("softmax", "linear") and n.name not in model.graph.outputs:
            fused[src.name], skip[n.name] = n.attrs, src.name
    out = []
    for n in model.graph.nodes:
        if n.op == "dropout" or n.name in skip:
            continue
        attrs = dict(n.attrs)
        if n.name in fused:
            attrs["activation"] = fused[n.name]
        if n.op in ("conv1d", "conv2d"):
            attrs["padding"] = conv_geometry(n.attrs, _in_shape(model, n)[1:]).pads
        if n.op.endswith(("pool1d", "pool2d")) and attrs.get("stride") is None:
            attrs["stride"] = attrs["kernel"]
        out.append((n.name, n.op, attrs, tuple(skip.get(i, i) for i in n.inputs)))
    return out


def _in_shape(model, node):
    shapes = {n.name: n.shape for n in model.graph.nodes}
    shapes.update({k: tuple(v.shape) for k, v in model.spec.inputs.items()})
    return shapes[node.inputs[0]]


@pytest.mark.parametrize("name, opset", [("mnist_cnn", 17), ("digits_cnn", 17), ("resnet18", 17), ("mobilenet_v2", 17),
                                         ("regnet_y_400mf", 17), ("digits_cnn", onnx.defs.onnx_opset_version()),
                                         ("resnet18", onnx.defs.onnx_opset_version())])
def test_dlspec_export_imports_back_to_the_same_spec(name, opset, tmp_path):
    from dlspec.weights import init_weights

    model = dlspec.load(ROOT / "specs" / f"{name}.yaml")
    weights = init_weights(model, 0)
    onnx.save(dlspec.build(model, "onnx", weights, opset=opset), str(tmp_path / f"{name}.onnx"))
    text, back = import_onnx(tmp_path / f"{name}.onnx")
    again = dlspec.loads(text, f"{name}.yaml")
    assert normalized(again) == normalized(model)
    assert sorted(back) == sorted(weights)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


def onnx_cases():
    data = LIGHT.parent
    return [(kind, p.name) for kind in ("pytorch-converted", "pytorch-operator")
            for p in sorted((data / kind).iterdir()) if (p / "model.onnx").exists()]


def test_pytorch_cases_import_equal_or_are_refused_with_a_reason(capsys):
    """onnx's pytorch-converted and pytorch-operator cases (small models with their input and output in
    test_data_set_0): each is imported and equal in torch and onnxruntime within 1e-5 relative to max(1, |ref|), or
    refused with its reasons. Keras is left out here to keep the test short (the light models cover it)."""
    from collections import Counter

    rows, reasons = [], Counter()
    for kind, name in onnx_cases():
        case = LIGHT.parent / kind / name
        try:
            text, weights = import_onnx(case / "model.onnx")
        except UnsupportedModel as err:
            rows.append((kind, name, "refused"))
            reasons.update(r.split(" (")[0] for r in err.refused)
            continue
        inputs = [numpy_helper.to_array(onnx.load_tensor(str(f)))
                  for f in sorted((case / "test_data_set_0").glob("input_*.pb"))]
        expected = numpy_helper.to_array(onnx.load_tensor(str(case / "test_data_set_0" / "output_0.pb")))
        model = dlspec.loads(text)
        for backend in ("torch", "onnx"):
            y = RUNNERS[backend].run(dlspec.build(model, backend, weights), inputs)[0].reshape(expected.shape)
            assert np.max(np.abs(y - expected)) <= 1e-5 * max(1.0, np.max(np.abs(expected))), (name, backend)
        rows.append((kind, name, "equal"))
    counts = Counter((kind, status) for kind, _, status in rows)
    with capsys.disabled():
        print("\npytorch-converted / pytorch-operator cases:", dict(counts))
        for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  refused {n:2d} x {reason}")
    assert counts == {("pytorch-converted", "equal"): 56, ("pytorch-converted", "refused"): 26,
                      ("pytorch-operator", "equal"): 9, ("pytorch-operator", "refused"): 26}


def test_dlspec_export_with_split_imports_equal(tmp_path):
    """shufflenet_v2's `split` comes back as two `slice` layers (same values, another spec): outputs are compared."""
    from dlspec.weights import init_weights

    model = dlspec.load(ROOT / "specs" / "shufflenet_v2_x1_0.yaml")
    weights = init_weights(model, 0)
    onnx.save(dlspec.build(model, "onnx", weights), str(tmp_path / "shufflenet.onnx"))
    text, back = import_onnx(tmp_path / "shufflenet.onnx")
    again = dlspec.loads(text)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    ref = torch_backend.run(dlspec.build(model, "torch", weights), [x])[0]
    for backend in ("torch", "onnx"):
        y = RUNNERS[backend].run(dlspec.build(again, backend, back), [x])[0]
        assert np.max(np.abs(y - ref)) <= 1e-5 * max(1.0, np.max(np.abs(ref))), backend


def tensor_model(path, nodes, inputs, outputs, opset=17, inits=()):
    """A hand-built ONNX model: ``inputs``/``outputs`` as {name: shape} (batch 1 first; the batch axis is made
    dynamic), ``inits`` as {name: array}."""
    def info(name, shape):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", *shape[1:]] if shape else None)

    graph = helper.make_graph(nodes, "g", [info(k, v) for k, v in inputs.items()],
                              [info(k, v) for k, v in outputs.items()],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))


def imported_equal(path, feeds):
    """Imports ``path``, builds it in every backend and compares each output with onnxruntime running the file at
    batch 3; returns the spec text."""
    import onnxruntime as ort

    text, weights = import_onnx(path)
    model = dlspec.loads(text)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    refs = session.run(None, feeds)
    for backend, runner in RUNNERS.items():
        got = runner.run(dlspec.build(model, backend, weights), list(feeds.values()))
        assert len(got) == len(refs), backend
        for y, ref in zip(got, refs):
            assert y.shape == ref.shape and np.std(ref) > 1e-3, backend
            assert np.max(np.abs(y - ref)) <= 1e-5 * max(1.0, np.max(np.abs(ref))), backend
    return text


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_split_imports_as_slices(tmp_path):
    """Split by sizes (opset 13 input) and in equal parts (opset 18 num_outputs, 5 into 2 + 2 + 1); an unused
    output writes no layer."""
    nodes = [helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1, name="split1"),
             helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Sigmoid", ["b"], ["sb"]),
             helper.make_node("Concat", ["sb", "ra"], ["y"], axis=1),
             helper.make_node("Split", ["x"], ["p", "q", "r"], axis=2, num_outputs=3, name="split2"),
             helper.make_node("Mul", ["p", "p"], ["z"]), helper.make_node("Tanh", ["r"], ["t"])]
    tensor_model(tmp_path / "split.onnx", nodes, {"x": (1, 6, 5)}, {"y": (1, 6, 5), "z": (1, 6, 2), "t": (1, 6, 1)},
                 opset=18, inits={"sizes": np.array([2, 4], np.int64)})
    text = imported_equal(tmp_path / "split.onnx", {"x": rand(3, 6, 5)})
    assert "  - {name: a, type: slice, axis: 1, stop: 2, inputs: [x]}  # onnx: Split split1\n" in text
    assert "  - {name: b, type: slice, axis: 1, start: 2, inputs: [x]}  # onnx: Split split1\n" in text
    assert "  - {name: p, type: slice, axis: 2, stop: 2, inputs: [x]}  # onnx: Split split2\n" in text
    assert "  - {name: r, type: slice, axis: 2, start: 4, inputs: [x]}  # onnx: Split split2\n" in text
    assert "name: q" not in text


def test_gather_imports_as_select_or_slice(tmp_path):
    """A constant scalar index (also negative) is `select`; a constant run of indices with a positive step is
    `slice`; any other list is refused with the indices."""
    consts = {"i3": np.array(3, np.int64), "last": np.array(-1, np.int64), "run": np.array([1, 2, 3], np.int64),
              "even": np.array([0, 2, 4, 6], np.int64)}
    nodes = [helper.make_node("Gather", ["x", "i3"], ["s"], axis=2),
             helper.make_node("Gather", ["x", "last"], ["l"], axis=1),
             helper.make_node("Gather", ["x", "run"], ["r"], axis=1),
             helper.make_node("Gather", ["x", "even"], ["e"], axis=-1)]
    tensor_model(tmp_path / "gather.onnx", nodes, {"x": (1, 4, 7)},
                 {"s": (1, 4), "l": (1, 7), "r": (1, 3, 7), "e": (1, 4, 4)}, inits=consts)
    text = imported_equal(tmp_path / "gather.onnx", {"x": rand(3, 4, 7)})
    assert "  - {name: s, type: select, axis: 2, index: 3, inputs: [x]}  # onnx: Gather s\n" in text
    assert "  - {name: l, type: select, axis: 1, index: 3, inputs: [x]}  # onnx: Gather l\n" in text
    assert "  - {name: r, type: slice, axis: 1, start: 1, inputs: [x]}  # onnx: Gather r\n" in text
    assert "  - {name: e, type: slice, axis: 2, step: 2, inputs: [x]}  # onnx: Gather e\n" in text
    tensor_model(tmp_path / "odd.onnx", [helper.make_node("Gather", ["x", "perm"], ["y"], axis=1, name="g")],
                 {"x": (1, 4, 7)}, {"y": (1, 2, 7)}, inits={"perm": np.array([2, 0], np.int64)})
    with pytest.raises(UnsupportedModel) as err:
        import_onnx(tmp_path / "odd.onnx")
    assert err.value.refused == {"Gather: indices [2, 0] (dlspec takes one index, or a run with a positive step)":
                                 ["g"]}


def test_expand_absorbed_by_broadcasting(tmp_path):
    """An Expand read only by elementwise arithmetic that broadcasts the same way without it is dropped; one read
    by anything else is refused."""
    nodes = [helper.make_node("Expand", ["a", "shape"], ["ea"]), helper.make_node("Add", ["ea", "b"], ["s"]),
             helper.make_node("Mul", ["s", "ea"], ["y"])]
    tensor_model(tmp_path / "expand.onnx", nodes, {"a": (1, 1, 5), "b": (1, 4, 5)}, {"y": (1, 4, 5)},
                 inits={"shape": np.array([1, 4, 5], np.int64)})
    text = imported_equal(tmp_path / "expand.onnx", {"a": rand(3, 1, 5), "b": rand(3, 4, 5, seed=1)})
    assert "Expand" not in text
    assert "  - {name: s, type: add, inputs: [a, b]}  # onnx: Add s\n" in text
    nodes = [helper.make_node("Expand", ["a", "shape"], ["ea"], name="e"), helper.make_node("Relu", ["ea"], ["y"])]
    tensor_model(tmp_path / "refused.onnx", nodes, {"a": (1, 1, 5)}, {"y": (1, 4, 5)},
                 inits={"shape": np.array([1, 4, 5], np.int64)})
    with pytest.raises(UnsupportedModel) as err:
        import_onnx(tmp_path / "refused.onnx")
    assert err.value.refused == {"Expand: the expanded value is read by Relu, which does not broadcast": ["e"]}


def test_pad_imports_as_zero_pad_or_pad(tmp_path):
    """Zeros on the spatial axes of an image are `zero_pad`; a constant value, the channel axis or an axes input
    (opset 18) make a `pad`; a crop, the batch axis and other modes are refused with the reason."""
    consts = {"spatial": np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64), "chan": np.array([0, 2, 0, 0, 1, 0], np.int64),
              "half": np.array(0.5, np.float32), "last": np.array([1, 2], np.int64), "ax": np.array([-1], np.int64)}
    nodes = [helper.make_node("Pad", ["x", "spatial"], ["z"], name="zp"),
             helper.make_node("Pad", ["v", "chan", "half"], ["c"], name="cp"),
             helper.make_node("Pad", ["v", "last", "", "ax"], ["e"], name="ep")]
    tensor_model(tmp_path / "pad.onnx", nodes, {"x": (1, 2, 4, 5), "v": (1, 3, 4)},
                 {"z": (1, 2, 7, 8), "c": (1, 6, 4), "e": (1, 3, 7)}, opset=18, inits=consts)
    text = imported_equal(tmp_path / "pad.onnx", {"x": rand(3, 2, 4, 5), "v": rand(3, 3, 4, seed=1)})
    assert "  - {name: zp, type: zero_pad, padding: [[1, 2], [0, 3]], inputs: [x]}  # onnx: Pad zp\n" in text
    assert ("  - {name: cp, type: pad, axes: [1], before: [2], after: [1], value: 0.5, inputs: [v]}"
            "  # onnx: Pad cp\n") in text
    assert "  - {name: ep, type: pad, axes: [2], before: [1], after: [2], inputs: [v]}  # onnx: Pad ep\n" in text
    refused = {
        "crop": ([0, 0, -1, 0, 0, 1], "constant", "Pad: negative pads [0, 0, -1, 0, 0, 1] (a crop)"),
        "batch": ([1, 0, 0, 0, 0, 0], "constant", "Pad: padding of the batch axis"),
        "reflect": ([0, 0, 1, 0, 0, 1], "reflect", "Pad: mode 'reflect' (dlspec pads with a constant)"),
    }
    for name, (pads, mode, reason) in refused.items():
        tensor_model(tmp_path / f"{name}.onnx", [helper.make_node("Pad", ["v", "p"], ["y"], name="n", mode=mode)],
                     {"v": (1, 3, 4)}, {"y": (1, 3, 5)}, inits={"p": np.array(pads, np.int64)})
        with pytest.raises(UnsupportedModel) as err:
            import_onnx(tmp_path / f"{name}.onnx")
        assert err.value.refused == {reason: ["n"]}, name
