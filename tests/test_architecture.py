"""Structural rules: light validation, one-way stage imports, self-registered emitters, safe names."""

import ast
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.backends import registry
from dlspec.ir import OPS
from dlspec.spec import LAYER_TYPES
from dlspec.spec.types import RESERVED_NAMES

PACKAGE = Path(dlspec.__file__).parent
HEAVY = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "numpy")


def test_validation_imports_no_framework():
    code = (f"import sys, dlspec; m = dlspec.load({str(SPECS / 'mnist_mlp.yaml')!r}); "
            "from dlspec.summary import summary; summary(m); "
            f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_generating_source_imports_no_framework():
    code = (f"import sys, dlspec; m = dlspec.load({str(SPECS / 'mnist_mlp.yaml')!r}); "
            "dlspec.generate(m, 'torch'); dlspec.generate(m, 'keras'); "
            "print(sorted(h for h in ('torch', 'tensorflow', 'keras', 'onnxruntime') if h in sys.modules))")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# Each stage may import only stages to its left (DESIGN.md section 2).
ORDER = ["activations", "initializers", "errors", "files", "threads", "loader", "spec", "ir", "lower", "passes",
         "weights", "api", "backends", "summary", "parity", "schema", "commands", "cli"]
ALLOWED = {"ir": {"errors", "spec"}, "loader": {"errors", "files"},
           "files": {"errors"}, "threads": set(),
           "spec": {"errors", "loader", "activations", "initializers"},
           "lower": {"ir", "spec", "errors", "loader"}, "passes": {"errors", "ir"},
           "weights": {"errors", "files", "ir"},
           "backends": {"activations", "initializers", "errors", "ir", "spec", "threads", "__version__"},
           "deploy": {"errors", "backends", "files", "threads"},
           "train": {"api", "backends", "data", "errors", "files", "spec", "weights"}}


def _stage_imports(stage: str) -> set[str]:
    files = [PACKAGE / f"{stage}.py"] if (PACKAGE / f"{stage}.py").exists() else list((PACKAGE / stage).glob("*.py"))
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = (node.module or "").split(".")
                if node.level == 1 and (PACKAGE / stage).is_dir():
                    continue  # inside the stage's own package
                found.add(parts[0] if parts[0] else node.names[0].name)
    return found - {stage, ""}


@pytest.mark.parametrize("stage", list(ALLOWED))
def test_stages_import_only_to_their_left(stage):
    assert _stage_imports(stage) <= ALLOWED[stage]


def test_ir_and_spec_import_no_framework():
    for file in [*(PACKAGE / "ir").glob("*.py"), *(PACKAGE / "spec").glob("*.py")]:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & set(HEAVY), file


def test_every_op_has_a_spec_class_and_an_emitter_per_backend():
    from dlspec.spec.graph import EXPANDED_TYPES

    assert set(OPS) == set(LAYER_TYPES) - set(EXPANDED_TYPES)
    assert set(EXPANDED_TYPES.values()) <= set(OPS)
    for backend in registry.BACKENDS:
        table = registry.emitters(backend)
        missing = set(OPS) - set(table) - set(registry.MISSING[backend])
        assert not missing, f"{backend} lacks emitters for {sorted(missing)}"
        assert set(table) <= set(OPS)


def test_every_op_documents_its_semantics():
    for name, definition in OPS.items():
        assert definition.__doc__ and len(definition.__doc__) > 30, name


def test_registering_twice_is_an_error():
    from typing import Literal

    from dlspec.spec.layers import LayerBase, op

    with pytest.raises(ValueError, match="two torch emitters for op 'dense'"):
        registry.emitter("torch", OPS["dense"])(lambda ctx: None)

    class Dense2(LayerBase):
        """A second definition of dense."""

        type: Literal["dense"] = "dense"

    with pytest.raises(ValueError, match="two ops for layer type 'dense'"):
        op(Dense2)


def test_ops_and_emitters_are_keyed_by_definition_not_by_name():
    """An op's name is written once, in its definition's `type` literal: the definition (the spec class) is
    what OPS holds and what every emitter registers against, so no registration repeats the name."""
    from dlspec import ir, spec

    for name, definition in OPS.items():
        assert definition is LAYER_TYPES[name] and definition.op_name == name
        group = definition.__module__.rsplit(".", 1)[1]
        assert getattr(getattr(ir, "ops" if group == "layers" else group), definition.__name__) is definition
    for backend in registry.BACKENDS:
        registry.emitters(backend)
        assert set(registry._EMITTERS[backend]) <= set(OPS.values())
    assert ir.tensor.Roll is spec.tensor.Roll
    calls, decorated = [], 0
    for file in [*(PACKAGE / "spec").glob("*.py"), *(PACKAGE / "ir").glob("*.py"),
                 *(PACKAGE / "backends").glob("*.py")]:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("op", "emitter"):
                calls.append(node)
                keys = node.args[-1:] if node.func.id == "op" else node.args[1:]
                assert not any(isinstance(k, ast.Constant) for k in keys), (file.name, node.lineno)
            if isinstance(node, ast.ClassDef):
                decorated += sum(isinstance(d, ast.Name) and d.id == "op" for d in node.decorator_list)
    assert decorated == len(OPS)  # each op: one @op on its definition
    assert sum(c.func.id == "emitter" for c in calls) >= len(OPS) * 2  # the scan sees the lowerings (some in loops)


def test_reserved_names_cover_torch_module_attributes():
    import torch

    public = {n for n in dir(torch.nn.Module) if not n.startswith("_")}
    assert public <= RESERVED_NAMES, sorted(public - RESERVED_NAMES)


@pytest.mark.parametrize("name", ["torch", "keras", "np", "self", "forward", "training", "class", "weights"])
def test_reserved_and_keyword_names_are_rejected(name):
    with pytest.raises(dlspec.SpecError, match="reserved name|must be an identifier"):  # also inside paths
        dlspec.loads(f"dlspec: 1\nname: m\ninputs: {{x: {{shape: [3]}}}}\nlayers: [{{type: flatten, name: {name}}}]")


def test_every_layer_type_is_documented_in_both_references():
    """docs/spec.md has a `### <type>` section per layer type; docs/semantics.md names it in a `## ` heading."""
    import re

    root = PACKAGE.parent / "docs"
    spec_sections = set(re.findall(r"^### (\w+)$", (root / "spec.md").read_text(), re.M))
    semantics_headings = " ".join(re.findall(r"^## (.+)$", (root / "semantics.md").read_text(), re.M))
    assert set(LAYER_TYPES) - spec_sections == set(), "docs/spec.md lacks sections"
    assert {t for t in LAYER_TYPES if not re.search(rf"\b{t}\b", semantics_headings)
            and not re.search(rf"\b{t.rstrip('12d')}\b", semantics_headings)} == set(), "docs/semantics.md lacks"


def test_training_registries_cover_every_spec_class_of_their_kind():
    """Each loss, optimizer and schedule class of the spec has one implementation per user (torch, Keras, and
    dlspec's shared schedules); lookups go by class, so no entry falls through into another's code."""
    pytest.importorskip("tensorflow")
    from dlspec.spec import train as spec
    from dlspec.train import keras_loop, registry, schedule, torch_loop

    assert len(registry.REGISTRIES) == 5
    for r in (torch_loop.OPTIMIZERS, torch_loop.LOSSES, keras_loop.OPTIMIZERS, keras_loop.LOSSES,
              schedule.SCHEDULES):
        assert r.missing() == [], (r.kind, r.owner)
        assert set(r.table) == set(r.definitions)
    assert [c.__name__ for c in registry.OPTIMIZERS] == ["SGD", "Adam", "AdamW", "RMSprop"]
    assert len(registry.LOSSES) == 5 and len(registry.SCHEDULES) == 5
    with pytest.raises(ValueError, match="two torch implementations of the optimizer SGD"):
        torch_loop.OPTIMIZERS.register(spec.SGD)(lambda *a: None)
    with pytest.raises(ValueError, match="TopK is not a loss of the spec"):
        torch_loop.LOSSES.register(spec.TopK)(lambda *a: None)


def test_initializer_registry_is_the_one_list():
    """The spec's initializer names, the IR's scales and each backend's lowerings all come from
    dlspec/initializers.py, one entry per initializer."""
    import typing

    from dlspec.backends import keras_emit, torch_emit
    from dlspec.initializers import INITIALIZERS
    from dlspec.ir import Param
    from dlspec.spec.layers import Initializer

    assert typing.get_args(Initializer) == tuple(INITIALIZERS)
    assert set(torch_emit.INITIALIZERS) == set(keras_emit.INITIALIZERS) == set(INITIALIZERS)
    assert Param("w", (4, 3), "glorot_uniform", 3, 4).scale() == ("uniform", (6 / 7) ** 0.5)
    assert Param("w", (4, 3), "he_normal", 3, 4).scale() == ("normal", (2 / 3) ** 0.5)
    assert Param("w", (4,), "zeros").scale() == ("constant", 0.0)
    assert Param("w", (4,), "constant:0.25").scale() == ("constant", 0.25)
