"""The commands that train and compare backends: train (the spec's train section), parity (torch, Keras and
onnxruntime outputs, or training with --train) and demo (the tour from validation to training parity)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SpecError
from . import BACKENDS, DEMO_SPEC, print_json
from .artifacts import build_files


def _needs_train(model, spec: str, purpose: str) -> None:
    """A located error when the spec has no ``train:`` section."""
    if model.spec.train is None:
        from ..errors import Loc

        raise SpecError(Loc(str(spec)), "train", f"this spec has no `train:` section {purpose}", None,
                        has_received=False)


# `train --json`: what this run wrote, by role ("native" is the framework's own file)
_FILE_KEYS = {"weights.safetensors": "weights", "best.safetensors": "best", "history.json": "history",
              "model.pt": "native", "model.keras": "native"}


def cmd_train(args) -> int:
    from ..api import load
    from ..train import fit, prepare
    from ..train.loop import describe_run, summary_line

    model = load(args.spec)
    from ..files import check_target
    from ..train.loop import OUTPUTS

    for name in OUTPUTS:  # before any data is read or framework started
        check_target(Path(args.output) / name)
    _needs_train(model, args.spec, "to train with")
    from ..weights import init_weights, load_weights, merge_weights

    weights = init_weights(model, model.spec.train.seed if args.seed is None else args.seed)
    if args.weights:
        weights, loaded, fresh = merge_weights(weights, load_weights(args.weights), str(args.weights))
        print(f"initial weights: {len(loaded)} tensor{'s' if len(loaded) != 1 else ''} from {args.weights}" +
              (f"; drawn fresh (new or reshaped layers): {', '.join(fresh)}" if fresh else ""))
    from ..train.loop import check_options

    engine = {"amp": args.amp, "channels_last": args.channels_last, "compile": args.compile,
              "cuda_graph": args.cuda_graph, "replicas": args.replicas}
    check_options(args.backend, args.device, **engine)
    from .. import threads

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
        print_json({"model": model.name, "backend": args.backend, "epochs": history.epochs,
                     "steps": len(history.step_loss), "stopped_early": history.stopped_early,
                     "files": {_FILE_KEYS.get(p.name, p.name): str(p) for p in history.files}})
    elif main:
        print(summary_line(history, out))
    return 0



def cmd_parity(args) -> int:
    from ..api import load
    from ..parity import parity
    from ..weights import load_weights

    model = load(args.spec)
    weights = load_weights(args.weights, model) if args.weights else None
    from dataclasses import replace

    from .. import threads

    count, _ = threads.apply(args.threads)
    if args.train:
        from ..files import check_target
        from ..train.parity import train_parity

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
        print_json(report.to_dict())
    else:
        print(report.table())
    return 0 if report.ok else 1


def cmd_demo(args) -> int:
    from dataclasses import replace

    from ..api import load
    from ..parity import parity
    from ..summary import summary
    from ..weights import write_atomic

    model = load(args.spec)
    from .. import threads

    _, thread_phrase = threads.apply(None)
    print(f"== validate\n{args.spec}: ok\n\n== summary\n{summary(model)}\n\n== build")
    from ..weights import init_weights

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
    from ..api import load
    from ..train import fit, prepare
    from ..train.loop import describe_run, summary_line
    from ..train.parity import train_parity
    from ..weights import init_weights

    model = load(DEMO_SPEC.parent / "digits_cnn.yaml")
    data = prepare(model, "digits")
    for backend in ("torch", "keras"):
        print(f"\n== train ({backend})\n{describe_run(model, backend, data, 'cpu')}")
        history, _, _ = fit(model, backend, data, init_weights(model, 0), epochs=epochs, out=out / f"train_{backend}")
        print(summary_line(history, out / f"train_{backend}"))
    report = train_parity(model, steps=100, plot=str(out / "digits_cnn_train_parity.png"))
    print(f"\n== training parity\n{report.table()}")
    return report.ok

