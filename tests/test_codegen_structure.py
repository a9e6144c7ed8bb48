"""Generated source as an expert writes it: frozen parts frozen in the built models, line comments naming the
file that defined each layer (issue 10)."""

import re
from pathlib import Path

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


LOAD_TORCHVISION = """
import importlib.util, sys
import torch, torchvision
name, path = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("generated", path)
generated = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generated)
torch.manual_seed(0)
reference = getattr(torchvision.models, name)(weights=None).eval()
ours = generated.build_model().eval()
assert list(ours.state_dict()) == list(reference.state_dict())
ours.load_state_dict(reference.state_dict())  # strict: every key, no renaming
x = torch.randn(2, 3, 64, 64)
with torch.no_grad():
    print(float((ours(x) - reference(x)).abs().max()))
"""


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_generated_torch_loads_torchvision_state_dict_directly(name, tmp_path):
    import importlib.util
    import subprocess

    from conftest import PYTHON

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    source = dlspec.generate(dlspec.load(SPECS / f"{name}.yaml"), "torch")
    path = tmp_path / f"{name}_torch.py"
    path.write_text(source)
    result = subprocess.run([PYTHON, "-c", LOAD_TORCHVISION, name, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout) < 1e-4
    assert f"class {'Basic' if name == 'resnet18' else 'Bottleneck'}(nn.Module):" in source
    assert "self.layer1 = nn.Sequential(" in source and "x = self.layer1(x)" in source


def test_keras_weights_round_trip_through_the_layout_tables():
    """export_weights inverts load_weights from the generated module's tables: no codegen, no eval."""
    import numpy as np
    from test_parity_table import ALL_CASES, UNSUPPORTED, spec_for

    from dlspec.backends.keras import export_weights
    from dlspec.parity import random_weights

    seen = set()
    for case_id, shape, layers in ALL_CASES:
        if case_id in UNSUPPORTED:
            continue
        model = spec_for(case_id, shape, layers)
        if not any(n.params for n in model.graph.nodes):
            continue
        weights = random_weights(model, 1)
        back = export_weights(dlspec.build(model, "keras", weights), model.graph)
        assert sorted(back) == sorted(weights), case_id
        for node in model.graph.nodes:
            seen.add(node.op)
            for p in node.params:
                name = f"{node.name}.{p.name}" if p.name else node.name
                if node.op == "lstm" and p.name.startswith("bias_"):  # Keras keeps their sum, all in bias_ih
                    continue
                np.testing.assert_array_equal(back[name], weights[name], err_msg=f"{case_id}: {name}")
    assert {"conv2d", "dense", "lstm", "gru", "attention", "layernorm", "prelu", "parameter"} <= seen


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_golden_source(backend):
    """The generated source of a small block model, held in tests/golden so that every change to the generators
    shows as a reviewable diff. Regenerate with DLSPEC_UPDATE_GOLDEN=1 after an intended change."""
    import os

    source = dlspec.generate(dlspec.load(GOLDEN / "small_blocks.yaml"), backend)
    path = GOLDEN / f"small_blocks_{backend}.py"
    if os.environ.get("DLSPEC_UPDATE_GOLDEN"):
        path.write_text(source)
    assert source == path.read_text()


RUFF_CONFIGS = {  # ruff's defaults (line length 88, its default rules) and the project's rules (pyproject.toml)
    "defaults": (["check", "--isolated"], ["format", "--isolated", "--check"]),
    "project": (["check", "--isolated", "--select", "E,F,W,I,B,UP", "--ignore", "B905", "--line-length", "120",
                 "--target-version", "py310"], ["format", "--isolated", "--check", "--line-length", "120"]),
}


def test_generated_files_pass_ruff_outside_the_repository(tmp_path):
    """Every zoo model's torch and Keras source, written outside the repository (no project config applies), and
    resnet18/resnet18_digits with a weights file (a constant after the imports) and frozen parts: ruff check and
    ruff format --check leave them as they are, under ruff's defaults and under the project's rules."""
    import subprocess
    import sys

    zoo = sorted(p.stem for p in (Path(dlspec.__file__).parent / "zoo").glob("*.yaml"))
    for name, weights in [(n, None) for n in zoo] + [(n, f"{n}.safetensors") for n in ("resnet18", "resnet18_digits")]:
        model = dlspec.load(SPECS / f"{name}.yaml") if weights else dlspec.load(f"zoo:{name}")
        for backend in ("torch", "keras"):
            source = dlspec.generate(model, backend, weights_file=weights)
            (tmp_path / f"{name}{'_weights' if weights else ''}_{backend}.py").write_text(source)
    ruff = [sys.executable, "-m", "ruff"]
    for config, commands in RUFF_CONFIGS.items():
        for args in commands:
            result = subprocess.run([*ruff, *args, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
            assert result.returncode == 0, (config, args, result.stdout[-3000:])


def test_each_emitter_runs_once_per_node(monkeypatch):
    """Emitters run once per node: the Keras writer and the permute's choice of layout read what an emitter
    declares (``wants``, ``keeps``) instead of emitting to find out."""
    from dlspec.backends import registry

    calls, kept = {}, []
    for backend in ("torch", "keras"):
        registry.emitters(backend)  # imports every emitter module
        table = registry._EMITTERS[backend]
        for op, fn in list(table.items()):
            def counted(ctx, fn=fn, backend=backend):
                kept.append(ctx.node)  # ids stay unique while the nodes live
                calls[backend, id(ctx.node)] = calls.get((backend, id(ctx.node)), 0) + 1
                return fn(ctx)

            counted.__dict__.update(fn.__dict__)
            monkeypatch.setitem(table, op, counted)
    for name in ("resnet18", "convnext_tiny", "vit_b_16", "shufflenet_v2_x1_0"):
        for backend in ("torch", "keras"):
            dlspec.generate(dlspec.load(f"zoo:{name}"), backend)
    assert len(calls) > 500 and max(calls.values()) == 1
    assert [op for op, fn in registry.emitters("keras").items() if not hasattr(fn, "wants")] == []


def test_parity_case_sources_pass_ruff(tmp_path):
    """The torch and Keras source of every parity-table case (every op, in many configurations) passes ruff check
    and ruff format --check under ruff's defaults and under the project's rules: the layout rules hold beyond the
    zoo."""
    import subprocess
    import sys

    from test_parity_table import ALL_CASES, spec_for

    for case_id, shape, layers in ALL_CASES:
        for backend in ("torch", "keras"):
            try:
                source = dlspec.generate(spec_for(case_id, shape, layers), backend)
            except dlspec.UsageError:  # a case the backend refuses (UNSUPPORTED)
                continue
            (tmp_path / f"{case_id}_{backend}.py").write_text(source)
    assert len(list(tmp_path.glob("*.py"))) > 300
    ruff = [sys.executable, "-m", "ruff"]
    for config, commands in RUFF_CONFIGS.items():
        for args in commands:
            result = subprocess.run([*ruff, *args, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
            assert result.returncode == 0, (config, args, result.stdout[-3000:])


def _unstructured(layer) -> list[str]:
    """What a torch or Keras emitter returned as text where a structured value (a source node) is wanted: its
    forward expression, submodule, initialisers (torch), its layer, the layers before and after it and the
    arguments it is called with (Keras); and any name or number (an Atom) that hides a call or a display."""
    from dlspec.backends.keras_emit import KerasLayer
    from dlspec.backends.source import Atom, Node, walk

    if isinstance(layer, KerasLayer):
        wanted = {"layer": [layer.layer] if layer.layer is not None or not layer.alias else [],
                  "pre": [e for _, e in layer.pre], "post": [e for _, e in layer.post], "call": list(layer.call)}
        wanted["pre/post suffix"] = [s for s, _ in layer.pre + layer.post if not isinstance(s, str)]
    else:
        wanted = {"call": [layer.call], "module": [layer.module] if layer.module is not None else [],
                  "inits": list(layer.inits)}
    bad = [f"{field}: {value!r}" for field, values in wanted.items() for value in values if not isinstance(value, Node)]
    for field, values in wanted.items():
        for value in values:
            hidden = [n for n in walk(value) if isinstance(n, Atom) and set(n.text) & set("([{,=")]
            bad += [f"{field}: text in {n!r}" for n in hidden]
    return bad


def _recording(monkeypatch, seen: list):
    """Patch every torch and Keras emitter to record what it returns (declarations kept)."""
    import copy

    from dlspec.backends import registry

    for backend in ("torch", "keras"):
        registry.emitters(backend)
        for op, fn in list(registry._EMITTERS[backend].items()):
            def recorded(ctx, fn=fn, backend=backend, op=op):
                layer = fn(ctx)
                seen.append((backend, op.op_name, ctx.node.name, copy.copy(layer)))  # as returned (writers fill it in)
                return layer

            recorded.__dict__.update(fn.__dict__)
            monkeypatch.setitem(registry._EMITTERS[backend], op, recorded)


def test_emitters_return_structured_source(monkeypatch):
    """Every torch and Keras emitter returns source nodes (calls, attributes, subscripts, literals), never text,
    over every parity case's nodes and some of the zoo; and each statement's structure is the one ruff format
    sees in its text (codegen.CHECK), so the renderer's layout is the layout of the text it writes."""
    from test_parity_table import ALL_CASES, spec_for

    from dlspec.backends import codegen

    seen: list = []
    _recording(monkeypatch, seen)
    monkeypatch.setattr(codegen, "CHECK", [True])
    models = [spec_for(case_id, shape, layers) for case_id, shape, layers in ALL_CASES]
    models += [dlspec.load(f"zoo:{name}") for name in ("mobilenet_v3_small", "text_lstm", "swin_t")]
    failed = []
    for model in models:
        for backend in ("torch", "keras"):
            try:
                dlspec.generate(model, backend)
            except dlspec.UsageError:  # a case the backend refuses (UNSUPPORTED)
                continue
            except Exception as error:  # noqa: BLE001 (text where a node is wanted breaks the writer: say which)
                failed.append((model.name, backend, repr(error)))
    from dlspec.backends import registry

    every = {(backend, op) for backend in ("torch", "keras") for op in registry.emitters(backend)}
    assert {(backend, op) for backend, op, _, _ in seen} == every and len(seen) > 1000  # every emitter ran
    bad = [(backend, op, node, why) for backend, op, node, layer in seen for why in _unstructured(layer)]
    assert bad == []
    assert failed == []


def test_an_emitter_that_returns_text_is_caught(monkeypatch):
    """The check above fails for an emitter that formats its own text."""
    from dlspec import ir
    from dlspec.backends import registry
    from dlspec.backends.keras_emit import KerasLayer
    from dlspec.backends.source import Atom
    from dlspec.backends.torch_emit import TorchLayer

    registry.emitters("torch")
    monkeypatch.setitem(registry._EMITTERS["torch"], ir.tensor.Roll, lambda ctx: TorchLayer(f"torch.roll({ctx.x})"))
    seen: list = []
    _recording(monkeypatch, seen)
    with pytest.raises(AttributeError):  # the writer cannot lay text out
        dlspec.generate(spec_for_roll(), "torch")
    assert [why for *_, layer in seen for why in _unstructured(layer)] == ["call: 'torch.roll(\\x01x\\x01)'"]
    assert _unstructured(TorchLayer(Atom("torch.roll(x)"))) == ["call: text in Atom(text='torch.roll(x)')"]
    assert _unstructured(KerasLayer('keras.layers.Flatten(name="f")')) == \
        ["layer: 'keras.layers.Flatten(name=\"f\")'"]


def spec_for_roll():
    return dlspec.from_dict({"dlspec": 1, "name": "roll", "inputs": {"x": {"shape": [3, 4]}},
                             "layers": [{"type": "roll", "shifts": [1], "axes": [1]}]})
