"""PyTorch source generator: one ``nn.Module`` class plus ``build_model`` and ``load_weights``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import ir
from ..ir import Act, Graph, Param
from ..ir import Node as GraphNode
from ..spec.types import RESERVED_NAMES
from .classes import BLOCK, class_names, collapse, group_classes, instances
from .codegen import READ_SAFETENSORS, class_name, format_lines, frozen_prefixes, header, module_source, where
from .context import EmitContext
from .registry import emitter, emitters
from .source import Atom, Attr, Call, Dict, List, Node, Ref, Stmt, Subscript, Var, call, lit, mapped, method


@dataclass
class TorchLayer:
    """A node in torch: an optional submodule, its forward expression, its initialisers, and the names of
    the helper classes (keys of ``HELPERS``) its module needs in the generated file."""

    call: Node
    module: Node | None = None
    inits: list[Node] = field(default_factory=list)
    helpers: tuple[str, ...] = ()
    line: str = "own"  # its line of forward: "own" (with its comment), "shared" (no comment: its members have
    # theirs in the constructor), or "none" (a member of an nn.Sequential that the last member's line calls)


HELPERS: dict[str, str] = {}  # helper class name -> its source, written once into files that use it


# Keyword defaults of torch's constructors and functions that generated code leaves out. Defaults that differ
# between torch and Keras (BatchNorm's eps and momentum, layer and group norm's eps, leaky ReLU's slope, softmax's
# axis) are not listed: those values stay explicit.
_CONV = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
DEFAULTS = {
    "nn.Conv1d": _CONV, "nn.Conv2d": _CONV, "nn.Linear": {"bias": True},
    "nn.ConvTranspose2d": {"stride": 1, "padding": 0, "output_padding": 0, "bias": True},
    "nn.MaxPool1d": {"padding": 0, "ceil_mode": False}, "nn.MaxPool2d": {"padding": 0, "ceil_mode": False},
    "nn.AvgPool1d": {"padding": 0, "ceil_mode": False, "count_include_pad": True},
    "nn.AvgPool2d": {"padding": 0, "ceil_mode": False, "count_include_pad": True},
    "F.elu": {"alpha": 1.0}, "F.gelu": {"approximate": "none"}, "F.softplus": {"beta": 1.0, "threshold": 20.0},
    "nn.LSTM": {"bidirectional": False}, "nn.GRU": {"bidirectional": False}, "nn.PReLU": {"init": 0.25},
}


def construct(target: str, *args, **values) -> Call:
    """A constructor or function call with torch's defaults left out."""
    return call(target, *args, defaults=DEFAULTS.get(target, {}), **values)


def _fn(target: str, x: Node, **values) -> Call:
    """``target(x, ...)``: a functional call on ``x`` with torch's defaults left out."""
    return construct(target, x, **values)


# One forward expression per activation of the registry (dlspec/activations.py); a test checks the keys.
ACTIVATIONS = {
    "linear": lambda act, x: x,
    "relu": lambda act, x: call("F.relu", x),
    "relu6": lambda act, x: call("F.relu6", x),
    "leaky_relu": lambda act, x: call("F.leaky_relu", x, negative_slope=act.negative_slope),
    "elu": lambda act, x: _fn("F.elu", x, alpha=act.alpha),
    "gelu": lambda act, x: _fn("F.gelu", x, approximate=act.approximate),
    "silu": lambda act, x: call("F.silu", x),
    "sigmoid": lambda act, x: call("torch.sigmoid", x),
    "tanh": lambda act, x: call("torch.tanh", x),
    "softmax": lambda act, x: call("F.softmax", x, dim=act.axis),
    "hardswish": lambda act, x: call("F.hardswish", x),
    "hardsigmoid": lambda act, x: call("F.hardsigmoid", x),
    "mish": lambda act, x: call("F.mish", x),
    "softplus": lambda act, x: _fn("F.softplus", x, beta=act.beta, threshold=act.threshold),
}


def activation(act: Act | None, x: Node) -> Node:
    """Forward expression applying ``act`` to ``x``."""
    return x if act is None else ACTIVATIONS[act.kind](act, x)


# One lowering per entry of the initialiser registry (dlspec/initializers.py). torch computes fans itself for
# rank >= 2; a bias takes its layer's fans, so ranks below 2 get dlspec's limits explicitly (init_statement).
INITIALIZERS = {  # (function, keyword arguments after the tensor)
    "zeros": ("nn.init.zeros_", {}),
    "ones": ("nn.init.ones_", {}),
    "normal": ("nn.init.normal_", {}),
    "glorot_uniform": ("nn.init.xavier_uniform_", {}),
    "glorot_normal": ("nn.init.xavier_normal_", {}),
    "he_uniform": ("nn.init.kaiming_uniform_", {"nonlinearity": "relu"}),
    "he_normal": ("nn.init.kaiming_normal_", {"nonlinearity": "relu"}),
    "lecun_uniform": ("nn.init.kaiming_uniform_", {"nonlinearity": "linear"}),
    "lecun_normal": ("nn.init.kaiming_normal_", {"nonlinearity": "linear"}),
}


def init_statement(param: Param, target: Node) -> Call:
    """A native initialiser call for one parameter (torch computes fans for rank >= 2)."""
    kind, scale = param.scale()  # a bias takes the fans of its layer
    if param.init not in INITIALIZERS:  # a fixed value no spec names, such as PReLU's 0.25
        return call("nn.init.constant_", target, val=scale)
    if kind == "constant" or len(param.shape) >= 2:
        fn, values = INITIALIZERS[param.init]
        return call(fn, target, **values)
    if kind == "uniform":
        return call("nn.init.uniform_", target, a=-scale, b=scale)
    return call("nn.init.normal_", target, mean=0.0, std=scale)


def _inits(ctx: EmitContext) -> list[Call]:
    node = ctx.node
    return [init_statement(p, Attr(ctx.module, p.name)) for p in node.params
            if p.trainable and not (p.init in ("ones", "zeros") and node.op in ("batchnorm", "layernorm"))]


@emitter("torch", ir.ops.Dense)
def _dense(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = construct("nn.Linear", in_features=ctx.in_shape[-1], out_features=a["units"], bias=a["use_bias"])
    return TorchLayer(activation(Act.of(a["activation"]), call(ctx.module, ctx.x)), module, _inits(ctx))


@emitter("torch", ir.ops.Activation)
def _activation(ctx: EmitContext) -> TorchLayer:
    act = Act.of(ctx.node.attrs)
    out = activation(act, ctx.x)
    if ctx.inplace and act is not None and act.kind in ("relu", "relu6", "leaky_relu", "elu"):
        out = out.plus(inplace=True)
    return TorchLayer(out)


@emitter("torch", ir.ops.Dropout)
def _dropout(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(call(ctx.module, ctx.x), call("nn.Dropout", p=ctx.node.attrs["rate"]))


@emitter("torch", ir.ops.BatchNorm)
def _batchnorm(ctx: EmitContext) -> TorchLayer:
    a, rank = ctx.node.attrs, len(ctx.in_shape)
    cls = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}[rank]
    module = call(f"nn.{cls}", num_features=ctx.in_shape[0], eps=a["eps"], momentum=a["momentum"])
    return TorchLayer(call(ctx.module, ctx.x), module)


@emitter("torch", ir.ops.Flatten)
def _flatten(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(call("torch.flatten", ctx.x, start_dim=1))


@emitter("torch", ir.ops.Reshape)
def _reshape(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(method(ctx.x, "reshape", -1, *ctx.node.shape))


_DICT_METHODS = {"clear", "items", "keys", "pop", "update", "values"}


def _access(name: str, tree: dict) -> Node:
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
    """Members ``0``, ``1``, ... of the module tree that form one ``nn.Sequential`` (see :func:`_chains`)."""


# Activations that a chain holds as modules, as torchvision's blocks do (each reads a value nothing else reads)
_ACTIVATION_MODULES = {"relu": call("nn.ReLU", inplace=True), "relu6": call("nn.ReLU6", inplace=True),
                       "hardswish": call("nn.Hardswish", inplace=True),
                       "hardsigmoid": call("nn.Hardsigmoid", inplace=True), "silu": call("nn.SiLU", inplace=True),
                       "sigmoid": call("nn.Sigmoid"), "tanh": call("nn.Tanh")}


def _chains(graph: Graph, out: list, names: dict[str, str], tree: dict) -> None:
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


def _subtrees(tree: dict):
    """Every container of the module tree below the model itself."""
    for value in tree.values():
        if isinstance(value, dict):
            yield value
            yield from _subtrees(value)


def _leaves(tree: dict, prefix: str = ""):
    """(full name, module expression) of every leaf of the module tree, in order."""
    for key, value in tree.items():
        if isinstance(value, tuple):
            yield prefix + key, value[0]
        else:
            yield from _leaves(value, f"{prefix}{key}.")


def _frozen_lines(graph: Graph) -> tuple[list[Stmt], list[str]]:
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


def _module_lines(tree: dict) -> list[Stmt]:
    return [Stmt("        ", f"self.{key} = ", *_construct(node)) for key, node in tree.items()]


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
    _chains(graph, out, names, tree)
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
        return _access(node.path, tree) if isinstance(node, Ref) else None

    for _, lay in out:  # a chain's members other than the last have no line of their own
        lay.call = mapped(lay.call, hole) if lay.line != "none" else None
        lay.inits = [mapped(i, hole) for i in lay.inits]
    return out, tree, {v: str(mapped(names[v], hole)) for v in var}


def _class_lines(graph: Graph, cls: str, stem: str = "x", whole: Graph | None = None) -> list[str | Stmt]:
    """An ``nn.Module`` class computing ``graph``: submodules, initialisers, forward. The model's class (of
    ``whole``, the graph before block instances became nodes) also freezes what the spec freezes."""
    layers, tree, names = _layers(graph, stem)
    consts, freeze = _frozen_lines(whole) if whole is not None else ([], [])
    lines = [f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    lines += _module_lines(tree)
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
        drafts = {inst.prefix: _class_lines(inst.graph, names[inst.block], "out") for inst in insts}
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
    sections.append(_class_lines(top, cls, "x", graph))
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
                         format_lines(consts + _frozen_lines(graph)[0]), sections)


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
