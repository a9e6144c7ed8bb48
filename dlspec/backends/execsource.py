"""Run generated source as a module, so built models are exactly what ``dlspec build`` writes."""

from __future__ import annotations

import linecache
import sys
import types


def exec_source(source: str, module_name: str, filename: str) -> types.ModuleType:
    """Execute ``source`` as a fresh module named ``module_name`` and return it."""
    module = types.ModuleType(module_name)
    module.__file__ = filename
    # register the text so tracebacks and inspect show the generated lines
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    code = compile(source, filename, "exec")
    sys.modules[module_name] = module  # Keras serialisation looks helpers up by module
    exec(code, module.__dict__)
    return module
