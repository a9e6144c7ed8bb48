"""PyTorch source generator: one ``nn.Module`` class plus ``build_model`` and ``load_weights``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Act, Graph, Param
from .codegen import READ_SAFETENSORS, class_name, header, kwargs, literal, where, wrap
from .context import EmitContext
from .registry import emitter, emitters


@dataclass
class TorchLayer:
    """A node in torch: an optional submodule, its forward expression, its initialisers."""

    call: str
    module: str | None = None
    inits: list[str] = field(default_factory=list)


def activation(act: Act | None, x: str) -> str:
    """Forward expression applying ``act`` to ``x``."""
    if act is None:
        return x
    return {
        "relu": lambda: f"F.relu({x})",
        "leaky_relu": lambda: f"F.leaky_relu({x}, {kwargs(negative_slope=act.negative_slope)})",
        "elu": lambda: f"F.elu({x}, {kwargs(alpha=act.alpha)})",
        "gelu": lambda: f"F.gelu({x}, {kwargs(approximate=act.approximate)})",
        "silu": lambda: f"F.silu({x})",
        "sigmoid": lambda: f"torch.sigmoid({x})",
        "tanh": lambda: f"torch.tanh({x})",
        "softmax": lambda: f"F.softmax({x}, {kwargs(dim=act.axis)})",
    }[act.kind]()


_NAMED_INIT = {
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
    from ..weights import init_scale  # the fans of a bias come from its layer

    kind, scale = init_scale(param)
    if kind == "uniform":
        return f"nn.init.uniform_({target}, {kwargs(a=-scale, b=scale)})"
    return f"nn.init.normal_({target}, {kwargs(mean=0.0, std=scale)})"


def _inits(ctx: EmitContext) -> list[str]:
    node = ctx.node
    return [init_statement(p, f"self.{node.name}.{p.name}") for p in node.params
            if p.trainable and not (p.init in ("ones", "zeros") and node.op in ("batchnorm", "layernorm"))]


@emitter("torch", "dense")
def _dense(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = f"nn.Linear({kwargs(in_features=ctx.in_shape[-1], out_features=a['units'], bias=a['use_bias'])})"
    call = activation(Act.of(a["activation"]), f"self.{ctx.node.name}({ctx.x})")
    return TorchLayer(call, module, _inits(ctx))


@emitter("torch", "activation")
def _activation(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(activation(Act.of(ctx.node.attrs), ctx.x))


@emitter("torch", "dropout")
def _dropout(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"self.{ctx.node.name}({ctx.x})", f"nn.Dropout({kwargs(p=ctx.node.attrs['rate'])})")


@emitter("torch", "batchnorm")
def _batchnorm(ctx: EmitContext) -> TorchLayer:
    a, rank = ctx.node.attrs, len(ctx.in_shape)
    cls = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}[rank]
    module = f"nn.{cls}({kwargs(num_features=ctx.in_shape[0], eps=a['eps'], momentum=a['momentum'])})"
    return TorchLayer(f"self.{ctx.node.name}({ctx.x})", module)


@emitter("torch", "layernorm")
def _layernorm(ctx: EmitContext) -> TorchLayer:
    module = f"nn.LayerNorm({kwargs(normalized_shape=ctx.in_shape[-1], eps=ctx.node.attrs['eps'])})"
    return TorchLayer(f"self.{ctx.node.name}({ctx.x})", module)


@emitter("torch", "flatten")
def _flatten(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"torch.flatten({ctx.x}, start_dim=1)")


@emitter("torch", "reshape")
def _reshape(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"{ctx.x}.reshape{literal((-1,) + ctx.node.shape)}")


def _layers(graph: Graph) -> list[tuple[object, TorchLayer]]:
    table, shapes, out = emitters("torch"), {i.name: i.shape for i in graph.inputs}, []
    for node in graph.nodes:
        ctx = EmitContext(graph, node, list(node.inputs), [shapes[v] for v in node.inputs])
        out.append((node, table[node.op](ctx)))
        shapes[node.name] = node.shape
    return out


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """PyTorch source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    layers, cls = _layers(graph), class_name(graph.name)
    lines = [header(graph, "PyTorch"), ""]
    lines += ["import json"] + (["from pathlib import Path"] if weights_file else [])
    lines += ["", "import numpy as np", "import torch", "from torch import nn",
              "from torch.nn import functional as F", ""]
    if weights_file:
        lines += ["", f"WEIGHTS = Path(__file__).with_name({literal(weights_file)})", ""]
    lines += ["", f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    for node, lay in layers:
        if lay.module:
            lines.append(wrap(f"self.{node.name} = {lay.module}  {where(graph, node)}", " " * 8))
    inits = [s for _, lay in layers for s in lay.inits]
    if inits:
        lines += ["        with torch.no_grad():"] + [f"            {s}" for s in inits]
    args = ", ".join(i.name for i in graph.inputs)
    lines += ["", f"    def forward(self, {args}):"]
    for node, lay in layers:
        lines.append(wrap(f"{node.name} = {lay.call}" + ("" if lay.module else f"  {where(graph, node)}"), " " * 8))
    lines.append(f"        return {', '.join(graph.outputs)}")
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
