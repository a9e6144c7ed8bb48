"""Error types. User errors carry a spec location; internal errors say they are bugs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a spec file (1-based line and column; line 0: the file as a whole, no position)."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


# Size limits (docs/spec.md, "Limits"). They keep validation bounded in time and memory, and refuse sizes that no
# backend holds: each is enforced with a located error.
MAX_ELEMENTS = 2**31 - 1  # elements of one sample's value, or of one parameter (int32 indexing; 8 GiB of float32)
MAX_PARAMS = 2**32  # scalars in all parameters and buffers (16 GiB of float32)
MAX_RANK = 8  # axes of one sample
MAX_NODES = 10_000  # nodes once blocks are expanded
MAX_NAME_PARTS = 64  # dotted parts of a node name once blocks are expanded (generated modules nest this deep)
MAX_REPEAT = 1_000  # instances of one `block` layer
MAX_NESTING = 32  # levels of mappings and lists in a spec file
MAX_DIGITS = 100  # digits of an integer in a spec file

_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """``text`` with every line break escaped (``\\n``), so that one error is one line."""
    return text.translate(_LINE_BREAKS)


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
        super().__init__(one_line(text))


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


# the package a missing module comes from -> the dlspec extra that installs it
EXTRAS = {"torch": "torch", "torchvision": "torch", "tensorflow": "keras", "keras": "keras", "onnx": "onnx",
          "onnxruntime": "onnx", "matplotlib": "train", "safetensors": ""}


class MissingExtra(ModuleNotFoundError):
    """A framework dlspec needs for this call is not installed; the message names the extra to install."""

    def __init__(self, module: str):
        extra = EXTRAS.get(module.split(".")[0], "")
        target = f"'dlspec[{extra}]'" if extra else "dlspec"
        super().__init__(f"this needs the {module} package: pip install {target}", name=module)
        self.extra = extra


def missing_extra(err: ModuleNotFoundError) -> MissingExtra | None:
    """The :class:`MissingExtra` for a ModuleNotFoundError of a framework dlspec uses, else None."""
    if isinstance(err, MissingExtra):
        return err
    name = err.name or ""
    return MissingExtra(name) if name.split(".")[0] in EXTRAS else None


def naming_extras(fn):
    """Decorator for public API functions: a missing framework raises :class:`MissingExtra`, which names the
    extra to install, instead of a bare ModuleNotFoundError from deep inside a backend."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as err:
            better = missing_extra(err)
            if better is None or better is err:
                raise
            raise better from err

    return wrapper
