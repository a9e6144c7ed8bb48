"""Registries of training components: each loss, optimizer and schedule is one spec class
(dlspec/spec/train.py), and each backend registers one implementation against that class.

Lookups go by the configuration's class, so an entry cannot fall through into another entry's code; the
spec rejects an unknown ``type`` with a located error before training starts, and a test requires every
registry to cover every spec class of its kind.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from ..spec import train as spec


def members(union) -> tuple[type, ...]:
    """The spec classes of a discriminated union such as ``spec.Loss``."""
    return typing.get_args(typing.get_args(union)[0])


class Registry:
    """Implementations of one kind of component (``kind``: "loss", "optimizer", "schedule") for one user
    (``owner``: a backend, or "dlspec" for what every backend shares), keyed by spec class."""

    def __init__(self, kind: str, owner: str, definitions: tuple[type, ...]):
        self.kind, self.owner, self.definitions = kind, owner, definitions
        self.table: dict[type, Callable] = {}
        REGISTRIES.append(self)

    def register(self, *definitions: type):
        """Decorator: the function implements each of ``definitions``."""

        def add(fn):
            for d in definitions:
                if d not in self.definitions:
                    raise ValueError(f"{d.__name__} is not a {self.kind} of the spec")
                if d in self.table:
                    raise ValueError(f"two {self.owner} implementations of the {self.kind} {d.__name__}")
                self.table[d] = fn
            return fn

        return add

    def __getitem__(self, config) -> Callable:
        return self.table[type(config)]

    def missing(self) -> list[str]:
        """Spec classes of this kind that have no implementation here."""
        return [d.__name__ for d in self.definitions if d not in self.table]


REGISTRIES: list[Registry] = []
LOSSES, OPTIMIZERS, SCHEDULES = members(spec.Loss), members(spec.Optimizer), members(spec.Schedule)
