"""The ``dlspec`` command line: the argument parser and :func:`main`, which runs a subcommand (dlspec/commands/)
and turns errors into messages and exit statuses.

Exit status: 0 ok; 1 a failure the command exists to detect (parity above tolerance, a diverged training run)
or a missing framework; 2 bad input or usage (a located message for a bad spec, one line for bad options or
files); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys

from .commands import BACKENDS, DEMO_SPEC
from .errors import DataError, SpecError, TrainingDiverged, UsageError


def _command(module: str, name: str):
    """Runs ``dlspec.commands.<module>.<name>``, imported only then: start-up reads no other command's module."""

    def run(args) -> int:
        # __import__, not importlib.import_module: -X importtime reports only the former
        return getattr(__import__(f"{__package__}.commands.{module}", fromlist=[name]), name)(args)

    return run


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
        first = help if help.startswith("dlspec") else help[:1].upper() + help[1:]  # the name stays lower case
        return sub.add_parser(name, help=help, description=kwargs.pop("description", first), epilog=EPILOG, **kwargs)

    s = add("validate", "check spec files, reporting each (exit 2 if any is bad)")
    s.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP + "; several may be given")
    json_arg(s, "one result per file (with the error's line, column, path and rule)")
    s.set_defaults(fn=_command("specs", "cmd_validate"))

    s = add("summary", "table of nodes: output shapes, parameters, trainable flag, connections, mult-adds; "
            "counts and sizes")
    spec_arg(s)
    json_arg(s, "the rows and totals")
    s.set_defaults(fn=_command("specs", "cmd_summary"))

    s = add("zoo", "list the packaged specs (usable as zoo:NAME wherever a spec is expected)")
    json_arg(s, "the list")
    s.set_defaults(fn=_command("specs", "cmd_zoo"))

    s = add("schema", "JSON Schema of the spec language (for editor completion)")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.set_defaults(fn=_command("specs", "cmd_schema"))

    def weights_args(s):
        s.add_argument("--weights", metavar="W.safetensors", help="canonical weights to use")
        s.add_argument("--seed", type=SEED, help="draw initial weights with dlspec's seeded initialiser")

    s = add("build", "write PyTorch or Keras source, or an ONNX file")
    spec_arg(s)
    s.add_argument("--backend", required=True, choices=BACKENDS, help="what to write")
    s.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default: .)")
    s.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    s.add_argument("--optimize", action="store_true", help="onnx: fold BatchNorm into convolutions offline "
                   "(inference graph that loads and runs faster); with --fp16, also rewrite it for onnxruntime's "
                   "CUDA provider (fused attention and LayerNorm: the file then needs onnxruntime)")
    s.add_argument("--fp16", action="store_true", help="onnx: float16 weights and compute, float32 where accuracy "
                   "needs it (normalisation statistics, softmax, recurrences) and at the inputs and outputs")
    weights_args(s)
    s.set_defaults(fn=_command("artifacts", "cmd_build"))

    s = add("weights", "write initial canonical weights drawn with a seed")
    spec_arg(s)
    s.add_argument("-o", "--output", required=True, metavar="W.safetensors", help="the safetensors file to write")
    s.add_argument("--seed", type=SEED, default=0, help="seed of the draw (default 0)")
    s.set_defaults(fn=_command("artifacts", "cmd_weights"))

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
    s.set_defaults(fn=_command("artifacts", "cmd_import_weights"))

    s = add("import", "turn an ONNX model into a spec and canonical weights",
            description="Write DIR/<name>.yaml and DIR/<name>.safetensors from an ONNX file. Nodes dlspec cannot "
            "express are listed with their names and counts; then nothing is written and the exit status is 2.")
    s.add_argument("model", metavar="MODEL.onnx", help="the ONNX file to import")
    s.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default: .)")
    s.add_argument("--name", help="model name (default: the file's stem, made a valid name)")
    s.add_argument("--no-blocks", action="store_true", help="write every layer, without finding repeated blocks")
    s.set_defaults(fn=_command("artifacts", "cmd_import"))

    s = add("run", "run an ONNX file on an input array with onnxruntime")
    s.add_argument("model", metavar="MODEL.onnx", help="an ONNX file (from dlspec build --backend onnx)")
    s.add_argument("--input", required=True, metavar="X.npy", help="the input array, batch first (numpy .npy); "
                   "for a model with several inputs, an .npz with one array per input name")
    s.add_argument("--provider", default="auto", choices=("auto", "cuda", "tensorrt", "cpu"),
                   help="onnxruntime execution provider (default auto: CUDA when available; tensorrt: fp16 engines "
                   "cached in $DLSPEC_TRT_CACHE or ~/.cache/dlspec/tensorrt, CUDA when TensorRT cannot start)")
    s.add_argument("--batch", type=COUNT, metavar="N", help="run the samples N at a time through buffers bound once "
                   "(IO binding; the last run padded with zero samples, its outputs trimmed): the same outputs")
    s.add_argument("--cuda-graph", action="store_true", help="with --batch on CUDA: let onnxruntime capture the run "
                   "as a CUDA graph and replay it (fewer launches: lower latency at small batches)")
    s.add_argument("-o", "--output", metavar="Y.npy", help="write the first output here")
    s.set_defaults(fn=_command("runtime", "cmd_run"))

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
    s.set_defaults(fn=_command("runtime", "cmd_bench"))

    s = add("compare", "dlspec's ONNX on onnxruntime beside torch eager and torch.compile: "
            "throughput, latency and agreement on the same weights and input")
    spec_arg(s)
    s.add_argument("--weights", metavar="W.safetensors", help="canonical weights (default: drawn with seed 0)")
    s.add_argument("--batch", type=COUNT, default=1, help="samples per run (default 1)")
    s.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where every path runs (default cpu)")
    s.add_argument("--fp16", action="store_true", help="half precision in every path (cuda only)")
    s.add_argument("--iterations", type=COUNT, default=50, help="timed runs per path (default 50)")
    s.add_argument("--paths", metavar="A,B", help="a comma-separated subset of: onnxruntime, torch, torch.compile, "
                   "torch.compile reduce-overhead, and on cuda onnxruntime tensorrt and onnxruntime cuda-graph (IO "
                   "binding, replayed as a CUDA graph). Default on cpu: the first four; on cuda: onnxruntime, "
                   "onnxruntime cuda-graph, torch, torch.compile, torch.compile reduce-overhead. The first is the "
                   "reference for max diff")
    threads_arg(s)
    s.set_defaults(fn=_command("runtime", "cmd_compare"))

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
    s.set_defaults(fn=_command("training", "cmd_train"))

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
    s.set_defaults(fn=_command("training", "cmd_parity"))

    s = add("demo", "validate, summarise, build all backends, check parity, train on the embedded digits in "
            "torch and Keras")
    s.add_argument("spec", nargs="?", default=str(DEMO_SPEC), metavar="SPEC",
                   help="default: the embedded mnist_mlp spec; " + SPEC_HELP)
    s.add_argument("-o", "--output", default="out", metavar="DIR", help="output directory (default: out)")
    s.add_argument("--epochs", type=COUNT, default=5, help="epochs of the digits training demo (default 5)")
    s.set_defaults(fn=_command("training", "cmd_demo"))
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
