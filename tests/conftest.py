"""Test setup: keep framework side effects out of the home directory."""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401  (imported after TensorFlow it crashes the process; see dlspec.backends.keras)

_HOME = tempfile.mkdtemp(prefix="dlspec-test-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.setdefault("KERAS_HOME", os.path.join(_HOME, "keras"))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
PYTHON = sys.executable


@pytest.fixture
def spec_file(tmp_path):
    """Write spec text to a file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
