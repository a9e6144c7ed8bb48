"""Put the pieces together: convert, name, find blocks, write, and check the result validates."""

from __future__ import annotations

from .convert import convert
from .names import assign, clean
from .write import comment, flow, layer_dict, render, weights_of


def _model_name(stem: str) -> str:
    name = clean(stem, dotted=False)
    return name.replace(".", "_")


def build_spec(graph, path: str, stem: str, blocks: bool = True) -> tuple[str, dict]:
    from . import UnsupportedModel

    layers, refused, alias = convert(graph)
    inputs = {}
    for value in graph.inputs:
        shape = graph.shapes.get(value)
        kind = graph.input_types.get(value, 1)
        if kind not in (1, 7):
            from onnx import helper

            refused.setdefault(f"input: element type {helper.tensor_dtype_to_np_dtype(kind)} (dlspec's inputs are "
                               "float32 or int64)", []).append(value)
            continue
        if shape is None or len(shape) < 2:
            refused.setdefault("input: the shape is not static, or has no axis after the batch", []).append(value)
            continue
        inputs[value] = clean(value, dotted=False)
    if refused:
        raise UnsupportedModel(path, refused)
    used = set()
    for value, name in list(inputs.items()):  # distinct input names
        k, base = 2, name
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        inputs[value] = name
    assign(layers, used)
    names = dict(inputs)
    names.update({layer.output: layer.name for layer in layers})
    outputs = []
    from .convert import _resolve

    for o in graph.outputs:
        value = _resolve(alias, o)
        if value not in names or value in inputs:
            raise UnsupportedModel(path, {"output: it is a model input or a constant": [o]})
        outputs.append(names[value])
    body_layers = layers
    block_text = None
    if blocks:
        from .blocks import find_blocks

        body, block_text = find_blocks(layers, names, set(inputs), {_resolve(alias, o) for o in graph.outputs})
    else:
        body, previous = [], None
        for layer in body_layers:
            body.append(f"  - {flow(layer_dict(layer, previous, names))}{comment(layer.source)}")
            previous = layer.name
    last = layers[-1].name if layers else None
    spec_outputs = None if outputs == [last] else outputs
    shapes = {inputs[v]: {"shape": list(graph.shapes[v][1:]), **({"dtype": "int64"} if graph.input_types.get(v) == 7
                                                                 else {})} for v in graph.inputs}
    description = f"Imported from {stem}.onnx" + (f" (written by {graph.producer})" if graph.producer else "") + \
        f", opset {graph.opset}, by dlspec import."
    text = render(_model_name(stem), description, shapes, body, spec_outputs, block_text)
    weights = weights_of(layers)
    from ..api import loads
    from ..weights import check_weights

    model = loads(text, f"{stem}.yaml")
    check_weights(weights, model, f"{stem}.safetensors")
    return text, weights
