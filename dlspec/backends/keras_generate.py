"""The generated Keras file: helper layers, block functions, the weight layout tables, ``build_model`` and
``load_weights``."""

from __future__ import annotations

from ..ir import Graph
from .codegen import READ_SAFETENSORS, format_lines, frozen_prefixes, header, module_source
from .keras_emit import HELPERS, LOGICAL
from .keras_writer import write
from .source import Atom, Dict, List, Lit, Node, Stmt, Tuple, call, lit, method

LOAD_WEIGHTS = '''
    for layer in model.layers:
        layout = OVERRIDES.get(layer.name, LAYOUTS.get(type(layer).__name__))
        if layout and layer.weights:  # no bias: fewer weights than its class
            entries = layout[: len(layer.weights)]
            layer.set_weights([keras_weight(weights, layer.name, e) for e in entries])


def keras_weight(weights, layer, entry):
    """One Keras weight of ``layer`` from canonical tensors: ``(tensor, steps)`` takes ``<layer>.<tensor>`` (the
    tensor named ``layer`` where ``tensor`` is empty) through the layout steps; ``{"sum": [...]}`` and
    ``{"stack": [...]}`` combine several."""
    if isinstance(entry, dict):
        how, parts = next(iter(entry.items()))
        arrays = [keras_weight(weights, layer, part) for part in parts]
        return arrays[0] + arrays[1] if how == "sum" else np.stack(arrays)
    tensor, steps = entry
    return moved(weights[f"{layer}.{tensor}" if tensor else layer], steps)


def moved(array, steps):
    """A canonical array in Keras' layout: transpose axes, reshape, take rows (of axis 0), or reorder gates
    (equal chunks of axis 0)."""
    for step, arg in steps:
        if step == "transpose":
            array = array.transpose(arg)
        elif step == "reshape":
            array = array.reshape(arg)
        elif step == "rows":
            array = array[arg[0] : arg[1]]
        else:
            array = np.concatenate([np.split(array, len(arg))[i] for i in arg])
    return array
'''


FREEZE = '''
    for layer in model.layers:
        if any(f"{layer.name}.".startswith(f"{name}.") for name in FROZEN):
            layer.trainable = False
'''


def _table(name: str, table: dict) -> list[Stmt]:
    """``name = {...}`` with one entry per line (a trailing comma keeps it so), laid out by codegen.render."""
    return [Stmt("", f"{name} = ", Dict(tuple((Lit(k), _layout(v)) for k, v in table.items()), trailing=bool(table)))]


def _layout(value) -> Node:
    """A layout as source: its entries and each entry's steps as lists (a list split over lines keeps its
    trailing comma under ruff format, where a one-element tuple would join again)."""
    if isinstance(value, dict):
        return Dict(tuple((Lit(k), List(tuple(map(_layout, v)))) for k, v in value.items()))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):  # (tensor, steps)
        return Tuple((Lit(value[0]), List(tuple(lit(step) for step in value[1]))))
    return List(tuple(map(_layout, value)))


def layouts(weights: list[tuple[str, str, tuple]]) -> tuple[dict, dict]:
    """The weight layout of each Keras layer class (a layer without a bias takes the first entries), and the
    layers whose layout is not their class's."""
    by_class: dict[str, list] = {}
    for _, cls, entries in weights:
        by_class.setdefault(cls, []).append(entries)
    classes, overrides = {}, {}
    for cls, found in by_class.items():
        distinct = [e for i, e in enumerate(found) if e not in found[:i]]
        common = max(distinct, key=found.count)
        longer = [e for e in found if len(e) > len(common) and e[:len(common)] == common]
        classes[cls] = max(longer, key=found.count) if longer else common
    for name, cls, entries in weights:
        if classes[cls][:len(entries)] != entries:
            overrides[name] = entries
    return classes, overrides


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """Keras source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    w = write(graph)
    outputs = [w.convert(w.ns[o], len(graph.shape_of(o)), LOGICAL)[0] for o in graph.outputs]
    ins = [Atom(w.ns[i.name]) for i in graph.inputs]
    outs = [Atom(o) for o in outputs]
    weights = method(call("Path", Atom("__file__")), "with_name", weights_file)
    consts: list = [Stmt("", "WEIGHTS = ", weights)] if weights_file else []
    frozen = frozen_prefixes({n.name: not n.trainable for n in graph.nodes if n.params})
    if frozen:
        consts.append(Stmt("", "FROZEN = ", lit(tuple(frozen)), "# fixed weights, BatchNorm in inference mode"))
    by_class, overrides = layouts(w.weights)
    consts += ["# Each Keras layer class's weights, in order, from the layer's canonical tensors (see keras_weight)",
               *_table("LAYOUTS", by_class), "# Layers whose weights are laid out otherwise than their class's",
               *_table("OVERRIDES", overrides)]
    sections = [HELPERS[h].strip("\n").splitlines() for h in w.helpers] + [format_lines(f) for f in w.functions]
    default = "WEIGHTS" if weights_file else "None"
    sections += [format_lines([f"def build_model(weights={default}):",
                  '    """Build the model; ``weights`` is a safetensors path or a dict of numpy arrays."""',
                  *w.lines,
                  Stmt("    ", "model = ", call("keras.Model", inputs=ins[0] if len(ins) == 1 else List(tuple(ins)),
                                                   outputs=outs[0] if len(outs) == 1 else List(tuple(outs)),
                                                   name=graph.name)),
                  *(FREEZE.strip("\n").splitlines() if frozen else []),
                  "    if weights is not None:", "        load_weights(model, weights)", "    return model"]),
                 ["def load_weights(model, weights):",
                  '    """Load dlspec\'s canonical weights (a safetensors path or a dict of arrays) into ``model``."""',
                  "    if not isinstance(weights, dict):", "        weights = read_safetensors(weights)",
                  *LOAD_WEIGHTS.strip("\n").splitlines()], READ_SAFETENSORS.strip("\n").splitlines()]
    return module_source(header(graph, "Keras"), ["json", "pathlib"] if weights_file else ["json"],
                         ["import keras", "import numpy as np"], format_lines(consts), sections)

