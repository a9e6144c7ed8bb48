"""The ONNX backend: direct lowering, a full checker pass, and onnxruntime inference."""

from __future__ import annotations

import os

from ..ir import Graph
from .onnx_emit import lower_onnx

__all__ = ["build", "count_params", "lower_onnx", "run"]


def build(graph: Graph, weights: dict | None = None, opset: int | None = None):
    """A checked ``onnx.ModelProto`` (``weights`` default: ``init_weights(seed=0)``)."""
    import onnx

    from ..weights import init_weights

    model = lower_onnx(graph, weights if weights is not None else init_weights(graph, 0), opset=opset)
    onnx.checker.check_model(model, full_check=True)
    return model


def count_params(model) -> int:
    """Scalars in the initializers that are parameters (``<node>.<param>``)."""
    import math

    return sum(math.prod(t.dims) for t in model.graph.initializer if "/" not in t.name)  # helpers: <node>/<what>


def session(model, providers=("CPUExecutionProvider",)):
    """An onnxruntime session for a ModelProto, bytes or a path; no telemetry."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    return ort.InferenceSession(source, providers=list(providers))


def run(model, inputs: list) -> list:
    """Inference on numpy inputs with onnxruntime on CPU."""
    sess = session(model)
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)
