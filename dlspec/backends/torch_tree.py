"""The module tree of a generated ``nn.Module``'s constructor: each layer's submodule under its dotted name, in
``nn.ModuleList``, ``nn.ModuleDict`` or ``Scope`` containers, runs of layers merged into one ``nn.Sequential``, and
the attribute path that reaches each submodule."""

from __future__ import annotations

from ..ir import Act, Graph
from ..spec.types import RESERVED_NAMES
from .classes import BLOCK
from .codegen import where
from .source import Atom, Attr, Call, Dict, List, Node, Ref, Stmt, Subscript, call, lit

_DICT_METHODS = {"clear", "items", "keys", "pop", "update", "values"}


def access(name: str, tree: dict) -> Node:
    """``layer1.0.conv1`` -> ``self.layer1[0].conv1``, following the container kinds in ``tree``."""
    out, node = Atom("self"), tree
    for part in name.split("."):
        if part.isdigit():
            out = Subscript(out, (Atom(part) if _is_list(node) else lit(part),))
        elif out == Atom("self") or (part not in RESERVED_NAMES and part not in _DICT_METHODS):
            out = Attr(out, part)
        else:
            out = Subscript(out, (lit(part),))
        node = node[part]
    return out


def _is_list(node: dict) -> bool:
    return all(k.isdigit() for k in node) and sorted(int(k) for k in node) == list(range(len(node)))


SCOPE = '''
class Scope(nn.Module):
    """Submodules and parameters under one name (a ModuleDict cannot hold parameters)."""

    def __init__(self, members):
        super().__init__()
        for name, member in members.items():
            setattr(self, name, member)

    def __getitem__(self, name):
        return getattr(self, str(name))
'''


def _holds_parameter(node: dict) -> bool:
    return any(isinstance(v, tuple) and isinstance(v[0], Call) and v[0].func == Atom("nn.Parameter")
               for v in node.values())


def _construct(node) -> tuple[Node, str]:
    """The expression constructing one module-tree entry and its comment: a leaf module, or an nn.Sequential or
    ModuleList/ModuleDict (a Scope where it holds a parameter) with a trailing comma after each member, which
    keeps it one member per line. :func:`codegen.render` lays it out."""
    if isinstance(node, tuple):  # leaf: (module expression, comment)
        return node[0], node[1].strip()
    if isinstance(node, Chain):
        members = [_construct(v) for v in node.values()]
        return Call(Atom("nn.Sequential"), tuple(m for m, _ in members), (), tuple(c for _, c in members), True), ""
    if _is_list(node):
        members = [_construct(node[str(i)]) for i in range(len(node))]
        display = List(tuple(m for m, _ in members), tuple(c for _, c in members), True)
    else:
        members = [(lit(k), *_construct(v)) for k, v in node.items()]
        display = Dict(tuple((k, m) for k, m, _ in members), tuple(c for _, _, c in members), True)
    func = "Scope" if _holds_parameter(node) else "nn.ModuleList" if _is_list(node) else "nn.ModuleDict"
    return call(func, display), ""


class Chain(dict):
    """Members ``0``, ``1``, ... of the module tree that form one ``nn.Sequential`` (see :func:`find_chains`)."""


# Activations that a chain holds as modules, as torchvision's blocks do (each reads a value nothing else reads)
_ACTIVATION_MODULES = {"relu": call("nn.ReLU", inplace=True), "relu6": call("nn.ReLU6", inplace=True),
                       "hardswish": call("nn.Hardswish", inplace=True),
                       "hardsigmoid": call("nn.Hardsigmoid", inplace=True), "silu": call("nn.SiLU", inplace=True),
                       "sigmoid": call("nn.Sigmoid"), "tanh": call("nn.Tanh")}


def find_chains(graph: Graph, out: list, names: dict[str, str], tree: dict) -> None:
    """Layers ``p.0``, ``p.1``, ... that are all of ``p``, next to each other in the graph, each a plain call of
    its module (or an activation) on the previous one's output (which nothing else reads): one ``nn.Sequential``
    named ``p``, which forward calls once (torchvision's ``downsample``, ``Conv2dNormActivation`` and
    ``features``). Innermost first, so a chain can be a member of another. Updates ``out`` and ``tree``."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    # live entries: [node, layer, path in the module tree, the value it reads]
    live = [[node, lay, node.attrs["path"] if node.op == BLOCK else node.name, node.inputs[0] if node.inputs else None]
            for node, lay in out if node.op != "parameter"]
    merged = True
    while merged:
        merged = False
        groups: dict[str, list[int]] = {}
        for i, (_, _, path, _) in enumerate(live):
            head = path.rpartition(".")[0]
            if head:
                groups.setdefault(head, []).append(i)
        for head in sorted(groups, key=lambda h: -h.count(".")):
            at = groups[head]
            if len(at) < 2 or at != list(range(at[0], at[0] + len(at))):
                continue
            members = [live[i] for i in at]
            *parents, leaf = head.split(".")
            slot = tree
            for part in parents:
                slot = slot.get(part) if isinstance(slot, dict) else None
            inner = slot.get(leaf) if isinstance(slot, dict) else None
            if type(inner) is not dict or not set(inner) <= {str(k) for k in range(len(at))}:
                continue
            modules = []
            for k, (node, lay, path, src) in enumerate(members):
                if path != f"{head}.{k}" or src is None or len(node.inputs) > 1 and node.op != BLOCK:
                    break
                act = Act.of(node.attrs) if node.op == "activation" else None
                if str(k) in inner and lay.call == call(Ref(path), names[src]):
                    modules.append(inner[str(k)][0] if isinstance(inner[str(k)], tuple) else inner[str(k)])
                elif k > 0 and not lay.module and act is not None and act.kind in _ACTIVATION_MODULES \
                        and act == Act(act.kind) and str(k) not in inner:
                    modules.append(_ACTIVATION_MODULES[act.kind])
                else:
                    break
            else:
                if all(b[3] == a[0].name and readers.get(a[0].name) == 1 and a[0].name not in graph.outputs
                       for a, b in zip(members, members[1:])):
                    slot[leaf] = Chain((str(k), m if isinstance(m, Chain) else (m, f"  {where(graph, n)}"))
                                       for k, (m, (n, *_)) in enumerate(zip(modules, members)))
                    for _, lay, _, _ in members[:-1]:
                        lay.line = "none"
                    last = members[-1]
                    last[1].call, last[1].line = call(Ref(head), names[members[0][3]]), "shared"
                    last[2], last[3] = head, members[0][3]
                    live[at[0]:at[-1] + 1] = [last]
                    merged = True
                    break


def module_lines(tree: dict) -> list[Stmt]:
    """The ``__init__`` lines that assign each top-level entry of the module tree."""
    return [Stmt("        ", f"self.{key} = ", *_construct(node)) for key, node in tree.items()]
