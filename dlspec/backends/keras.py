"""The Keras (TensorFlow) backend: generate source, execute it, load weights, run."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import weakref

from ..ir import Graph, weight_name
from .execsource import exec_source
from .keras_generate import generate
from .native import preload_triton

__all__ = ["build", "count_params", "generate", "run"]


_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # built model -> the generated module it came from
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
    model = module.build_model(weights)
    _MODULES[model] = module  # its weight layout tables serve export_weights
    return model


def count_params(model) -> int:
    """All weights, trainable or not."""
    return int(model.count_params())


def run(model, inputs: list) -> list:
    """Inference on numpy inputs; returns numpy outputs."""
    out = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


def export_weights(model, graph: Graph) -> dict:
    """Canonical weights from a Keras model that :func:`build` made: the inverse of the generated ``load_weights``,
    read from the same layout tables (``LAYOUTS``, ``OVERRIDES`` and ``moved`` of the model's generated module).

    Layout steps only move elements, so applying them to element indices tells where every canonical element
    went. A sum (an LSTM's two biases, which Keras keeps as one) goes to the first tensor; the second becomes
    zero, which keeps the function.
    """
    import numpy as np

    module = _MODULES[model]
    shapes = {weight_name(n.name, p.name): p.shape for n in graph.nodes for p in n.params}
    out: dict = {}

    def scatter(entry, value, layer: str) -> None:
        if isinstance(entry, dict):
            how, parts = next(iter(entry.items()))
            for k, part in enumerate(parts):
                scatter(part, value[k] if how == "stack" else value if k == 0 else np.zeros_like(value), layer)
            return
        tensor, steps = entry
        name = f"{layer}.{tensor}" if tensor else layer
        shape = shapes[name]
        flat = out.setdefault(name, np.zeros(shape, np.float32)).reshape(-1)
        index = module.moved(np.arange(flat.size).reshape(shape), steps)
        flat[np.asarray(index).ravel()] = np.asarray(value, np.float32).ravel()

    for layer in model.layers:
        layout = module.OVERRIDES.get(layer.name, module.LAYOUTS.get(type(layer).__name__))
        if layout and layer.weights:
            for entry, value in zip(layout, layer.get_weights()):
                scatter(entry, value, layer.name)
    return out
