"""Blocks as classes: each instance of a block as a graph of its own, and one parameterised class for all
instances of a block whose source differs only in numbers (channel counts, rates, ...)."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, fields, replace

from ..errors import InternalError
from ..ir import Graph, Input, Node
from .codegen import class_name
from .source import Atom, Call, Kw, Lit, Neg, Stmt, mapped
from .source import Node as Expr

BLOCK = "block instance"  # the op of a node standing for a block instance (see collapse)


@dataclass
class Instance:
    """An outermost block instance: its nodes and, where it can be a class, its graph."""

    prefix: str
    block: str
    args: dict
    loc: object
    nodes: list[Node]
    values: tuple[str, ...]  # the values its inputs read
    output: str = ""  # the value it gives the rest of the graph
    graph: Graph | None = None  # None: it stays unrolled (it feeds several values out, or reads a parameter...)


def instances(graph: Graph, depth: int = 0, containers: bool = False) -> list[Instance]:
    """The block instances of ``graph`` at nesting ``depth`` (0: the outermost), in graph order, each with its own
    graph where it has one. Instances nested deeper are part of theirs: collapse them first (see :func:`collapse`)
    for their classes to be members of it. ``containers``: an instance whose members are named 0, 1, ... gets a
    graph too (a function can make it; a torch class would not keep its members' names)."""
    found: dict[str, Instance] = {}
    for node in graph.nodes:
        if len(node.blocks) > depth:
            prefix, block, args, _, values, loc = node.blocks[depth]
            found.setdefault(prefix, Instance(prefix, block, dict(args), loc, [], values)).nodes.append(node)
    readers: dict[str, set[str]] = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers.setdefault(v, set()).add(node.name)
    for inst in found.values():
        inst.graph = _instance_graph(graph, inst, readers, depth, containers)
    return list(found.values())


def _instance_graph(graph: Graph, inst: Instance, readers: dict, depth: int, containers: bool) -> Graph | None:
    inside = {n.name for n in inst.nodes}
    names = inst.nodes[0].blocks[depth][3]
    if len(set(inst.values)) != len(inst.values) or not all(graph.is_batched(v) for v in inst.values):
        return None
    rename = {n.name: n.name[len(inst.prefix) + 1:] for n in inst.nodes}
    rename.update(zip(inst.values, names))
    if any(v not in rename for n in inst.nodes for v in n.inputs):
        return None
    if not containers and any(n.name[len(inst.prefix) + 1:].split(".")[0].isdigit() for n in inst.nodes):
        return None  # members named 0, 1, ...: the instance is a container, not a class with attributes
    outs = [n.name for n in inst.nodes if n.name in graph.outputs or readers.get(n.name, set()) - inside]
    if len(outs) != 1:
        return None
    inst.output = outs[0]
    dtypes = {i.name: i.dtype for i in graph.inputs}
    inputs = [Input(name, graph.shape_of(v), dtypes.get(v, "float32"), inst.loc) for name, v in zip(names, inst.values)]
    cut = len(inst.prefix) + 1  # the instances nested in it, named inside it
    nodes = [replace(n, name=rename[n.name], inputs=tuple(rename[v] for v in n.inputs),
                     blocks=tuple((p[cut:], b, a, nm, tuple(rename.get(v, v) for v in vals), loc)
                                  for p, b, a, nm, vals, loc in n.blocks[depth + 1:]),
                     attrs={**n.attrs, "path": n.attrs["path"][len(inst.prefix) + 1:]} if n.op == BLOCK else n.attrs)
             for n in inst.nodes]
    return Graph(inst.block, "", graph.source, inputs, nodes, [rename[outs[0]]])


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NL, tokenize.ENDMARKER)]


def _number(text: str):
    return ast.literal_eval(text)


@dataclass
class BlockClass:
    """One class (or function): its source lines, and for each of its instances the arguments it takes."""

    name: str
    lines: list  # text (headers) and statements (Stmt)
    args: dict[str, dict[str, str]]  # instance prefix -> {parameter: value as source}

    def call(self, prefix: str, *first: Expr, **last: Expr) -> Call:
        """``Name(first..., param=value, ..., last=...)`` for the instance ``prefix``."""
        params = {k: Lit(_number(v)) if v[:1].isdigit() else Atom(v) for k, v in self.args[prefix].items()}
        return Call(Atom(self.name), first, tuple(Kw(k, v) for k, v in {**params, **last}.items()))


def _number_slot(node) -> bool:
    return isinstance(node, Lit) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def _module_slot(node) -> bool:
    """Whether ``node`` is a call of a torch module class, ``nn.Name(...)``."""
    if not isinstance(node, Call) or not isinstance(node.func, Atom):
        return False
    head, _, cls = node.func.text.partition(".")
    return head == "nn" and cls.isidentifier()


_HOLE = Atom("\x02")


def _slotted(node, fill, keyword: str = ""):
    """``node`` rebuilt with each slot (a number literal, or the class of a called ``nn.Name(...)``) replaced by
    ``fill(slot, keyword)``, slots in source order; ``keyword`` names the argument a number is passed as."""
    if isinstance(node, tuple):
        return tuple(_slotted(n, fill) for n in node)
    if isinstance(node, Kw):
        return replace(node, value=_slotted(node.value, fill, node.name))
    if _number_slot(node):
        return fill(node, keyword)
    if _module_slot(node):
        func = fill(node.func, "")  # before the arguments, as in the source
        return replace(node, func=func, args=_slotted(node.args, fill), kwargs=_slotted(node.kwargs, fill))
    if not isinstance(node, (Expr, Stmt)):
        return node
    return replace(node, **{f.name: _slotted(getattr(node, f.name), fill) for f in fields(node)
                            if isinstance(getattr(node, f.name), (Expr, Stmt, tuple))})


def _slots(line) -> tuple[object, list[tuple]]:
    """A draft line's skeleton (its slots replaced by a hole, a keyword holding its callee's default like any other)
    and its slots in order, each with the keyword it is passed as."""
    if not isinstance(line, Stmt):
        return line, []
    found = []
    skeleton = _slotted(line, lambda slot, keyword: found.append((slot, keyword)) or _HOLE)
    return _plain(skeleton), found


def _plain(node):
    """``node`` with no keyword marked as its callee's default."""
    return mapped(node, lambda n: _plain(replace(n, default=False)) if isinstance(n, Kw) and n.default else None)


def parameterise(drafts: list, insts: list[Instance], name: str, head: tuple[str, str],
                 forward_at: str | None = None) -> BlockClass | None:
    """One class (or function) for instances whose drafts (lines: text for headers, :class:`Stmt` for statements;
    named ``name``) differ only in numbers and torch module classes (``nn.ReLU``, ``nn.Hardswish``), none of them after
    the line ``forward_at``: each differing number becomes a parameter, named after the block parameter that it
    equals in every instance, else after the keyword it is passed as; a module class, after the block parameter
    whose values tell the instances apart as it does (``act=nn.Hardswish``, as torchvision's ``activation_layer``).
    ``head`` is the draft's signature line and its form with ``{params}`` where ``, a, b`` go. A keyword argument
    that holds its callee's default stays out of the class's source unless it became a parameter."""
    first = drafts[0]
    if any(len(d) != len(first) for d in drafts):
        return None
    cut = first.index(forward_at) if forward_at is not None else len(first)
    diffs = []  # (line, slot, its values, the keyword it is passed as)
    for row, line in enumerate(first):
        skeleton, slots = _slots(line)
        others = [_slots(d[row]) for d in drafts[1:]]
        if any(sk != skeleton for sk, _ in others):
            return None
        for k, (node, keyword) in enumerate(slots):
            leaves = [node] + [sl[k][0] for _, sl in others]
            if isinstance(node, Atom):  # a module class
                if len({leaf.text for leaf in leaves}) > 1:
                    diffs.append((row, k, [Module(leaf.text) for leaf in leaves], ""))
                continue
            strings = [repr(leaf.value) for leaf in leaves]
            if len(set(strings)) == 1:
                continue
            if len({s.startswith("-") for s in strings}) > 1:
                return None  # a minus sign in some instances only: the drafts differ in more than a number
            diffs.append((row, k, [_number(s.removeprefix("-")) for s in strings], keyword))
    if any(row >= cut for row, *_ in diffs):
        return None  # a number that the forward pass reads: instances differ in more than construction
    text = "\n".join(str(line) for line in first) + "\n"
    taken = {t.string for t in _tokens(text) if t.type == tokenize.NAME}
    params: dict[tuple, str] = {}  # (values, the block parameter or keyword it stands for) -> parameter name
    keys = [_key(values, keyword, insts) for _, _, values, keyword in diffs]
    for key in keys:
        if key not in params:
            params[key] = _free(key[1], params, taken, insts)
    swap = {(row, k): params[key] for (row, k, _, _), key in zip(diffs, keys)}
    signature = "".join(f", {p}" for p in params.values())
    out = [line.replace(head[0], head[1].format(params=signature)) if isinstance(line, str) else
           _substituted(line, {k: p for (r, k), p in swap.items() if r == row}) for row, line in enumerate(first)]
    args = {}
    for k, inst in enumerate(insts):
        args[inst.prefix] = {}
        for (_, _, values, _), key in zip(diffs, keys):
            args[inst.prefix].setdefault(params[key], str(values[k]) if isinstance(values[k], Module)
                                         else repr(values[k]))  # a number as its draft wrote it
    return BlockClass(name, out, args)


def _substituted(line: Stmt, params: dict[int, str]) -> Stmt:
    """``line`` with its slots ``k`` named by ``params[k]`` (a negative number keeps its sign: ``-param``)."""
    order = iter(range(1 << 30))

    def fill(slot, keyword):
        k = next(order)
        if k not in params:
            return slot
        negative = isinstance(slot, Lit) and repr(slot.value).startswith("-")
        return Neg(Atom(params[k])) if negative else Atom(params[k])

    return _slotted(line, fill)


def _key(values: list, keyword: str, insts: list[Instance]) -> tuple:
    if isinstance(values[0], Module):  # the block parameter that groups the instances as the class does
        found = [a for a in insts[0].args if all((x.args.get(a) == y.args.get(a)) == (v == w)
                                                 for x, v in zip(insts, values) for y, w in zip(insts, values))]
    else:
        found = [a for a in insts[0].args if all(repr(inst.args.get(a)) == repr(v) for inst, v in zip(insts, values))]
    # among parameters with equal values (stride and padding may be 2, 1, 2), the one the keyword names
    found.sort(key=lambda a: (a != keyword, not keyword.startswith(a)))
    arg = found[0] if found else keyword or ("module" if isinstance(values[0], Module) else "value")
    return tuple(map(repr, values)), arg


def _free(stem: str, params: dict, taken: set, insts: list[Instance]) -> str:
    arg, n = stem, 1
    while arg in params.values() or (arg in taken and arg not in insts[0].args and arg != stem) or arg in (
            "self", "nn", "F", "torch", "np", "keras", "super", "name"):
        n += 1
        arg = f"{stem}_{n}"
    return arg


class Module(str):
    """A torch module class as it is written (``nn.ReLU``): a value that parameterise passes to a class."""


def group_classes(insts: list[Instance], drafts: dict[str, str], names: dict[str, str], taken: set[str],
                  head: tuple[str, str], forward_at=lambda inst: None, singles: bool = False) -> dict[str, BlockClass]:
    """A class for the instances of each block (instance prefix -> its class). Where instances differ in more
    than numbers, they fall into groups, in order, each of instances that one class can make (an instance joins
    the first group it fits); each group of several instances (with ``singles``, every group) gets a class of its
    own (``Expand``, ``Expand2``; functions ``expand``, ``expand_2``); the rest get none."""
    out = {}
    for block, cls in names.items():
        group = [i for i in insts if i.block == block]
        made = parameterise([drafts[i.prefix] for i in group], group, cls, head, forward_at(group[0]))
        if made is not None:
            out.update((i.prefix, made) for i in group)
            continue
        kinds: list[list[Instance]] = []
        for inst in group:
            fits = (k for k in kinds if parameterise([drafts[i.prefix] for i in [*k, inst]], [*k, inst], cls, head,
                                                     forward_at(inst)) is not None)
            kind = next(fits, None)
            kind.append(inst) if kind is not None else kinds.append([inst])
        kinds = [k for k in kinds if singles or len(k) > 1]
        for k, sub in enumerate(kinds):
            name = cls
            if k:
                other = f"{cls}_{k + 1}" if cls[:1].islower() else f"{cls}{k + 1}"
                name, n = other, k + 1
                while name in taken or name in names.values():
                    n += 1
                    name = f"{cls}_{n}" if cls[:1].islower() else f"{cls}{n}"
                taken.add(name)
            renamed = (head[0].replace(cls, name), head[1].replace(cls, name))
            made = parameterise([_renamed(drafts[i.prefix], cls, name) for i in sub], sub, name, renamed,
                                forward_at(sub[0]))
            out.update((i.prefix, made) for i in sub)
    return out


def _renamed(draft: list, old: str, new: str) -> list:
    """A draft with its first mention of ``old`` (its signature line) naming ``new``."""
    at = next(i for i, line in enumerate(draft) if isinstance(line, str) and old in line)
    return [*draft[:at], draft[at].replace(old, new, 1), *draft[at + 1:]]


def collapse(graph: Graph, insts: list[Instance], calls: dict[str, str], depth: int = 0) -> Graph:
    """``graph`` with each instance (at nesting ``depth``) that has a call replaced by one node (op BLOCK) where its
    output was, whose attributes hold the instance's path and the call that makes it; it lies in the instances
    that held the one it replaces."""
    done = {i.output: i for i in insts if i.prefix in calls}
    members = {n.name for i in done.values() for n in i.nodes}
    nodes = []
    for node in graph.nodes:
        if node.name in done:
            inst = done[node.name]
            nodes.append(Node(node.name, BLOCK, inst.values, {"path": inst.prefix, "module": calls[inst.prefix]},
                              inst.loc, inst.prefix, shape=node.shape, blocks=node.blocks[:depth]))
        elif node.name not in members:
            nodes.append(node)
    seen = {i.name for i in graph.inputs}
    for node in nodes:  # the instance's node stands where its output was: check the order still holds
        if any(v not in seen for v in node.inputs):
            raise InternalError(f"block classes broke the graph order at {node.name}")
        seen.add(node.name)
    return replace(graph, nodes=nodes)


def class_names(blocks: list[str], taken: set[str]) -> dict[str, str]:
    """A class name per block name, unique and clear of ``taken``."""
    out = {}
    for block in blocks:
        stem = class_name(block)
        name, n = stem, 1
        while name in taken or name in out.values():
            n += 1
            name = f"{stem}{n}"
        out[block] = name
    return out
