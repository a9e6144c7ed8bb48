"""The commands that write artifacts: build (PyTorch or Keras source, ONNX), weights (a seeded draw),
import-weights (another framework's state dict) and import (an ONNX model as a spec and weights)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError


def _artifact(name: str, backend: str) -> str:
    return f"{name}.onnx" if backend == "onnx" else f"{name}_{backend}.py"



def _weights(model, args):
    from ..weights import init_weights, load_weights

    if args.weights:
        return load_weights(args.weights, model)
    if args.seed is not None:
        return init_weights(model, args.seed)
    return None


def build_files(model, backend: str, weights, opset=None, fp16=False, optimize=False) -> dict[str, bytes | str]:
    """Artifacts for one backend, in memory: {file name: content}."""
    from ..api import generate
    from ..backends import registry

    name = model.name
    if backend == "onnx":
        from ..weights import init_weights

        proto = registry.load("onnx").build(model.graph, weights if weights is not None else init_weights(model, 0),
                                            opset=opset, fp16=fp16, optimize=optimize)
        return {_artifact(name, backend): proto.SerializeToString()}
    if weights is None:
        return {_artifact(name, backend): generate(model, backend)}
    from safetensors.numpy import save

    return {_artifact(name, backend): generate(model, backend, weights_file=f"{name}.safetensors"),
            f"{name}.safetensors": save(dict(sorted(weights.items())), metadata={"format": "dlspec"})}


def cmd_build(args) -> int:
    from ..api import load
    from ..files import write_all

    model = load(args.spec)
    flag = next((f for f, on in (("--fp16", args.fp16), ("--optimize", args.optimize), ("--opset", args.opset))
                 if on is not None and on is not False), None)
    if flag and args.backend != "onnx":  # ignored without a word otherwise
        from ..errors import UsageError

        raise UsageError(f"{flag} applies to the onnx backend only. Received: --backend {args.backend}")
    files = build_files(model, args.backend, _weights(model, args), args.opset, args.fp16, args.optimize)
    # everything is computed, and every target checked, before anything is written
    for path in write_all({Path(args.output) / file: content for file, content in files.items()}):
        print(f"wrote {path}")
    return 0


def cmd_weights(args) -> int:
    from ..api import load
    from ..weights import init_weights, save_weights

    model = load(args.spec)
    print(f"wrote {save_weights(init_weights(model, args.seed), args.output)}")
    return 0


def cmd_import_weights(args) -> int:
    from ..api import load
    from ..files import Unreadable, check_regular, check_target
    from ..importers import import_torchvision, import_transformers
    from ..weights import save_weights

    model = load(args.spec)
    check_target(args.output)
    try:
        check_regular(args.state_dict)
    except Unreadable as err:  # torch.load would block on a FIFO
        raise DataError(f"{args.state_dict}: cannot read the state dict: {err}") from None
    importer = {"torchvision": import_torchvision, "transformers": import_transformers}[args.source]
    weights = importer(model, args.state_dict)
    from ..ir import weight_name

    buffers = {weight_name(n.name, p.name) for n in model.graph.nodes for p in n.params if not p.trainable}
    counts = [sum(w.size for k, w in weights.items() if (k in buffers) == b) for b in (False, True)]
    print(f"imported {len(weights)} tensors ({counts[0]:,} parameters" +
          (f", {counts[1]:,} buffer values" if counts[1] else "") + f") from {args.state_dict}")
    print(f"wrote {save_weights(weights, args.output)}")
    return 0


def cmd_import(args) -> int:
    from ..onnx_import import import_onnx
    from ..weights import save_weights, write_atomic

    name = args.name or Path(args.model).stem
    text, weights = import_onnx(args.model, name=name, blocks=not args.no_blocks)  # refused: nothing written
    stem = Path(args.output) / text.split("\nname: ", 1)[1].split("\n", 1)[0]
    print(f"wrote {write_atomic(stem.with_suffix('.yaml'), text)}")
    print(f"wrote {save_weights(weights, stem.with_suffix('.safetensors'))}")
    return 0

