"""Run generated source as a module, so built models are exactly what ``dlspec build`` writes."""

from __future__ import annotations

import sys
import types


def exec_source(source: str, module_name: str, filename: str) -> types.ModuleType:
    """Execute ``source`` as a fresh module named ``module_name`` and return it."""
    module = types.ModuleType(module_name)
    module.__file__ = filename
    code = compile(source, filename, "exec")
    sys.modules[module_name] = module  # Keras serialisation looks helpers up by module
    exec(code, module.__dict__)
    return module
