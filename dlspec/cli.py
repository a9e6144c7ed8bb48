"""The ``dlspec`` command line.

Exit status: 0 ok; 1 a failure the command exists to detect (parity above tolerance, a diverged training run)
or a missing framework; 2 bad input or usage (a located message for a bad spec, one line for bad options or
files); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import DataError, SpecError, TrainingDiverged, UsageError

DEMO_SPEC = Path(__file__).parent / "zoo" / "mnist_mlp.yaml"
BACKENDS = ("torch", "keras", "onnx")


def _artifact(name: str, backend: str) -> str:
    return f"{name}.onnx" if backend == "onnx" else f"{name}_{backend}.py"


def counts_phrase(graph) -> str:
    """"235,146 parameters", with frozen parameters and buffers named apart when there are any."""
    trainable, frozen, buffers = graph.counts()
    text = f"{trainable + frozen:,} parameters"
    text += f" ({frozen:,} frozen)" if frozen else ""
    return text + (f", {buffers:,} buffers" if buffers else "")


def _print_json(data) -> None:
    print(json.dumps(data, indent=1))


def cmd_validate(args) -> int:
    """Validate every file, reporting each; exit 2 if any failed."""
    from .api import load

    results = []
    for path in args.specs:
        try:
            model = load(path)
        except SpecError as err:
            results.append({"file": path, "ok": False, "error": str(err), "line": err.loc.line or None,
                            "col": err.loc.col or None, "path": err.path, "rule": err.rule})
            if not args.json:
                print(f"error: {err}", file=sys.stderr)
            continue
        trainable, frozen, buffers = model.graph.counts()
        results.append({"file": path, "ok": True, "name": model.name, "nodes": len(model.graph.nodes),
                        "trainable_params": trainable, "frozen_params": frozen, "buffers": buffers})
        if not args.json:
            print(f"{path}: ok ({model.name}: {len(model.graph.nodes)} nodes, {counts_phrase(model.graph)})")
    failed = sum(not r["ok"] for r in results)
    if args.json:
        _print_json({"ok": not failed, "files": results})
    elif failed and len(results) > 1:
        print(f"{failed} of {len(results)} files failed", file=sys.stderr)
    return 2 if failed else 0


def cmd_summary(args) -> int:
    from .api import load
    from .summary import as_dict, summary

    model = load(args.spec)
    if args.json:
        _print_json(as_dict(model))
    else:
        print(summary(model))
    return 0


def cmd_zoo(args) -> int:
    """List the packaged specs, usable as zoo:NAME by every command and by `base:`."""
    from .api import load
    from .loader import ZOO, zoo_names

    entries = []
    for name in zoo_names():
        model = load(ZOO / f"{name}.yaml")
        trainable, frozen, buffers = model.graph.counts()
        first = model.spec.description.strip().split("\n\n")[0].replace("\n", " ") if model.spec.description else ""
        entries.append({"name": f"zoo:{name}", "file": str(ZOO / f"{name}.yaml"), "nodes": len(model.graph.nodes),
                        "trainable_params": trainable, "frozen_params": frozen, "buffers": buffers,
                        "description": first})
    if args.json:
        _print_json(entries)
        return 0
    import textwrap

    width = max(len(e["name"]) for e in entries)
    for e in entries:
        counts = f"{e['trainable_params'] + e['frozen_params']:>11,} params"
        counts += f" ({e['frozen_params']:,} frozen)" if e["frozen_params"] else ""
        print(f"{e['name']:<{width}}  {counts}")
        if e["description"]:
            print("    " + textwrap.shorten(e["description"], 96, placeholder=" ..."))
    print(f"\n{len(entries)} specs in {ZOO}; use them as zoo:NAME (dlspec summary zoo:resnet18, base: zoo:resnet18)")
    return 0


def cmd_schema(args) -> int:
    from .schema import schema

    text = json.dumps(schema(), indent=2) + "\n"
    if args.output:
        from .weights import write_atomic

        write_atomic(args.output, text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _weights(model, args):
    from .weights import init_weights, load_weights

    if args.weights:
        return load_weights(args.weights, model)
    if args.seed is not None:
        return init_weights(model, args.seed)
    return None


def build_files(model, backend: str, weights, opset=None, fp16=False, optimize=False) -> dict[str, bytes | str]:
    """Artifacts for one backend, in memory: {file name: content}."""
    from .api import generate
    from .backends import registry

    name = model.name
    if backend == "onnx":
        from .weights import init_weights

        proto = registry.load("onnx").build(model.graph, weights if weights is not None else init_weights(model, 0),
                                            opset=opset, fp16=fp16, optimize=optimize)
        return {_artifact(name, backend): proto.SerializeToString()}
    if weights is None:
        return {_artifact(name, backend): generate(model, backend)}
    from safetensors.numpy import save

    return {_artifact(name, backend): generate(model, backend, weights_file=f"{name}.safetensors"),
            f"{name}.safetensors": save(dict(sorted(weights.items())), metadata={"format": "dlspec"})}


def cmd_build(args) -> int:
    from .api import load
    from .files import write_all

    model = load(args.spec)
    flag = next((f for f, on in (("--fp16", args.fp16), ("--optimize", args.optimize), ("--opset", args.opset))
                 if on is not None and on is not False), None)
    if flag and args.backend != "onnx":  # ignored without a word otherwise
        raise UsageError(f"{flag} applies to the onnx backend only. Received: --backend {args.backend}")
    files = build_files(model, args.backend, _weights(model, args), args.opset, args.fp16, args.optimize)
    # everything is computed, and every target checked, before anything is written
    for path in write_all({Path(args.output) / file: content for file, content in files.items()}):
        print(f"wrote {path}")
    return 0


def cmd_weights(args) -> int:
    from .api import load
    from .weights import init_weights, save_weights

    model = load(args.spec)
    print(f"wrote {save_weights(init_weights(model, args.seed), args.output)}")
    return 0


def cmd_import_weights(args) -> int:
    from .api import load
    from .files import Unreadable, check_regular, check_target
    from .importers import import_torchvision, import_transformers
    from .weights import save_weights

    model = load(args.spec)
    check_target(args.output)
    try:
        check_regular(args.state_dict)
    except Unreadable as err:  # torch.load would block on a FIFO
        raise DataError(f"{args.state_dict}: cannot read the state dict: {err}") from None
    importer = {"torchvision": import_torchvision, "transformers": import_transformers}[args.source]
    weights = importer(model, args.state_dict)
    from .ir import weight_name

    buffers = {weight_name(n.name, p.name) for n in model.graph.nodes for p in n.params if not p.trainable}
    counts = [sum(w.size for k, w in weights.items() if (k in buffers) == b) for b in (False, True)]
    print(f"imported {len(weights)} tensors ({counts[0]:,} parameters" +
          (f", {counts[1]:,} buffer values" if counts[1] else "") + f") from {args.state_dict}")
    print(f"wrote {save_weights(weights, args.output)}")
    return 0


def cmd_import(args) -> int:
    from .onnx_import import import_onnx
    from .weights import save_weights, write_atomic

    name = args.name or Path(args.model).stem
    text, weights = import_onnx(args.model, name=name, blocks=not args.no_blocks)  # refused: nothing written
    stem = Path(args.output) / text.split("\nname: ", 1)[1].split("\n", 1)[0]
    print(f"wrote {write_atomic(stem.with_suffix('.yaml'), text)}")
    print(f"wrote {save_weights(weights, stem.with_suffix('.safetensors'))}")
    return 0


def _needs_train(model, spec: str, purpose: str) -> None:
    """A located error when the spec has no ``train:`` section."""
    if model.spec.train is None:
        from .errors import Loc

        raise SpecError(Loc(str(spec)), "train", f"this spec has no `train:` section {purpose}", None,
                        has_received=False)


def cmd_train(args) -> int:
    from .api import load
    from .train import fit, prepare
    from .train.loop import describe_run, summary_line

    model = load(args.spec)
    from .files import check_target
    from .train.loop import OUTPUTS

    for name in OUTPUTS:  # before any data is read or framework started
        check_target(Path(args.output) / name)
    _needs_train(model, args.spec, "to train with")
    from .weights import init_weights, load_weights, merge_weights

    weights = init_weights(model, model.spec.train.seed if args.seed is None else args.seed)
    if args.weights:
        weights, loaded, fresh = merge_weights(weights, load_weights(args.weights), str(args.weights))
        print(f"initial weights: {len(loaded)} tensors from {args.weights}" +
              (f"; drawn fresh (new or reshaped layers): {', '.join(fresh)}" if fresh else ""))
    from .train.loop import check_options

    engine = {"amp": args.amp, "channels_last": args.channels_last, "compile": args.compile,
              "cuda_graph": args.cuda_graph, "replicas": args.replicas}
    check_options(args.backend, args.device, **engine)
    from . import threads

    _, thread_phrase = threads.apply(args.threads, (args.backend,))
    data = prepare(model, args.data)
    out = Path(args.output)
    import os

    main = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for all
    if main:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        extra = f", {world} processes (DDP)" if world > 1 else ""
        extra += f", {args.replicas} replicas (MirroredStrategy)" if args.replicas > 1 else ""
        print(describe_run(model, args.backend, data, args.device) + extra + f", {thread_phrase}",
              file=sys.stderr if args.json else sys.stdout)
    history, _, _ = fit(model, args.backend, data, weights, epochs=args.epochs, device=args.device, out=out, **engine)
    if main and args.json:
        _print_json({"model": model.name, "backend": args.backend, "epochs": history.epochs,
                     "steps": len(history.step_loss), "stopped_early": history.stopped_early,
                     "files": {k: str(out / f) for k, f in (("weights", "weights.safetensors"),
                                                             ("best", "best.safetensors"),
                                                             ("history", "history.json"))}})
    elif main:
        print(summary_line(history, out))
    return 0


def cmd_run(args) -> int:
    import numpy as np

    from .deploy import check_model_file, feed, is_ort_error, ort_message, session
    from .files import Unreadable, check_regular, check_target

    if args.output:
        check_target(args.output)
    check_model_file(args.model)
    try:
        check_regular(args.input)
        x = np.load(args.input, allow_pickle=False)
    except Unreadable as err:
        raise DataError(f"{args.input}: cannot read the input array: {err}") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{args.input}: cannot read the input array: {' '.join(str(err).split())}") from None
    import io

    notice = io.StringIO()  # the CPU fallback notice is shown only when there is no error to show instead
    sess = session(args.model, args.provider, notice=notice)
    inputs = feed(sess, x, args.input, args.model)
    sys.stderr.write(notice.getvalue())
    try:
        outputs = sess.run(None, inputs)
    except Exception as err:
        if not is_ort_error(err):
            raise
        raise DataError(f"{args.model}: onnxruntime failed on {args.input}: {ort_message(err)}") from None
    for meta, value in zip(sess.get_outputs(), outputs):
        print(f"{meta.name}: shape {list(value.shape)}, dtype {value.dtype}")
    if args.output:
        from .files import write_atomic

        buffer = io.BytesIO()
        np.save(buffer, outputs[0])
        print(f"wrote {write_atomic(args.output, buffer.getvalue())}")
    return 0


def cmd_bench(args) -> int:
    from .deploy import bench, check_model_file

    if args.cuda_graph and args.provider == "cpu":
        raise UsageError(f"--cuda-graph needs --provider cuda. Received: --provider {args.provider}")
    check_model_file(args.model)
    options = {"enable_cuda_graph": "1"} if args.cuda_graph else None
    from . import threads

    count, _ = threads.apply(args.threads, ())
    threads_text = f", {count} CPU thread{'s' if count != 1 else ''}"

    def progress(event, info):  # the first line comes before the runs, so a slow CPU run is never silent
        if event == "start":
            graph = ", replayed as a CUDA graph" if args.cuda_graph else ""
            print(f"{args.model}: {info['provider']}, batch {info['batch']}, {info['iterations']} runs with IO "
                  f"binding{graph}{threads_text}", file=sys.stderr if args.json else sys.stdout, flush=True)
        else:
            print(f"  {info['done']}/{info['total']} runs (with {args.warmup} warm-up), about "
                  f"{info['left_s']:.0f} s left", file=sys.stderr, flush=True)

    r = bench(args.model, args.batch, args.provider, iterations=args.iterations, warmup=args.warmup,
              cuda_options=options, progress=progress)
    if args.json:
        _print_json({"model": str(args.model), **r, "warmup": args.warmup, "threads": count,
                     "cuda_graph": bool(args.cuda_graph)})
        return 0
    print(f"  throughput {r['throughput']:.1f} samples/s; latency p50 {r['p50_ms']:.2f} ms, "
          f"p90 {r['p90_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    return 0


def cmd_compare(args) -> int:
    from . import threads
    from .api import load
    from .compare import DEFAULT_PATHS, compare, table
    from .weights import load_weights

    model = load(args.spec)
    weights = load_weights(args.weights, model) if args.weights else None
    paths = DEFAULT_PATHS if args.paths is None else tuple(p.strip() for p in args.paths.split(","))
    _, thread_phrase = threads.apply(args.threads, ("torch", "onnx"))  # torch's default spins on a busy machine
    timings = compare(model, weights, batch=args.batch, device=args.device, fp16=args.fp16,
                      iterations=args.iterations, paths=paths)
    precision = "fp16" if args.fp16 else "fp32"
    print(f"{model.name}: batch {args.batch}, {precision}, {args.device}, {thread_phrase}, {args.iterations} timed "
          "runs per path after 10 warm-up runs, the same weights and input in every path")
    print(table(timings))
    return 0


def cmd_parity(args) -> int:
    from .api import load
    from .parity import parity
    from .weights import load_weights

    model = load(args.spec)
    weights = load_weights(args.weights, model) if args.weights else None
    from dataclasses import replace

    from . import threads

    count, _ = threads.apply(args.threads)
    if args.train:
        from .files import check_target
        from .train.parity import train_parity

        _needs_train(model, args.spec, "for --train to compare")
        check_target(args.plot or f"{model.name}_train_parity.png")  # before the runs, not after

        report = train_parity(model, weights=weights, steps=args.steps, seed=args.seed or 0,
                              tol=1e-5 if args.tol is None else args.tol, plot=args.plot,
                              noise_factor=args.noise_factor)
    else:
        report = parity(model, weights=weights, batch=args.batch, seed=args.seed or 0,
                        tol=1e-5 if args.tol is None else args.tol)
    report = replace(report, threads=count)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.table())
    return 0 if report.ok else 1


def cmd_demo(args) -> int:
    from dataclasses import replace

    from .api import load
    from .parity import parity
    from .summary import summary
    from .weights import write_atomic

    model = load(args.spec)
    from . import threads

    _, thread_phrase = threads.apply(None)
    print(f"== validate\n{args.spec}: ok\n\n== summary\n{summary(model)}\n\n== build")
    from .weights import init_weights

    weights, files = init_weights(model, 0), {}
    for backend in BACKENDS:
        files.update(build_files(model, backend, weights))
    for file, content in files.items():
        print(f"wrote {write_atomic(Path(args.output) / file, content)}")
    report = replace(parity(model, weights=weights), threads=threads.current)
    print(f"\n== parity ({thread_phrase})\n{report.table()}")
    return 0 if report.ok and _demo_training(Path(args.output), args.epochs) else 1


def _demo_training(out: Path, epochs: int) -> bool:
    """Train the zoo's digits CNN on the embedded digits in both backends, then check training parity."""
    from .api import load
    from .train import fit, prepare
    from .train.loop import describe_run, summary_line
    from .train.parity import train_parity
    from .weights import init_weights

    model = load(DEMO_SPEC.parent / "digits_cnn.yaml")
    data = prepare(model, "digits")
    for backend in ("torch", "keras"):
        print(f"\n== train ({backend})\n{describe_run(model, backend, data, 'cpu')}")
        history, _, _ = fit(model, backend, data, init_weights(model, 0), epochs=epochs, out=out / f"train_{backend}")
        print(summary_line(history, out / f"train_{backend}"))
    report = train_parity(model, steps=100, plot=str(out / "digits_cnn_train_parity.png"))
    print(f"\n== training parity\n{report.table()}")
    return report.ok


def _number(kind, minimum, what, zero=False):
    """An argparse type: ``kind`` of at least ``minimum`` (a float above 0 unless ``zero``), with dlspec's wording
    when it is not."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}. Received: {text!r}") from None
        if value < minimum or (minimum == 0 and kind is float and value == 0 and not zero) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {what}. Received: {text!r}")
        return value

    return parse


COUNT = _number(int, 1, "a positive integer")
SEED = _number(int, 0, "a non-negative integer")
TOL = _number(float, 0, "a positive number")
FACTOR = _number(float, 0, "a non-negative number", zero=True)


SPEC_HELP = "a spec file (YAML or JSON), or zoo:NAME for a packaged spec (see `dlspec zoo`)"
EPILOG = "exit status: 0 ok, 1 failure (parity above tolerance, diverged training, missing framework), 2 bad " \
         "input or usage, 130 interrupted"


def parser() -> argparse.ArgumentParser:
    """The argument parser (one subcommand per task)."""
    from . import __version__

    p = argparse.ArgumentParser(prog="dlspec", description="Compile one model spec to PyTorch, Keras and ONNX.",
                                epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"dlspec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_arg(s):
        s.add_argument("spec", metavar="SPEC", help=SPEC_HELP)

    def json_arg(s, what):
        s.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")

    def threads_arg(s):
        s.add_argument("--threads", type=COUNT, metavar="N", help="CPU threads of the frameworks (default: the "
                       "cores not already busy, from the load average; printed in the header)")

    def add(name, help, **kwargs):
        return sub.add_parser(name, help=help, description=kwargs.pop("description", help[:1].upper() + help[1:]),
                              epilog=EPILOG, **kwargs)

    s = add("validate", "check spec files, reporting each (exit 2 if any is bad)")
    s.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP + "; several may be given")
    json_arg(s, "one result per file (with the error's line, column, path and rule)")
    s.set_defaults(fn=cmd_validate)

    s = add("summary", "table of nodes: output shapes, parameters, trainable flag, connections, mult-adds; "
            "counts and sizes")
    spec_arg(s)
    json_arg(s, "the rows and totals")
    s.set_defaults(fn=cmd_summary)

    s = add("zoo", "list the packaged specs (usable as zoo:NAME wherever a spec is expected)")
    json_arg(s, "the list")
    s.set_defaults(fn=cmd_zoo)

    s = add("schema", "JSON Schema of the spec language (for editor completion)")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.set_defaults(fn=cmd_schema)

    def weights_args(s):
        s.add_argument("--weights", metavar="W.safetensors", help="canonical weights to use")
        s.add_argument("--seed", type=SEED, help="draw initial weights with dlspec's seeded initialiser")

    s = add("build", "write PyTorch or Keras source, or an ONNX file")
    spec_arg(s)
    s.add_argument("--backend", required=True, choices=BACKENDS, help="what to write")
    s.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default: .)")
    s.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    s.add_argument("--optimize", action="store_true", help="onnx: fold BatchNorm into convolutions offline "
                   "(inference graph that loads and runs faster)")
    s.add_argument("--fp16", action="store_true", help="onnx: float16 weights and compute, float32 where accuracy "
                   "needs it (normalisation statistics, softmax, recurrences) and at the inputs and outputs")
    weights_args(s)
    s.set_defaults(fn=cmd_build)

    s = add("weights", "write initial canonical weights drawn with a seed")
    spec_arg(s)
    s.add_argument("-o", "--output", required=True, metavar="W.safetensors", help="the safetensors file to write")
    s.add_argument("--seed", type=SEED, default=0, help="seed of the draw (default 0)")
    s.set_defaults(fn=cmd_weights)

    s = add("import-weights", "convert another framework's weights to canonical safetensors",
            description="Convert a torch state dict to canonical safetensors. torchvision: keys are the "
            "spec's tensor names; a key with '-', which no dlspec name holds, maps to the name with '_' "
            "instead (regnet's 'trunk_output.block1.block1-0.f.a.0.weight' loads as "
            "'trunk_output.block1.block1_0.f.a.0.weight'). transformers: BERT-style q/k/v are packed "
            "into the attention's in_proj (see docs/spec.md).")
    s.add_argument("--from", dest="source", required=True, choices=("torchvision", "transformers"),
                   help="the framework that wrote the state dict")
    spec_arg(s)
    s.add_argument("state_dict", metavar="STATE_DICT.pth", help="a state dict saved with torch.save")
    s.add_argument("-o", "--output", required=True, metavar="W.safetensors", help="the safetensors file to write")
    s.set_defaults(fn=cmd_import_weights)

    s = add("import", "turn an ONNX model into a spec and canonical weights",
            description="Write DIR/<name>.yaml and DIR/<name>.safetensors from an ONNX file. Nodes dlspec cannot "
            "express are listed with their names and counts; then nothing is written and the exit status is 2.")
    s.add_argument("model", metavar="MODEL.onnx", help="the ONNX file to import")
    s.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default: .)")
    s.add_argument("--name", help="model name (default: the file's stem, made a valid name)")
    s.add_argument("--no-blocks", action="store_true", help="write every layer, without finding repeated blocks")
    s.set_defaults(fn=cmd_import)

    s = add("run", "run an ONNX file on an input array with onnxruntime")
    s.add_argument("model", metavar="MODEL.onnx", help="an ONNX file (from dlspec build --backend onnx)")
    s.add_argument("--input", required=True, metavar="X.npy", help="the input array, batch first (numpy .npy)")
    s.add_argument("--provider", default="auto", choices=("auto", "cuda", "tensorrt", "cpu"),
                   help="onnxruntime execution provider (default auto: CUDA when available; tensorrt: fp16 engines "
                   "cached in $DLSPEC_TRT_CACHE or ~/.cache/dlspec/tensorrt, CUDA when TensorRT cannot start)")
    s.add_argument("-o", "--output", metavar="Y.npy", help="write the first output here")
    s.set_defaults(fn=cmd_run)

    s = add("bench", "throughput and latency of an ONNX file (IO binding)")
    s.add_argument("model", metavar="MODEL.onnx", help="an ONNX file (from dlspec build --backend onnx)")
    s.add_argument("--provider", default="auto", choices=("auto", "cuda", "tensorrt", "cpu"),
                   help="onnxruntime execution provider (default auto: CUDA when available; tensorrt: fp16 engines "
                   "cached in $DLSPEC_TRT_CACHE or ~/.cache/dlspec/tensorrt, CUDA when TensorRT cannot start)")
    s.add_argument("--batch", type=COUNT, default=1, help="batch size of the random input (default 1)")
    s.add_argument("--iterations", type=COUNT, default=50, help="timed runs (default 50)")
    s.add_argument("--warmup", type=SEED, default=10, help="untimed runs first (default 10)")
    s.add_argument("--cuda-graph", action="store_true", help="let onnxruntime capture the run as a CUDA graph and "
                   "replay it (fewer launches: lower latency at small batches)")
    threads_arg(s)
    json_arg(s, "the figures")
    s.set_defaults(fn=cmd_bench)

    s = add("compare", "dlspec's ONNX on onnxruntime beside torch eager and torch.compile: "
            "throughput, latency and agreement on the same weights and input")
    spec_arg(s)
    s.add_argument("--weights", metavar="W.safetensors", help="canonical weights (default: drawn with seed 0)")
    s.add_argument("--batch", type=COUNT, default=1, help="samples per run (default 1)")
    s.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where every path runs (default cpu)")
    s.add_argument("--fp16", action="store_true", help="half precision in every path (cuda only)")
    s.add_argument("--iterations", type=COUNT, default=50, help="timed runs per path (default 50)")
    s.add_argument("--paths", metavar="A,B", help="a comma-separated subset of: onnxruntime, torch, torch.compile, "
                   "torch.compile reduce-overhead, onnxruntime tensorrt (default all but tensorrt; the first is the "
                   "reference for max diff)")
    threads_arg(s)
    s.set_defaults(fn=cmd_compare)

    s = add("train", "train with the spec's train section; writes weights and history")
    spec_arg(s)
    s.add_argument("--backend", required=True, choices=("torch", "keras"), help="the framework to train with")
    s.add_argument("--data", default="digits", metavar="FILE.npz|FILE.csv|NAME",
                   help="x_train/y_train arrays, a CSV with the label last, or an embedded dataset (default digits)")
    s.add_argument("--init", dest="weights", metavar="W.safetensors", help="initial weights (default: drawn with "
                   "the train section's seed)")
    s.add_argument("--seed", type=SEED, help="draw the initial weights with this seed instead")
    s.add_argument("--epochs", type=COUNT, help="override the train section's epochs")
    s.add_argument("--device", default="cpu", help="cpu or cuda (torch backend)")
    s.add_argument("--amp", choices=("bf16", "fp16"), help="torch: mixed precision (fp16 with loss scaling)")
    s.add_argument("--channels-last", action="store_true", help="torch: NHWC memory format for convolutions")
    s.add_argument("--compile", action="store_true", help="torch: torch.compile the model")
    s.add_argument("--cuda-graph", action="store_true", help="torch on cuda: replay each training step as one "
                   "captured CUDA graph (for small models, whose kernel launches dominate)")
    s.add_argument("--replicas", type=COUNT, default=1, help="keras: train on N replicas with "
                   "tf.distribute.MirroredStrategy (N logical CPU devices on the CPU)")
    threads_arg(s)
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="where to write weights and history")
    json_arg(s, "the per-epoch results and the files written (the header goes to stderr)")
    s.set_defaults(fn=cmd_train)

    s = add("parity", "compare torch, Keras and onnxruntime outputs")
    spec_arg(s)
    s.add_argument("--tol", type=TOL, help="tolerance (default 1e-5)")
    s.add_argument("--batch", type=COUNT, default=8, help="batch size of the random inputs (default 8)")
    s.add_argument("--train", action="store_true", help="compare training (torch vs Keras) instead of inference")
    s.add_argument("--steps", type=COUNT, default=100, help="training steps with --train (default 100)")
    s.add_argument("--noise-factor", type=FACTOR, default=10.0, metavar="F",
                   help="with --train: a figure above --tol passes if within F times float32's own noise, torch "
                        "against torch trained from weights one ulp apart (default 10; 0: --tol alone)")
    s.add_argument("--plot", metavar="PNG", help="with --train: where to write the loss curves "
                   "(default: <name>_train_parity.png)")
    s.add_argument("--weights", metavar="W.safetensors", help="weights to use (default: random, see --seed)")
    s.add_argument("--seed", type=SEED, help="seed of the random weights and inputs (default 0)")
    threads_arg(s)
    json_arg(s, "the differences (exit status 1 above tolerance, as without --json)")
    s.set_defaults(fn=cmd_parity)

    s = add("demo", "validate, summarise, build all backends, check parity, train on the embedded digits in "
            "torch and Keras")
    s.add_argument("spec", nargs="?", default=str(DEMO_SPEC), metavar="SPEC",
                   help="default: the embedded mnist_mlp spec; " + SPEC_HELP)
    s.add_argument("-o", "--output", default="out", metavar="DIR", help="output directory (default: out)")
    s.add_argument("--epochs", type=COUNT, default=5, help="epochs of the digits training demo (default 5)")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    """Entry point of the ``dlspec`` command. Exit status: 0 success, 1 a failed check or a diverged training
    run, 2 a user error (spec, data, files, options), 130 interrupted (Ctrl-C)."""
    try:
        args = parser().parse_args(argv)
        return args.fn(args)
    except KeyboardInterrupt:
        from .files import interrupted_message, remove_pending

        remove_pending()
        print(f"\n{interrupted_message()}" if sys.stderr.isatty() else interrupted_message(), file=sys.stderr)
        return 130
    except (SpecError, DataError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        from .errors import missing_extra

        better = missing_extra(err)
        if better is None:
            raise
        print(f"error: {better}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
