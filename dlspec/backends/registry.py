"""Emitter registry. Emitters register themselves with :func:`emitter` where they are defined."""

from __future__ import annotations

import importlib
from collections.abc import Callable

BACKENDS = ("torch", "keras", "onnx")

# Per backend: IR op class -> emitter. Keyed by the op's definition, never by its name.
_EMITTERS: dict[str, dict[type, Callable]] = {b: {} for b in BACKENDS}

# Ops a backend knowingly lacks, with the reason; the registry test accepts only these gaps.
MISSING: dict[str, dict[str, str]] = {b: {} for b in BACKENDS}


def emitter(backend: str, definition: type):
    """Register the decorated function as ``backend``'s emitter for the IR op class ``definition``."""

    def register(fn):
        table = _EMITTERS[backend]
        if definition in table:
            raise ValueError(f"two {backend} emitters for op {definition.op_name!r}")
        table[definition] = fn
        return fn

    return register


def emitters(backend: str) -> dict[str, Callable]:
    """All emitters of a backend, by the op name that graph nodes carry. Every module ``<backend>_*.py``
    beside this one is imported, so a new emitter module registers itself without any list to update."""
    import pkgutil

    from . import __path__ as here

    for info in pkgutil.iter_modules(here):
        if info.name.startswith(f"{backend}_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return {definition.op_name: fn for definition, fn in _EMITTERS[backend].items()}


def load(backend: str):
    """Import a backend module by name. Frameworks are imported lazily inside it."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(f"dlspec.backends.{backend}")
