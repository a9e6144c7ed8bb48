"""Turn a parsed document into a :class:`Spec`, or into errors that point at the file."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from ..errors import SpecError, SpecErrors
from ..loader import Document, format_path
from .base import suggest
from .graph import FlatNode, flatten
from .layers import LAYER_TYPES
from .model import Spec

_TYPE_RULES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "missing": "is required",
}


@dataclass(frozen=True)
class Checked:
    """A valid spec, its source document, its nodes after block expansion, and its outputs."""

    spec: Spec
    doc: Document
    nodes: tuple[FlatNode, ...]
    outputs: tuple[str, ...]


def _walk(doc: Document, loc: tuple) -> tuple:
    """Map a pydantic error location onto a path in the document (dropping union tags)."""
    path, node, tagged = [], doc.data, None
    for part in loc:
        if isinstance(node, dict) and part == node.get("type") and tagged is not node and (
                part not in node or (path and isinstance(path[-1], int))):
            tagged = node  # a layer's tag comes once; `activation` in `type: activation` is then a key
            continue  # discriminated-union tag, not a key
        if isinstance(part, str) and not (isinstance(node, dict) and part in node) and (
                "[" in part or "-" in part or part in ("int", "str", "float", "bool", "list", "dict")):
            continue  # a union member's label, not a key
        path.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    return tuple(path)


def _rule(err: dict) -> tuple[str, bool]:
    """The rule text for one pydantic error, and whether to point at the key."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _TYPE_RULES:
        return _TYPE_RULES[kind], kind == "missing"
    if kind == "unknown_key":
        return err["msg"], True
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}", False
    if kind == "union_tag_invalid":
        expected = [t.strip(" '") for t in ctx["expected_tags"].split(",")]
        if not set(expected) <= {*LAYER_TYPES, "block"}:  # a loss, optimizer or schedule: name the few there are
            what = next((p for p in reversed(err["loc"]) if p in ("loss", "optimizer", "schedule")), "entry")
            return f"unknown {what} type: must be one of {', '.join(map(repr, expected))}" \
                   f"{suggest(ctx['tag'], expected)}", False
        hint = suggest(ctx["tag"], [*LAYER_TYPES, "block"]) or " (docs/spec.md lists the layer types)"
        return "unknown layer type" + hint, False
    if kind == "union_tag_not_found":
        return (f"a layer needs a 'type': one of {len(LAYER_TYPES) + 1} layer types such as dense, conv2d, lstm "
                "or block (docs/spec.md lists them)"), False
    bounds = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
              "less_than": "less than {lt}", "less_than_equal": "at most {le}"}
    if kind in bounds:
        shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return "must be " + bounds[kind].format(**shown), False
    if kind in ("too_short", "too_long"):
        count = ctx.get("min_length", ctx.get("max_length"))
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {count} " \
               f"{'entry' if count == 1 else 'entries'}", False
    return err["msg"][:1].lower() + err["msg"][1:], False


def _to_spec_error(doc: Document, err: dict) -> SpecError:
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"]) + ((ctx["at"],) if "at" in ctx else ())
    path = _walk(doc, loc)
    rule, at_key = _rule(err)
    if err["type"] == "missing":
        parent = path[:-1]
        return SpecError(doc.loc(parent), format_path(parent), f"missing required key {path[-1]!r}",
                         _shape_of(doc, parent))
    received = _value_at(doc, path) if "at" in ctx else err.get("input")
    if err["type"] == "unknown_key":
        received = path[-1]
    if err["type"] == "union_tag_invalid":  # at the `type` key, or at a bare name written for the mapping
        path, received = path + (("type",) if isinstance(_value_at(doc, path), dict) else ()), ctx["tag"]
    return SpecError(doc.loc(path, key=at_key), format_path(path), rule, received)


def _value_at(doc: Document, path: tuple):
    node = doc.data
    for part in path:
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) \
                and part < len(node):
            node = node[part]
    return node


class _Keys:
    """A mapping shown by its keys: the whole document would drown the message."""

    def __init__(self, keys):
        self.keys = list(keys)

    def __repr__(self) -> str:
        return "a mapping with keys " + ", ".join(map(str, self.keys))


def _shape_of(doc: Document, path: tuple):
    value = _value_at(doc, path)
    if isinstance(value, dict) and not path:  # the top level: its keys say what is there
        return _Keys(value)
    return {k: value[k] for k in value} if isinstance(value, dict) else value


def validate(doc: Document) -> Checked:
    """Validate a parsed document. Raises :class:`SpecError` (or :class:`SpecErrors`)."""
    if not isinstance(doc.data, dict):
        raise SpecError(doc.loc(()), "", "a spec must be a mapping with keys dlspec, name, inputs, layers",
                        doc.data)
    try:
        spec = Spec.model_validate(doc.data)
    except ValidationError as exc:
        errors = [_to_spec_error(doc, e) for e in exc.errors(include_url=False)]
        errors.sort(key=lambda e: (e.loc.line, e.loc.col))
        raise (errors[0] if len(errors) == 1 else SpecErrors(errors)) from None
    nodes, outputs = flatten(spec, doc, _to_spec_error)
    return Checked(spec, doc, tuple(nodes), tuple(outputs))
