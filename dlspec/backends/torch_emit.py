"""PyTorch source generator: one ``nn.Module`` class plus ``build_model`` and ``load_weights``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Act, Graph, Param
from ..spec.types import RESERVED_NAMES
from .codegen import READ_SAFETENSORS, class_name, frozen_prefixes, header, kwargs, literal, where, wrap
from .context import EmitContext
from .registry import emitter, emitters


@dataclass
class TorchLayer:
    """A node in torch: an optional submodule, its forward expression, its initialisers."""

    call: str
    module: str | None = None
    inits: list[str] = field(default_factory=list)


# One forward expression per activation of the registry (dlspec/activations.py); a test checks the keys.
ACTIVATIONS = {
    "linear": lambda act, x: x,
    "relu": lambda act, x: f"F.relu({x})",
    "relu6": lambda act, x: f"F.relu6({x})",
    "leaky_relu": lambda act, x: f"F.leaky_relu({x}, {kwargs(negative_slope=act.negative_slope)})",
    "elu": lambda act, x: f"F.elu({x}, {kwargs(alpha=act.alpha)})",
    "gelu": lambda act, x: f"F.gelu({x}, {kwargs(approximate=act.approximate)})",
    "silu": lambda act, x: f"F.silu({x})",
    "sigmoid": lambda act, x: f"torch.sigmoid({x})",
    "tanh": lambda act, x: f"torch.tanh({x})",
    "softmax": lambda act, x: f"F.softmax({x}, {kwargs(dim=act.axis)})",
    "hardswish": lambda act, x: f"F.hardswish({x})",
    "hardsigmoid": lambda act, x: f"F.hardsigmoid({x})",
    "mish": lambda act, x: f"F.mish({x})",
    "softplus": lambda act, x: f"F.softplus({x}, {kwargs(beta=act.beta, threshold=act.threshold)})",
}


def activation(act: Act | None, x: str) -> str:
    """Forward expression applying ``act`` to ``x``."""
    return x if act is None else ACTIVATIONS[act.kind](act, x)


_NAMED_INIT = {
    "normal": "nn.init.normal_({t})",
    "glorot_uniform": "nn.init.xavier_uniform_({t})",
    "glorot_normal": "nn.init.xavier_normal_({t})",
    "he_uniform": 'nn.init.kaiming_uniform_({t}, nonlinearity="relu")',
    "he_normal": 'nn.init.kaiming_normal_({t}, nonlinearity="relu")',
    "lecun_uniform": 'nn.init.kaiming_uniform_({t}, nonlinearity="linear")',
    "lecun_normal": 'nn.init.kaiming_normal_({t}, nonlinearity="linear")',
}


def init_statement(param: Param, target: str) -> str:
    """A native initialiser call for one parameter (torch computes fans for rank >= 2)."""
    if param.init in ("zeros", "ones"):
        return f"nn.init.{param.init}_({target})"
    if len(param.shape) >= 2:
        return _NAMED_INIT[param.init].format(t=target)
    kind, scale = param.scale()  # a bias takes the fans of its layer
    if kind == "uniform":
        return f"nn.init.uniform_({target}, {kwargs(a=-scale, b=scale)})"
    return f"nn.init.normal_({target}, {kwargs(mean=0.0, std=scale)})"


def _inits(ctx: EmitContext) -> list[str]:
    node = ctx.node
    return [init_statement(p, f"{ctx.module}.{p.name}") for p in node.params
            if p.trainable and not (p.init in ("ones", "zeros") and node.op in ("batchnorm", "layernorm"))]


@emitter("torch", "dense")
def _dense(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = f"nn.Linear({kwargs(in_features=ctx.in_shape[-1], out_features=a['units'], bias=a['use_bias'])})"
    call = activation(Act.of(a["activation"]), f"{ctx.module}({ctx.x})")
    return TorchLayer(call, module, _inits(ctx))


@emitter("torch", "activation")
def _activation(ctx: EmitContext) -> TorchLayer:
    act = Act.of(ctx.node.attrs)
    call = activation(act, ctx.x)
    if ctx.inplace and act is not None and act.kind in ("relu", "relu6", "leaky_relu", "elu"):
        call = call[:-1] + ", inplace=True)"
    return TorchLayer(call)


@emitter("torch", "dropout")
def _dropout(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"{ctx.module}({ctx.x})", f"nn.Dropout({kwargs(p=ctx.node.attrs['rate'])})")


@emitter("torch", "batchnorm")
def _batchnorm(ctx: EmitContext) -> TorchLayer:
    a, rank = ctx.node.attrs, len(ctx.in_shape)
    cls = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}[rank]
    module = f"nn.{cls}({kwargs(num_features=ctx.in_shape[0], eps=a['eps'], momentum=a['momentum'])})"
    return TorchLayer(f"{ctx.module}({ctx.x})", module)


@emitter("torch", "flatten")
def _flatten(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"torch.flatten({ctx.x}, start_dim=1)")


@emitter("torch", "reshape")
def _reshape(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"{ctx.x}.reshape{literal((-1,) + ctx.node.shape)}")


_DICT_METHODS = {"clear", "items", "keys", "pop", "update", "values"}


def _access(name: str, tree: dict) -> str:
    """``layer1.0.conv1`` -> ``self.layer1[0].conv1``, following the container kinds in ``tree``."""
    out, node = "self", tree
    for part in name.split("."):
        if part.isdigit():
            out += f"[{part}]" if _is_list(node) else f'["{part}"]'
        elif out == "self" or (part not in RESERVED_NAMES and part not in _DICT_METHODS):
            out += f".{part}"
        else:
            out += f'["{part}"]'
        node = node[part]
    return out


def _is_list(node: dict) -> bool:
    return all(k.isdigit() for k in node) and sorted(int(k) for k in node) == list(range(len(node)))


SCOPE = '''
class Scope(nn.Module):
    """Submodules and parameters under one name (a ModuleDict cannot hold parameters)."""

    def __init__(self, **members):
        super().__init__()
        for name, member in members.items():
            setattr(self, name, member)

    def __getitem__(self, name):
        return getattr(self, str(name))
'''


def _holds_parameter(node: dict) -> bool:
    return any(isinstance(v, tuple) and v[0].startswith("nn.Parameter(") for v in node.values())


def _render(key: str, node, indent: str) -> list[str]:
    """Lines constructing one module-tree entry: a leaf module or a ModuleList/ModuleDict (a Scope where it
    holds a parameter)."""
    head = f'"{key}": ' if key is not None else ""
    if isinstance(node, tuple):  # leaf: (module expression, comment)
        expr, comment = node
        return wrap(f"{head}{expr},  {comment}", indent).splitlines()
    if _holds_parameter(node):
        items = [_render(k, v, indent + "    ") for k, v in node.items()]
        return [f"{indent}{head}Scope(**{{"] + [ln for it in items for ln in it] + [f"{indent}}}),"]
    if _is_list(node):
        items = [_render(None, node[str(i)], indent + "    ") for i in range(len(node))]
        return [f"{indent}{head}nn.ModuleList(["] + [ln for it in items for ln in it] + [f"{indent}]),"]
    items = [_render(k, v, indent + "    ") for k, v in node.items()]
    return [f"{indent}{head}nn.ModuleDict({{"] + [ln for it in items for ln in it] + [f"{indent}}}),"]


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


def _frozen_lines(graph: Graph, tree: dict) -> tuple[list[str], list[str]]:
    """Module-level constants naming the frozen submodules and parameters, and the ``__init__`` lines that
    freeze them; the class's ``train`` keeps frozen submodules in inference mode."""
    trainable = {n.name: n.trainable for n in graph.nodes}
    leaves = dict(_leaves(tree))
    prefixes = frozen_prefixes({name: not trainable[name] for name in leaves})
    modules = [p for p in prefixes if not leaves.get(p, "").startswith("nn.Parameter(")]
    params = [p for p in prefixes if p not in modules]
    consts, init = [], []
    if modules:
        consts.append(wrap(f"FROZEN = {literal(tuple(modules))}  # fixed weights, BatchNorm in inference mode", ""))
        init += ["        for name in FROZEN:", "            self.get_submodule(name).requires_grad_(False)"]
    if params:
        consts.append(wrap(f"FROZEN_PARAMETERS = {literal(tuple(params))}", ""))
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


def _module_lines(tree: dict) -> list[str]:
    lines = []
    for key, node in tree.items():
        if isinstance(node, tuple):
            expr, comment = node
            lines.append(wrap(f"self.{key} = {expr}  {comment}", " " * 8))
        else:
            body = _render(None, node, " " * 8)
            lines.append(f"        self.{key} = " + body[0].lstrip())
            lines += body[1:-1] + [body[-1][:-1]]  # no trailing comma on the statement
    return lines


# Ops whose backward pass does not read their own output, so a single consumer may overwrite it in place
# (as torchvision's blocks do with relu(inplace=True) and out += identity).
_OVERWRITABLE = {"batchnorm", "add", "conv1d", "conv2d", "dense", "groupnorm"}


def inplace_values(graph: Graph) -> set[str]:
    """Values that exactly one node reads, that are not outputs, and whose producer allows it."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    return {n.name for n in graph.nodes if n.op in _OVERWRITABLE and readers.get(n.name) == 1
            and n.name not in graph.outputs and Act.of(n.attrs.get("activation")) is None}


def variables(graph: Graph) -> dict[str, str]:
    """A Python variable for every value, named as a careful engineer would: ``x`` at the top level and
    the block instance (``layer1_0``) inside blocks. A node whose first input is read for the last time
    and lives in the same scope writes into that input's variable, as in ``x = self.conv(x)``, so dead
    activations are freed at once; a variable whose value is dead may be taken by the next fresh value."""
    last_use = {v: i for i, node in enumerate(graph.nodes) for v in node.inputs}
    outputs = set(graph.outputs)
    var = {inp.name: inp.name for inp in graph.inputs}
    holder = {inp.name: inp.name for inp in graph.inputs}  # variable -> the value it holds now

    def free(name: str, i: int) -> bool:
        held = holder.get(name)
        return held is None or (held not in outputs and last_use.get(held, -1) < i)

    for i, node in enumerate(graph.nodes):
        if not node.inputs:  # a parameter: read where it is used, as self.<path>
            var[node.name] = ""
            continue
        stem = node.name.rsplit(".", 1)[0].replace(".", "_") if "." in node.name else "x"
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


def _layers(graph: Graph, names: dict[str, str]):
    """Emit every node: [(node, TorchLayer)], plus the module tree."""
    table, shapes, tree = emitters("torch"), {i.name: i.shape for i in graph.inputs}, {}
    probes = {}
    for node in graph.nodes:  # first pass: which nodes own a submodule
        ctx = EmitContext(graph, node, [names[v] for v in node.inputs], [shapes[v] for v in node.inputs], "")
        probes[node.name] = table[node.op](ctx).module
        shapes[node.name] = node.shape
        if probes[node.name]:
            *parents, leaf = node.name.split(".")
            slot = tree
            for part in parents:
                slot = slot.setdefault(part, {})
            slot[leaf] = (probes[node.name], where(graph, node))
    out, inplace = [], inplace_values(graph)
    for node in graph.nodes:
        if node.op == "parameter":
            names[node.name] = _access(node.name, tree)
    for node in graph.nodes:
        module = _access(node.name, tree) if probes[node.name] else ""
        ctx = EmitContext(graph, node, [names[v] for v in node.inputs], [graph.shape_of(v) for v in node.inputs],
                          module, inplace=bool(node.inputs) and node.inputs[0] in inplace)
        out.append((node, table[node.op](ctx)))
    return out, tree


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """PyTorch source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    names = variables(graph)
    layers, tree = _layers(graph, names)
    cls = class_name(graph.name)
    lines = [header(graph, "PyTorch"), ""]
    lines += ["import json"] + (["from pathlib import Path"] if weights_file else [])
    uses_f = any("F." in lay.call for _, lay in layers)
    lines += ["", "import numpy as np", "import torch", "from torch import nn"]
    lines += ["from torch.nn import functional as F", ""] if uses_f else [""]
    if weights_file:
        lines += ["", f"WEIGHTS = Path(__file__).with_name({literal(weights_file)})", ""]
    frozen, freeze = _frozen_lines(graph, tree)
    if frozen:
        lines += ["", *frozen, ""]
    if any(_holds_parameter(n) for n in _subtrees(tree)):
        lines += ["", *SCOPE.strip("\n").splitlines(), ""]
    lines += ["", f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    lines += _module_lines(tree)
    inits = [s for _, lay in layers for s in lay.inits]
    if inits:
        lines += ["        with torch.no_grad():"] + [f"            {s}" for s in inits]
    lines += freeze
    if any(line.startswith("FROZEN =") for line in frozen):
        lines += TRAIN.rstrip("\n").splitlines()
    args = ", ".join(names[i.name] for i in graph.inputs)
    lines += ["", f"    def forward(self, {args}):"]
    for node, lay in layers:
        if node.op == "parameter":
            continue
        lines.append(wrap(f"{names[node.name]} = {lay.call}" + ("" if lay.module else f"  {where(graph, node)}"),
                          " " * 8))
    lines.append(f"        return {', '.join(names[o] for o in graph.outputs)}")
    default = "WEIGHTS" if weights_file else "None"
    lines += ["", "", f"def build_model(weights={default}):",
              f'    """Build {cls}; ``weights`` is a safetensors path or a dict of numpy arrays."""',
              f"    model = {cls}()", "    if weights is not None:", "        load_weights(model, weights)",
              "    return model", "", "", *LOAD_WEIGHTS.strip("\n").splitlines(), "", *READ_SAFETENSORS.splitlines()]
    return "\n".join(lines).rstrip("\n") + "\n"


LOAD_WEIGHTS = '''
def load_weights(model, weights):
    """Load dlspec's canonical weights (a safetensors path or a dict of arrays) into ``model``."""
    if not isinstance(weights, dict):
        weights = read_safetensors(weights)
    state = {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in weights.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {result.unexpected_keys}")
'''
