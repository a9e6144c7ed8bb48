"""Where onnxruntime's time goes on a GPU, and what each export lever buys (issue 13).

  python bench/gpu_levers.py profile MODEL [--batch 256]   per-kernel profile: onnxruntime (dlspec's --fp16
      --optimize export, IO binding) and torch.compile (default mode, model.half(), channels-last), every CUDA
      kernel recorded by CUPTI through torch.profiler, grouped by class; plus onnxruntime's own profile
      (enable_profiling: per-operator host times) and the operators of onnxruntime's optimized graph.
  python bench/gpu_levers.py variants MODEL [--batch 256]  the fp16 export with operators moved from float32 to
      float16 (Erf, Softmax, reductions), Sum -> Add, onnxruntime's transformer optimizer; each variant's
      throughput (ratio to the current export in the same run) and its error against the float32 CPU reference.

Figures go to stdout and, as JSON, to $OUT (or ./gpu-logs). Run on the GPU machine from the repository root with
onnxruntime-gpu on PYTHONPATH (see bench/gpu_zoo.sh).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(os.environ.get("OUT") or ROOT / "gpu-logs")

CLASSES = [  # (class, pattern on the lower-cased kernel name), first match wins
    ("attention (fused)", r"fmha|flash|attention|sdpa|mha"),
    ("convolution", r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd|nhwc.*kernel.*cudnn|cudnn"),
    ("matmul (gemm)", r"gemm|cutlass|cublas|matmul|xmma|sm90_|sm80_|ampere_|hopper"),
    ("layout transpose", r"transpose|nchwtonhwc|nhwctonchw|permute"),
    ("softmax", r"softmax"),
    ("layernorm", r"layer_?norm|layernormalization|skiplayernorm"),
    ("cast", r"cast"),
    ("triton fused reduction", r"^triton_(red|per)_"),
    ("triton fused pointwise", r"^triton_poi_"),
    ("triton other", r"^triton"),
    ("reduction / pooling", r"reduce|pool|mean|sum"),
    ("elementwise", r"elementwise|binary|unary|erf|gelu|add|mul|div|relu|tanh|where|_impl|vectorized"),
    ("copy / memset", r"memcpy|memset|copy"),
]


def kernel_class(name: str) -> str:
    low = name.lower()
    return next((c for c, pattern in CLASSES if re.search(pattern, low)), "other")


def cupti_kernels(step, sync, runs: int) -> dict:
    """{kernel name: (total microseconds, calls)} for ``runs`` calls of ``step``, from torch.profiler (CUPTI)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if not torch.cuda.is_available():  # a smoke test on the CPU
        return {}
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            step()
        sync()
    kernels = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            k = kernels[e.name]
            k[0] += e.device_time if hasattr(e, "device_time") else e.cuda_time
            k[1] += 1
    return {k: tuple(v) for k, v in kernels.items()}


def summarise(kernels: dict, runs: int, wall_ms: float) -> dict:
    by_class = collections.defaultdict(float)
    for name, (us, _) in kernels.items():
        by_class[kernel_class(name)] += us / runs / 1e3
    total = sum(by_class.values()) or float("nan")
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:25]
    return {"wall_ms": wall_ms, "kernel_ms": total, "kernels_per_run": sum(c for _, c in kernels.values()) / runs,
            "classes": dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
            "top": [(name[:110], us / runs / 1e3, calls / runs, kernel_class(name)) for name, (us, calls) in top]}


def print_summary(title: str, s: dict) -> None:
    print(f"\n== {title}: {s['wall_ms']:.2f} ms per run (wall), {s['kernel_ms']:.2f} ms in kernels, "
          f"{s['kernels_per_run']:.0f} kernels per run")
    for cls, ms in s["classes"].items():
        print(f"   {cls:<26} {ms:8.3f} ms {ms / s['kernel_ms']:6.1%}")
    print("   top kernels (ms per run, calls per run):")
    for name, ms, calls, cls in s["top"][:15]:
        print(f"     {ms:8.3f} {calls:5.0f}  [{cls}] {name}")


def median_ms(step, sync, iterations: int = 20, warmup: int = 5) -> float:
    from dlspec.compare import time_steps

    return statistics.median(time_steps(step, sync, iterations, warmup)) * 1e3


def ort_session(proto, *, profile_prefix=None, optimized_path=None, level=None, options=None, provider="cuda",
                batch=None, matmul_add=False):
    from dlspec.deploy import FIXED_BATCH_OFF, _ort, batch_dims, providers_for

    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = 4
    for name in batch_dims(proto) if batch else ():  # as dlspec.deploy.session(..., batch=) does for CUDA graphs
        so.add_free_dimension_override_by_name(name, batch)
    if profile_prefix:
        so.enable_profiling, so.profile_file_prefix = True, str(profile_prefix)
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    if level is not None:
        so.graph_optimization_level = level
    source = proto if isinstance(proto, (str, bytes)) else proto.SerializeToString()
    # as dlspec.deploy.session does with a fixed batch, unless asked (matmul_add) to measure the fusion itself
    disabled = {"disabled_optimizers": FIXED_BATCH_OFF} if batch and not matmul_add else {}
    return ort.InferenceSession(source, so, providers=providers_for(provider, None, options, proto), **disabled)


def ort_step(sess, inputs: list):
    from dlspec.deploy import _ort

    ort = _ort()
    device = "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    binding = sess.io_binding()
    for meta, x in zip(sess.get_inputs(), inputs):
        x = x.astype("float16") if meta.type == "tensor(float16)" else x
        binding.bind_ortvalue_input(meta.name, ort.OrtValue.ortvalue_from_numpy(x, device, 0))
    for meta in sess.get_outputs():
        binding.bind_output(meta.name, device)

    def step():
        sess.run_with_iobinding(binding)

    return step, binding.synchronize_outputs


def op_counts(path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return dict(collections.Counter(f"{n.domain + ':' if n.domain else ''}{n.op_type}" for n in model.graph.node)
                .most_common())


def ort_node_profile(path: str, runs: int) -> dict:
    """onnxruntime's own profile: per operator type, host-side ms per run (kernel launches on CUDA)."""
    events = json.loads(Path(path).read_text())
    by_op = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            by_op[e.get("args", {}).get("op_name", "?")] += e["dur"] / 1e3
    return {k: v / runs for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}


def load(name: str):
    import dlspec

    model = dlspec.load(ROOT / "specs" / f"{name}.yaml")
    return model, dlspec.init_weights(model, 0)


def cmd_profile(args) -> dict:
    import numpy as np
    import torch

    import dlspec
    from dlspec.compare import _inputs, _torch_inputs, _torch_model

    model, weights = load(args.model)
    inputs = _inputs(model, args.batch, 0)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {"model": args.model, "batch": args.batch, "gpu": gpu}
    runs = args.runs
    work = Path(tempfile.mkdtemp())
    half = dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    sess = ort_session(half, optimized_path=work / "optimized.onnx")
    result["ort_optimized_ops"] = op_counts(work / "optimized.onnx")
    step, sync = ort_step(sess, inputs)
    wall = median_ms(step, sync)
    result["onnxruntime"] = summarise(cupti_kernels(step, sync, runs), runs, wall)
    print_summary(f"{args.model} b{args.batch} onnxruntime fp16 (CUDA EP)", result["onnxruntime"])
    print("   onnxruntime optimized graph:", result["ort_optimized_ops"])
    prof = ort_session(half, profile_prefix=work / "ort")
    pstep, psync = ort_step(prof, inputs)
    for _ in range(3):
        pstep()
    psync()
    for _ in range(runs):
        pstep()
        psync()
    result["ort_node_profile_ms"] = ort_node_profile(prof.end_profiling(), runs + 3)
    print("   onnxruntime enable_profiling, host ms per run by operator:",
          {k: round(v, 3) for k, v in list(result["ort_node_profile_ms"].items())[:12]})
    del sess, prof
    if not args.no_compile:
        net, images = _torch_model(model, weights, "cuda", True)
        fn = torch.compile(net)
        targs = _torch_inputs(inputs, "cuda", True, images)

        def tstep():
            with torch.inference_mode():
                fn(*targs)

        tsync = torch.cuda.synchronize
        start = time.perf_counter()
        tstep()
        tsync()
        result["compile_s"] = time.perf_counter() - start
        wall = median_ms(tstep, tsync)
        result["torch.compile"] = summarise(cupti_kernels(tstep, tsync, runs), runs, wall)
        print_summary(f"{args.model} b{args.batch} torch.compile fp16", result["torch.compile"])
        a, b = result["onnxruntime"], result["torch.compile"]
        print(f"\n== {args.model}: onnxruntime / torch.compile wall {b['wall_ms'] / a['wall_ms']:.2f}x throughput; "
              "gap by class (ms per run, onnxruntime - torch.compile):")
        for cls in sorted(set(a["classes"]) | set(b["classes"]), key=lambda c: -abs(
                a["classes"].get(c, 0) - b["classes"].get(c, 0))):
            print(f"   {cls:<26} {a['classes'].get(cls, 0):8.3f} {b['classes'].get(cls, 0):8.3f} "
                  f"{a['classes'].get(cls, 0) - b['classes'].get(cls, 0):+8.3f}")
        del net, fn
    np.seterr(all="ignore")
    return result


# ------------------------------------------------------------------------------------------------------ variants
# rewrites measured here and not taken into dlspec.backends.cuda_rewrites (the figures are in their docstrings)
def pad_input_channels(model, to: int = 4) -> int:
    """Convolutions reading a graph input of fewer than ``to`` channels get zero channels appended to the input
    (Pad) and to their weights, in place: the same sums, in the channel count cuDNN's NHWC first-layer kernels
    take (torch pads the same way). Returns the number of convolutions changed. Measured and rejected: ResNet-50
    0.71x (4 channels), 0.62x (8): onnxruntime's Pad kernel costs more than the stem convolution saves."""
    import numpy as np
    from onnx import helper, numpy_helper

    from dlspec.backends.fp16 import replace_nodes

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = {i.name: i for i in graph.input}
    casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}
    nodes, count = [], 0
    for node in graph.node:
        source = inputs.get(casts.get(node.input[0], node.input[0])) if node.op_type == "Conv" else None
        weight = inits.get(node.input[1]) if source is not None else None
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = [d.dim_value for d in source.type.tensor_type.shape.dim] if source is not None else []
        if weight is None or group != 1 or len(dims) != 4 or not 0 < dims[1] < to:
            nodes.append(node)
            continue
        array = numpy_helper.to_array(weight)
        padded = np.zeros((array.shape[0], to, *array.shape[2:]), array.dtype)
        padded[:, : array.shape[1]] = array
        name = node.name or node.output[0]
        graph.initializer.extend([numpy_helper.from_array(padded, f"{name}/padded_weight"),
                                  numpy_helper.from_array(np.array([0, 0, 0, 0, 0, to - dims[1], 0, 0], np.int64),
                                                          f"{name}/channel_pads")])
        nodes.append(helper.make_node("Pad", [node.input[0], f"{name}/channel_pads"], [f"{name}/padded_input"],
                                      name=f"{name}/pad_channels"))
        node.input[0], node.input[1] = f"{name}/padded_input", f"{name}/padded_weight"
        nodes.append(node)
        count += 1
    if count:
        replace_nodes(graph, nodes)
    return count


def widen_stem(model, how: str) -> int:
    """The pixel-block stem (cuda_rewrites.space_to_depth_stem: 12 channels on a 3-channel image) on 16
    channels, zero weights on the 4 added, in place: the same sums. cuDNN's tensor-core NHWC kernels want a
    channel count that is a multiple of 8; on 12 it ran 1.5 ms against torch.compile's 0.4 ms (ResNet-50, batch
    256, H200). ``how`` makes the 4 channels: "pad" (a Pad on the channels-last blocks), "matmul" (the blocks
    times a 12x16 one-hot matrix), "conv" (the blocks made by a 2x2 stride-2 convolution with one-hot weights
    3 -> 16 instead of Reshape/Transpose), "input" (a fourth, zero image channel padded before the blocks).
    Returns the number of stems changed. Measured and rejected (batch 256, H200): ResNet-50 1.02x (Pad), 1.03x
    (MatMul), 0.99x (Conv), 0.75x (input); MobileNetV3-L and EfficientNet-B0 0.90x to 0.99x (their stems are small)."""
    import numpy as np
    from onnx import helper, numpy_helper

    from dlspec.backends.fp16 import replace_nodes

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    by_output = {o: n for n in graph.node for o in n.output}
    stems = [n for n in graph.node if n.op_type == "Conv" and n.input[0].endswith("/blocks")
             and by_output[n.input[0]].op_type == "Transpose"]
    before, drop = {}, set()  # new nodes by the node they go in front of; nodes taken out
    for conv in stems:
        name = conv.input[0][: -len("/blocks")]
        weight = numpy_helper.to_array(inits[conv.input[1]])
        c12 = weight.shape[1]
        wide = np.zeros((weight.shape[0], 16, *weight.shape[2:]), weight.dtype)
        wide[:, :c12] = weight
        graph.initializer.append(numpy_helper.from_array(wide, f"{name}/blocks_weight16"))
        conv.input[1] = f"{name}/blocks_weight16"
        first, flat, last = (by_output[f"{name}/blocks{suffix}"] for suffix in ("_0", "_2", ""))
        if how in ("pad", "matmul"):  # on the channels-last blocks, between the Reshape and the last Transpose
            if how == "pad":
                const = np.array([0, 0, 0, 0, 0, 0, 0, 16 - c12], np.int64)
            else:
                const = np.eye(c12, 16, dtype=weight.dtype)
            graph.initializer.append(numpy_helper.from_array(const, f"{name}/blocks_widen"))
            op = "Pad" if how == "pad" else "MatMul"
            before[id(last)] = [helper.make_node(op, [flat.output[0], f"{name}/blocks_widen"],
                                                 [f"{name}/blocks_16"], name=f"{name}/blocks_16")]
            last.input[0] = f"{name}/blocks_16"
        elif how == "input":  # a zero fourth image channel, then blocks of 4 channels
            graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, 0, 0, 0, 4 - c12 // 4, 0, 0], np.int64), f"{name}/image_pads"))
            for node, axis, size in ((first, 1, 4), (flat, 3, 16)):
                shape = inits[node.input[1]]
                array = numpy_helper.to_array(shape).copy()
                array[axis] = size
                shape.CopyFrom(numpy_helper.from_array(array, shape.name))
            before[id(first)] = [helper.make_node("Pad", [first.input[0], f"{name}/image_pads"], [f"{name}/image4"],
                                                  name=f"{name}/image4")]
            first.input[0] = f"{name}/image4"
        elif how == "conv":  # the blocks made by a one-hot convolution instead of Reshape/Transpose/Reshape/Transpose
            c = c12 // 4
            onehot = np.zeros((16, c, 2, 2), weight.dtype)
            for ch, ry, rx in itertools.product(range(c), range(2), range(2)):
                onehot[ch * 4 + 2 * ry + rx, ch, ry, rx] = 1
            graph.initializer.append(numpy_helper.from_array(onehot, f"{name}/blocks_onehot"))
            before[id(conv)] = [helper.make_node("Conv", [first.input[0], f"{name}/blocks_onehot"],
                                                 [f"{name}/blocks"], name=f"{name}/blocks", kernel_shape=[2, 2],
                                                 strides=[2, 2])]
            drop |= {id(by_output[f"{name}/blocks{suffix}"]) for suffix in ("_0", "_1", "_2", "")}
        else:
            raise ValueError(how)
    kept = [v for v in graph.value_info if "/blocks" not in v.name]  # their shapes changed
    graph.ClearField("value_info")
    graph.value_info.extend(kept)
    replace_nodes(graph, [m for n in graph.node if id(n) not in drop for m in before.get(id(n), []) + [n]])
    return len(stems)


def merge_qkv(model, how: str) -> int:
    """The three q/k/v MatMuls of each MultiHeadAttention (their biases already in its ``bias`` input, as
    cuda_rewrites.attention_bias leaves them) as one MatMul with the weights side by side, read back through a
    Split (``how="split"``, the fifth session's form) or three Slices (``"slices"``), in place: the same sums.
    Measured on the H200 (ViT-B/16) and not kept: batch 256 0.94x (Split) and 0.93x (Slices) of three MatMuls;
    batch 1 as a CUDA graph 0.680 (Split) and 0.647 ms (Slices) against 0.695. Returns the count."""
    import numpy as np
    from onnx import helper, numpy_helper

    from dlspec.backends.fp16 import replace_nodes

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    by_output = {o: n for n in graph.node for o in n.output}
    swap, added, count = {}, [], 0
    for mha in [n for n in graph.node if n.op_type == "MultiHeadAttention" and len(n.input) == 4]:
        matmuls = [by_output.get(v) for v in mha.input[:3]]
        if any(m is None or m.op_type != "MatMul" or m.input[1] not in inits for m in matmuls) or \
                len({m.input[0] for m in matmuls}) != 1:
            continue
        name = mha.name[: -len("/mha")]
        weights = [numpy_helper.to_array(inits[m.input[1]]) for m in matmuls]
        edges = np.cumsum([0] + [w.shape[1] for w in weights])
        added += [numpy_helper.from_array(np.concatenate(weights, axis=1), f"{name}/qkv_weight"),
                  numpy_helper.from_array(np.diff(edges).astype(np.int64), f"{name}/qkv_sizes"),
                  numpy_helper.from_array(np.array([-1], np.int64), f"{name}/qkv_axis")]
        outs = list(mha.input[:3])
        new = [helper.make_node("MatMul", [matmuls[0].input[0], f"{name}/qkv_weight"], [f"{name}/qkv"],
                                name=f"{name}/qkv")]
        if how == "split":
            new.append(helper.make_node("Split", [f"{name}/qkv", f"{name}/qkv_sizes"], outs, name=f"{name}/qkv_split",
                                        axis=-1))
        elif how == "slices":
            for i, out in enumerate(outs):
                added += [numpy_helper.from_array(edges[i:i + 1].astype(np.int64), f"{name}/qkv_start{i}"),
                          numpy_helper.from_array(edges[i + 1:i + 2].astype(np.int64), f"{name}/qkv_end{i}")]
                new.append(helper.make_node("Slice", [f"{name}/qkv", f"{name}/qkv_start{i}", f"{name}/qkv_end{i}",
                                                      f"{name}/qkv_axis"], [out], name=f"{name}/qkv_slice{i}"))
        else:
            raise ValueError(how)
        swap.update({id(matmuls[0]): new, id(matmuls[1]): [], id(matmuls[2]): []})
        count += 1
    replace_nodes(graph, [m for n in graph.node for m in swap.get(id(n), [n])], added)
    return count


def relu_after_maxpool(model) -> int:
    """Relu then MaxPool as MaxPool then Relu where the Relu's output is read only by the pool, in place: the
    same values (max commutes with a monotone function, and the pool's -inf padding never wins a window with a
    real value), with the Relu on a quarter of the elements (ResNet's stem: 112x112 -> 56x56). Returns the count.
    Measured and rejected: ResNet-50 elementwise 5.6 -> 5.4 ms per run at batch 256, throughput 1.00x (noise)."""
    from dlspec.backends.fp16 import replace_nodes

    graph = model.graph
    readers = collections.Counter(i for n in graph.node for i in n.input)
    by_output = {o: n for n in graph.node for o in n.output}
    after = {}  # the Relu by the pool it now follows
    for pool in [n for n in graph.node if n.op_type == "MaxPool" and len(n.output) == 1]:
        relu = by_output.get(pool.input[0])
        if relu is None or relu.op_type != "Relu" or readers[relu.output[0]] != 1:
            continue
        source, pooled = relu.input[0], pool.output[0]
        pool.input[0], pool.output[0] = source, f"{pooled}/before_relu"
        relu.input[0], relu.output[0] = pool.output[0], pooled
        after[id(pool)] = relu
    moved = {id(r) for r in after.values()}
    replace_nodes(graph, [m for n in graph.node if id(n) not in moved for m in [n, after.get(id(n))] if m is not None])
    return len(after)


def split_depthwise_bias(model) -> int:
    """Depthwise convolutions (one group per channel) with their bias as a separate Add, in place: the same sums.
    With a bias, onnxruntime hands cuDNN a convolution-plus-bias graph, for which cuDNN 9 had only an FFMA
    kernel on the H200 for grouped 7x7 convolutions (ConvNeXt-T: 9.1 ms of 27 ms at batch 256). Returns the count.
    Measured and rejected: 1.00x on ConvNeXt-T, MobileNetV3-L and EfficientNet-B0 (the same kernel without bias)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or len(node.input) < 3 or not node.input[2] or group == 1 or \
                group != weight.dims[0] or weight.dims[1] != 1 or node.input[2] not in inits:
            nodes.append(node)
            continue
        bias = numpy_helper.to_array(inits[node.input[2]])
        name, out = node.name or node.output[0], node.output[0]
        extra = [1] * (len(weight.dims) - 2)
        graph.initializer.append(numpy_helper.from_array(bias.reshape(-1, *extra), f"{name}/bias_channels"))
        del node.input[2]
        node.output[0] = f"{out}/without_bias"
        nodes += [node, helper.make_node("Add", [node.output[0], f"{name}/bias_channels"], [out], name=f"{name}/bias")]
        count += 1
    if count:
        graph.ClearField("node")
        graph.node.extend(nodes)
    return count


def depthwise_as_grouped(model, width: int = 8) -> int:
    """Depthwise convolutions (one group per channel) as grouped ones of ``width`` channels per group whose
    weights are zero off the diagonal, in place: every added product is 0 times a finite number, so the sums
    are the same. Measured as a lever for cuDNN's kernel choice in NHWC half precision (ConvNeXt's 7x7
    depthwise convolutions ran on an FFMA kernel). Returns the number of convolutions rewritten. Measured and
    rejected (H200, batch 256, 2026-12-02): groups of 8 0.16-0.23x, 16 0.73-0.82x, 32 0.89-0.92x on ConvNeXt-T,
    MobileNetV3-L and EfficientNet-B0 (cuDNN's grouped kernels cost more than the FFMA depthwise one)."""
    import numpy as np
    from onnx import numpy_helper

    from dlspec.backends.fp16 import replace_nodes

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    added, count = [], 0
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if weight is None or group == 1 or group != weight.dims[0] or weight.dims[1] != 1 or group % width:
            continue
        array = numpy_helper.to_array(weight)
        grouped = np.zeros((array.shape[0], width, *array.shape[2:]), array.dtype)
        grouped[np.arange(group), np.arange(group) % width] = array[:, 0]
        name = node.name or node.output[0]
        added.append(numpy_helper.from_array(grouped, f"{name}/grouped_weight"))
        node.input[1] = f"{name}/grouped_weight"
        for a in node.attribute:
            if a.name == "group":
                a.i = group // width
        count += 1
    if count:
        replace_nodes(graph, list(graph.node), added)
    return count


def export(model, weights, half_ops=(), sum_to_add=False, mha=False, pad=0, split=False, skip=(), grouped=0,
           stem16=None, qkv=None, pool_relu=False):
    """dlspec's --fp16 --optimize export with ``half_ops`` removed from the float32 set, the rewrites of
    dlspec.backends.cuda_rewrites named in ``skip`` left out, and the levers measured here applied."""
    import dlspec
    from dlspec.backends import cuda_rewrites, fp16

    saved, rewrites = set(fp16.FP32_OPS), {name: getattr(cuda_rewrites, name) for name in skip}
    fp16.FP32_OPS.difference_update(half_ops)
    for name in skip:
        setattr(cuda_rewrites, name, lambda model: 0)
    try:
        proto = dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    finally:
        fp16.FP32_OPS.clear()
        fp16.FP32_OPS.update(saved)
        for name, fn in rewrites.items():
            setattr(cuda_rewrites, name, fn)
    if grouped:
        depthwise_as_grouped(proto, grouped)
    if sum_to_add:
        for node in proto.graph.node:
            if node.op_type == "Sum" and len(node.input) == 2:
                node.op_type = "Add"
    if mha:
        from dlspec.backends.cuda_rewrites import fuse_attention

        fuse_attention(proto)
    if split:
        split_depthwise_bias(proto)
    if pad:
        pad_input_channels(proto, pad)
    if stem16:
        assert widen_stem(proto, stem16) == 1
    if qkv:
        assert merge_qkv(proto, qkv) > 0
    if pool_relu:
        assert relu_after_maxpool(proto) > 0
    return proto


def transformer_optimize(proto, model_name: str):
    """onnxruntime.transformers' optimizer on the exported graph (fused attention, SkipLayerNorm, BiasGelu)."""
    from onnxruntime.transformers.optimizer import optimize_model

    kind = "bert" if model_name.startswith("bert") else "vit"
    heads, hidden = (12, 768) if kind == "vit" else (0, 0)
    work = Path(tempfile.mkdtemp())
    import onnx

    onnx.save(proto, str(work / "in.onnx"))
    opt = optimize_model(str(work / "in.onnx"), model_type=kind, num_heads=heads, hidden_size=hidden, opt_level=0,
                         use_gpu=True, only_onnxruntime=False)
    return opt.model, opt.get_fused_operator_statistics()


def cmd_variants(args) -> dict:
    import numpy as np

    import dlspec

    model, weights = load(args.model)
    from dlspec.compare import _inputs

    big = _inputs(model, args.batch, 0)
    small = _inputs(model, 2, 1)
    fp32 = dlspec.build(model, "onnx", weights)
    feeds = dict(zip([i.name for i in model.graph.inputs], small))
    ref = ort_session(fp32, provider="cpu").run(None, feeds)
    reductions = {"ReduceMean", "GlobalAveragePool"}
    variants = {
        "current": {},
        "erf16": {"half_ops": {"Erf"}},
        "softmax16": {"half_ops": {"Softmax"}},
        "reductions16": {"half_ops": reductions},
        "all16": {"half_ops": {"Erf", "Softmax"} | reductions},
        "all16+add": {"half_ops": {"Erf", "Softmax"} | reductions, "sum_to_add": True},
        "mha": {"mha": True},
        "all16+add+mha": {"half_ops": {"Erf", "Softmax"} | reductions, "sum_to_add": True, "mha": True},
    }
    if args.depthwise:
        variants = {"current": {}, "depthwise bias as Add": {"split": True},
                    "fuse_conv_bias=0": {"options": {"fuse_conv_bias": "0"}},
                    "depthwise bias as Add, again": {"split": True}, "current, again": {}}
    if args.cnn:
        variants = {"current": {}, "stem channels 4": {"pad": 4}, "stem channels 8": {"pad": 8},
                    "nchw, fuse_conv_bias=0": {"options": {"prefer_nhwc": "0", "fuse_conv_bias": "0"}},
                    "stem 4, cudnn_conv_algo_search=HEURISTIC": {"pad": 4, "options": {
                        "cudnn_conv_algo_search": "HEURISTIC"}}}
    if args.stem:
        no_stem = {"skip": ("space_to_depth_stem",)}
        variants = {"current (stem as 2x2 blocks)": {}, "stem as before": no_stem, "current, again": {},
                    "stem as before, again": no_stem,
                    "stem as before, HEURISTIC": {**no_stem, "options": {"cudnn_conv_algo_search": "HEURISTIC"}},
                    "current, HEURISTIC": {"options": {"cudnn_conv_algo_search": "HEURISTIC"}}}
    if args.grouped:
        nobias = {"options": {"fuse_conv_bias": "0"}}
        variants = {"current": {}, "depthwise as groups of 8": {"grouped": 8},
                    "depthwise as groups of 16": {"grouped": 16}, "fuse_conv_bias=0": nobias,
                    "groups of 8, fuse_conv_bias=0": {"grouped": 8, **nobias},
                    "groups of 32": {"grouped": 32}, "current, again": {}}
    if args.fixed_batch:
        fixed = {"fixed": True}
        on = {"fixed": True, "matmul_add": True}
        variants = {"current (batch free)": {}, "batch fixed in the session": fixed,
                    "fixed, MatMulAddFusion on": on, "current, again": {}, "batch fixed, again": fixed,
                    "fixed, MatMulAddFusion on, again": on}
    if args.fusions:
        off = ("fuse_skip_layernorm",), ("attention_bias",)
        variants = {"current (SkipLayerNorm, qkv bias in MHA)": {}, "without SkipLayerNorm": {"skip": off[0]},
                    "without the bias in MHA": {"skip": off[1]}, "as before (neither)": {"skip": off[0] + off[1]},
                    "current, again": {}, "as before, again": {"skip": off[0] + off[1]}}
    if args.stem16:
        variants = {"current (stem on 12 channels)": {}, "stem 16: Pad": {"stem16": "pad"},
                    "stem 16: MatMul": {"stem16": "matmul"}, "stem 16: one-hot Conv": {"stem16": "conv"},
                    "stem 16: image padded to 4": {"stem16": "input"}, "current, again": {}}
    if args.qkv:
        variants = {"current (three MatMuls, bias in MHA)": {}, "one MatMul, Split": {"qkv": "split"},
                    "one MatMul, three Slices": {"qkv": "slices"}, "current, again": {},
                    "one MatMul, Split, again": {"qkv": "split"}, "three Slices, again": {"qkv": "slices"}}
    if args.pool_relu:
        moved = {"pool_relu": True}
        variants = {"current (Relu, MaxPool)": {}, "MaxPool, Relu": moved, "stem 16 (MatMul), MaxPool, Relu": {
            **moved, "stem16": "matmul"}, "current, again": {}, "MaxPool, Relu, again": moved}
    if args.transformers:
        variants["all16+add+ort_transformers"] = {"half_ops": {"Erf", "Softmax"} | reductions, "sum_to_add": True,
                                                  "transformers": True}
    rows = {}
    base = None
    for name, v in variants.items():
        row = {}
        try:
            proto = export(model, weights, v.get("half_ops", ()), v.get("sum_to_add", False), v.get("mha", False),
                           v.get("pad", 0), v.get("split", False), v.get("skip", ()), v.get("grouped", 0),
                           v.get("stem16"), v.get("qkv"), v.get("pool_relu", False))
            if v.get("transformers"):
                proto, row["fused"] = transformer_optimize(proto, args.model)
            work = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            sess = ort_session(proto, optimized_path=work / "opt.onnx", options=v.get("options"),
                               batch=args.batch if v.get("fixed") else None, matmul_add=v.get("matmul_add", False))
            row["session_s"] = time.perf_counter() - start
            row["ops"] = op_counts(work / "opt.onnx")
            check = ort_session(proto, options=v.get("options")) if v.get("fixed") else sess  # batch 2 here
            out = check.run(None, feeds)
            del check  # a second session's idle threads would share the timed one's cores
            row["err"] = max(float(np.max(np.abs(o.astype(np.float32) - r)) / np.max(np.abs(r)))
                             for o, r in zip(out, ref))
            step, sync = ort_step(sess, big)
            row["ms"] = median_ms(step, sync, args.iterations)
            row["throughput"] = args.batch / row["ms"] * 1e3
            base = base or row["throughput"]
            row["ratio"] = row["throughput"] / base
            kernels = cupti_kernels(step, sync, 3)
            summary = summarise(kernels, 3, row["ms"])
            row["classes"], row["kernels_per_run"] = summary["classes"], summary["kernels_per_run"]
            row["top"] = summary["top"][:10]
            if args.stem16:  # which kernels the stem's convolution and its input steps became
                for kname, ms, calls, cls in summary["top"][:25]:
                    if calls <= 2 and cls in ("convolution", "layout transpose", "elementwise", "matmul (gemm)",
                                              "other", "copy / memset"):
                        print(f"     {ms:7.3f} ms {calls:3.0f}x [{cls}] {kname[:90]}")
            if args.graph:
                row["graph_p50_ms"] = graph_p50_ms(proto, big, args.iterations)
                print(f"   as a CUDA graph: p50 {row['graph_p50_ms']:.3f} ms, {row['kernels_per_run']:.0f} kernels "
                      "per run", flush=True)
            print(f"{args.model:<14} {name:<28} {row['throughput']:10.0f}/s {row['ratio']:6.2f}x  err "
                  f"{row['err']:.1e}  session {row['session_s']:.1f}s  "
                  + ", ".join(f"{k} {v:.1f}" for k, v in list(row["classes"].items())[:6]), flush=True)
            del sess
        except Exception as err:  # a variant that does not build or run is a result too
            row["error"] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            print(f"{args.model:<14} {name:<28} FAILED {row['error']}", flush=True)
        rows[name] = row
        if name == "current" and args.saved_graph:
            rows["saved_graph"] = saved_graph(proto)
    return {"model": args.model, "batch": args.batch, "variants": rows}


def graph_p50_ms(proto, inputs: list, iterations: int) -> float:
    """Median latency of one replay of ``proto`` as a CUDA graph (dlspec.deploy.Predictor, as ``dlspec run
    --cuda-graph`` and compare's ``onnxruntime cuda-graph`` path run it)."""
    from dlspec.compare import time_steps
    from dlspec.deploy import Predictor

    predictor = Predictor(proto, len(inputs[0]), "cuda", cuda_graph=True)
    predictor.load({inp.name: x for inp, x in zip(predictor.session.get_inputs(), inputs)})
    predictor.run()
    sess, binding = predictor.session, predictor.binding
    times = time_steps(lambda: sess.run_with_iobinding(binding), binding.synchronize_outputs, iterations, 10)
    return statistics.median(times) * 1e3


def saved_graph(proto) -> dict:
    """Session start from the export against from onnxruntime's saved optimized graph (level extended, portable)."""
    from dlspec.deploy import _ort

    ort = _ort()
    work = Path(tempfile.mkdtemp())
    out = {}
    start = time.perf_counter()
    ort_session(proto, optimized_path=work / "ext.onnx", level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    out["export_extended_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ort_session(proto)
    out["export_all_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ort_session(str(work / "ext.onnx"))
    out["saved_all_s"] = time.perf_counter() - start
    print("   session start:", {k: round(v, 2) for k, v in out.items()}, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("profile", "variants"))
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5, help="profiled runs")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--transformers", action="store_true", help="also onnxruntime.transformers' optimizer")
    parser.add_argument("--json", help="file name under $OUT (default: the command's)")
    parser.add_argument("--depthwise", action="store_true", help="the depthwise-convolution variants")
    parser.add_argument("--cnn", action="store_true", help="the convolutional variants (provider options)")
    parser.add_argument("--stem", action="store_true", help="the stem as 2x2 pixel blocks against as before")
    parser.add_argument("--stem16", action="store_true", help="the pixel-block stem on 16 channels, four ways")
    parser.add_argument("--qkv", action="store_true", help="q/k/v as three MatMuls, or one and a Split or Slices")
    parser.add_argument("--pool-relu", action="store_true", help="Relu moved after the MaxPool it feeds")
    parser.add_argument("--grouped", action="store_true", help="depthwise convolutions as groups of 8, 16, 32")
    parser.add_argument("--fixed-batch", action="store_true", help="the batch dimension free against fixed in "
                        "the session, with onnxruntime's MatMulAddFusion off (as dlspec does) and on")
    parser.add_argument("--fusions", action="store_true", help="SkipLayerNormalization and the merged q/k/v "
                        "projection (--fp16 --optimize) each left out")
    parser.add_argument("--graph", action="store_true", help="also each variant's p50 as a CUDA graph")
    parser.add_argument("--saved-graph", action="store_true", help="also time session start from a saved graph")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.models:
        args.model = name
        try:
            results.append(cmd_profile(args) if args.command == "profile" else cmd_variants(args))
        except Exception as err:
            print(f"{name}: FAILED {type(err).__name__}: {err}", flush=True)
        (OUT / (args.json or f"{args.command}.json")).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
