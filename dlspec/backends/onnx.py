"""The ONNX backend: direct lowering, a full checker pass, and onnxruntime inference."""

from __future__ import annotations

from ..ir import Graph
from .onnx_emit import lower_onnx

__all__ = ["build", "count_params", "lower_onnx", "run"]


def build(graph: Graph, weights: dict | None = None, opset: int | None = None, fp16: bool = False,
          optimize: bool = False):
    """A checked ``onnx.ModelProto`` (``weights`` default: ``init_weights(seed=0)``); ``fp16``: half precision
    inside, fp32 at the interface (see dlspec.backends.fp16); ``optimize``: BatchNorm folded into convolutions
    offline (dlspec.backends.optimize)."""
    import onnx

    from ..weights import init_weights

    model = lower_onnx(graph, weights if weights is not None else init_weights(graph, 0), opset=opset)
    if optimize:
        from .optimize import fold_batchnorm

        model = fold_batchnorm(model)
    if fp16:
        from .fp16 import to_fp16

        model = to_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def count_params(model) -> int:
    """Scalars in the initializers that are parameters (``<node>.<param>``)."""
    import math

    return sum(math.prod(t.dims) for t in model.graph.initializer if "/" not in t.name)  # helpers: <node>/<what>


def session(model, provider: str = "cpu"):
    """An onnxruntime session on the CPU (parity's reference); see dlspec.deploy for CUDA."""
    from ..deploy import session as make

    return make(model, provider, notice=None)


def run(model, inputs: list) -> list:
    """Inference on numpy inputs with onnxruntime on CPU."""
    sess = session(model)
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)
