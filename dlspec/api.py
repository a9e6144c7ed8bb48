"""The Python API: load -> validate -> lower -> passes, then generate or build a backend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import loader
from .errors import naming_extras
from .ir import Graph
from .lower import lower
from .passes import run_passes
from .spec import Spec, validate


@dataclass(frozen=True)
class Model:
    """A validated spec and its IR graph, ready for any backend."""

    spec: Spec
    graph: Graph
    path: str

    @property
    def name(self) -> str:
        """The spec's model name."""
        return self.spec.name

    def regularizers(self) -> dict[str, tuple[float, float]]:
        """{canonical weight name: (l1, l2)} for layers with a `regularizer`."""
        out = {}
        for node in self.graph.nodes:
            reg = node.regularizer
            if reg is not None and (reg.l1 or reg.l2):
                out[f"{node.name}.weight"] = (reg.l1, reg.l2)
        return out

    def frozen(self) -> frozenset[str]:
        """Names of the nodes that training must leave untouched."""
        return frozenset(n.name for n in self.graph.nodes if not n.trainable)


def loads(text: str, file: str = "<string>") -> Model:
    """Validate spec text (YAML or JSON). Raises :class:`dlspec.SpecError`."""
    return _compile(loader.parse_text(text, file))


def from_dict(data: dict, file: str = "<dict>") -> Model:
    """Validate a spec given as Python data (errors point into its JSON rendering)."""
    import json

    try:
        text = json.dumps(data, indent=2)
    except (TypeError, ValueError, RecursionError) as err:  # a set, a cycle, a huge int, deep nesting
        raise loader.SpecError(loader.Loc(file), "", "spec data must be JSON-like: mappings with string keys, lists, "
                               f"strings, numbers, booleans and None ({type(err).__name__})", type(data).__name__,
                               has_received=False) from None
    return loads(text, file)


def load(path: str | os.PathLike) -> Model:
    """Read and validate a spec file. Raises :class:`dlspec.SpecError`."""
    return _compile(loader.read(path))


def _compile(doc: loader.Document) -> Model:
    from .spec.derive import resolve_base

    checked = validate(resolve_base(doc))
    return Model(checked.spec, run_passes(lower(checked)), doc.file)


def _model(spec) -> Model:
    return spec if isinstance(spec, Model) else load(spec)


@naming_extras
def generate(spec, backend: str, *, weights_file: str | None = None, opset: int | None = None):
    """Source text for ``torch`` or ``keras``; serialized ONNX bytes for ``onnx``.

    For ``onnx``, the graph embeds weights drawn with seed 0 (use :func:`build` for others).
    """
    from .backends import registry

    model = _model(spec)
    module = registry.load(backend)
    if backend == "onnx":
        from .weights import init_weights

        return module.lower_onnx(model.graph, init_weights(model), opset=opset).SerializeToString()
    return module.generate(model.graph, weights_file=weights_file)


@naming_extras
def build(spec, backend: str, weights=None, **options):
    """A torch ``nn.Module``, a ``keras.Model`` or an ``onnx.ModelProto``.

    ``weights``: a dict of canonical arrays, a safetensors path, or None (torch and
    Keras then use their native initialisers; ONNX uses :func:`init_weights` with seed 0).
    The torch and Keras models come from executing the same source ``generate`` returns.
    """
    from .backends import registry
    from .weights import check_weights, init_weights, load_weights

    model = _model(spec)
    if isinstance(weights, (str, Path)):
        weights = load_weights(weights, model)
    elif weights is not None:
        check_weights(weights, model)
    elif backend == "onnx":  # the graph embeds its weights; torch and Keras initialise natively
        weights = init_weights(model, 0)
    return registry.load(backend).build(model.graph, weights, **options)
