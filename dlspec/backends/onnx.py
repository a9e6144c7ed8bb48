"""The ONNX backend: direct lowering, a full checker pass, and onnxruntime inference."""

from __future__ import annotations

from ..ir import Graph
from .onnx_emit import lower_onnx

__all__ = ["build", "count_params", "lower_onnx", "run"]


def build(graph: Graph, weights: dict | None = None, opset: int | None = None, fp16: bool = False,
          optimize: bool = False):
    """A checked ``onnx.ModelProto`` with ``weights`` (canonical arrays; dlspec.build draws them when it is
    given none); ``fp16``: half precision inside, fp32 at the interface (see dlspec.backends.fp16);
    ``optimize``: BatchNorm folded into convolutions offline (dlspec.backends.optimize); with ``fp16`` too, the
    rewrites for onnxruntime's CUDA provider (fused attention, patch embeddings as matrix products)."""
    import onnx

    if weights is None:
        raise ValueError("the ONNX graph embeds its weights: pass them (dlspec.build draws them with seed 0)")
    model = lower_onnx(graph, weights, opset=opset)
    if optimize or fp16:  # the passes change types and remove values: shapes are inferred again after them
        del model.graph.value_info[:]
    if optimize:
        from .optimize import fold_batchnorm

        model = fold_batchnorm(model)
    if fp16:
        from .cuda_rewrites import for_onnxruntime_cuda
        from .fp16 import to_fp16

        model = to_fp16(model)
        if optimize:  # the deployment export: onnxruntime CUDA's fused kernels (dlspec.backends.cuda_rewrites)
            for_onnxruntime_cuda(model)
    if optimize or fp16:
        from .onnx_emit import infer_value_info

        infer_value_info(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def count_params(model) -> int:
    """Scalars in the initializers that are parameters (``<node>.<param>``)."""
    import math

    return sum(math.prod(t.dims) for t in model.graph.initializer if "/" not in t.name)  # helpers: <node>/<what>


def import_onnxruntime():
    """onnxruntime, imported quietly: no telemetry database under ~/.cache, no log chatter."""
    import os

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # else onnxruntime writes a database at import
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    # cuDNN's graph API reports every convolution it cannot fuse as an error, then onnxruntime falls back
    # to an unfused kernel: dozens of red lines per session that mean nothing went wrong. Failures still
    # raise, and dlspec.deploy reports a CUDA provider that did not load.
    ort.set_default_logger_severity(4)
    return ort


def session(model):
    """An onnxruntime session on the CPU for a ModelProto or its bytes (parity's reference); see dlspec.deploy
    for CUDA."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    from .. import threads

    if threads.current:  # set by --threads or its default (dlspec.threads)
        options.intra_op_num_threads = threads.current
    source = model if isinstance(model, bytes) else model.SerializeToString()  # a ModelProto or its bytes
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(model, inputs: list) -> list:
    """Inference on numpy inputs with onnxruntime on CPU."""
    sess = session(model)
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)
