"""The Keras (TensorFlow) backend: generate source, execute it, load weights, run."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

from ..ir import Graph, weight_name
from .execsource import exec_source
from .keras_emit import generate
from .native import preload_triton

__all__ = ["build", "count_params", "generate", "run"]


_NOISE = re.compile(rb"^(WARNING: All log messages before absl|[IW]\d{4} |E\d{4} .*(cuInit|cuda))")


@contextlib.contextmanager
def quiet_tensorflow():
    """Filter TensorFlow's C++ start-up chatter from stderr (it ignores its log level
    until initialised); everything else passes through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().splitlines(keepends=True):
                if not _NOISE.match(line):
                    sys.stderr.buffer.write(line)
            sys.stderr.flush()


def import_tensorflow():
    """Import TensorFlow safely and quietly, without starting its runtime (devices can still be configured)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read once, at import
    preload_triton()  # a triton imported after TensorFlow would crash the process
    with quiet_tensorflow():
        import tensorflow as tf
    return tf


def import_keras():
    """Import Keras on TensorFlow without writing to the user's home."""
    # Keras writes keras.json under KERAS_HOME at import; keep it out of the user's home.
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dlspec-keras"))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_tensorflow()
    with quiet_tensorflow():
        import keras

        keras.ops.zeros((1,))  # initialises the devices, which logs too
    return keras


def build(graph: Graph, weights: dict | None = None):
    """A ``keras.Model`` built by executing the generated source."""
    import_keras()
    module = exec_source(generate(graph), f"dlspec_generated.{graph.name}_keras", f"<{graph.name}_keras.py>")
    return module.build_model(weights)


def count_params(model) -> int:
    """All weights, trainable or not."""
    return int(model.count_params())


def run(model, inputs: list) -> list:
    """Inference on numpy inputs; returns numpy outputs."""
    out = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


def export_weights(model, graph: Graph) -> dict:
    """Canonical weights from a Keras model: the inverse of the generated ``load_weights``.

    Each load expression only moves elements (transposes, reshapes, gate reorders), so evaluating it
    on element indices tells where every canonical element went. Sums (an LSTM's two biases, which
    Keras keeps as one) go to the first tensor; the second becomes zero, which keeps the function.
    """
    import numpy as np

    from .keras_emit import weight_plan

    out = {}
    for node_name, expressions in weight_plan(graph).items():
        node = next(n for n in graph.nodes if n.name == node_name)
        ids, offset = {}, 0
        for p in node.params:
            size = int(np.prod(p.shape))
            ids[weight_name(node.name, p.name)] = np.arange(offset, offset + size, dtype=np.float64).reshape(p.shape)
            offset += size
        flat = np.zeros(offset, dtype=np.float32)
        values = model.get_layer(node.name).get_weights()
        for expression, value in zip(expressions, values):
            if " + " in expression and expression.count('weights["') == 2:
                expression = expression.split(" + ")[0]  # summed biases: all of it to the first
            index = eval(expression, {"weights": ids, "np": np})  # our own generated expressions
            flat[np.asarray(index).astype(np.int64).ravel()] = np.asarray(value, dtype=np.float32).ravel()
        offset = 0
        for p in node.params:
            size = int(np.prod(p.shape))
            out[weight_name(node.name, p.name)] = flat[offset:offset + size].reshape(p.shape).copy()
            offset += size
    return out
