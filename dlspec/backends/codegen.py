"""Helpers shared by the source generators: safe literals, comments, docstrings, layout."""

from __future__ import annotations

import io
import json
import re
import tokenize

from ..ir import Graph, Node
from .source import Group, Stmt, flat, forced, join

READ_SAFETENSORS = '''
_DTYPES = {
    "BF16": "<u2",
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
    "I32": "<i4",
    "I64": "<i8",
    "BOOL": "?",
}


def read_safetensors(path):
    """Read a safetensors file into a dict of numpy arrays (bfloat16 and float16 become float32)."""
    with open(path, "rb") as file:
        data = file.read()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header.pop("__metadata__", None)
    arrays = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + size + begin : 8 + size + end]
        array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":  # bfloat16 is the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if info["dtype"] == "F16":
            array = array.astype(np.float32)
        arrays[name] = array.copy()
    return arrays
'''


def module_source(doc: str, stdlib: list[str], imports: list[str], consts: list[str], sections: list[list[str]]) -> str:
    """A module laid out as ruff and isort want it: docstring, standard-library imports, third-party imports,
    constants one blank line below them, then each section (classes, functions) two blank lines apart."""
    std = {"json": "import json", "pathlib": "from pathlib import Path"}
    lines = [doc, "", *(std[m] for m in stdlib), "", *imports]
    if consts:
        lines += ["", *consts]
    for section in sections:
        lines += ["", "", *section]
    return "\n".join(lines).rstrip("\n") + "\n"


class Raw(str):
    """Source text that :func:`literal` passes through as it is (an expression, not a string)."""


def literal(value) -> str:
    """A Python literal for a spec value. Strings go through repr, never raw (unless they are :class:`Raw`)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid, fully escaped Python literal
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {type(value).__name__}")


def kwargs(**values) -> str:
    """``a=1, b='x'`` from keyword arguments, in the given order."""
    return ", ".join(f"{k}={literal(v)}" for k, v in values.items())


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b if not isinstance(a, (tuple, list)) else \
        isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))


def call(target: str, defaults: dict, **values) -> str:
    """``target(a=1, ...)`` with the keyword arguments whose value is ``target``'s own default left out
    (``defaults`` holds them; it lists none whose default differs between frameworks, so those stay explicit)."""
    if UNWRAPPED[0]:  # a draft: defaults stay, marked, so drafts of one block line up (see drop_defaults)
        marked = (f"{DEFAULT if k in defaults and _same(defaults[k], v) else ''}{k}={literal(v)}"
                  for k, v in values.items())
        return f"{target}({', '.join(marked)})"
    shown = {k: v for k, v in values.items() if not (k in defaults and _same(defaults[k], v))}
    return f"{target}({kwargs(**shown)})"


DEFAULT = "_default_"
_SCALAR = r'(?:-?[0-9][0-9.e+-]*|True|False|None|"[^"]*")'
_LITERAL = rf"(?:{_SCALAR}|\((?:{_SCALAR}, )*{_SCALAR},?\))"  # a scalar, or a tuple of them: (1, 1)


def drop_defaults(line: str) -> str:
    """In a draft line: leave out a marked default that stayed a literal; unmark one that became a parameter."""
    import re

    marked = rf"{DEFAULT}\w+={_LITERAL}"
    for pattern in (rf", {marked}(?=[,)])", rf"{marked}, ", rf"{marked}(?=\))"):
        line = re.sub(pattern, "", line)
    return line.replace(DEFAULT, "")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def where(graph: Graph, node: Node) -> str:
    """The ``# spec.yaml:LINE`` comment for a node: the file that defined it (for a derived spec, the base file
    for the base's layers) and its line; the file name cannot break out of it."""
    from pathlib import PurePath

    source = PurePath(node.loc.file).name if node.loc.file else graph.source
    return f"# {_printable(source)}:{node.loc.line}"


def docstring(text: str) -> str:
    """A docstring literal for free text: triple-quoted when safe, else repr."""
    if "\\" in text or '"' in text or not all(c.isprintable() or c == "\n" for c in text):
        return repr(text)
    return '"""' + text + '"""'


def header(graph: Graph, framework: str) -> str:
    """Module docstring naming the model, the framework and the spec."""
    import textwrap

    lines = f"{graph.name}: {framework} model generated by dlspec from {graph.source}."
    trainable, frozen, buffers = graph.counts()
    lines += f"\n\nParameters: {trainable + frozen:,} ({trainable:,} trainable, {frozen:,} frozen); buffers " \
             f"(BatchNorm running statistics): {buffers:,}."
    if graph.description.strip():
        paragraphs = graph.description.strip().split("\n\n")
        lines += "\n\n" + "\n\n".join(textwrap.fill(p, 96) for p in paragraphs)
    return docstring(_printable_lines(lines) + ("\n" if "\n" in lines else ""))


def _printable_lines(text: str) -> str:
    return "\n".join(_printable(line) for line in text.splitlines())


# Module-level names of generated files, which a model class must not shadow.
MODULE_NAMES = frozenset({"F", "Path", "WEIGHTS", "json", "np", "torch", "nn", "keras"})


def class_name(name: str) -> str:
    """``mnist_mlp`` -> ``MnistMlp``; a name Python or the generated module already means something by
    (``none`` -> ``None``, ``exception``, ``f`` -> ``F``) gets a ``Model`` suffix: ``NoneModel``."""
    import builtins
    import keyword

    out = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    out = out if out[:1].isalpha() else "Model" + out
    taken = keyword.iskeyword(out) or hasattr(builtins, out) or out in MODULE_NAMES
    return out + "Model" if taken else out


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """Keras ``Permute`` dims from channels-first to channels-last for a sample of ``rank`` axes
    (1-based, batch excluded: rank 3 gives (2, 3, 1))."""
    return tuple(range(2, rank + 1)) + (1,)


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """Keras ``Permute`` dims from channels-last back to channels-first."""
    return (rank,) + tuple(range(1, rank))


UNWRAPPED = [False]  # true while Keras drafts a block function (see keras_emit._block_draft): no defaults left out
CHECK = [False]  # true while tests compare each statement's structure with the structure parse reads from its text

WIDTH = 88  # ruff format's default line length; what fits here fits the project's 120 too


def _flat(parts: list) -> str:
    return flat(parts)


def _forced(parts: list) -> bool:
    return forced(parts)


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    """The tokens of ``text``, an f-string as one token whatever the Python version."""
    toks, out, depth = list(tokenize.generate_tokens(io.StringIO(text).readline)), [], 0
    start = getattr(tokenize, "FSTRING_START", None)
    lines = text.splitlines(keepends=True)
    for tok in toks:
        if start is not None and tok.type == start:
            if depth == 0:
                first = tok
            depth += 1
            continue
        if start is not None and tok.type == tokenize.FSTRING_END:
            depth -= 1
            if depth == 0:
                (r0, c0), (r1, c1) = first.start, tok.end
                string = lines[r0 - 1][c0:c1] if r0 == r1 else "".join(lines[r0 - 1:r1])[c0:-len(lines[r1 - 1]) + c1]
                out.append(tokenize.TokenInfo(tokenize.STRING, string, first.start, tok.end, first.line))
            continue
        if depth == 0 and tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT,
                                           tokenize.DEDENT):
            out.append(tok)
    return out


def parse(statement: str) -> tuple[list, str]:
    """The parts of one logical statement (which may span lines) and its trailing comment ("" if none)."""
    import keyword

    top: list = []
    stack: list[tuple[Group, list]] = []  # open groups and the item each is reading
    item, comment, prev, lambdas = top, "", None, [0]
    for tok in _tokens(statement):
        if tok.type == tokenize.COMMENT:
            if not stack:
                comment = tok.string
            else:  # after an item's comma: that item's; else the item it follows
                group = stack[-1][0]
                k = len(group.items) - 1 if not item and group.items else len(group.items)
                if k == len(group.items):
                    group.items.append(item)
                    item = []
                group.comments += [""] * (len(group.items) - len(group.comments))
                group.comments[k] = f"{group.comments[k]} {tok.string}".strip()
            continue
        gap = ""
        if prev is not None and prev.end[0] == tok.start[0] and item:
            gap = prev.line[prev.end[1]:tok.start[1]]
        before, prev = prev, tok
        text = tok.string
        if tok.type == tokenize.OP and text in "([{":
            last = before.string if before is not None and item else ""
            value = before is not None and bool(item) and not gap and (
                before.type == tokenize.STRING or last in (")", "]", "}")
                or before.type == tokenize.NAME and not keyword.iskeyword(last))
            kind = {"(": "call" if value else "paren", "[": "subscript" if value else "call", "{": "call"}[text]
            if gap:
                item.append(gap)
            group = Group(text, {"(": ")", "[": "]", "{": "}"}[text], kind)
            item.append(group)
            stack.append((group, item))
            item = []
            lambdas.append(0)
            continue
        if tok.type == tokenize.OP and text in ")]}":
            group, outer = stack.pop()
            lambdas.pop()
            if item:
                group.items.append(item)
            elif group.items:
                group.trailing = True
            group.comments += [""] * (len(group.items) - len(group.comments))
            if group.kind == "paren" and (len(group.items) > 1 or group.trailing):
                group.kind = "tuple"
            item = outer
            continue
        if tok.type == tokenize.OP and text == "," and stack and not lambdas[-1]:
            stack[-1][0].items.append(item)
            item = []
            continue
        if tok.type == tokenize.NAME and text == "lambda":
            lambdas[-1] += 1
        elif tok.type == tokenize.OP and text == ":" and lambdas[-1]:
            lambdas[-1] -= 1
        if item and isinstance(item[-1], str):
            item[-1] += gap + text
        else:
            item.append(gap + text)
    return top, comment


def render(statement: str | Stmt, indent: str = "", width: int = WIDTH) -> str:
    """One statement laid out as ruff format lays it out: on one line if it fits (its comment included) and
    nothing forces a split; else, left to right, each bracket group that does not fit up to the next place a
    line may break is split one item per line with a trailing comma (which keeps it split under any line
    length), recursively. The statement may span lines, with comments after items inside brackets.

    A comment that would make a statement (or an item) split that fits on its line alone goes on the line
    above it. Where the layout would not be ruff format's under every line length (a split that no trailing
    comma holds: a subscript, a parenthesised expression, a fluent call chain, a line that cannot split), the
    statement's comment goes on the line above it, and the statement alone is laid out."""
    if isinstance(statement, Stmt):  # laid out from its structure
        parts, comment, indent = statement.parts(), statement.comment, statement.indent
        if CHECK[0] and (parts, comment) != _merged(*parse(_source(parts) + (f"  {comment}" if comment else ""))):
            raise AssertionError(f"structure and text differ: {statement}")
    else:  # fixed source text (a helper template): its structure is read from its tokens
        parts, comment = parse(statement)
    if comment and _fits(parts, indent, "", width) and not _fits(parts, indent, f"  {comment}", width):
        return f"{indent}{comment}\n{indent}{_flat(parts)}"  # the comment above: one line, not a split
    trouble: list[str] = []
    lines = _lines(parts, indent, indent, f"  {comment}" if comment else "", width, trouble)
    if trouble and comment:
        lines = [indent + comment, *_lines(parts, indent, indent, "", width, [])]
    return "\n".join(lines)


def _merged(parts: list, comment: str = "") -> tuple[list, str]:
    """Parts with adjacent texts merged at every level (parse keeps the space before a bracket apart)."""
    out = join(*(p if isinstance(p, str) else Group(p.open, p.close, p.kind, [_merged(i)[0] for i in p.items],
                                                     p.comments, p.trailing) for p in parts))
    return out, comment


def _source(parts: list) -> str:
    """Text of parts with each trailing comma and comment written out (to check structure against parse)."""
    out = ""
    for p in parts:
        if isinstance(p, str):
            out += p
        elif p.trailing and (len(p.items) > 1 or p.kind not in ("tuple", "subscript")):
            lines = (f"{_source(i)},{f'  {c}' if c else ''}\n" for i, c in zip(p.items, p.comments))
            out += p.open + "\n" + "".join(lines) + p.close
        else:
            one = "," if p.trailing else ""
            out += p.open + ", ".join(_source(i) for i in p.items) + one + p.close
    return out


def _fits(parts: list, first: str, tail: str, width: int) -> bool:
    return not _forced(parts) and len(first + _flat(parts) + tail) <= width


def _lines(parts: list, first: str, indent: str, tail: str, width: int, trouble: list) -> list[str]:
    if not _forced(parts) and len(first + _flat(parts) + tail) <= width:
        return [first + _flat(parts) + tail]
    chained = sum(isinstance(a, Group) and isinstance(b, str) and b.startswith(".") for a, b in zip(parts, parts[1:]))
    if chained >= 2:
        trouble.append("a fluent call chain")  # ruff splits it before each dot
    lines, line = [], first
    for i, part in enumerate(parts):
        if isinstance(part, str):
            line += part
            continue
        rest = ""
        for after in parts[i + 1:]:
            if isinstance(after, Group):
                rest += after.open
                break
            rest += after
        else:
            rest += tail
        if not part.items or not part.forced() and len(line + part.flat() + rest) <= width:
            line += part.flat()
            continue
        comma = "," if part.kind == "call" or len(part.items) > 1 or part.trailing else ""
        if not comma:
            trouble.append("a split without a trailing comma")
        lines.append(line + part.open)
        inner = indent + "    "
        for item, note in zip(part.items, part.comments):
            if note and _fits(item, inner, comma, width) and not _fits(item, inner, f"{comma}  {note}", width):
                lines += [inner + note, inner + _flat(item) + comma]  # the comment above: one line, not a split
            else:
                lines += _lines(item, inner, inner, comma + (f"  {note}" if note else ""), width, trouble)
        line = indent + part.close
    if len(line + tail) > width and not any(isinstance(p, Group) for p in parts):
        trouble.append("a line that cannot split")
    return lines + [line + tail]


_COMPOUND = {"def", "class", "if", "elif", "else", "for", "while", "with", "try", "except", "finally", "async"}


_STMT = "__dlspec_statement_"


def format_lines(lines: list[str | Stmt], width: int = WIDTH) -> list[str]:
    """Source lines with every simple statement laid out by :func:`render`: a :class:`Stmt` from its structure, a
    line of text (fixed source: a template's lines, a compound statement's header) from its tokens. Compound
    statements' headers, decorators, docstrings and blank lines stay as they are."""
    if not lines:
        return []
    stmts = {f"{s.indent}{_STMT}{k}": s for k, s in enumerate(lines) if isinstance(s, Stmt)}  # stand-in lines
    text = "\n".join(f"{s.indent}{_STMT}{k}" if isinstance(s, Stmt) else s for k, s in enumerate(lines)) + "\n"
    out, rows = [], text.splitlines()
    logical: list[tuple[int, int]] = []  # (first row, last row), 1-based
    begin = None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            if tok.type == tokenize.COMMENT and begin is None:
                logical.append((tok.start[0], tok.start[0]))
            continue
        if begin is None:
            begin = tok
        if tok.type == tokenize.NEWLINE:
            logical.append((begin.start[0], tok.start[0]))
            begin = None
    row = 1
    for first, last in logical:
        out += rows[row - 1:first - 1]  # blank lines
        chunk = rows[first - 1:last]
        stripped = chunk[0].lstrip()
        head = re.match(r"[A-Za-z_]\w*", stripped)
        simple = head and head.group() not in _COMPOUND and not stripped.startswith(("@", "#"))
        if simple and len(chunk) == 1 and chunk[0] in stmts:
            out += render(stmts[chunk[0]], "", width).splitlines()
        elif simple:
            indent = chunk[0][:len(chunk[0]) - len(stripped)]
            out += render("\n".join(c.strip() for c in chunk), indent, width).splitlines()
        else:
            out += chunk
        row = last + 1
    out += rows[row - 1:]
    return out


class Namespace:
    """Python variable names for graph values: dots become underscores, clashes get a suffix."""

    def __init__(self, values: list[str], reserved=()):
        import builtins

        self.vars: dict[str, str] = {}
        # a variable named like a builtin, a module-level name or a helper class (``reserved``) would shadow it
        self.used: set[str] = {*dir(builtins), *MODULE_NAMES, *reserved, "build_model", "load_weights",
                               "read_safetensors"}
        for value in values:
            self.vars[value] = self.fresh(value.replace(".", "_"))

    def fresh(self, stem: str) -> str:
        """A variable name not used yet, based on ``stem``."""
        name, i = stem, 1
        while name in self.used:
            i += 1
            name = f"{stem}_{i}"
        self.used.add(name)
        return name

    def __getitem__(self, value: str) -> str:
        return self.vars[value]


def frozen_prefixes(frozen: dict[str, bool]) -> list[str]:
    """The fewest dotted name prefixes that cover exactly the frozen names of ``frozen`` ({name: frozen}):
    ``layer1`` when every name under it is frozen, else its frozen members one level down, in order."""
    out: list[str] = []
    for name, is_frozen in frozen.items():
        if not is_frozen:
            continue
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if all(f for n, f in frozen.items() if n == prefix or n.startswith(prefix + ".")):
                if prefix not in out:
                    out.append(prefix)
                break
    return out
