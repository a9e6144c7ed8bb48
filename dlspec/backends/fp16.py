"""Half-precision ONNX: fp16 weights and compute, with fp32 where accuracy needs it.

Finite float32 constants beyond float16's range saturate at +-65504.
Kept in fp32: BatchNormalization (statistics and arithmetic), LayerNormalization's statistics
(stash_type 1), and whole operations whose accumulation loses accuracy in fp16: InstanceNormalization
(GroupNorm), the recurrent layers, and reductions.
Softmax and Erf run in float16 (since 2026-12-01): onnxruntime's CUDA kernels compute them in float32 inside
(Softmax accumulates in float; Erf evaluates in float) and only read and write float16, so the float32 island
cost two Cast kernels and a float32 round trip per call for no accuracy (measured on the H200: ViT-B/16 and
ConvNeXt-T agree with the float32 reference exactly as before, 1.2e-3 and 8.2e-4), and it kept onnxruntime
from fusing GELU (BiasGelu). Likewise LayerNormalization reads and writes float16 and accumulates in float32.
The model's inputs and outputs stay fp32, so callers feed and read the same arrays as before.

The rewrites --fp16 --optimize adds for onnxruntime's CUDA provider are in ``dlspec.backends.cuda_rewrites``.
"""

from __future__ import annotations

# BatchNormalization runs in float32 too: onnxruntime's CUDA kernel needs one type for all its inputs, and
# an optimised export (--optimize) folds it into the convolution before the conversion anyway.
FP32_OPS = {"InstanceNormalization", "LSTM", "GRU", "ReduceMean", "GlobalAveragePool", "BatchNormalization"}
FP32_INPUTS = {"Resize": {1, 2}}
# float32 operations whose weights are stored in float16 all the same and cast when read: the recurrent layers'
# W, R and B (their lowering's re-layout is folded into initializers, which would otherwise stay float32)
HALF_STORED = {"LSTM", "GRU"}


def to_fp16(model):
    """A copy of ``model`` computing in float16 (see the module docstring for what stays float32)."""
    import copy

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    floats = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    keep32 = set()  # float32 initializers read by float32 operations
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in floats and node.op_type not in HALF_STORED and \
                    (node.op_type in FP32_OPS or i in FP32_INPUTS.get(node.op_type, ())):
                keep32.add(name)
    constants = {t.name for t in graph.initializer}
    inits = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep32:
            # finite constants beyond float16's range saturate (attention's lowest-float32 mask value becomes
            # -65504, not -inf, so an all-padding query still gets uniform weights, not NaN)
            array = numpy_helper.to_array(init)
            big = np.isfinite(array) & (np.abs(array) > np.finfo(np.float16).max)
            array = np.where(big, np.sign(array) * np.finfo(np.float16).max, array)
            init = numpy_helper.from_array(array.astype(np.float16), init.name)
        inits.append(init)
    graph.ClearField("initializer")
    graph.initializer.extend(inits)
    nodes = []
    for inp in graph.input:  # fp32 interface, fp16 inside
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", [inp.name], [f"{inp.name}/fp16"], name=f"{inp.name}/to_fp16",
                                          to=TensorProto.FLOAT16))
    renamed = {i.name: f"{i.name}/fp16" for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
        if node.op_type in FP32_OPS:
            for i, name in enumerate(node.input):
                half_weight = node.op_type in HALF_STORED and name in floats
                if name and (name not in constants or half_weight):  # float16 in: compute this op in float32
                    cast = f"{name}/fp32"
                    nodes.append(helper.make_node("Cast", [name], [cast], name=f"{node.name}/in{i}_fp32",
                                                  to=TensorProto.FLOAT))
                    node.input[i] = cast
            outputs = list(node.output)
            for i, name in enumerate(outputs):
                if name:
                    node.output[i] = f"{name}/fp32_out"
            nodes.append(node)
            for name in outputs:
                if name:
                    nodes.append(helper.make_node("Cast", [f"{name}/fp32_out"], [name], name=f"{name}/to_fp16",
                                                  to=TensorProto.FLOAT16))
            continue
        nodes.append(node)
    for out in graph.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            for node in nodes:
                for i, name in enumerate(node.output):
                    if name == out.name:
                        node.output[i] = f"{out.name}/fp16"
            for node in nodes:
                for i, name in enumerate(node.input):
                    if name == out.name:
                        node.input[i] = f"{out.name}/fp16"
            nodes.append(helper.make_node("Cast", [f"{out.name}/fp16"], [out.name], name=f"{out.name}/to_fp32",
                                          to=TensorProto.FLOAT))
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.doc_string += " (float16 compute)"
    return model


def replace_nodes(graph, nodes, added=()) -> None:
    """Give ``graph`` the node list ``nodes`` and the new initializers ``added``, dropping initializers that no
    node reads any more (a rewrite's replaced constants)."""
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
