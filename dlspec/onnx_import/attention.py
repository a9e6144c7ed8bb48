"""The self-attention that torch.onnx writes for ``nn.MultiheadAttention`` (``F.multi_head_attention_forward``),
recognised as one dlspec ``attention`` layer.

torch's exporter writes the packed in-projection as ``MatMul`` by a constant ``(E, 3E)`` and an ``Add`` of the
bias, then cuts q, k and v apart (``Reshape``/``Unsqueeze``/``Transpose``/``Squeeze`` and one ``Gather`` each, or a
``Split``/``Slice``), folds the heads into the batch axis and back (``Reshape``, ``Transpose``), scales q and k
(``Mul`` by a constant, once each or on the scores), computes ``Softmax(q k^T) v`` with two ``MatMul``, merges the
heads and applies the out-projection (``Gemm``, or ``MatMul`` and ``Add``). With ``batch_first=True`` (torchvision's
ViT) the whole is framed by ``Transpose`` perm ``[1, 0, 2]`` in and out.

The rewrite is anchored at each ``Softmax``. It walks from the scores back along q, k and v through layout and
scaling nodes until the three paths meet at one in-projection, and from ``Softmax(.) @ v`` forward through layout
nodes to the out-projection and on to the last layout node. It accepts the region only when

- every node in it is a layout node (``Reshape``, ``Transpose``, ``Squeeze``, ``Unsqueeze``, ``Gather``, ``Slice``,
  ``Split`` on constants), a scaling by a scalar constant, or one of the projections, the two products or the
  softmax; no value inside it is read from outside; the output has the input's shape;
- and the region, evaluated by onnx's reference evaluator on a random input (at the file's static shape, batch 1),
  gives what dlspec's ``attention`` gives with the weights read from it, within 1e-4 relative to max(1, |ref|).

The region then becomes one node ``attention`` of domain ``dlspec`` whose converter writes the layer. Anything else
is left alone, and its nodes are refused one by one with their own reasons.
"""

from __future__ import annotations

import numpy as np

from .graph import OnnxGraph, OnnxNode

LAYOUT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Slice", "Split", "Identity"}
SCALE = {"Mul", "Div"}


def _index(graph: OnnxGraph):
    producer = {o: n for n in graph.nodes for o in n.outputs}
    readers: dict[str, list[OnnxNode]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            readers.setdefault(i, []).append(node)
    return producer, readers


def _scalar_const(graph, name) -> bool:
    value = graph.consts.get(name)
    return value is not None and value.size == 1


def _data_input(graph, node) -> str | None:
    """The one computed input of a layout or scaling node (None when it has another computed input)."""
    computed = [i for i in node.inputs if i and i not in graph.consts]
    if len(computed) != 1 or computed[0] != node.inputs[0] and node.op not in SCALE:
        return None
    if node.op in SCALE and not all(_scalar_const(graph, i) for i in node.inputs if i != computed[0]):
        return None
    if node.op == "Div" and node.inputs[0] != computed[0]:
        return None
    return computed[0]


def _projection(graph, producer, value):
    """(matmul input, W (E_out, E_in), bias or None, nodes) when ``value`` is ``x @ W^T + b`` with constants."""
    node = producer.get(value)
    if node is None:
        return None
    bias, nodes = None, []
    if node.op == "Add":
        consts = [i for i in node.inputs if i in graph.consts]
        if len(consts) != 1 or len(node.inputs) != 2:
            return None
        bias = graph.consts[consts[0]].reshape(-1)
        nodes.append(node)
        node = producer.get(next(i for i in node.inputs if i not in graph.consts))
        if node is None or node.op != "MatMul":
            return None
    if node.op == "MatMul":
        w = graph.consts.get(node.inputs[1])
        if w is None or w.ndim != 2 or node.inputs[0] in graph.consts:
            return None
        return node.inputs[0], w.T, bias, [node, *nodes]
    if node.op == "Gemm":
        a = node.attrs
        w = graph.consts.get(node.inputs[1])
        if w is None or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return None
        w = w if a.get("transB", 0) else w.T
        if len(node.inputs) > 2 and node.inputs[2]:
            c = graph.consts.get(node.inputs[2])
            if c is None or bias is not None:
                return None
            bias = c.reshape(-1)
        return node.inputs[0], w, bias, [node, *nodes]
    return None


def _back(graph, producer, value, stop):
    """Nodes from ``value`` back through layout and scaling nodes to ``stop`` (None if it is not reached)."""
    nodes = []
    while value != stop:
        node = producer.get(value)
        if node is None or node.op not in LAYOUT | SCALE:
            return None
        nodes.append(node)
        value = _data_input(graph, node)
        if value is None:
            return None
    return nodes


def _first_projection(graph, producer, value):
    """Walk back from q's path to the first constant projection: (its output value, projection)."""
    while True:
        proj = _projection(graph, producer, value)
        if proj is not None:
            return value, proj
        node = producer.get(value)
        if node is None or node.op not in LAYOUT | SCALE:
            return None
        value = _data_input(graph, node)
        if value is None:
            return None


def _only_reader(readers, value, ops):
    rs = readers.get(value, [])
    return rs[0] if len(rs) == 1 and rs[0].op in ops else None


def match(graph: OnnxGraph, softmax: OnnxNode, producer, readers, checked: dict | None = None):
    """(region nodes, x, output value, heads, weights) for the attention around ``softmax``, or None. ``checked``
    keeps the numerical check's verdict per region structure (so 12 equal encoder layers are evaluated once)."""
    shape = graph.shapes.get(softmax.inputs[0])
    if shape is None or len(shape) < 3 or softmax.attrs.get("axis", -1) % len(shape) != len(shape) - 1:
        return None
    region, scores = [softmax], producer.get(softmax.inputs[0])
    while scores is not None and scores.op in SCALE and _data_input(graph, scores):
        region.append(scores)
        scores = producer.get(_data_input(graph, scores))
    if scores is None or scores.op != "MatMul" or any(i in graph.consts for i in scores.inputs):
        return None
    av = _only_reader(readers, softmax.outputs[0], {"MatMul"})
    if av is None or av.inputs[0] != softmax.outputs[0]:
        return None
    region += [scores, av]
    found = _first_projection(graph, producer, scores.inputs[0])
    if found is None:
        return None
    packed, (x, w_in, b_in, proj_nodes) = found
    e = w_in.shape[1]
    if w_in.shape[0] != 3 * e:
        return None
    paths = [_back(graph, producer, v, packed) for v in (scores.inputs[0], scores.inputs[1], av.inputs[1])]
    if any(p is None for p in paths):
        return None
    region += proj_nodes + [n for p in paths for n in p]
    first = producer.get(x)
    if first is not None and first.op == "Transpose" and list(first.attrs.get("perm", [])) == [1, 0, 2]:
        region.append(first)  # batch_first: (N, T, E) -> (T, N, E)
        x = first.inputs[0]
    # forward: layout nodes to the out-projection, then layout nodes to the end
    value, out_proj = av.outputs[0], None
    while out_proj is None:
        node = _only_reader(readers, value, LAYOUT | {"Gemm", "MatMul"})
        if node is None:
            return None
        if node.op in ("Gemm", "MatMul"):
            nxt = _only_reader(readers, node.outputs[0], {"Add"})
            out_proj = _projection(graph, producer, nxt.outputs[0]) if nxt is not None else None
            end = nxt.outputs[0] if out_proj is not None else node.outputs[0]
            out_proj = out_proj or _projection(graph, producer, end)
            if out_proj is None or out_proj[0] != value:
                return None
            region += out_proj[3]
            value = end
        else:
            if _data_input(graph, node) != value:
                return None
            region.append(node)
            value = node.outputs[0]
    x_shape = graph.shapes.get(x)
    while graph.shapes.get(value) != x_shape:  # back to the input's layout, and no further
        node = _only_reader(readers, value, LAYOUT - {"Gather", "Slice", "Split"})
        if node is None or _data_input(graph, node) != value:
            return None
        region.append(node)
        value = node.outputs[0]
    w_out, b_out = out_proj[1], out_proj[2]
    if x_shape is None or len(x_shape) != 3 or x_shape[2] != e or graph.shapes.get(value) != x_shape \
            or w_out.shape != (e, e) or (b_in is not None and b_in.size != 3 * e) \
            or (b_out is not None and b_out.size != e):
        return None
    unique = list({id(n): n for n in region}.values())
    inside = {o for n in unique for o in n.outputs}
    for n in unique:  # nothing inside is read from outside
        for o in n.outputs:
            if o != value and (o in graph.outputs or any(id(r) not in {id(m) for m in unique}
                                                         for r in readers.get(o, []))):
                return None
    if any(i not in inside and i != x and i not in graph.consts and i for n in unique for i in n.inputs):
        return None
    heads, rest = divmod(int(np.prod(shape[:-2])), x_shape[0])  # scores are (N, H, T, T) or (N * H, T, T)
    if rest or heads < 1 or e % heads:
        return None
    weights = {"in_proj_weight": w_in, "in_proj_bias": b_in if b_in is not None else np.zeros(3 * e, np.float32),
               "out_proj.weight": w_out, "out_proj.bias": b_out if b_out is not None else np.zeros(e, np.float32)}
    key = _signature(graph, unique, x, value)
    checked = {} if checked is None else checked
    if key not in checked:
        checked[key] = _same_numbers(graph, unique, x, value, x_shape, heads, weights)
    if not checked[key]:
        return None
    return unique, x, value, heads, weights


def attention(x, heads, weights):
    """dlspec's `attention` (torch.nn.MultiheadAttention on (x, x, x)) in numpy, float64."""
    n, t, e = x.shape
    d = e // heads
    qkv = x @ weights["in_proj_weight"].T.astype(np.float64) + weights["in_proj_bias"]
    q, k, v = (qkv[..., i * e:(i + 1) * e].reshape(n, t, heads, d).transpose(0, 2, 1, 3) for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(n, t, e)
    return o @ weights["out_proj.weight"].T.astype(np.float64) + weights["out_proj.bias"]


def _signature(graph, nodes, x, out) -> tuple:
    """The region's structure: ops, attributes and wiring, small constants by value and weights by shape only (the
    weights are read from the same places in every region of one signature)."""
    order = {id(n): k for k, n in enumerate(graph.nodes)}
    nodes = sorted(nodes, key=lambda n: order[id(n)])
    made = {o: (k, j) for k, n in enumerate(nodes) for j, o in enumerate(n.outputs)}
    sig = []
    for n in nodes:
        refs = []
        for i in n.inputs:
            c = graph.consts.get(i)
            refs.append("x" if i == x else made.get(i) if i in made else
                        (c.shape, c.dtype.str, c.tobytes() if c.size <= 64 else None) if c is not None else i)
        sig.append((n.op, repr(sorted(n.attrs.items())), tuple(refs), tuple(o == out for o in n.outputs)))
    return tuple(sig)


def _same_numbers(graph, nodes, x, out, shape, heads, weights) -> bool:
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    order = {id(n): k for k, n in enumerate(graph.nodes)}
    nodes = sorted(nodes, key=lambda n: order[id(n)])
    used = {i for n in nodes for i in n.inputs if i in graph.consts}
    onnx_nodes = [helper.make_node(n.op, n.inputs, n.outputs, name=n.name, **n.attrs) for n in nodes]
    g = helper.make_graph(onnx_nodes, "attention", [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(graph.consts[i]), i) for i in sorted(used)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", graph.opset)])
    sample = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    try:
        got = ReferenceEvaluator(model).run(None, {x: sample})[0]
    except Exception:  # the region is not what it seemed: its nodes are then refused one by one
        return False
    ref = attention(sample.astype(np.float64), heads, weights)
    return got.shape == ref.shape and float(np.max(np.abs(got - ref))) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def multihead_attention(graph: OnnxGraph) -> None:
    """Replace every recognised attention region by one ``dlspec`` ``attention`` node (see the module docstring)."""
    from .names import scope_path

    checked: dict = {}
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        producer, readers = _index(graph)
        found = match(graph, softmax, producer, readers, checked)
        if found is None:
            continue
        region, x, out, heads, weights = found
        path = scope_path(softmax.name) or softmax.name or out
        names = []
        for key, value in weights.items():
            name = f"{out}/attention/{key}"
            graph.consts[name] = np.ascontiguousarray(value, dtype=np.float32)
            names.append(name)
        drop = {id(n) for n in region}
        last = max(k for k, n in enumerate(graph.nodes) if id(n) in drop)
        sources = [f"{n.op} {n.name or n.outputs[0]}" for n in graph.nodes if id(n) in drop]
        node = OnnxNode("attention", path, [x, *names], [out], {"heads": heads, "sources": sources}, "dlspec")
        graph.nodes = [node if k == last else n for k, n in enumerate(graph.nodes) if id(n) not in drop or k == last]
