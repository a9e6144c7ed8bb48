"""One generated ``nn.Module`` class from a graph: its submodules, initialisers and freezing in ``__init__``, and
``forward`` with variables named as an engineer would name them, overwriting values that nothing reads again."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Act, Graph
from ..spec.types import RESERVED_NAMES
from .classes import BLOCK
from .codegen import frozen_prefixes, where
from .context import EmitContext
from .registry import emitters
from .source import Atom, Node, Ref, Stmt, Var, call, lit, mapped
from .torch_emit import TorchLayer
from .torch_tree import access, find_chains, module_lines


def frozen_lines(graph: Graph) -> tuple[list[Stmt], list[str]]:
    """Module-level constants naming the frozen submodules and parameters, and the ``__init__`` lines that
    freeze them; the class's ``train`` keeps frozen submodules in inference mode."""
    prefixes = frozen_prefixes({n.name: not n.trainable for n in graph.nodes if n.params})
    params = [p for p in prefixes if any(n.name == p and n.op == "parameter" for n in graph.nodes)]
    modules = [p for p in prefixes if p not in params]
    consts, init = [], []
    if modules:
        consts.append(Stmt("", "FROZEN = ", lit(tuple(modules)), "# fixed weights, BatchNorm in inference mode"))
        init += ["        for name in FROZEN:", "            self.get_submodule(name).requires_grad_(False)"]
    if params:
        consts.append(Stmt("", "FROZEN_PARAMETERS = ", lit(tuple(params))))
        init += ["        for name in FROZEN_PARAMETERS:", "            self.get_parameter(name).requires_grad_(False)"]
    return consts, init


TRAIN = '''
    def train(self, mode=True):
        """Set training mode; frozen submodules stay in inference mode (BatchNorm keeps its statistics)."""
        super().train(mode)
        for name in FROZEN:
            self.get_submodule(name).eval()
        return self
'''


# Ops whose backward pass does not read their own output, so a single consumer may overwrite it in place
# (as torchvision's blocks do with relu(inplace=True) and out += identity).
_OVERWRITABLE = {"batchnorm", "add", "multiply", "conv1d", "conv2d", "dense", "groupnorm"}
# Ops that return their input itself at inference (and at rate 0): their output may be overwritten only
# where their input may be (ConvNeXt's `layer_scale * block`, then stochastic depth, then `+= input`).
_ALIASING = {"dropout", "stochastic_depth"}


def inplace_values(graph: Graph) -> set[str]:
    """Values that exactly one node reads, that are not outputs, and whose producer allows it."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    out = {n.name for n in graph.nodes if n.op in _OVERWRITABLE and readers.get(n.name) == 1
           and n.name not in graph.outputs and Act.of(n.attrs.get("activation")) is None}
    for n in graph.nodes:  # in graph order, so a chain of aliasing ops resolves
        if n.op in _ALIASING and n.inputs[0] in out and readers.get(n.name) == 1 and n.name not in graph.outputs:
            out.add(n.name)
    return out


def variables(graph: Graph, stem: str = "x", chains: dict[str, str] | None = None) -> dict[str, str]:
    """A Python variable for every value, named as a careful engineer would: ``x`` at the top level (``out`` in
    a block's class) and the block instance (``layer1_0``) inside unrolled blocks. A node whose first input is
    read for the last time and lives in the same scope writes into that input's variable, as in
    ``x = self.conv(x)``, so dead activations are freed at once; a variable whose value is dead may be taken by
    the next fresh value. ``chains``: values that an ``nn.Sequential`` computes, and its name (``features``): such a
    value takes the main variable where that is free, else the chain's name (``downsample``)."""
    last_use = {v: i for i, node in enumerate(graph.nodes) for v in node.inputs}
    outputs = set(graph.outputs)
    var = {inp.name: inp.name for inp in graph.inputs}
    holder = {inp.name: inp.name for inp in graph.inputs}  # variable -> the value it holds now
    top = stem

    def free(name: str, i: int) -> bool:
        held = holder.get(name)
        return held is None or (held not in outputs and last_use.get(held, -1) < i)

    for i, node in enumerate(graph.nodes):
        if not node.inputs:  # a parameter: read where it is used, as self.<path>
            var[node.name] = ""
            continue
        stem = node.name.rsplit(".", 1)[0].replace(".", "_") if "." in node.name and node.op != BLOCK else top
        if chains and node.name in chains:
            head = chains[node.name]
            stem = top if free(top, i) or var[node.inputs[0]] == top else head.replace(".", "_")
        if node.op == "slice" and node.attrs.get("index") is not None:  # output k of split s: s_k
            stem = node.name.replace(".", "_")
        if len(outputs) > 1 and node.name in outputs:  # return last_hidden_state, pooler_output: the spec's names
            stem = node.name.replace(".", "_")
        first = var[node.inputs[0]]
        if (first == stem or first.startswith(stem + "_") and first[len(stem) + 1:].isdigit()) and free(first, i + 1) \
                and node.inputs.count(node.inputs[0]) == 1 and node.inputs[0] not in outputs:
            chosen = first
        else:
            chosen, n = stem, 1
            while not free(chosen, i) or chosen in RESERVED_NAMES:
                n += 1
                chosen = f"{stem}_{n}"
        var[node.name], holder[chosen] = chosen, node.name
    return var


def _layers(graph: Graph, stem: str):
    """Emit every node once: [(node, TorchLayer)], the module tree and each value's variable. Emitters see
    placeholders for the path to their submodule and for the variables they read, filled in once the tree shows
    which containers are lists and which layers form an ``nn.Sequential`` (whose value is named after it)."""
    table, tree, inplace = emitters("torch"), {}, inplace_values(graph)
    names: dict[str, Node] = {v: Var(v) for v in [i.name for i in graph.inputs] + [n.name for n in graph.nodes]}
    for node in graph.nodes:
        if node.op == "parameter":
            names[node.name] = Ref(node.name)
    out = []
    for node in graph.nodes:
        if node.op == BLOCK:
            path = node.attrs["path"]
            lay = TorchLayer(call(Ref(path), *(names[v] for v in node.inputs)), node.attrs["module"])
        else:
            path = node.name
            ctx = EmitContext(graph, node, [names[v] for v in node.inputs], [graph.shape_of(v) for v in node.inputs],
                              Ref(path), inplace=bool(node.inputs) and node.inputs[0] in inplace)
            lay = table[node.op](ctx)
        if lay.module:
            *parents, leaf = path.split(".")
            slot = tree
            for part in parents:
                slot = slot.setdefault(part, {})
            # a layer's comment is on its line of forward; a parameter, which has none, keeps it here
            slot[leaf] = (lay.module, f"  {where(graph, node)}" if node.op == "parameter" else "")
        out.append((node, lay))
    find_chains(graph, out, names, tree)
    kept, chains = [], {}
    for node, lay in out:
        if lay.line == "shared":  # the chain's value, computed from the chain's input
            head, src = lay.call.func.path, lay.call.args[0].value
            chains[node.name] = head
            node = replace(node, inputs=(src,))
        if lay.line != "none":
            kept.append(node)
    var = variables(replace(graph, nodes=kept), stem, chains)
    def hole(node: Node) -> Node | None:
        if isinstance(node, Var):
            return Atom(var[node.value])
        return access(node.path, tree) if isinstance(node, Ref) else None

    for _, lay in out:  # a chain's members other than the last have no line of their own
        lay.call = mapped(lay.call, hole) if lay.line != "none" else None
        lay.inits = [mapped(i, hole) for i in lay.inits]
    return out, tree, {v: str(mapped(names[v], hole)) for v in var}


def class_lines(graph: Graph, cls: str, stem: str = "x", whole: Graph | None = None) -> list[str | Stmt]:
    """An ``nn.Module`` class computing ``graph``: submodules, initialisers, forward. The model's class (of
    ``whole``, the graph before block instances became nodes) also freezes what the spec freezes."""
    layers, tree, names = _layers(graph, stem)
    consts, freeze = frozen_lines(whole) if whole is not None else ([], [])
    lines = [f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    lines += module_lines(tree)
    inits = [s for _, lay in layers for s in lay.inits]
    if inits:
        lines += ["        with torch.no_grad():"] + [Stmt("            ", "", s) for s in inits]
    lines += freeze
    if any(line.head == "FROZEN = " for line in consts):
        lines += TRAIN.rstrip("\n").splitlines()
    args = ", ".join(names[i.name] for i in graph.inputs)
    lines += ["", f"    def forward(self, {args}):"]
    for node, lay in layers:
        if node.op == "parameter" or lay.line == "none":
            continue
        if lay.line == "shared":
            lines.append(Stmt("        ", f"{names[node.name]} = ", lay.call))
        elif lay.call == Atom(names[node.name]):  # an identity (a linear activation) whose value stays where it is
            lines.append(f"        {where(graph, node)} (identity)")
        else:
            lines.append(Stmt("        ", f"{names[node.name]} = ", lay.call, where(graph, node)))
    lines.append(Stmt("        ", "return ", Atom(", ".join(names[o] for o in graph.outputs))))
    return lines
