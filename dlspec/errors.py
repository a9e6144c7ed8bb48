"""Error types. User errors carry a spec location; internal errors say they are bugs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a spec file (1-based line and column)."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def show(value: object, limit: int = 80) -> str:
    """Render a received value for an error message: repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpecError(Exception):
    """A spec is invalid. ``str(err)`` is ``file:line:col: path: rule. Received: value``."""

    def __init__(self, loc: Loc, path: str, rule: str, received: object = None, *, has_received=True):
        self.loc, self.path, self.rule = loc, path, rule
        self.received = received
        where = f"{loc}: {path}: " if path else f"{loc}: "
        text = where + rule if rule.endswith(("?", ".")) else where + rule + "."
        if has_received:
            text += f" Received: {show(received)}"
        super().__init__(text)


class SpecErrors(SpecError):
    """Several spec errors found at once; the first is the headline."""

    def __init__(self, errors: list[SpecError]):
        first = errors[0]
        self.errors = errors
        Exception.__init__(self, "\n".join(str(e) for e in errors))
        self.loc, self.path, self.rule, self.received = first.loc, first.path, first.rule, first.received


class DataError(Exception):
    """User-supplied data or files (weights, inputs) are unusable."""


class UsageError(Exception):
    """A command-line or API option is out of range."""


class InternalError(Exception):
    """A bug in dlspec, not in the user's spec."""

    def __init__(self, message: str):
        super().__init__(f"internal error (this is a bug in dlspec, please report it): {message}")


class TrainingDiverged(Exception):
    """Training produced a non-finite loss or weights; ``weights`` are the last finite ones (or None), and
    ``history`` the epochs that ended finite. The CLI exits with status 1."""

    def __init__(self, message: str, weights=None, history=None):
        super().__init__(message)
        self.weights, self.history = weights, history
