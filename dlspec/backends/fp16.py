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

``for_onnxruntime_cuda`` (applied by --fp16 --optimize) adds rewrites for onnxruntime's CUDA provider; see there.
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


def fuse_attention(model):
    """dlspec's attention subgraphs (no mask) as onnxruntime's fused ``com.microsoft.MultiHeadAttention``, in place.

    dlspec lowers attention as Reshape/Transpose per head, MatMul, Mul by 1/sqrt(d), Softmax, MatMul, Transpose and
    Reshape (dlspec.backends.onnx_sequence); onnxruntime's transformer optimizer does not recognise that pattern, so
    its CUDA provider ran every step as a separate kernel, the (N, heads, T, T) scores through memory. The fused
    operator takes the projected q, k and v (N, T, E) and returns the merged heads (N, T, E), computing
    softmax(q k^T * scale) v per head with onnxruntime's flash or memory-efficient kernels (float32 accumulation).
    Attention with a key-padding or causal mask keeps its lowering. Returns the number of fused layers."""
    from onnx import helper, numpy_helper

    by_output = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name: t for t in model.graph.initializer}
    fused, drop, replace = 0, set(), {}
    for softmax in [n for n in model.graph.node if n.op_type == "Softmax" and n.name.endswith("/softmax")]:
        name = softmax.name[: -len("/softmax")]
        chain = {f"{name}/{part}" for part in ("q_heads", "q_t", "k_heads", "k_t", "v_heads", "v_t", "scores",
                                                "scaled", "softmax", "mixed", "mixed_t", "merged")}
        nodes = {n.name: n for n in model.graph.node if n.name in chain or n.name.startswith(f"{name}/softmax/")}
        scaled = nodes.get(f"{name}/scaled")
        source = softmax.input[0]
        while source in by_output and by_output[source].op_type == "Cast":  # the float32 island around Softmax
            source = by_output[source].input[0]
        if not chain <= set(nodes) or scaled is None or source != scaled.output[0]:
            continue  # masked (Where/Add between the scaled scores and Softmax) or not dlspec's pattern
        shape = consts.get(nodes[f"{name}/q_heads"].input[1])
        scale = consts.get(scaled.input[1])
        if shape is None or scale is None:
            continue
        heads = int(numpy_helper.to_array(shape)[2])
        q, k, v = (nodes[f"{name}/{p}_heads"].input[0] for p in "qkv")
        merged = nodes[f"{name}/merged"]
        attention = helper.make_node("MultiHeadAttention", [q, k, v], [merged.output[0]], name=f"{name}/mha",
                                     domain="com.microsoft", num_heads=heads,
                                     scale=float(numpy_helper.to_array(scale).astype("float32")))
        drop |= set(nodes) - {merged.name}
        replace[merged.name] = attention
        fused += 1
    if fused:
        keep = [replace.get(n.name, n) for n in model.graph.node if n.name not in drop]
        replace_nodes(model.graph, keep)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


def sum_to_add(model) -> int:
    """Two-input Sum nodes (dlspec's add merges) as Add, in place: the same broadcasting arithmetic, and the
    operator onnxruntime's fusions look for (SkipLayerNormalization, Conv+Add). Returns the count."""
    count = 0
    for node in model.graph.node:
        if node.op_type == "Sum" and len(node.input) == 2:
            node.op_type = "Add"
            count += 1
    return count


def patchify(model) -> int:
    """Convolutions whose kernel equals their stride (no padding, dilation or groups) on a graph input of few
    channels (ViT's patch embedding, ConvNeXt's stem) as Reshape/Transpose/MatMul, in place.

    The same sums: y[n, o, i, j] = b[o] + sum over (c, u, v) of x[n, c, i*P+u, j*P+v] w[o, c, u, v], with the
    non-overlapping patches cut out by a reshape and a transpose. cuDNN has no tensor-core kernel for a 3-channel
    NHWC input with a fused bias and fell back to an FFMA kernel: ViT-B/16's patch embedding took 34.7 ms of
    98.8 ms at batch 256 on the H200 (torch.compile's: 1.6 ms); as a matrix product it is 0.1 ms of arithmetic.
    Returns the number of convolutions rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = {i.name: i for i in graph.input}
    casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}  # the fp16 interface casts
    nodes, added, count = [], [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        source = inputs.get(casts.get(node.input[0], node.input[0])) if node.op_type == "Conv" else None
        kernel, weight = attrs.get("kernel_shape"), inits.get(node.input[1]) if len(node.input) > 1 else None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in source.type.tensor_type.shape.dim] \
            if source is not None else []
        if (source is None or weight is None or kernel is None or len(kernel) != 2 or len(dims) != 4
                or list(attrs.get("strides", [1, 1])) != list(kernel) or any(attrs.get("pads", [0] * 4))
                or any(d != 1 for d in attrs.get("dilations", [1, 1])) or attrs.get("group", 1) != 1
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID")
                or None in dims[1:] or dims[1] > 4 or dims[2] % kernel[0] or dims[3] % kernel[1]):
            nodes.append(node)
            continue
        (_, c, h, w), (p, q) = dims, kernel
        hp, wp = h // p, w // q
        name, out = node.name or node.output[0], node.output[0]
        array = numpy_helper.to_array(weight)
        o = array.shape[0]
        matrix = numpy_helper.from_array(np.ascontiguousarray(array.reshape(o, c * p * q).T), f"{name}/patch_weight")
        shapes = {"patch_grid": [0, c, hp, p, wp, q], "patch_rows": [0, hp * wp, c * p * q],
                  "patch_out": [0, o, hp, wp]}
        added += [matrix] + [numpy_helper.from_array(np.array(v, np.int64), f"{name}/{k}") for k, v in shapes.items()]
        x = node.input[0]
        steps = [("Reshape", [x, f"{name}/patch_grid"], {}), ("Transpose", None, {"perm": [0, 2, 4, 1, 3, 5]}),
                 ("Reshape", [None, f"{name}/patch_rows"], {}), ("MatMul", [None, f"{name}/patch_weight"], {})]
        if len(node.input) > 2 and node.input[2]:
            steps.append(("Add", [None, node.input[2]], {}))
        steps += [("Transpose", None, {"perm": [0, 2, 1]}), ("Reshape", [None, f"{name}/patch_out"], {})]
        previous = None
        for i, (op, ins, kw) in enumerate(steps):
            ins = [previous if v is None else v for v in (ins or [None])]
            previous = out if i == len(steps) - 1 else f"{name}/patchify_{i}"
            nodes.append(helper.make_node(op, ins, [previous], name=f"{name}/patchify_{i}", **kw))
        count += 1
    if count:
        replace_nodes(graph, nodes, added)
    return count


def for_onnxruntime_cuda(model) -> dict:
    """The rewrites of --fp16 --optimize for onnxruntime's CUDA provider, in place: ``sum_to_add``, ``patchify``
    and ``fuse_attention`` (a ``com.microsoft`` operator: the file then needs onnxruntime, which every dlspec
    deployment path uses). Returns how many of each were made."""
    return {"add": sum_to_add(model), "patchify": patchify(model), "attention": fuse_attention(model)}

