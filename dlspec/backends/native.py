"""Native libraries that must be loaded in a safe order, whatever the user imported first."""

from __future__ import annotations

import importlib.util
import os
import sys


def preload_triton(only_after_tensorflow: bool = False) -> None:
    """Load triton (which torch's optimizers and torch.compile import lazily) before it can crash the process.

    triton's LLVM clashes with the one TensorFlow loads: importing triton after TensorFlow kills the process
    with a segfault (triton 3.8, TF 2.21). Before TensorFlow it is a plain import; after it, triton's
    libraries are loaded with RTLD_DEEPBIND so that they bind their own symbols, not TensorFlow's.
    ``only_after_tensorflow``: do nothing unless TensorFlow is loaded (triton takes about a second to import).
    """
    if "triton" in sys.modules or only_after_tensorflow and "tensorflow" not in sys.modules:
        return
    try:
        if importlib.util.find_spec("triton") is None:
            return
    except (ImportError, ValueError):
        return
    flags = sys.getdlopenflags()
    if "tensorflow" in sys.modules:
        sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        import triton  # noqa: F401
    except ImportError:  # a broken triton: torch then runs without it, as it does where none is installed
        pass
    finally:
        sys.setdlopenflags(flags)
