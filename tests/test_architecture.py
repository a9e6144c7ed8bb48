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
ORDER = ["activations", "errors", "files", "threads", "loader", "spec", "ir", "lower", "passes", "weights", "api",
         "backends", "summary", "parity", "schema", "cli"]
ALLOWED = {"ir": {"errors", "activations"}, "loader": {"errors", "files"}, "files": {"errors"}, "threads": set(),
           "spec": {"errors", "loader", "activations"},
           "lower": {"ir", "spec", "errors", "loader"}, "passes": {"errors", "ir"},
           "weights": {"errors", "files", "ir"},
           "backends": {"activations", "errors", "ir", "spec", "threads", "__version__"},
           "deploy": {"errors", "backends", "files", "threads"},
           "train": {"api", "backends", "data", "errors", "files", "weights"}}


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


def test_ir_imports_no_framework():
    for file in (PACKAGE / "ir").glob("*.py"):
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
    for name, op in OPS.items():
        assert type(op).__doc__ and len(type(op).__doc__) > 30, name


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError, match="two torch emitters for op 'dense'"):
        registry.emitter("torch", "dense")(lambda ctx: None)


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
