"""The generated PyTorch file: helper modules, one class per block, the model's class, ``build_model`` and
``load_weights``."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph
from ..ir import Node as GraphNode
from .classes import BLOCK, class_names, collapse, group_classes, instances
from .codegen import READ_SAFETENSORS, class_name, format_lines, header, module_source
from .source import Atom, Stmt, call, method
from .torch_class import class_lines, frozen_lines
from .torch_emit import HELPERS
from .torch_tree import SCOPE


def _collapse(graph: Graph, taken: set[str]) -> tuple[Graph, list[list[str]]]:
    """Each block instance that can be one becomes a node holding an instance of its block's class, innermost
    first, so that a block used inside a block is a class of its own, a member of the outer one (a chain of
    instances, one ``nn.Sequential``); returns that graph and each class's source lines."""
    sections: list[list[str]] = []
    for depth in reversed(range(max((len(n.blocks) for n in graph.nodes), default=0))):
        insts = [i for i in instances(graph, depth) if i.graph is not None]
        if not insts:
            continue
        names = class_names(list(dict.fromkeys(i.block for i in insts)), taken)
        drafts = {inst.prefix: class_lines(inst.graph, names[inst.block], "out") for inst in insts}
        made = group_classes(insts, drafts, names, taken, ("def __init__(self):", "def __init__(self{params}):"),
                             lambda i: "    def forward(self, " + ", ".join(x.name for x in i.graph.inputs) + "):")
        sections += list({id(c): c.lines for c in made.values()}.values())
        taken |= {c.name for c in made.values()}
        graph = collapse(graph, insts, {p: c.call(p) for p, c in made.items()}, depth)
    return replace(graph, nodes=_sequential(graph.nodes, graph.outputs)), sections


def _sequential(nodes: list[GraphNode], outputs: list[str]) -> list[GraphNode]:
    """A chain of block instances ``p.0``, ``p.1``, ... that are all of ``p``, each reading only the previous
    one's output and nothing else reading it: one ``nn.Sequential`` named ``p``."""
    readers: dict[str, int] = {}
    for node in nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    parent = {}
    for node in nodes:
        path = node.attrs["path"] if node.op == BLOCK else node.name
        head, _, last = path.rpartition(".")
        parent.setdefault(head, []).append((node, last if node.op == BLOCK else None))
    merged = {}
    for head, members in parent.items():
        chain = [n for n, _ in members]
        if not head or any(k != str(i) for i, (_, k) in enumerate(members)) or any(
                p == head or p.startswith(head + ".") for p in parent if p != head):
            continue
        if len(chain[0].inputs) != 1 or any(b.inputs != (a.name,) or readers.get(a.name) != 1 or a.name in outputs
                                            for a, b in zip(chain, chain[1:])):
            continue
        module = call("nn.Sequential", *(n.attrs["module"] for n in chain))
        merged[chain[-1].name] = replace(chain[-1], inputs=chain[0].inputs, attrs={"path": head, "module": module},
                                         loc=chain[0].loc)
        for n in chain[:-1]:
            merged[n.name] = None
    return [merged.get(n.name, n) for n in nodes if merged.get(n.name, n) is not None]


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """PyTorch source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    cls = class_name(graph.name)
    top, sections = _collapse(graph, {cls, "Scope"})
    sections.append(class_lines(top, cls, "x", graph))
    sections = [format_lines(section) for section in sections]  # the one place that lays out generated code
    text = "\n".join(line for section in sections for line in section)
    if "Scope(" in text:
        sections.insert(0, SCOPE.strip("\n").splitlines())
    for name in sorted(h for h in HELPERS if f"{h}(" in text):  # helper modules the layers construct
        sections.insert(0, HELPERS[name].strip("\n").splitlines())
    default = "WEIGHTS" if weights_file else "None"
    sections += [[f"def build_model(weights={default}):",
                  f'    """Build {cls}; ``weights`` is a safetensors path or a dict of numpy arrays."""',
                  f"    model = {cls}()", "    if weights is not None:", "        load_weights(model, weights)",
                  "    return model"], LOAD_WEIGHTS.strip("\n").splitlines(), READ_SAFETENSORS.strip("\n").splitlines()]
    imports = ["import numpy as np", "import torch", "from torch import nn"]
    imports += ["from torch.nn import functional as F"] if "F." in text else []
    weights = method(call("Path", Atom("__file__")), "with_name", weights_file)
    consts = [Stmt("", "WEIGHTS = ", weights)] if weights_file else []
    return module_source(header(graph, "PyTorch"), ["json", "pathlib"] if weights_file else ["json"], imports,
                         format_lines(consts + frozen_lines(graph)[0]), sections)


LOAD_WEIGHTS = '''
def load_weights(model, weights):
    """Load dlspec's canonical weights (a safetensors path or a dict of arrays) into ``model``."""
    if not isinstance(weights, dict):
        weights = read_safetensors(weights)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        extra = result.unexpected_keys
        raise ValueError(f"weights do not fit: missing {missing}, unexpected {extra}")
'''
