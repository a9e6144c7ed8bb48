"""Offline graph optimisation for deployment: fusions done once when the file is written, so that it
loads fast and runs the same everywhere. Inference-only: BatchNorm becomes part of the convolution."""

from __future__ import annotations


def fold_batchnorm(model):
    """Fold each BatchNormalization that is the only reader of a Conv's output into that Conv:
    w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta, computed in float64."""
    import copy

    import numpy as np
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    producers = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    removed, replaced = set(), {}
    for bn in graph.node:
        if bn.op_type != "BatchNormalization":
            continue
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or readers[bn.input[0]] != 1 or bn.input[0] in outputs:
            continue
        if not all(n in inits for n in bn.input[1:5]) or conv.input[1] not in inits:
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and \
            conv.input[2] else np.zeros(w.shape[0])
        factor = gamma / np.sqrt(var + eps)
        w_name, b_name = f"{conv.name}/folded_weight", f"{conv.name}/folded_bias"
        replaced[w_name] = numpy_helper.from_array((w * factor.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32),
                                                   w_name)
        replaced[b_name] = numpy_helper.from_array(((b - mean) * factor + beta).astype(np.float32), b_name)
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        conv.output[0] = bn.output[0]
        conv.name = f"{conv.name}+{bn.name}"
        removed.add(id(bn))
    kept = [n for n in graph.node if id(n) not in removed]
    used = {name for n in kept for name in n.input}
    graph.ClearField("node")
    graph.node.extend(kept)
    new_inits = [t for t in inits.values() if t.name in used] + [t for t in replaced.values()]
    graph.ClearField("initializer")
    graph.initializer.extend(new_inits)
    return model
