"""Helpers shared by the source generators: safe literals, comments, docstrings, layout."""

from __future__ import annotations

import json

from ..ir import Graph, Node

READ_SAFETENSORS = '''
_DTYPES = {"BF16": "<u2", "F16": "<f2", "F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "BOOL": "?"}


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
        arrays[name] = array.astype(np.float32) if info["dtype"] == "F16" else array.copy()
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
_LITERAL = r'(?:-?[0-9][0-9.e+-]*|True|False|None|"[^"]*")'


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


UNWRAPPED = [False]  # true while source is drafted to be compared (see torch_emit.block_classes): no wrapping


def wrap(statement: str, indent: str, width: int = 100) -> str:
    """Break a long statement's longest bracket group one item per line, as ruff format would.

    The width counts code only; a trailing ``# spec.yaml:LINE`` comment may run past it, up to
    ``width + 20`` characters in all.
    """
    import io
    import tokenize

    code = statement.split("  #")[0]
    if UNWRAPPED[0] or len(indent + code) <= width and len(indent + statement) <= width + 20:
        return indent + statement
    stack, groups = [], []  # groups: (open column, close column, comma columns)
    for tok in tokenize.generate_tokens(io.StringIO(statement).readline):
        if tok.type != tokenize.OP:
            continue
        if tok.string in "([{":
            stack.append((tok.start[1], []))
        elif tok.string in ")]}":
            start, commas = stack.pop()
            groups.append((start, tok.start[1], commas))
        elif tok.string == "," and stack:
            stack[-1][1].append(tok.start[1])
    if not groups:
        target, eq, value = code.partition(" = ")
        if eq and target.isidentifier() and "\n" not in value:  # x = a + b  ->  x = (\n    a + b\n)
            return "\n".join([f"{indent}{target} = (", f"{indent}    {value.strip()}",
                              indent + ")" + statement[len(code):]])
        return indent + statement
    # the group with the most items, preferring one whose outside fits; what stays outside too long (a call
    # of a constructed layer, f(...)(...)) is wrapped in turn
    ranked = sorted(groups, key=lambda g: (len(g[2]), g[1] - g[0]), reverse=True)
    start, close, commas = next((g for g in ranked if len(indent + statement[:g[0] + 1]) <= width
                                 and len(indent + statement[g[1]:]) <= width + 20), ranked[0])
    bounds = [start, *commas, close]
    items = [statement[a + 1:b].strip() for a, b in zip(bounds, bounds[1:])]
    inner = indent + "    "
    if len(items) == 1 and len(inner + items[0]) >= len(indent + statement):
        return indent + statement  # nothing left to split
    head, tail = statement[:start + 1], statement[close:]
    if not any(a < start and b > close for a, b, _ in groups):  # top level: head and tail are balanced
        if len(indent + head) > width:
            head = wrap(head[:-1], indent, width).lstrip() + head[-1]
        if len(indent + tail) > width + 20 and tail[1:].lstrip()[:1] in "([{":
            tail = tail[0] + wrap(tail[1:], indent, width - 1).lstrip()  # the ")" before it takes a column
    comma = "," if len(items) > 1 or _comma_keeps_meaning(statement, start) else ""
    return "\n".join([indent + head, *(wrap(item + comma, inner, width) for item in items if item), indent + tail])


def _comma_keeps_meaning(statement: str, start: int) -> bool:
    """Whether a trailing comma after the single item of the bracket at ``start`` changes nothing: true for a
    call and for a list, set or dict display; false for a subscript (``w["a",]`` indexes by a tuple) and a
    parenthesised expression (``(a + b,)`` is a tuple)."""
    import keyword
    import re

    before = statement[:start].rstrip()
    word = re.search(r"([A-Za-z_][A-Za-z0-9_]*)?$", before).group(1)
    follows_value = bool(word) and not keyword.iskeyword(word) or before[-1:] in (")", "]", '"', "'")
    return follows_value if statement[start] == "(" else not follows_value


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
