"""Expand blocks and resolve `inputs:` into one flat, acyclic list of named nodes.

Names inside a block instance are prefixed with the instance name (`layer1.0.conv1`), so
hierarchical names follow torchvision's state-dict keys. Every error points at the line
that caused it, and names the block instance when it happened inside one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from ..errors import MAX_NAME_PARTS, MAX_NODES, SpecError
from ..loader import Document, format_path
from .base import suggest
from .blocks import BlockLayer
from .model import LAYER_ADAPTER, Spec
from .tensor import Parameter, Split

MAX_DEPTH = 16

# Layer types that the expansion turns into nodes of another op, and so have no IR op of their own.
EXPANDED_TYPES = {"split": "slice"}


@dataclass(frozen=True)
class FlatNode:
    """One node after expansion: full name, validated layer, resolved inputs, source path."""

    name: str
    layer: object
    inputs: tuple[str, ...]
    path: tuple
    context: str = ""
    trainable: bool = True
    blocks: tuple = ()  # the block instances it lies in, outermost first (see BlockInstance)


@dataclass(frozen=True)
class BlockInstance:
    """One instance of a block: its name prefix (``layer1.0``), the block it instantiates, the parameter
    values it was given (sorted (name, value) pairs), the block's input names and the `block` layer's path."""

    prefix: str
    block: str
    args: tuple
    inputs: tuple
    path: tuple
    refs: tuple = ()  # where each input comes from (resolved into ``values`` once the graph is complete)
    values: tuple = ()  # the value each input reads


@dataclass
class _Scope:
    prefix: str
    inputs: dict  # local input name -> _Ref in the parent scope (None: a model input)
    context: str = ""
    names: dict = field(default_factory=dict)  # local name -> path that defined it
    trainable: bool = True
    blocks: tuple = ()


@dataclass(frozen=True)
class _Ref:
    scope: _Scope
    name: str
    path: tuple


@dataclass(frozen=True)
class SplitPart:
    """Output ``index`` of a ``split`` layer: a ``slice`` node with the split's rule (the IR stays single-output)."""

    split: Split
    index: int
    type: str = "slice"
    trainable: bool = True

    def lower_attrs(self) -> dict:
        return {"axis": self.split.axis, "start": None, "stop": None, "step": 1, "sections": self.split.sections,
                "sizes": self.split.sizes, "index": self.index}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class _Expander:
    def __init__(self, spec: Spec, doc: Document, to_error):
        self.spec, self.doc, self.to_error = spec, doc, to_error
        self.nodes: dict[str, tuple] = {}  # full name -> (layer, refs, path, context)
        self.aliases: dict[str, _Ref] = {}
        self.splits: dict[str, int] = {}  # full name of a split -> number of outputs

    def raw(self, path):
        node = self.doc.data
        for part in path:
            node = node[part]
        return node

    def fail(self, path, rule, received, context=""):
        raise SpecError(self.doc.loc(path), format_path(path), rule + context, received)

    def layers(self, scope: _Scope, layers: list, paths: list[tuple], stack: tuple) -> _Ref:
        """Expand a scope's layers in order; returns a reference to the last one."""
        if scope.prefix:
            prev = next(iter(scope.inputs.values()))
        elif len(self.spec.inputs) == 1:
            prev = _Ref(scope, next(iter(self.spec.inputs)), ("inputs",))
        else:
            prev = None
        explicit = {layer.name for layer in layers if layer.name is not None}
        counters: dict[str, int] = {}
        for layer, path in zip(layers, paths):
            local = self.name(scope, layer, path, counters, explicit)
            if isinstance(layer, Parameter):
                refs = []
            elif layer.inputs:
                refs = [_Ref(scope, n, path + ("inputs", k)) for k, n in enumerate(layer.inputs)]
            elif prev is not None and _join(prev.scope.prefix, prev.name) in self.splits:
                n = self.splits[_join(prev.scope.prefix, prev.name)]
                self.fail(path, f"the previous layer is split {prev.name!r} with {n} outputs; name one in `inputs` "
                          f"({prev.name}.0 .. {prev.name}.{n - 1})", self.raw(path), scope.context)
            elif prev is None:
                self.fail(path, "the first layer of a model with several inputs must name its `inputs`",
                          self.raw(path), scope.context)
            else:
                refs = [prev]
            full = _join(scope.prefix, local)
            if full in self.nodes or full in self.aliases:
                self.fail(path + ("name",) if layer.name else path, f"the name {full!r} is already taken by "
                          f"{format_path(self.nodes[full][2]) if full in self.nodes else 'a block instance'}",
                          local, scope.context)
            if isinstance(layer, BlockLayer):
                self.block(scope, layer, full, refs, path, stack)
            elif isinstance(layer, Split):
                self.splits[full] = layer.count()
                for k in range(layer.count()):
                    self.nodes[f"{full}.{k}"] = (SplitPart(layer, k), refs, path, scope.context,
                                                 layer.trainable and scope.trainable, scope.blocks)
            else:
                if len(self.nodes) >= MAX_NODES:
                    self.fail(path, f"a model has at most {MAX_NODES:,} nodes once blocks are expanded", full,
                              scope.context)
                self.nodes[full] = (layer, refs, path, scope.context, layer.trainable and scope.trainable,
                                    scope.blocks)
            if not isinstance(layer, Parameter):  # a parameter is never the implicit input of the next layer
                prev = _Ref(scope, local, path)
        return prev

    def name(self, scope: _Scope, layer, path, counters, explicit) -> str:
        """The layer's local name: its own (checked for clashes) or the next free `<stem>_<n>`."""
        if layer.name is not None:
            if layer.name in scope.names or layer.name in scope.inputs or (
                    not scope.prefix and layer.name in self.spec.inputs):
                first = scope.names.get(layer.name)
                where = format_path(first) if first else "an input"
                self.fail(path + ("name",), f"duplicate name, already used by {where}", layer.name, scope.context)
            if not scope.prefix and layer.name.split(".")[0].isdigit():
                self.fail(path + ("name",), "a top-level name must start with an identifier", layer.name)
            scope.names[layer.name] = path
            return layer.name
        stem = layer.prefix()
        taken = explicit | scope.inputs.keys() | (set() if scope.prefix else set(self.spec.inputs))
        while True:
            counters[stem] = counters.get(stem, 0) + 1
            candidate = f"{stem}_{counters[stem]}"
            if candidate not in taken and candidate not in scope.names:
                scope.names[candidate] = path
                return candidate

    def block(self, scope, layer: BlockLayer, full: str, refs, path, stack):
        indexed = layer.repeat > 1 or layer.first is not None
        for i in range(layer.repeat):
            name = layer.first if i == 0 and layer.first else layer.block
            key = "first" if i == 0 and layer.first else "block"
            if name not in self.spec.blocks:
                self.fail(path + (key,), "unknown block" + suggest(name, self.spec.blocks), name, scope.context)
            if name in stack or len(stack) >= MAX_DEPTH:
                chain = " -> ".join((*stack, name))
                self.fail(path + (key,), f"blocks may not use themselves ({chain})", name, scope.context)
            # instance i + 1 reads instance i's output as its first input; other inputs (a mask) go to every one
            refs = [self.instance(scope, layer, name, i, f"{full}.{i}" if indexed else full, refs, path, stack),
                    *refs[1:]]
        self.aliases[full] = refs[0]

    def instance(self, scope, layer, name, i, inst, refs, path, stack) -> _Ref:
        bdef = self.spec.blocks[name]
        args = {**bdef.defaults, **layer.args, **(layer.first_args if i == 0 else {})}
        for key in ("args", "first_args") if i == 0 else ("args",):
            for arg in getattr(layer, key):
                if arg not in bdef.params:
                    self.fail(path + (key, arg), f"block {name!r} has no parameter {arg!r}"
                              + suggest(arg, bdef.params), arg, scope.context)
        missing = [p for p in bdef.params if p not in args]
        if missing:
            self.fail(path, f"block {name!r} needs a value for {', '.join(map(repr, missing))}",
                      dict(layer.args), scope.context)
        if len(refs) != len(bdef.inputs):
            self.fail(path, f"block {name!r} takes {len(bdef.inputs)} input(s), got {len(refs)}",
                      [r.name for r in refs], scope.context)
        inner = _Scope(inst, dict(zip(bdef.inputs, refs)), f" (in block instance {inst})",
                       trainable=scope.trainable and layer.trainable,
                       blocks=(*scope.blocks, BlockInstance(inst, name, tuple(sorted(args.items(), key=str)),
                                                            tuple(bdef.inputs), path, tuple(refs))))
        base = ("blocks", name, "layers")
        paths = [base + (j,) for j in range(len(bdef.layers))]
        layers = [self.validate(self.substitute(raw, args, p, inner.context), p, inner.context)
                  for raw, p in zip(bdef.layers, paths)]
        last = self.layers(inner, layers, paths, (*stack, name))
        if bdef.outputs:
            return _Ref(inner, bdef.outputs[0], ("blocks", name, "outputs", 0))
        return last

    def substitute(self, raw, args, path, context):
        if isinstance(raw, str) and raw.startswith("$"):
            if raw[1:] not in args:
                self.fail(path, "unknown block parameter" + suggest(raw[1:], args), raw, context)
            return args[raw[1:]]
        if isinstance(raw, dict):
            return {k: self.substitute(v, args, path + (k,), context) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.substitute(v, args, path + (k,), context) for k, v in enumerate(raw)]
        return raw

    def validate(self, raw, path, context):
        try:
            return LAYER_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            err = {**err, "loc": path + tuple(err["loc"])}
            first = self.to_error(self.doc, err)
            raise SpecError(first.loc, first.path, first.rule + context, first.received) from None

    def resolve(self, ref: _Ref, seen=()) -> str:
        scope, name = ref.scope, ref.name
        if name in scope.inputs:
            return self.resolve(scope.inputs[name])
        if not scope.prefix and name in self.spec.inputs:
            return name
        full = _join(scope.prefix, name)
        if full in self.nodes:
            return full
        if full in self.aliases and full not in seen:
            return self.resolve(self.aliases[full], (*seen, full))
        if full in self.splits:
            n = self.splits[full]
            self.fail(ref.path, f"{name!r} is a split with {n} outputs; name one of them ({name}.0 .. {name}.{n - 1})",
                      name, scope.context)
        known = list(scope.inputs) + list(scope.names) + ([] if scope.prefix else list(self.spec.inputs))
        self.fail(ref.path, "unknown input" + suggest(name, known), name, scope.context)


def flatten(spec: Spec, doc: Document, to_error) -> tuple[list[FlatNode], list[str]]:
    """Expand blocks and resolve references: nodes in a topological order, and the outputs."""
    ex = _Expander(spec, doc, to_error)
    top = _Scope("", {})
    last = ex.layers(top, list(spec.layers), [("layers", i) for i in range(len(spec.layers))], ())
    refs = [_Ref(top, n, ("outputs", k)) for k, n in enumerate(spec.outputs)] if spec.outputs else [last]
    outputs = [ex.resolve(r) for r in refs]
    resolved = {name: [ex.resolve(r) for r in refs] for name, (_, refs, *_) in ex.nodes.items()}
    _check_hierarchy(ex)
    order = _topological(ex, resolved)
    instances = {}  # prefix -> the instance with the values its inputs read

    def done(b: BlockInstance) -> BlockInstance:
        if b.prefix not in instances:
            instances[b.prefix] = replace(b, refs=(), values=tuple(ex.resolve(r) for r in b.refs))
        return instances[b.prefix]

    return [FlatNode(n, ex.nodes[n][0], tuple(resolved[n]), *ex.nodes[n][2:5], tuple(map(done, ex.nodes[n][5])))
            for n in order], outputs


def _check_hierarchy(ex: _Expander):
    for name, (_, _, path, context, *_) in ex.nodes.items():
        parts = name.split(".")
        if len(parts) > MAX_NAME_PARTS:
            ex.fail(path, f"a node name has at most {MAX_NAME_PARTS} dotted parts once blocks are expanded", name,
                    context)
        for k in range(1, len(parts)):
            if ".".join(parts[:k]) in ex.nodes:
                ex.fail(path, f"{name!r} lies inside {'.'.join(parts[:k])!r}, which is a node itself", name,
                        context)


def _topological(ex: _Expander, resolved: dict) -> list[str]:
    """Depth-first post-order, iterative: a chain of thousands of nodes written in reverse must not recurse."""
    order, state = [], {}
    for root in ex.nodes:  # file order, so independent nodes keep the order they were written in
        if state.get(root) == "done":
            continue
        state[root], stack, trail = "active", [iter(resolved[root])], [root]
        while stack:
            for dep in stack[-1]:
                if state.get(dep) == "done" or dep not in resolved:
                    continue
                if state.get(dep) == "active":
                    cycle = trail[trail.index(dep):] + [dep]
                    _, _, path, context, *_ = ex.nodes[cycle[0]]
                    ex.fail(path + ("inputs",), "the graph has a cycle: " + " -> ".join(cycle), cycle[1], context)
                state[dep] = "active"
                stack.append(iter(resolved[dep]))
                trail.append(dep)
                break
            else:
                stack.pop()
                done = trail.pop()
                state[done] = "done"
                order.append(done)
    return order
