"""The commands that run ONNX files: run (an input through onnxruntime, at once or in fixed batches with IO binding
and optionally a CUDA graph), bench (throughput and latency) and compare (dlspec's ONNX beside torch eager and
torch.compile)."""

from __future__ import annotations

import sys

from ..errors import DataError, UsageError
from . import print_json


def cmd_run(args) -> int:
    import io

    import numpy as np

    from ..deploy import check_cuda_graph_provider, check_model_file, feed, session
    from ..files import check_target

    if args.cuda_graph and args.batch is None:
        raise UsageError("--cuda-graph needs --batch N: a CUDA graph replays one fixed shape. Received: --cuda-graph "
                         "without --batch")
    if args.cuda_graph:
        check_cuda_graph_provider(args.provider)
    if args.output:
        check_target(args.output)
    check_model_file(args.model)
    x = _load_input(args.input)
    notice = io.StringIO()  # the CPU fallback notice is shown only when there is no error to show instead
    if args.batch is None:
        sess = session(args.model, args.provider, notice=notice)
        inputs = feed(sess, x, args.input, args.model)
        sys.stderr.write(notice.getvalue())
        outputs = _run_once(sess, inputs, args)
    else:
        sess, outputs = _run_in_batches(x, args, notice)
    for meta, value in zip(sess.get_outputs(), outputs):
        print(f"{meta.name}: shape {list(value.shape)}, dtype {value.dtype}")
    if args.output:
        from ..files import write_atomic

        buffer = io.BytesIO()
        np.save(buffer, outputs[0])
        print(f"wrote {write_atomic(args.output, buffer.getvalue())}")
    return 0


def _load_input(path: str):
    """The array (or .npz archive) in ``path``; DataError when it is unreadable or no numpy file."""
    import numpy as np

    from ..files import Unreadable, check_regular

    try:
        check_regular(path)
        return np.load(path, allow_pickle=False)
    except Unreadable as err:
        raise DataError(f"{path}: cannot read the input array: {err}") from None
    except (OSError, ValueError, EOFError) as err:
        why = "not a numpy .npy or .npz file" if "pickle" in str(err) else " ".join(str(err).split())
        raise DataError(f"{path}: cannot read the input array: {why}") from None


def _run_once(sess, inputs: dict, args) -> list:
    """All samples in one run, as dlspec run does without --batch."""
    from ..deploy import is_ort_error, ort_message

    try:
        return sess.run(None, inputs)
    except Exception as err:
        if not is_ort_error(err):
            raise
        raise DataError(f"{args.model}: onnxruntime failed on {args.input}: {ort_message(err)}") from None


def _run_in_batches(x, args, notice):
    """--batch N: the samples through a Predictor in runs of N (the last padded with zero samples, its outputs
    trimmed), after one line naming the provider, the batch, the runs and whether they replay a CUDA graph."""
    import math

    from ..deploy import Predictor, feed

    predictor = Predictor(args.model, args.batch, args.provider, cuda_graph=args.cuda_graph, notice=notice)
    inputs = feed(predictor.session, x, args.input, args.model, free_batch=True)
    sys.stderr.write(notice.getvalue())
    n = predictor.samples(inputs)
    runs = max(1, math.ceil(n / args.batch))
    pad = runs * args.batch - n
    last = "the last " if runs > 1 else ""
    padded = f" ({last}padded with {pad} zero sample{'s' if pad != 1 else ''})" if pad else ""
    graph = "replayed as a CUDA graph" if args.cuda_graph else "without a CUDA graph"
    print(f"{args.model}: {predictor.session.get_providers()[0]}, batch {args.batch}, {runs} run"
          f"{'s' if runs != 1 else ''} with IO binding for {n} sample{'s' if n != 1 else ''}{padded}, {graph}",
          flush=True)
    return predictor.session, predictor.predict(inputs)


def cmd_bench(args) -> int:
    from ..deploy import bench, check_cuda_graph_provider, check_model_file

    if args.cuda_graph:
        check_cuda_graph_provider(args.provider)
    check_model_file(args.model)
    options = {"enable_cuda_graph": "1"} if args.cuda_graph else None
    from .. import threads

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
        print_json({"model": str(args.model), **r, "warmup": args.warmup, "threads": count,
                     "cuda_graph": bool(args.cuda_graph)})
        return 0
    print(f"  throughput {r['throughput']:.1f} samples/s; latency p50 {r['p50_ms']:.2f} ms, "
          f"p90 {r['p90_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    return 0


def cmd_compare(args) -> int:
    from .. import threads
    from ..api import load
    from ..compare import compare, default_paths, table
    from ..weights import load_weights

    model = load(args.spec)
    weights = load_weights(args.weights, model) if args.weights else None
    paths = default_paths(args.device) if args.paths is None else tuple(p.strip() for p in args.paths.split(","))
    _, thread_phrase = threads.apply(args.threads, ("torch", "onnx"))  # torch's default spins on a busy machine
    timings = compare(model, weights, batch=args.batch, device=args.device, fp16=args.fp16,
                      iterations=args.iterations, paths=paths)
    precision = "fp16" if args.fp16 else "fp32"
    print(f"{model.name}: batch {args.batch}, {precision}, {args.device}, {thread_phrase}, {args.iterations} timed "
          "runs per path after 10 warm-up runs, the same weights and input in every path")
    print(table(timings))
    return 0

