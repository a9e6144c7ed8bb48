"""Stage 1: read a YAML or JSON spec into plain Python data plus a map of source positions.

YAML is read event by event, so nothing but mappings, sequences and scalars can be
built: language tags (``!!python/object`` and friends) and anchors are rejected, and
duplicate keys are errors. Plain scalars follow the YAML 1.2 core schema (``yes`` and
``on`` stay strings; ``1e-5`` is a float), the same for YAML and JSON files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MAX_DIGITS, MAX_NESTING, Loc, SpecError

PathKey = tuple  # ("layers", 2, "units")
MAX_SPEC_BYTES = 16 << 20  # a spec file larger than this is refused unread (a spec is a few KB)

_INT = re.compile(r"[-+]?[0-9][0-9_]*$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {"null": None, "~": None, "": None, "true": True, "false": False,
            ".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


@dataclass
class Document:
    """Spec data with the position of every value and every mapping key."""

    data: object
    file: str
    values: dict[PathKey, Loc] = field(default_factory=dict)
    keys: dict[PathKey, Loc] = field(default_factory=dict)

    def loc(self, path: PathKey, *, key: bool = False) -> Loc:
        """Position of the value (or key) at ``path``, or of its nearest ancestor."""
        table = self.keys if key else self.values
        path = tuple(path)
        while path:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Loc(self.file))


def format_path(path: PathKey) -> str:
    """``("layers", 2, "units")`` -> ``layers[2].units``."""
    out = ""
    for part in path:
        if isinstance(part, int) or not part.isprintable():  # a key with a line break is shown quoted
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def _scalar(value: str, style: str | None):
    if style is not None:  # quoted or block scalars are always strings
        return value
    low = value.lower()
    if low in _SPECIAL and value in (low, value.capitalize(), value.upper()):
        return _SPECIAL[low]
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _FLOAT.match(value):
        return float(value.replace("_", ""))
    return value


def _loc(file: str, mark) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, text: str, file: str):
        import yaml  # deferred: only needed when a spec is read

        self.yaml = yaml
        self.file = file
        self.doc = Document(None, file)
        self.events = iter(yaml.parse(text, Loader=yaml.SafeLoader))

    def next(self):
        return next(self.events)

    def check_node(self, event, path):
        yaml = self.yaml
        loc = _loc(self.file, event.start_mark)
        if getattr(event, "anchor", None) or isinstance(event, yaml.AliasEvent):
            raise SpecError(loc, format_path(path), "YAML anchors and aliases are not allowed in a spec",
                            getattr(event, "anchor", None))
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise SpecError(loc, format_path(path), "YAML tags are not allowed in a spec", tag)
        self.doc.values[path] = loc

    def node(self, event, path):
        yaml = self.yaml
        self.check_node(event, path)
        if len(path) > MAX_NESTING:
            raise SpecError(self.doc.values[path], format_path(path[:MAX_NESTING]) + "...",
                            f"a spec nests at most {MAX_NESTING} levels of mappings and lists",
                            None, has_received=False)
        if isinstance(event, yaml.ScalarEvent):
            text = event.value
            if event.style is None and len(text) > MAX_DIGITS and _INT.match(text) and \
                    sum(c.isdigit() for c in text) > MAX_DIGITS:
                raise SpecError(self.doc.values[path], format_path(path),
                                f"an integer has at most {MAX_DIGITS} digits", text)
            return _scalar(text, event.style)
        if isinstance(event, yaml.SequenceStartEvent):
            items = []
            while not isinstance(ev := self.next(), yaml.SequenceEndEvent):
                items.append(self.node(ev, path + (len(items),)))
            return items
        if isinstance(event, yaml.MappingStartEvent):
            return self.mapping(path)
        raise SpecError(_loc(self.file, event.start_mark), format_path(path), "unexpected YAML content",
                        type(event).__name__)

    def mapping(self, path):
        yaml = self.yaml
        out: dict = {}
        while not isinstance(ev := self.next(), yaml.MappingEndEvent):
            key_loc = _loc(self.file, ev.start_mark)
            if not isinstance(ev, yaml.ScalarEvent) or ev.anchor or ev.tag not in (None, "!"):
                raise SpecError(key_loc, format_path(path), "mapping keys must be plain strings",
                                getattr(ev, "value", type(ev).__name__))
            key = ev.value
            if key in out:
                first = self.doc.keys[path + (key,)]
                raise SpecError(key_loc, format_path(path + (key,)),
                                f"duplicate key (first defined at line {first.line})", key)
            self.doc.keys[path + (key,)] = key_loc
            out[key] = self.node(self.next(), path + (key,))
        return out

    def build(self) -> Document:
        yaml = self.yaml
        docs = []
        for ev in self.events:
            if isinstance(ev, (yaml.StreamStartEvent, yaml.DocumentStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(ev, yaml.StreamEndEvent):
                break
            if docs:
                raise SpecError(_loc(self.file, ev.start_mark), "", "a spec file holds exactly one document",
                                "a second document", has_received=False)
            docs.append(self.node(ev, ()))
        self.doc.data = docs[0] if docs else None
        return self.doc


def parse_text(text: str, file: str = "<string>") -> Document:
    """Parse spec text (YAML or JSON) into a :class:`Document`. Raises :class:`SpecError`."""
    import yaml

    try:
        return _Builder(text, file).build()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        loc = _loc(file, mark) if mark else Loc(file)
        rule = "invalid YAML: " + (err.problem or err.context or "syntax error")
        lines = text.splitlines()
        near = lines[mark.line].strip() if mark and mark.line < len(lines) else ""
        raise SpecError(loc, "", rule, near or "end of file", has_received=True) from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow
        line = text.count("\n", 0, err.position)
        loc = Loc(file, line + 1, err.position - (text.rfind("\n", 0, err.position) + 1) + 1)
        char = chr(err.character) if isinstance(err.character, int) else err.character
        raise SpecError(loc, "", f"invalid YAML: {err.reason}", char) from None
    except yaml.YAMLError as err:
        raise SpecError(Loc(file), "", f"invalid YAML: {str(err).splitlines()[0]}", None,
                        has_received=False) from None


ZOO = Path(__file__).resolve().parent / "zoo"  # the packaged specs (the repository's specs/ links here)
ZOO_PREFIX = "zoo:"


def zoo_names() -> list[str]:
    """Names of the packaged zoo specs, usable as ``zoo:NAME`` wherever a spec file is expected."""
    return sorted(p.stem for p in ZOO.glob("*.yaml"))


def resolve(path: str | Path) -> Path:
    """The file a spec reference names: ``zoo:resnet18`` (or ``zoo:resnet18.yaml``) is the packaged
    zoo's spec; anything else is a path. Raises :class:`SpecError` for an unknown zoo name."""
    text = str(path)
    if not text.startswith(ZOO_PREFIX):
        return Path(path)
    name = text[len(ZOO_PREFIX):].removesuffix(".yaml")
    if name not in zoo_names():
        raise SpecError(Loc(text, 0, 0), "", f"no such zoo spec (`dlspec zoo` lists them: "
                        f"{', '.join(zoo_names())})", name)
    return ZOO / f"{name}.yaml"


def read(path: str | Path) -> Document:
    """Read a spec file (or ``zoo:NAME``). Raises :class:`SpecError` for unreadable or malformed files."""
    from .files import Unreadable, read_bytes

    path = resolve(path)
    if not path.exists() and not path.is_symlink():
        raise SpecError(Loc(str(path), 0, 0), "", "no such file", None, has_received=False)
    try:
        raw = read_bytes(path, MAX_SPEC_BYTES)
    except Unreadable as err:
        raise SpecError(Loc(str(path)), "", f"cannot read the spec file: {err}", str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(Loc(str(path)), "", "a spec file must be UTF-8 text",
                        f"byte {raw[err.start]:#x} at offset {err.start}", has_received=True) from None
    return parse_text(text, str(path))
