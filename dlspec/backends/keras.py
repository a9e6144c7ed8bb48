"""The Keras (TensorFlow) backend: generate source, execute it, load weights, run."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

from ..ir import Graph
from .execsource import exec_source
from .keras_emit import generate

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


def import_keras():
    """Import Keras on TensorFlow without writing to the user's home."""
    # Keras writes keras.json under KERAS_HOME at import; keep it out of the user's home.
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dlspec-keras"))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
