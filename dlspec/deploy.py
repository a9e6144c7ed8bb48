"""Running exported ONNX files with onnxruntime: provider choice, a one-line CPU fallback notice, no
telemetry, and a benchmark with IO binding."""

from __future__ import annotations

import os
import statistics
import sys
import time

from .errors import DataError, UsageError
from .files import Unreadable, check_regular

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
PROVIDER_CHOICES = ("auto", "cuda", "tensorrt", "cpu")  # --provider


TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


def _ort():
    from .backends.onnx import import_onnxruntime

    return import_onnxruntime()


def cuda_defaults(half: bool) -> dict:
    """dlspec's CUDA provider options. float32 models: TF32 off, so float32 means float32 (onnxruntime
    enables TF32 by default). fp16 models: convolutions channels-last with the bias fused into cuDNN's
    kernel (1.4x the throughput of prefer_nhwc alone on an H100, docs/performance.md), and TF32 allowed, as
    onnxruntime's cuDNN-frontend convolutions read use_tf32=0 as "no tensor cores", fp16 included."""
    if half:
        return {"use_tf32": "1", "prefer_nhwc": "1", "fuse_conv_bias": "1"}
    return {"use_tf32": "0"}


def _proto(model):
    """A ModelProto for a ModelProto, bytes or path (without external data); an empty one for what onnx cannot
    read, whose error onnxruntime then reports in its own words."""
    import onnx

    if hasattr(model, "graph"):
        return model
    try:
        return onnx.load_model_from_string(model) if isinstance(model, bytes) else \
            onnx.load(str(model), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: not a model
        return onnx.ModelProto()


def computes_in_half(model) -> bool:
    """Whether a ModelProto, bytes or path holds float16 weights (an export with --fp16)."""
    import onnx

    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in _proto(model).graph.initializer)


def batch_dims(model) -> set:
    """The names of the model inputs' symbolic first dimensions (dlspec's exports call it ``batch``)."""
    proto = _proto(model)
    constants = {t.name for t in proto.graph.initializer}
    return {i.type.tensor_type.shape.dim[0].dim_param for i in proto.graph.input if i.name not in constants
            and i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].dim_param}


def trt_cache_dir() -> str:
    """Where TensorRT's engines are kept between runs: $DLSPEC_TRT_CACHE, else ~/.cache/dlspec/tensorrt (or under
    $XDG_CACHE_HOME). onnxruntime names each engine by the model's hash and the GPU, so one folder serves many."""
    if os.environ.get("DLSPEC_TRT_CACHE"):
        return os.environ["DLSPEC_TRT_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dlspec", "tensorrt")


def trt_options(cache: str | None = None) -> dict:
    """dlspec's TensorRT provider options: fp16 kernels allowed, engines built once and cached on disk."""
    cache = cache or trt_cache_dir()
    return {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache}


def trt_unavailable(ort) -> str | None:
    """Why TensorRT cannot start here, or None when it may: onnxruntime lacks the provider, or its provider
    library cannot load (TensorRT's own libnvinfer missing, the usual case for a pip install)."""
    import ctypes

    available = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in available:
        return f"onnxruntime {ort.__version__} has no TensorrtExecutionProvider (providers: {', '.join(available)})"
    library = os.path.join(os.path.dirname(ort.__file__), "capi", "libonnxruntime_providers_tensorrt.so")
    if os.path.exists(library):
        try:
            ctypes.CDLL(library)
        except OSError as err:  # e.g. "libnvinfer.so.10: cannot open shared object file: No such file or directory"
            text = " ".join(str(err).split())
            return f"its provider library cannot load: {text.split(library + ': ')[-1]}"
    return None


def _fallback_line(reason: str, available: list) -> str:
    where = "CUDA" if "CUDAExecutionProvider" in available else "CPU"
    return f"dlspec: --provider tensorrt: TensorRT cannot start, {reason}; running on {where} instead."


def providers_for(provider: str, notice=sys.stderr, cuda_options: dict | None = None, model=None,
                  trt_cache: str | None = None) -> list:
    """Execution providers for ``tensorrt``, ``cuda``, ``cpu`` or ``auto``; says in one line when CUDA is missing,
    or when TensorRT cannot start (then CUDA, else the CPU, runs the model). ``cuda_options`` add to (or override)
    ``cuda_defaults``, chosen by ``model``'s precision; ``trt_cache``: TensorRT's engine folder."""
    ort = _ort()
    if provider not in PROVIDER_CHOICES:
        raise UsageError(f"--provider must be {', '.join(PROVIDER_CHOICES[:-1])} or {PROVIDER_CHOICES[-1]}. "
                         f"Received: {provider!r}")
    available = ort.get_available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "tensorrt":
        reason = trt_unavailable(ort)
        if reason is None:
            graph = {"trt_cuda_graph_enable": "True"} if (cuda_options or {}).get("enable_cuda_graph") == "1" else {}
            return [("TensorrtExecutionProvider", {**trt_options(trt_cache), **graph}),
                    *providers_for("cuda", None, cuda_options, model)]
        if notice is not None:
            print(_fallback_line(reason, available), file=notice)
        return providers_for("cuda", None, cuda_options, model)
    if "CUDAExecutionProvider" in available:
        half = model is not None and computes_in_half(model)  # read only when CUDA will run it
        return [("CUDAExecutionProvider", {**cuda_defaults(half), **(cuda_options or {})}), "CPUExecutionProvider"]
    if notice is not None:
        print(f"dlspec: CUDAExecutionProvider is not available in onnxruntime {ort.__version__} "
              f"(providers: {', '.join(available)}); running on CPU. Install dlspec[gpu] for onnxruntime-gpu.",
              file=notice or sys.stderr)
    return ["CPUExecutionProvider"]


FIXED_BATCH_OFF = ["MatMulAddFusion"]  # onnxruntime optimizers a fixed-batch session leaves off (see session)


def session(model, provider: str = "auto", notice=sys.stderr, cuda_options: dict | None = None, profile=None,
            trt_cache: str | None = None, batch: int | None = None):
    """An InferenceSession for a ModelProto, bytes or path; CUDA when present (else CPU, with a notice);
    ``provider="tensorrt"``: TensorRT in fp16 with an engine cache when it can start, else CUDA with a one-line
    notice. ``cuda_options``: extra CUDA provider options; ``profile``: a file prefix for onnxruntime's profile.
    ``batch``: the inputs' symbolic batch dimension fixed to this size, so onnxruntime folds the shape arithmetic
    that reads it (Shape, Gather, Expand of a class token): onnxruntime runs such int64 nodes on the CPU, and a CUDA
    graph needs every node on the device (ViT-B/16 could not be captured without it). With the batch fixed,
    onnxruntime's MatMulAddFusion also turns 3-D MatMul+Add into Reshape/Gemm/Reshape, which took the bias from
    ViT-B/16's BiasGelu and ran 0.83x as fast on the H200 (docs/performance.md): it is left off, so the session
    runs the fusions of the free batch."""
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    from . import threads

    if threads.current:  # set by --threads or its default (dlspec.threads)
        options.intra_op_num_threads = threads.current
    if profile:
        options.enable_profiling, options.profile_file_prefix = True, str(profile)
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model) \
        if isinstance(model, os.PathLike) else model
    if isinstance(source, str):
        check_model_file(source)
    if batch:
        model = _proto(model)  # read once, for the batch's name and the provider options
    for name in sorted(batch_dims(model)) if batch else ():
        options.add_free_dimension_override_by_name(name, batch)
    disabled = {"disabled_optimizers": FIXED_BATCH_OFF} if batch else {}
    providers = providers_for(provider, notice, cuda_options, model, trt_cache)
    first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if first == "TensorrtExecutionProvider":
        os.makedirs(trt_options(trt_cache)["trt_engine_cache_path"], exist_ok=True)
    import contextlib
    import io

    said = io.StringIO()  # onnxruntime prints a block of "EP Error" lines when a provider fails, then retries
    try:
        with contextlib.redirect_stdout(said):
            sess = ort.InferenceSession(source, options, providers=providers, **disabled)
    except Exception as err:
        if is_ort_error(err) and "graph capture" in str(err):
            raise CaptureRefused("onnxruntime cannot replay this model as a CUDA graph: it placed some of its nodes "
                                 f"on the CPU ({ort_message(err)}). Received: --cuda-graph") from None
        if not isinstance(source, str) or not is_ort_error(err):
            raise
        raise DataError(f"{source}: onnxruntime cannot load it as an ONNX model: {ort_message(err)}") from None
    running = sess.get_providers()[0]
    if first == "TensorrtExecutionProvider" and running != first:
        # onnxruntime's own retry drops dlspec's CUDA options: start CUDA again with them
        sess = ort.InferenceSession(source, options, providers=providers_for("cuda", None, cuda_options, model),
                                    **disabled)
        if notice is not None:
            error = next((line for line in said.getvalue().splitlines() if line.startswith("EP Error")), "")
            reason = ort_message(error.removeprefix("EP Error").split(" when using ")[0].strip()) or \
                "onnxruntime did not start it"
            print(_fallback_line(reason, ort.get_available_providers()), file=notice)
    elif len(providers) > 1 and running != "CUDAExecutionProvider" and notice is not None:
        print("dlspec: onnxruntime lists CUDAExecutionProvider but could not start it (CUDA or cuDNN libraries "
              "missing or mismatched); running on CPU.", file=notice)
    else:
        sys.stdout.write(said.getvalue())
    return sess


class CaptureRefused(UsageError):
    """onnxruntime refused ``enable_cuda_graph`` because it placed some nodes on the CPU."""


def check_model_file(path: str) -> None:
    """Refuse a missing, special or empty file before onnxruntime sees it (a FIFO would block it)."""
    try:
        size = check_regular(path)
    except Unreadable as err:
        raise DataError(f"{path}: cannot read the ONNX model: {err}") from None
    if size == 0:
        raise DataError(f"{path}: the file is empty, not an ONNX model")


def is_ort_error(err: BaseException) -> bool:
    """Whether ``err`` is one of onnxruntime's own exceptions (a bad model, input or run)."""
    return type(err).__module__.startswith("onnxruntime")


def ort_message(err: BaseException) -> str:
    """onnxruntime's message on one line, without its ``[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :`` prefix."""
    import re

    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ", "", text)
    return re.sub(r"^Load model from .* failed:\s*", "", text)


def feed(sess, x, source: str, model: str = "the model", free_batch: bool = False) -> dict:
    """The inputs of a session from what ``source`` held: one array for a one-input model (an .npy file), or
    arrays named after every input (an .npz file), each checked against its input (dtype and shape; ``N`` is
    the free batch axis; ``free_batch``: the first axis is free even where the session fixed it) and cast to its
    dtype. DataError names a mismatch."""
    import numpy as np

    inputs = sess.get_inputs()
    names = [meta.name for meta in inputs]
    if hasattr(x, "files"):  # an .npz: one array per input, by name
        if sorted(x.files) != sorted(names):
            raise DataError(f"{source}: holds arrays {sorted(x.files)}, but {model} takes inputs {names} (one array "
                            "per input, named after it)")
        return {meta.name: _checked(meta, x[meta.name], f"{source}[{meta.name!r}]", free_batch) for meta in inputs}
    if len(inputs) != 1:
        raise DataError(f"{model}: the model takes {len(inputs)} inputs ({', '.join(names)}); give them as one .npz "
                        "file with an array per input name")
    if not isinstance(x, np.ndarray):
        raise DataError(f"{source}: expected an .npy file holding one array")
    return {inputs[0].name: _checked(inputs[0], x, source, free_batch)}


def _checked(meta, x, source: str, free_batch: bool = False):
    import numpy as np

    want = np.dtype(TYPES.get(meta.type, "float32"))
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: the input array has dtype {x.dtype}; input {meta.name!r} takes {want} numbers")
    shape = [d if isinstance(d, int) and not (free_batch and i == 0) else "N" for i, d in enumerate(meta.shape)]
    if x.ndim != len(shape) or any(d != "N" and d != n for d, n in zip(shape, x.shape)):
        raise DataError(f"{source}: the input array has shape {list(x.shape)}, but input {meta.name!r} takes "
                        f"{shape}".replace("'N'", "N"))
    if want.kind == "i" and x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise DataError(f"{source}: input {meta.name!r} takes whole numbers (token ids); the array has fractions")
    if want.kind == "i" and x.size and x.min() < 0:  # ONNX's Gather would read from the end where torch raises
        raise DataError(f"{source}: input {meta.name!r} takes ids from 0 up; the array has {int(x.min())}")
    return x.astype(want)


def run(model, inputs: dict, provider: str = "auto"):
    """Outputs for named numpy inputs."""
    sess = session(model, provider)
    return sess.run(None, inputs)


ON_DEVICE = ("CUDAExecutionProvider", "TensorrtExecutionProvider")  # a session whose buffers live on the GPU


def check_cuda_graph_provider(provider: str) -> None:
    """Refuse ``--cuda-graph`` with ``--provider cpu`` (checked before any file is read)."""
    if provider == "cpu":
        raise UsageError(f"--cuda-graph needs --provider cuda. Received: --provider {provider}")


def check_cuda_graph(provider: str, sess=None) -> None:
    """Refuse a CUDA graph where CUDA cannot run it: ``--provider cpu``, an onnxruntime without its CUDA provider,
    or (given the session) a CUDA provider that onnxruntime lists but could not start."""
    check_cuda_graph_provider(provider)
    ort = _ort()
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise UsageError(f"--cuda-graph needs CUDA, and onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                         f"here (providers: {', '.join(available)}; dlspec[gpu] installs onnxruntime-gpu). "
                         f"Received: --cuda-graph --provider {provider}")
    if sess is not None and sess.get_providers()[0] not in ON_DEVICE:
        raise UsageError("--cuda-graph needs CUDA, and onnxruntime lists CUDAExecutionProvider but could not start "
                         f"it (CUDA or cuDNN libraries missing or mismatched). Received: --cuda-graph --provider "
                         f"{provider}")


def output_buffers(sess, batch: int, cuda_graph: bool) -> dict:
    """Each output's shape at ``batch`` and numpy dtype, or None where onnxruntime allocates it at each run (a
    shape that does not follow from the batch, or a type outside TYPES). A CUDA graph replays fixed buffers, so
    with ``cuda_graph`` such an output is a UsageError."""
    import numpy as np

    buffers = {}
    for out in sess.get_outputs():
        shape = [batch if isinstance(d, str) else d for d in out.shape]
        fixed = all(isinstance(d, int) for d in shape) and out.type in TYPES
        if cuda_graph and not fixed:
            raise UsageError(f"a CUDA graph replays fixed buffers, so every output's shape must follow from the "
                             f"batch. Received: output {out.name!r} of shape {out.shape}")
        buffers[out.name] = (shape, np.dtype(TYPES[out.type])) if fixed else None
    return buffers


class Predictor:
    """Runs an ONNX model (a path, bytes or ModelProto) on batches of exactly ``batch`` samples with IO binding.

    Inputs and outputs are bound once to buffers of fixed shape on the session's device (CUDA when its first
    provider is CUDA or TensorRT, else the CPU); a call copies the arrays in, runs, and copies the outputs out.
    ``cuda_graph=True`` adds onnxruntime's ``enable_cuda_graph``: onnxruntime captures the run on the first call
    and replays it (a graph needs those fixed addresses); it needs CUDA, and outputs whose shapes follow from the
    batch; where onnxruntime refuses to capture the model as exported, the session is made again with the batch
    dimension fixed (see :func:`session`'s ``batch``). ``provider``, ``notice``, ``cuda_options`` and ``profile``
    are :func:`session`'s (with a CUDA graph, no CPU fallback notice: that case is refused). A batch whose inputs
    would not fit in half of the machine's memory is a UsageError."""

    def __init__(self, model, batch: int, provider: str = "auto", cuda_graph: bool = False, notice=sys.stderr,
                 cuda_options: dict | None = None, profile=None):
        options = {**(cuda_options or {}), **({"enable_cuda_graph": "1"} if cuda_graph else {})}
        self.cuda_graph = options.get("enable_cuda_graph") == "1"
        if self.cuda_graph:
            check_cuda_graph(provider)
        try:
            self.session = session(model, provider, notice=None if self.cuda_graph else notice,
                                   cuda_options=options or None, profile=profile)
        except CaptureRefused:  # shape arithmetic on the batch ran on the CPU: fix the batch so that it folds away
            self.session = session(model, provider, notice=None, cuda_options=options, profile=profile, batch=batch)
        if self.cuda_graph:
            check_cuda_graph(provider, self.session)
        self.batch, self.name = batch, str(model) if isinstance(model, (str, os.PathLike)) else "the model"
        self.device = "cuda" if self.session.get_providers()[0] in ON_DEVICE else "cpu"
        _check_batch_memory(self.session, batch)
        self.binding = self.session.io_binding()
        self.inputs = {inp.name: self._bind_input(inp) for inp in self.session.get_inputs()}
        for name, buffer in output_buffers(self.session, batch, self.cuda_graph).items():
            if buffer is None:
                self.binding.bind_output(name, self.device)
            else:
                self.binding.bind_ortvalue_output(name, _ort().OrtValue.ortvalue_from_shape_and_type(
                    *buffer, self.device, 0))

    def _bind_input(self, inp):
        import numpy as np

        shape = [self.batch if not isinstance(d, int) else d for d in inp.shape]
        dtype = np.dtype(TYPES.get(inp.type, "float32"))
        value = _ort().OrtValue.ortvalue_from_shape_and_type(shape, dtype, self.device, 0)
        self.binding.bind_ortvalue_input(inp.name, value)
        return value, dtype

    def load(self, inputs: dict) -> None:
        """Copy named arrays of exactly ``batch`` samples into the bound inputs, cast to each input's type."""
        import numpy as np

        if sorted(inputs) != sorted(self.inputs):
            raise DataError(f"the model takes inputs {list(self.inputs)}. Received: {sorted(inputs)}")
        for name, x in inputs.items():
            value, dtype = self.inputs[name]
            x, want = np.asarray(x), value.shape()
            if x.ndim and x.shape[0] != self.batch and list(x.shape[1:]) == want[1:]:
                raise DataError(f"input {name!r}: this Predictor runs batches of exactly {self.batch} samples. "
                                f"Received: {x.shape[0]} samples (shape {list(x.shape)})")
            if list(x.shape) != want:
                raise DataError(f"input {name!r} takes shape {want}. Received: shape {list(x.shape)}")
            value.update_inplace(np.ascontiguousarray(x, dtype))

    def run(self) -> None:
        """One run on the bound inputs, waiting for the outputs; onnxruntime's errors become a DataError."""
        try:
            self.session.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
        except Exception as err:
            if not is_ort_error(err):
                raise
            raise DataError(f"{self.name}: onnxruntime failed at batch {self.batch}: {ort_message(err)}") from None

    def outputs(self) -> list:
        """The outputs of the last run as numpy arrays (copies: the next run reuses the buffers)."""
        import numpy as np

        return [np.array(value.numpy()) for value in self.binding.get_outputs()]

    def __call__(self, inputs: dict) -> list:
        """The outputs, in the session's order, for named arrays of exactly ``batch`` samples."""
        self.load(inputs)
        self.run()
        return self.outputs()

    @staticmethod
    def samples(inputs: dict) -> int:
        """The number of samples in named arrays (batch first); DataError when they differ."""
        import numpy as np

        shapes = {name: np.shape(x) for name, x in inputs.items()}
        counts = {shape[0] if shape else None for shape in shapes.values()}
        if len(counts) > 1 or None in counts:
            raise DataError("the inputs must hold the same number of samples, batch first. Received: " +
                            ", ".join(f"{name!r}: shape {list(shape)}" for name, shape in shapes.items()))
        return counts.pop() if counts else 0

    def predict(self, inputs: dict) -> list:
        """The outputs for named arrays of any number of samples: in runs of ``batch``, the last padded with zero
        samples and its outputs trimmed, then concatenated. The padding changes no real sample's outputs: dlspec's
        exports have no operation across samples at inference (BatchNorm uses its running statistics) and 0 is a
        valid token id; the arrays are those that a run on all samples at once would return."""
        import numpy as np

        arrays = {name: np.asarray(x) for name, x in inputs.items()}
        n = self.samples(arrays)
        parts = []
        for start in range(0, max(n, 1), self.batch):  # no samples: one padded run gives the outputs' shapes
            chunk = {name: _padded(x[start:start + self.batch], self.batch) for name, x in arrays.items()}
            parts.append([y[:n - start] for y in self(chunk)])
        return [np.concatenate(ys) for ys in zip(*parts)]


def _padded(x, batch: int):
    """``x`` with zero samples appended up to ``batch``."""
    import numpy as np

    if len(x) == batch:
        return x
    return np.concatenate([x, np.zeros((batch - len(x), *x.shape[1:]), x.dtype)])


def random_feed(sess, batch: int, seed: int = 0) -> dict:
    """Random inputs of ``batch`` samples for a session: standard-normal floats, or int64 0 and 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in sess.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        dtype = np.dtype(TYPES.get(inp.type, "float32"))
        data = rng.integers(0, 2, shape) if dtype == np.int64 else rng.standard_normal(shape, dtype=np.float32)
        feeds[inp.name] = data.astype(dtype, copy=False)
    return feeds


def bench(model, batch: int, provider: str = "auto", iterations: int = 50, warmup: int = 10, seed: int = 0,
          cuda_options: dict | None = None, profile=None, progress=None) -> dict:
    """Throughput and latency percentiles with IO binding (inputs and outputs stay on the device), through a
    :class:`Predictor` (``cuda_options={"enable_cuda_graph": "1"}``: replayed as a CUDA graph).

    ``progress(event, info)``, if given, hears ``"start"`` (provider, batch, runs) once the session is made,
    and ``"run"`` (done, total, seconds left) when runs are slow: after a first run of over 2 s, then
    every 20 s, so a long benchmark on the CPU is never silent."""
    import io

    notice = io.StringIO()  # the CPU fallback notice, shown once the model and the batch are known to be good
    predictor = Predictor(model, batch, provider, notice=notice, cuda_options=cuda_options, profile=profile)
    sys.stderr.write(notice.getvalue())
    sess = predictor.session
    predictor.load(random_feed(sess, batch, seed))
    if progress:
        progress("start", {"provider": sess.get_providers()[0], "batch": batch, "warmup": warmup,
                           "iterations": iterations})
    times, total, began, told = [], warmup + iterations, time.perf_counter(), None
    for i in range(total):
        start = time.perf_counter()
        predictor.run()
        now = time.perf_counter()
        if i >= warmup:
            times.append(now - start)
        slow = (told is None and now - began > 2) or (told is not None and now - told > 20)
        if progress and slow and i + 1 < total:
            told = now
            progress("run", {"done": i + 1, "total": total, "left_s": (now - began) / (i + 1) * (total - i - 1)})
    times.sort()

    def pct(p):
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] * 1e3

    median = statistics.median(times)
    result = {"provider": sess.get_providers()[0], "batch": batch, "iterations": iterations,
              "throughput": batch / median, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}
    if profile:
        result["profile"] = sess.end_profiling()
    return result


def _check_batch_memory(sess, batch: int) -> None:
    """Refuse a batch whose random inputs would not fit in half of this machine's memory, before allocating."""
    import math

    import numpy as np

    need = sum(math.prod(batch if not isinstance(d, int) else d for d in inp.shape) *
               np.dtype(TYPES.get(inp.type, "float32")).itemsize for inp in sess.get_inputs())
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return
    if need > memory // 2:
        raise UsageError(f"--batch {batch}: the inputs alone take {need / 1e9:,.1f} GB, more than half of this "
                         f"machine's {memory / 1e9:,.1f} GB of memory. Received: --batch {batch}")
