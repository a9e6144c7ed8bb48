"""Rewrites of the --fp16 --optimize export for onnxruntime's CUDA provider: the same function, in operators and
shapes for which onnxruntime and cuDNN have fast kernels. Each was measured on an H200 (docs/performance.md)."""

from __future__ import annotations

from .fp16 import replace_nodes


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
        _use_microsoft_domain(model)
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
    inits, sources = {t.name: t for t in graph.initializer}, _input_dims(graph)
    nodes, added, count = [], [], 0
    for node in graph.node:
        attrs = _attrs(node)
        dims = sources.get(node.input[0], []) if node.op_type == "Conv" else []
        kernel, weight = attrs.get("kernel_shape"), inits.get(node.input[1]) if len(node.input) > 1 else None
        if (weight is None or kernel is None or len(kernel) != 2 or len(dims) != 4
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


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _input_dims(graph) -> dict:
    """The static dims (None where symbolic) of each graph input, also under the name of its fp16 interface Cast."""
    dims = {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in graph.input}
    dims.update({n.output[0]: dims[n.input[0]] for n in graph.node if n.op_type == "Cast" and n.input[0] in dims})
    return dims


def _taps(kernel: int, begin: int, size: int, out: int):
    """For one axis of a stride-2 convolution as a stride-1 one over pairs: (first pair offset, new kernel,
    new end padding), or None when the stride-1 form would need a negative padding."""
    first, last = -((begin + 1) // 2), (kernel - 1 - begin) // 2  # floor((t - begin) / 2) over the taps
    new_kernel = last - first + 1
    end = out - size // 2 + first + new_kernel - 1
    return (first, new_kernel, end) if end >= 0 else None


def space_to_depth_stem(model) -> int:
    """A stride-2 convolution on a model input of at most 4 channels (ResNet's 7x7 stem) as a stride-1
    convolution over 2x2 pixel blocks moved into channels, in place: the same sums.

    With y[o, i] = sum over (c, t) of w[o, c, t] x[c, 2i + t - p] per axis, write 2i + t - p = 2(i + q) + r
    (r in {0, 1}): the input becomes x'[c*4 + 2*ry + rx, i, j] = x[c, 2i + ry, 2j + rx] (a Reshape and a
    Transpose), and w'[o, c*4 + 2*ry + rx, qy - q0, qx - q0] = w[o, c, 2*qy + ry + p, 2*qx + rx + p], zero where
    that tap is outside the kernel. ResNet-50's 7x7 stride-2 convolution on 3 channels becomes a 4x4 stride-1
    one on 12; cuDNN had only an FFMA kernel for the 3-channel form in NHWC half precision (3.3 ms of 14.8 ms at
    batch 256 on the H200, torch.compile's 0.4 ms). The transpose writes the blocks channels-last and the
    convolution reads them back through a Transpose to NCHW, which onnxruntime's NHWC layout pass cancels with
    the one it inserts, so the input is transposed once, as before. Returns the number of convolutions
    rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits, sources = {t.name: t for t in graph.initializer}, _input_dims(graph)
    nodes, added, count = [], [], 0
    for node in graph.node:
        plan = _stem_plan(sources.get(node.input[0]), node, inits) if node.op_type == "Conv" else None
        if plan is None:
            nodes.append(node)
            continue
        (c, h, w), weight, pads_y, pads_x = plan
        name = node.name or node.output[0]
        added += [numpy_helper.from_array(weight, f"{name}/blocks_weight"),
                  numpy_helper.from_array(np.array([0, c, h // 2, 2, w // 2, 2], np.int64), f"{name}/blocks_grid"),
                  numpy_helper.from_array(np.array([0, h // 2, w // 2, 4 * c], np.int64), f"{name}/blocks_nhwc")]
        x = node.input[0]
        nodes += [helper.make_node("Reshape", [x, f"{name}/blocks_grid"], [f"{name}/blocks_0"],
                                   name=f"{name}/blocks_0"),
                  helper.make_node("Transpose", [f"{name}/blocks_0"], [f"{name}/blocks_1"], name=f"{name}/blocks_1",
                                   perm=[0, 2, 4, 1, 3, 5]),
                  helper.make_node("Reshape", [f"{name}/blocks_1", f"{name}/blocks_nhwc"], [f"{name}/blocks_2"],
                                   name=f"{name}/blocks_2"),
                  helper.make_node("Transpose", [f"{name}/blocks_2"], [f"{name}/blocks"], name=f"{name}/blocks",
                                   perm=[0, 3, 1, 2])]
        bias = [node.input[2]] if len(node.input) > 2 and node.input[2] else []
        nodes.append(helper.make_node("Conv", [f"{name}/blocks", f"{name}/blocks_weight", *bias], list(node.output),
                                      name=node.name, kernel_shape=list(weight.shape[2:]), strides=[1, 1],
                                      pads=[pads_y[0], pads_x[0], pads_y[1], pads_x[1]]))
        count += 1
    if count:
        replace_nodes(graph, nodes, added)
    return count


def _stem_plan(dims, node, inits):
    """((c, h, w), the blocks' weights, (begin, end) padding per axis) for a convolution on a model input of
    ``dims`` that ``space_to_depth_stem`` takes, else None."""
    import numpy as np
    from onnx import numpy_helper

    attrs = _attrs(node)
    weight = inits.get(node.input[1]) if len(node.input) > 1 else None
    kernel, pads = attrs.get("kernel_shape"), list(attrs.get("pads", [0, 0, 0, 0]))
    if (weight is None or dims is None or len(dims) != 4 or None in dims[1:] or kernel is None or len(kernel) != 2
            or list(attrs.get("strides", [1, 1])) != [2, 2] or attrs.get("group", 1) != 1
            or any(d != 1 for d in attrs.get("dilations", [1, 1])) or len(pads) != 4
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or dims[1] > 4 or dims[2] % 2 or dims[3] % 2):
        return None
    _, c, h, w = dims
    outs = [(size + pads[a] + pads[a + 2] - kernel[a]) // 2 + 1 for a, size in enumerate((h, w))]
    axes = [_taps(kernel[a], pads[a], size, outs[a]) for a, size in enumerate((h, w))]
    if None in axes:
        return None
    array = numpy_helper.to_array(weight)
    (fy, ky, _), (fx, kx, _) = axes
    blocks = np.zeros((array.shape[0], c, 2, 2, ky, kx), array.dtype)
    for ry in range(2):
        for rx in range(2):
            for qy in range(ky):
                for qx in range(kx):
                    ty, tx = 2 * (qy + fy) + ry + pads[0], 2 * (qx + fx) + rx + pads[1]
                    if 0 <= ty < kernel[0] and 0 <= tx < kernel[1]:
                        blocks[:, :, ry, rx, qy, qx] = array[:, :, ty, tx]
    weight = blocks.reshape(array.shape[0], 4 * c, ky, kx)
    return (c, h, w), weight, (-fy, axes[0][2]), (-fx, axes[1][2])


def _consumers(graph) -> dict:
    """For each value, the nodes that read it; graph outputs count as one reader each (None)."""
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for out in graph.output:
        readers.setdefault(out.name, []).append(None)
    return readers


def _through_identity(name, by_output, readers):
    """The value behind a chain of single-reader Identity nodes (dropout in inference), and those nodes."""
    passed = []
    while name in by_output and by_output[name].op_type == "Identity" and len(readers.get(name, [])) == 1:
        passed.append(by_output[name])
        name = by_output[name].input[0]
    return name, passed


def fuse_skip_layernorm(model) -> int:
    """A residual sum followed by LayerNormalization over its last axis as onnxruntime's
    ``com.microsoft.SkipLayerNormalization``, in place: y = LayerNorm(a + b + bias), and the sum itself where
    other nodes read it (the pre-norm residual stream of ViT). ``bias`` is the 1-D bias of a projection whose
    Add feeds only the sum (looked for through dropout's Identity). The same function; onnxruntime adds in float32
    and rounds once where the separate Adds rounded to float16 twice. One kernel instead of three: ViT-B/16 ran 60
    bias Adds, 24 residual Adds and 25 LayerNorms as separate kernels (docs/performance.md). Only sums of two
    values of the same rank-2 or rank-3 shape qualify (the operator's rule). Returns the number fused."""
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    shapes = _value_shapes(shape_inference.infer_shapes(model, strict_mode=False).graph)
    inits = {t.name: t for t in graph.initializer}
    by_output = {o: n for n in graph.node for o in n.output}
    readers = _consumers(graph)
    drop, replace = set(), {}
    for norm in [n for n in graph.node if n.op_type == "LayerNormalization"]:
        attrs = _attrs(norm)
        total, between = _through_identity(norm.input[0], by_output, readers)
        add = by_output.get(total)
        if (add is None or add.op_type not in ("Add", "Sum") or len(add.input) != 2 or len(norm.input) < 2
                or norm.input[1] not in inits):
            continue
        rank = len(shapes.get(total) or [])
        if attrs.get("axis", -1) not in (-1, rank - 1) or rank not in (2, 3) or id(add) in replace or id(add) in drop:
            continue
        a, b = add.input
        if (a in inits or b in inits or None in (shapes.get(a) or [None]) or shapes.get(a) != shapes.get(b)
                or shapes.get(a) != shapes.get(total)):
            continue
        width = int(numpy_helper.to_array(inits[norm.input[1]]).size)
        source, bias, absorbed = _biased(a, by_output, readers, inits, width)
        if bias is None:
            (source, bias, absorbed), b = _biased(b, by_output, readers, inits, width), a
        inputs = [source, b, *norm.input[1:3]] + ([bias] if bias else [])
        if len(norm.input) < 3:
            inputs.insert(3, "")
        shared = [r for r in readers.get(total, []) if r is not norm and r not in between]
        outputs = [norm.output[0]] + (["", "", total] if shared else [])
        # at the sum's place: its inputs exist there and every reader of the sum comes later
        replace[id(add)] = helper.make_node("SkipLayerNormalization", inputs, outputs, name=norm.name,
                                            domain="com.microsoft", epsilon=float(attrs.get("epsilon", 1e-5)))
        drop |= {id(norm)} | {id(n) for n in between + absorbed}
    if replace:
        nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
        replace_nodes(graph, nodes)
        _use_microsoft_domain(model)
    return len(replace)


def _biased(name, by_output, readers, inits, width):
    """(the value, bias initializer name, nodes absorbed) where ``name`` is ``value + bias`` for a 1-D bias of
    ``width`` read by nothing else, else (name, None, [])."""
    from onnx import numpy_helper

    if len(readers.get(name, [])) != 1:
        return name, None, []
    inner, between = _through_identity(name, by_output, readers)
    add = by_output.get(inner)
    if add is None or add.op_type != "Add" or len(readers.get(inner, [])) != 1:
        return name, None, []
    for value, bias in (add.input, reversed(add.input)):
        if bias in inits and value not in inits and numpy_helper.to_array(inits[bias]).shape == (width,):
            return value, bias, [add] + between
    return name, None, []


def _value_shapes(graph) -> dict:
    """Each value's dims from shape inference (symbolic names where not static), or None where unknown."""
    shapes = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        if info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param or None
                                 for d in info.type.tensor_type.shape.dim]
    return shapes


def attention_bias(model) -> int:
    """The biases of the three input projections of each fused attention (q, k and v: MatMul then bias Add each)
    handed to ``MultiHeadAttention`` as its ``bias`` input, in place: the same sums, without three bias kernels
    over the projected tokens. Measured against the one MatMul with the weights side by side and a
    Split (ViT-B/16 on the H200): 1.06x at batch 256 (onnxruntime's Split ran 2.1 ms for 232 MB), batch 1 as a
    CUDA graph 0.695 against 0.680 ms. Returns the number of attention layers changed."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    by_output = {o: n for n in graph.node for o in n.output}
    readers = _consumers(graph)
    drop, added, count = set(), [], 0
    for mha in graph.node:
        if mha.op_type != "MultiHeadAttention" or len(mha.input) != 3:
            continue
        parts = [_projection(v, by_output, readers, inits) for v in mha.input]
        if None in parts:
            continue
        name = mha.name[: -len("/mha")] if mha.name.endswith("/mha") else mha.name
        biases = [numpy_helper.to_array(inits[b]) for _, _, b in parts]
        added.append(numpy_helper.from_array(np.concatenate(biases), f"{name}/qkv_bias"))
        del mha.input[:]
        mha.input.extend([m.output[0] for m, _, _ in parts] + [f"{name}/qkv_bias"])
        drop |= {id(add) for _, add, _ in parts}
        count += 1
    if count:
        replace_nodes(graph, [n for n in graph.node if id(n) not in drop], added)
    return count


def _projection(name, by_output, readers, inits):
    """(MatMul, Add, bias name) where ``name`` is MatMul(x, W) + b with a 2-D W and 1-D b, each read once."""
    from onnx import numpy_helper

    add = by_output.get(name)
    if add is None or add.op_type != "Add" or len(readers.get(name, [])) != 1:
        return None
    for value, bias in (add.input, reversed(add.input)):
        matmul = by_output.get(value)
        if (matmul is not None and matmul.op_type == "MatMul" and matmul.input[1] in inits and bias in inits
                and len(readers.get(value, [])) == 1 and len(inits[matmul.input[1]].dims) == 2
                and numpy_helper.to_array(inits[bias]).shape == (inits[matmul.input[1]].dims[1],)):
            return matmul, add, bias
    return None


def _use_microsoft_domain(model) -> None:
    from onnx import helper

    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def for_onnxruntime_cuda(model) -> dict:
    """The rewrites of --fp16 --optimize for onnxruntime's CUDA provider, in place: ``sum_to_add``, ``patchify``,
    ``space_to_depth_stem``, ``fuse_skip_layernorm``, ``fuse_attention`` and ``attention_bias`` (the fused
    ones are ``com.microsoft`` operators: the file then needs onnxruntime, which every dlspec deployment path
    uses; its CPU provider runs them too). Returns how many of each were made."""
    return {"add": sum_to_add(model), "patchify": patchify(model), "stem": space_to_depth_stem(model),
            "skip_layernorm": fuse_skip_layernorm(model), "attention": fuse_attention(model),
            "attention_bias": attention_bias(model)}

