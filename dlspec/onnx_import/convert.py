"""ONNX graph -> layer records: each node through its converter, then the exporters' patterns folded back into
single layers (see :data:`PASSES`)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from . import ops_tensor, ops_vision  # noqa: F401  (their converters register themselves in CONVERTERS)
from .graph import OnnxGraph
from .layers import Layer, Refused
from .ops import CONVERTERS


class Context:
    """What converters may ask about the graph."""

    def __init__(self, graph: OnnxGraph):
        self.graph, self.opset = graph, graph.opset
        self.readers = Counter(i for n in graph.nodes for i in n.inputs) + Counter(graph.outputs)
        self.reader_nodes: dict = {}
        for n in graph.nodes:
            for i in dict.fromkeys(n.inputs):
                self.reader_nodes.setdefault(i, []).append(n)

    def const(self, name: str):
        return self.graph.consts.get(name)

    def shape(self, name: str):
        return self.graph.shapes.get(name)

    def origin(self, name: str) -> str:
        """The initializer that constant ``name`` is, or was folded from by reshaping or expanding ("" if none)."""
        if name in self.graph.initializer_names:
            return name
        return self.graph.origins.get(name, "")

    def used(self, name: str) -> bool:
        return self.readers[name] > 0


def convert(graph: OnnxGraph) -> tuple[list[Layer], dict[str, list[str]], dict[str, str]]:
    """(layers, refusals {reason line: node names}, aliases {onnx value: value it equals})."""
    from .patterns import REWRITES

    for rewrite in REWRITES:
        rewrite(graph)
    ctx = Context(graph)
    layers, refused, alias = [], {}, {}
    for node in graph.nodes:
        fn = CONVERTERS.get(node.op if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op}")
        label = node.name or node.outputs[0]
        if fn is None:
            refused.setdefault(f"{node.op}: no dlspec layer for this op", []).append(label)
            continue
        try:
            made = fn(node, ctx)
        except Refused as err:
            refused.setdefault(f"{node.op}: {err.reason}", []).append(label)
            continue
        if not made:
            alias[node.outputs[0]] = node.inputs[0]
        layers.extend(made)
    for layer in layers:
        layer.inputs = [_resolve(alias, i) for i in layer.inputs]
    for p in PASSES:
        layers = p(layers, graph, alias)
    return layers, refused, alias


def _resolve(alias: dict, name: str) -> str:
    while name in alias:
        name = alias[name]
    return name


def _readers(layers, graph, alias) -> Counter:
    count = Counter(i for layer in layers for i in layer.inputs)
    count.update(_resolve(alias, o) for o in graph.outputs)
    return count


def _producers(layers) -> dict:
    return {layer.output: layer for layer in layers}


def _per_channel(value: np.ndarray, channels: int, rank: int):
    """``value`` as (C,) when it broadcasts along the channel axis only of a rank-``rank`` sample."""
    if value.ndim == 0 or value.ndim > rank or value.size not in (1, channels):
        return None
    if value.size == 1:
        return np.full(channels, value.reshape(-1)[0], np.float32)
    if value.ndim == rank and value.shape[0] == channels:
        return value.reshape(channels)
    if value.ndim == 1 and rank == 1:
        return value
    return None


def _fold_affine(layers, graph, alias):
    """A multiply or add of a per-channel constant right after a batchnorm (Caffe's BatchNorm + Scale, written as
    Mul and Add with Unsqueeze), or an add of a bias after a dense without one (MatMul + Add), becomes part of
    that layer."""
    readers = _readers(layers, graph, alias)
    prod = _producers(layers)
    out, dropped = [], set()
    for layer in layers:
        if layer.type in ("multiply", "add") and len(layer.inputs) == 2:
            params = [prod.get(i) for i in layer.inputs]
            k = next((j for j, p in enumerate(params) if p is not None and p.type == "parameter"), None)
            if k is not None:
                target = prod.get(layer.inputs[1 - k])
                value = params[k].weights[""]
                if target is not None and readers[target.output] == 1 and _absorb(target, layer.type, value, graph):
                    target.source += layer.source
                    alias[layer.output] = target.output
                    dropped.add(params[k].output)
                    continue
        out.append(layer)
    return [layer for layer in out if layer.output not in dropped]


def _absorb(target: Layer, kind: str, value: np.ndarray, graph) -> bool:
    shape = graph.shapes.get(target.output)
    if shape is None:
        return False
    channels, rank = shape[1], len(shape) - 1
    if target.type == "batchnorm":
        v = _per_channel(value, channels, rank)
        if v is None:
            return False
        if kind == "multiply":
            target.weights["weight"] = target.weights["weight"] * v
            target.weights["bias"] = target.weights["bias"] * v
        else:
            target.weights["bias"] = target.weights["bias"] + v
        return True
    if target.type == "dense" and kind == "add" and "bias" not in target.weights and target.attrs.get(
            "activation", "linear") == "linear":
        units = target.attrs["units"]
        if value.size in (1, units) and (value.ndim <= 1 or value.shape[-1] == units or value.size == 1) \
                and all(d == 1 for d in value.shape[:-1]):
            target.weights["bias"] = np.broadcast_to(value.reshape(-1), (units,)).astype(np.float32).copy()
            del target.attrs["use_bias"]
            return True
    return False


FUSABLE = {"relu", "relu6", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "silu", "hardswish", "hardsigmoid",
           "mish", "softplus"}


def _fuse_activations(layers, graph, alias):
    """An activation right after a convolution or dense (its only reader) becomes that layer's `activation:`."""
    readers = _readers(layers, graph, alias)
    prod = _producers(layers)
    out = []
    for layer in layers:
        softmax = layer.type == "activation" and layer.attrs["activation"] == "softmax" and \
            layer.attrs.get("axis") == -1  # fused on a dense, softmax is over its units
        if layer.type == "activation" and (layer.attrs["activation"] in FUSABLE and len(layer.attrs) == 1 or softmax):
            target = prod.get(layer.inputs[0])
            kinds = ("dense",) if softmax else ("conv1d", "conv2d", "dense")
            if target is not None and target.type in kinds and readers[target.output] == 1 \
                    and target.attrs.get("activation", "linear") == "linear" \
                    and _resolve(alias, target.output) not in {_resolve(alias, o) for o in graph.outputs}:
                target.attrs["activation"] = layer.attrs["activation"]
                target.source += layer.source
                alias[layer.output] = target.output
                continue
        out.append(layer)
    return out


def _reresolve(layers, graph, alias):
    for layer in layers:
        layer.inputs = [_resolve(alias, i) for i in layer.inputs]
    return layers


PASSES = [_fold_affine, _reresolve, _fold_affine, _reresolve, _fuse_activations, _reresolve]
