"""Generated source as structure: the expressions and statements that torch and Keras emitters return and
the writers assemble. ``str()`` of a node is its flat one-line text; :func:`codegen.render` lays a statement
out from its structure (each call, tuple, list, dict, subscript or parenthesised expression is a bracket group
that may split), so no emitter formats text and nothing re-reads generated code to lay it out.

A call knows which of its keyword arguments hold the callee's default (:class:`Kw`): such an argument is left
out of the source while its value is a literal, and shown once it is a parameter of a block class (see
``classes.parameterise``), so drafts of one block line up argument by argument."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace


@dataclass
class Group:
    """A bracketed group of a statement: its brackets and items, each item a list of parts (text or Group)
    with the comment that follows it. ``kind`` is ``call`` (arguments, or a list/dict/set display: a trailing
    comma may follow a single item), ``tuple`` (a parenthesised tuple), ``paren`` (a parenthesised expression)
    or ``subscript`` (the last two take no trailing comma that was not there)."""

    open: str
    close: str
    kind: str
    items: list[list] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    trailing: bool = False  # a comma after the last item in the source

    def flat(self) -> str:
        body = ", ".join(flat(item) for item in self.items)
        keep = self.trailing and len(self.items) == 1 and self.kind in ("tuple", "subscript")
        return f"{self.open}{body}{',' if keep else ''}{self.close}"

    def forced(self) -> bool:
        """Whether ruff format must split it: a magic trailing comma, a comment inside, or a forced group inside."""
        magic = self.trailing and not (len(self.items) == 1 and self.kind in ("tuple", "subscript"))
        return magic or any(self.comments) or any(forced(item) for item in self.items)


def flat(parts: list) -> str:
    """The one-line text of a statement's parts."""
    return "".join(p if isinstance(p, str) else p.flat() for p in parts)


def forced(parts: list) -> bool:
    return any(isinstance(p, Group) and p.forced() for p in parts)


def join(*pieces) -> list:
    """Parts from text and part lists, adjacent texts merged (as one stretch of tokens between brackets)."""
    out: list = []
    for piece in pieces:
        for p in piece if isinstance(piece, list) else [piece]:
            if isinstance(p, str):
                if not p:
                    continue
                if out and isinstance(out[-1], str):
                    out[-1] += p
                    continue
            out.append(p)
    return out


class Node:
    """An expression (or keyword argument) of generated source."""

    def parts(self) -> list:
        raise NotImplementedError

    def __str__(self) -> str:
        return flat(self.parts())


@dataclass(frozen=True, eq=True)
class Atom(Node):
    """Text without brackets: a name, a dotted name, a number, a slice such as ``1:3``."""

    text: str

    def parts(self) -> list:
        return [self.text]


@dataclass(frozen=True, eq=True)
class Lit(Node):
    """A scalar spec value as a Python literal (strings through JSON, so fully escaped)."""

    value: object

    def parts(self) -> list:
        v = self.value
        if isinstance(v, str):
            return [json.dumps(v)]  # a JSON string is a valid, fully escaped Python literal
        if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
            return [repr(v)]
        raise TypeError(f"no literal for {type(v).__name__}")


def _items(kind_open: str, close: str, kind: str, items: list[list], comments=(), trailing: bool = False) -> Group:
    notes = list(comments) + [""] * (len(items) - len(comments))
    return Group(kind_open, close, kind, items, notes, trailing)


@dataclass(frozen=True, eq=True)
class Tuple(Node):
    """``(a, b)``; ``(a,)`` for one item."""

    items: tuple = ()

    def parts(self) -> list:
        n = len(self.items)
        return [_items("(", ")", "tuple" if n else "paren", [i.parts() for i in self.items], trailing=n == 1)]


@dataclass(frozen=True, eq=True)
class List(Node):
    """``[a, b]`` (a display, never a subscript); ``comments`` after items, ``trailing``: a magic trailing comma."""

    items: tuple = ()
    comments: tuple = ()
    trailing: bool = False

    def parts(self) -> list:
        return [_items("[", "]", "call", [i.parts() for i in self.items], self.comments, self.trailing)]


@dataclass(frozen=True, eq=True)
class Dict(Node):
    """``{k: v, ...}``, keys and values nodes."""

    items: tuple = ()  # ((key, value), ...)
    comments: tuple = ()
    trailing: bool = False

    def parts(self) -> list:
        return [_items("{", "}", "call", [join(k.parts(), ": ", v.parts()) for k, v in self.items], self.comments,
                       self.trailing)]


@dataclass(frozen=True, eq=True)
class Kw(Node):
    """A keyword argument; ``default``: its value is the callee's default (left out while it is a literal)."""

    name: str
    value: Node
    default: bool = False

    def shown(self) -> bool:
        return not (self.default and is_literal(self.value))

    def parts(self) -> list:
        return join(f"{self.name}=", self.value.parts())


@dataclass(frozen=True, eq=True)
class Call(Node):
    """``func(args..., kwargs...)``. ``comments`` follow the arguments shown; ``trailing``: a magic trailing comma."""

    func: Node
    args: tuple = ()
    kwargs: tuple = ()  # Kw, in order
    comments: tuple = ()
    trailing: bool = False

    def shown(self) -> list[Node]:
        return [*self.args, *(k for k in self.kwargs if k.shown())]

    def parts(self) -> list:
        group = _items("(", ")", "call", [a.parts() for a in self.shown()], self.comments, self.trailing)
        return join(self.func.parts(), [group])

    def plus(self, **values) -> Call:
        """The call with keyword arguments added at the end."""
        return replace(self, kwargs=self.kwargs + tuple(Kw(k, lit(v)) for k, v in values.items()))


@dataclass(frozen=True, eq=True)
class Attr(Node):
    """``obj.name``."""

    obj: Node
    name: str

    def parts(self) -> list:
        return join(self.obj.parts(), f".{self.name}")


@dataclass(frozen=True, eq=True)
class Subscript(Node):
    """``obj[item, ...]``."""

    obj: Node
    items: tuple

    def parts(self) -> list:
        return join(self.obj.parts(), [_items("[", "]", "subscript", [i.parts() for i in self.items])])


@dataclass(frozen=True, eq=True)
class Paren(Node):
    """``(expr)``."""

    expr: Node

    def parts(self) -> list:
        return [_items("(", ")", "paren", [self.expr.parts()])]


@dataclass(frozen=True, eq=True)
class BinOp(Node):
    """``a op b op c``."""

    op: str
    operands: tuple

    def parts(self) -> list:
        out: list = []
        for i, operand in enumerate(self.operands):
            out = join(out, f" {self.op} " if i else "", operand.parts())
        return out


@dataclass(frozen=True, eq=True)
class Neg(Node):
    """``-expr`` (a block-class parameter standing for a negative number's digits)."""

    expr: Node

    def parts(self) -> list:
        return join("-", self.expr.parts())


@dataclass(frozen=True, eq=True)
class Var(Node):
    """Placeholder for the variable that holds graph value ``value`` (filled in once variables are chosen)."""

    value: str

    def parts(self) -> list:
        return [f"\x01{self.value}\x01"]


@dataclass(frozen=True, eq=True)
class Ref(Node):
    """Placeholder for the expression that reaches submodule ``path`` (torch: filled in once the module tree
    shows which containers are lists)."""

    path: str

    def parts(self) -> list:
        return [f"\x00{self.path}\x00"]


@dataclass(frozen=True, eq=True)
class Stmt:
    """A simple statement: ``head`` (``x = ``, ``return ``, or nothing) then ``value``, with an optional comment,
    at ``indent``."""

    indent: str
    head: str
    value: Node
    comment: str = ""

    def parts(self) -> list:
        return join(self.head, self.value.parts())

    def __str__(self) -> str:
        return self.indent + flat(self.parts()) + (f"  {self.comment}" if self.comment else "")


def is_literal(node: Node) -> bool:
    """A literal value (a scalar, or a tuple of them), not an expression or a parameter."""
    return isinstance(node, Lit) or isinstance(node, Tuple) and all(isinstance(i, Lit) for i in node.items)


def lit(value) -> Node:
    """A node for a spec value: nodes stay, tuples and lists become tuples, dicts dicts, scalars literals."""
    if isinstance(value, Node):
        return value
    if isinstance(value, (tuple, list)):
        return Tuple(tuple(lit(v) for v in value))
    if isinstance(value, dict):
        return Dict(tuple((lit(k), lit(v)) for k, v in value.items()))
    return Lit(value)


_NONE = object()  # the value of a node that is no literal


def value(node: Node):
    """The Python value of a literal node (a tuple of them: a tuple), else a marker equal to nothing else."""
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Tuple) and is_literal(node):
        return tuple(i.value for i in node.items)
    return _NONE


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def call(func: str | Node, *args, defaults: dict | None = None, **kwargs) -> Call:
    """``func(args..., k=v, ...)``: values become nodes (:func:`lit`); a keyword whose value equals its entry in
    ``defaults`` is marked as the callee's default (left out of the source)."""
    defaults = defaults or {}
    kws = tuple(Kw(k, lit(v), k in defaults and _same(defaults[k], value(lit(v)))) for k, v in kwargs.items())
    return Call(Atom(func) if isinstance(func, str) else func, tuple(lit(a) for a in args), kws)


def method(obj: Node, method_name: str, *args, **kwargs) -> Call:
    """``obj.method(args..., kwargs...)``."""
    return call(Attr(obj, method_name), *args, **kwargs)


def mapped(node, fn):
    """``node`` with every node for which ``fn`` returns a replacement replaced (else rebuilt from its parts)."""
    if isinstance(node, tuple):
        return tuple(mapped(n, fn) for n in node)
    if not isinstance(node, (Node, Stmt)):
        return node
    new = fn(node)
    if new is not None:
        return new
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, (Node, Stmt, tuple)):
            out = mapped(value, fn)
            if out is not value and out != value:
                changes[f.name] = out
    return replace(node, **changes) if changes else node


def walk(node):
    """Every node in ``node`` (itself first), depth first, in source order."""
    if isinstance(node, tuple):
        for n in node:
            yield from walk(n)
        return
    if not isinstance(node, (Node, Stmt)):
        return
    yield node
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, (Node, Stmt, tuple)):
            yield from walk(value)
