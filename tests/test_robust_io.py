"""No input crashes, hangs or leaves a mess (issue 11, items 6-9, 11, 12): output paths, weights and data files,
special files, `dlspec run` and `bench`, Ctrl-C, atomic writes and training runs that diverge."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec import cli, files
from dlspec.backends.codegen import READ_SAFETENSORS
from dlspec.deploy import bench, session
from dlspec.train import prepare

MLP = SPECS / "mnist_mlp.yaml"
DIGITS = SPECS / "digits_cnn.yaml"
SMALL = """\
dlspec: 1
name: small
inputs: {{x: {{shape: [1, 8, 8]}}}}
layers:
  - {{type: flatten}}
  - {{type: dense, units: 16, activation: relu}}
  - {{type: dense, units: 10}}
train:
  loss: cross_entropy
  optimizer: {{type: sgd, lr: 0.01}}
  schedule: {schedule}
  batch_size: 32
  epochs: {epochs}
"""


def dlspec_cli(*args, cwd=None, timeout=300):
    return subprocess.run([PYTHON, "-m", "dlspec", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _default_sigint():  # a child started from a shell that ignores SIGINT would ignore it too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def within():
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def alarm(seconds):
        def raise_timeout(*_):
            raise TimeoutError(f"still blocked after {seconds} s")

        signal.signal(signal.SIGALRM, raise_timeout)
        signal.alarm(seconds)

    yield alarm
    signal.alarm(0)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert dlspec_cli("build", MLP, "--backend", "onnx", "-o", out).returncode == 0
    return out / "mnist_mlp.onnx"


# ---- item 6: output paths ----------------------------------------------------------------------------------

def _output_case(tmp_path, case):
    """(arguments of `dlspec build`, expected error) for one bad output path, set up under tmp_path."""
    if case == "output is a file":
        (tmp_path / "afile").write_text("keep")
        return ["-o", tmp_path / "afile"], f"cannot write {tmp_path}/afile/mnist_mlp_torch.py: {tmp_path}/afile is " \
                                            "a file, not a directory"
    if case == "output under a file":
        (tmp_path / "afile").write_text("keep")
        return ["-o", tmp_path / "afile" / "sub"], (f"cannot write {tmp_path}/afile/sub/mnist_mlp_torch.py: "
                                                    f"{tmp_path}/afile is a file, not a directory")
    if case == "target is a directory":
        (tmp_path / "out" / "mnist_mlp_torch.py").mkdir(parents=True)
        return ["-o", tmp_path / "out"], f"cannot write {tmp_path}/out/mnist_mlp_torch.py: it is a directory"
    if case == "second target is a directory":  # the source would be fine: nothing may be written either
        (tmp_path / "out" / "mnist_mlp.safetensors").mkdir(parents=True)
        return ["--seed", "0", "-o", tmp_path / "out"], \
            f"cannot write {tmp_path}/out/mnist_mlp.safetensors: it is a directory"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["output is a file", "output under a file", "target is a directory",
                                  "second target is a directory"])
def test_bad_output_paths_are_one_line_errors_that_write_nothing(tmp_path, case):
    args, message = _output_case(tmp_path, case)
    before = tree(tmp_path)
    result = dlspec_cli("build", MLP, "--backend", "torch", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message}\n")
    assert tree(tmp_path) == before


def test_a_250_character_model_name_is_refused_before_writing(tmp_path, spec_file):
    name = "m" * 250
    path = spec_file(MLP.read_text().replace("name: mnist_mlp", f"name: {name}"))
    result = dlspec_cli("build", path, "--backend", "torch", "-o", tmp_path / "out")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"error: cannot write {tmp_path}/out/{name}_torch.py: the name {'m' * 24}... is 259 "
                             "bytes long; the file system allows 255\n")
    assert not (tmp_path / "out").exists()


def test_a_long_name_that_fits_gets_a_temporary_that_fits_too(tmp_path):
    name = "w" * 240 + ".safetensors"  # 252 bytes: the temporary beside it must not be longer than 255
    path = dlspec.save_weights({"a": np.ones(2, np.float32)}, tmp_path / name)
    assert path.name == name and [p.name for p in tmp_path.iterdir()] == [name]


def test_an_unwritable_directory_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    assert cli.main(["build", str(MLP), "--backend", "onnx", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: cannot write {tmp_path}/mnist_mlp.onnx: permission denied in "
                                       f"{tmp_path}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_write_refused_by_the_file_system_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    assert cli.main(["weights", str(MLP), "-o", str(tmp_path / "w.safetensors")]) == 2
    assert capsys.readouterr().err == f"error: cannot write {tmp_path}/w.safetensors: read-only file system\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory (the test above covers it)")
def test_an_unwritable_directory_is_refused_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = dlspec_cli("build", MLP, "--backend", "onnx", "-o", locked)
    assert (result.returncode, result.stderr) == (2, f"error: cannot write {locked}/mnist_mlp.onnx: permission denied "
                                                     f"in {locked}\n")


def test_a_device_or_fifo_as_the_target_is_never_replaced(tmp_path, fifo):
    with pytest.raises(dlspec.DataError) as info:
        dlspec.save_weights({"a": np.ones(2, np.float32)}, "/dev/null")
    assert str(info.value) == "cannot write /dev/null: it is a character device; dlspec replaces only regular files"
    with pytest.raises(dlspec.DataError) as info:
        files.write_atomic(fifo, "x")
    assert str(info.value) == f"cannot write {fifo}: it is a FIFO; dlspec replaces only regular files"
    assert Path("/dev/null").is_char_device() and fifo.is_fifo()


def test_training_output_problems_are_found_before_training(tmp_path, spec_file):
    (tmp_path / "out" / "history.json").mkdir(parents=True)
    spec = spec_file(SMALL.format(schedule="null", epochs=1))
    result = dlspec_cli("train", spec, "--backend", "torch", "-o", tmp_path / "out")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: cannot write {tmp_path}/out/history.json: it is a directory\n"


# ---- item 7: weights and data ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_safetensors_are_read_as_float32(tmp_path, dtype):
    import torch
    from safetensors.torch import save_file

    model = dlspec.load(MLP)
    exact = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in dlspec.init_weights(model, 1).items()}
    save_file(exact, tmp_path / "half.safetensors")
    want = {k: v.float().numpy() for k, v in exact.items()}
    loaded = dlspec.load_weights(tmp_path / "half.safetensors", model)  # also checks names, shapes, float32
    assert all(loaded[k].dtype == np.float32 and np.array_equal(loaded[k], want[k]) for k in want)
    namespace = {"json": json, "np": np}
    exec(READ_SAFETENSORS, namespace)  # the reader inside every generated source file
    read = namespace["read_safetensors"](tmp_path / "half.safetensors")
    assert all(read[k].dtype == np.float32 and np.array_equal(read[k], want[k]) for k in want)
    net = dlspec.build(model, "torch", tmp_path / "half.safetensors")
    assert np.array_equal(net.logits.bias.detach().numpy(), want["logits.bias"])


@pytest.mark.parametrize("header, why", [
    ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}},
     "tensor 't' of shape [4] does not fit its data_offsets [0, 12]"),
    ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}},
     "tensor 't' of shape [4] does not fit its data_offsets [0, 99]"),
    ({"t": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
     "tensor 't' has dtype 'F8_E4M3'; dlspec reads F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL"),
    ({"t": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, "tensor 't' has no valid shape and data_offsets"),
    ([1, 2], "the header is not a JSON object"),
])
def test_malformed_safetensors_are_named(tmp_path, header, why):
    text = json.dumps(header).encode()
    (tmp_path / "w.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + bytes(16))
    with pytest.raises(dlspec.DataError) as info:
        dlspec.load_weights(tmp_path / "w.safetensors")
    assert str(info.value) == f"{tmp_path}/w.safetensors: not a safetensors file ({why})"


def test_a_safetensors_header_longer_than_the_file_is_named(tmp_path):
    (tmp_path / "w.safetensors").write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")
    with pytest.raises(dlspec.DataError) as info:
        dlspec.load_weights(tmp_path / "w.safetensors")
    assert str(info.value) == (f"{tmp_path}/w.safetensors: not a safetensors file (the header does not fit in the "
                               "file's 10 bytes)")


def _npz(tmp_path, **arrays):
    np.savez(tmp_path / "data.npz", **arrays)
    return str(tmp_path / "data.npz")


X = np.zeros((4, 64), np.float32)


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": X, "y_train": np.array(3)}, "y_train is a single number; it needs one entry per sample"),
    ({"x_train": np.array(1.0), "y_train": np.zeros(4)}, "x_train is a single number; it needs one entry per sample"),
    ({"x_train": X, "y_train": np.array(["a", "b", "c", "d"])},
     "y_train holds strings (dtype <U1); training data must be numbers"),
    ({"x_train": np.array(["2020-01-01"] * 4, dtype="datetime64[D]"), "y_train": np.zeros(4)},
     "x_train holds dates (dtype datetime64[D]); training data must be numbers"),
    ({"x_train": X, "y_train": np.array([0, 1, 2, 1e20])},
     "label 100000000000000000000 is out of range: the model has 10 classes (labels 0..9)"),
    ({"x_train": X, "y_train": np.array([0, 1, 2, -1e20])},
     "label -100000000000000000000 is out of range: the model has 10 classes (labels 0..9)"),
])
def test_unusable_training_arrays_are_named(tmp_path, arrays, message):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(dlspec.DataError) as info:
        prepare(dlspec.load(DIGITS), path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize("cut", [3000, -30])
def test_a_truncated_npz_is_named(tmp_path, cut):
    path = _npz(tmp_path, x_train=np.zeros((400, 64)), y_train=np.zeros(400))
    Path(path).write_bytes(Path(path).read_bytes()[:cut])
    with pytest.raises(dlspec.DataError) as info:
        prepare(dlspec.load(DIGITS), path)
    assert str(info.value) == f"{path}: cannot read the data file: it is not a complete .npz archive (truncated?)"


def test_bad_data_exits_2_from_the_command_line(tmp_path):
    path = _npz(tmp_path, x_train=X, y_train=np.array(["a", "b", "c", "d"]))
    result = dlspec_cli("train", DIGITS, "--backend", "torch", "--data", path, "-o", tmp_path / "out")
    assert (result.returncode, result.stderr) == (2, f"error: {path}: y_train holds strings (dtype <U1); training "
                                                     "data must be numbers\n")


# ---- item 8: special files ---------------------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_fifo_as_the_spec_does_not_block(fifo):
    result = dlspec_cli("validate", fifo, timeout=60)
    assert (result.returncode, result.stderr) == (
        2, f"error: {fifo}:1:1: cannot read the spec file: it is a FIFO, not a regular file. Received: '{fifo}'\n")


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"), ("/", "a directory")])
def test_a_device_or_directory_as_the_spec_is_not_read(within, path, kind):
    within(20)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    assert str(info.value) == (f"{path}:1:1: cannot read the spec file: it is {kind}, not a regular file. "
                               f"Received: '{path}'")


def test_a_spec_over_the_size_limit_is_not_read(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as file:
        file.truncate(17 << 20)  # sparse: 17 MiB of nothing
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    assert str(info.value) == (f"{path}:1:1: cannot read the spec file: it is 17,825,792 bytes; the limit is "
                               f"16,777,216 bytes. Received: '{path}'")


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_special_files_as_weights_are_not_read(within, fifo, special):
    within(20)
    path = fifo if special == "fifo" else special
    kind = "a FIFO" if special == "fifo" else "a character device"
    with pytest.raises(dlspec.DataError) as info:
        dlspec.load_weights(path)
    assert str(info.value) == f"{path}: cannot read the weights file: it is {kind}, not a regular file"


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_special_files_as_a_state_dict_are_not_read(tmp_path, fifo, special):
    path = fifo if special == "fifo" else special
    kind = "a FIFO" if special == "fifo" else "a character device"
    result = dlspec_cli("import-weights", "--from", "torchvision", MLP, path, "-o", tmp_path / "w.safetensors",
                        timeout=60)
    assert (result.returncode, result.stderr) == (
        2, f"error: {path}: cannot read the state dict: it is {kind}, not a regular file\n")


def test_special_files_as_data_model_or_input_are_not_read(within, tmp_path, fifo, onnx_file):
    within(30)
    npz = fifo.rename(tmp_path / "pipe.npz")
    with pytest.raises(dlspec.DataError) as info:
        prepare(dlspec.load(DIGITS), str(npz))
    assert str(info.value) == f"{npz}: cannot read the data file: it is a FIFO, not a regular file"
    with pytest.raises(dlspec.DataError) as info:
        session(str(npz))
    assert str(info.value) == f"{npz}: cannot read the ONNX model: it is a FIFO, not a regular file"
    assert cli.main(["run", str(onnx_file), "--input", "/dev/zero"]) == 2


# ---- item 9: dlspec run and dlspec bench -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "empty.onnx").write_bytes(b"")
    (root / "text.onnx").write_text("not a model\n")
    return root


@pytest.mark.parametrize("command", ["run", "bench"])
@pytest.mark.parametrize("model, message", [
    ("missing.onnx", "cannot read the ONNX model: No such file or directory"),
    ("empty.onnx", "the file is empty, not an ONNX model"),
    ("text.onnx", "onnxruntime cannot load it as an ONNX model: Protobuf parsing failed."),
])
def test_run_and_bench_name_an_unusable_model(bad_models, tmp_path, command, model, message):
    np.save(tmp_path / "x.npy", np.zeros((1, 784), np.float32))
    extra = ["--input", tmp_path / "x.npy"] if command == "run" else []
    result = dlspec_cli(command, bad_models / model, *extra)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {bad_models / model}: {message}\n")


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 783), np.float32), "the input array has shape [2, 783], but input 'x' takes [N, 784]"),
    (np.array(1.0), "the input array has shape [], but input 'x' takes [N, 784]"),
    (np.array(["a"] * 784)[None], "the input array has dtype <U1; input 'x' takes float32 numbers"),
])
def test_run_names_an_unusable_input(tmp_path, onnx_file, array, message):
    np.save(tmp_path / "x.npy", array)
    result = dlspec_cli("run", onnx_file, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {tmp_path}/x.npy: {message}\n")
    assert not (tmp_path / "y.npy").exists()


def test_run_reads_text_that_is_no_numpy_file_as_such(tmp_path, onnx_file):
    (tmp_path / "x.npy").write_text("hello")
    result = dlspec_cli("run", onnx_file, "--input", tmp_path / "x.npy")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {tmp_path}/x.npy: cannot read the input array: not a numpy .npy or .npz file\n"


def test_run_feeds_several_inputs_from_an_npz_and_checks_token_ids(tmp_path):
    """A model with several inputs takes an .npz with one array per input name; a missing name, a single .npy
    and negative token ids (ONNX's Gather would read from the end, where torch raises) are located errors."""
    spec = tmp_path / "two.yaml"
    spec.write_text("dlspec: 1\nname: two\ninputs:\n  tokens: {shape: [5], dtype: int64}\n  extra: {shape: [5, 4]}\n"
                    "layers:\n  - {name: emb, type: embedding, vocabulary: 10, units: 4, inputs: [tokens]}\n"
                    "  - {name: sum, type: add, inputs: [emb, extra]}\n")
    assert dlspec_cli("build", spec, "--backend", "onnx", "-o", tmp_path).returncode == 0
    model = tmp_path / "two.onnx"
    rng = np.random.default_rng(0)
    tokens, extra = rng.integers(0, 10, (3, 5)), rng.standard_normal((3, 5, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", tokens=tokens, extra=extra)
    result = dlspec_cli("run", model, "--input", tmp_path / "in.npz", "--provider", "cpu", "-o", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sum: shape [3, 5, 4], dtype float32\n")
    weights = dlspec.init_weights(dlspec.load(spec), 0)
    assert np.allclose(np.load(tmp_path / "y.npy"), weights["emb.weight"][tokens] + extra, atol=1e-6)
    np.savez(tmp_path / "some.npz", tokens=tokens)
    np.save(tmp_path / "one.npy", tokens)
    np.savez(tmp_path / "neg.npz", tokens=-tokens - 1, extra=extra)
    for given, message in (
            ("some.npz", "some.npz: holds arrays ['tokens'], but {m} takes inputs ['tokens', 'extra'] (one array per "
                         "input, named after it)"),
            ("one.npy", "{m}: the model takes 2 inputs (tokens, extra); give them as one .npz file with an array per "
                        "input name"),
            ("neg.npz", "neg.npz['tokens']: input 'tokens' takes ids from 0 up; the array has -10")):
        result = dlspec_cli("run", model, "--input", tmp_path / given, "--provider", "cpu")
        assert (result.returncode, result.stdout) == (2, ""), given
        assert result.stderr.replace(f"{tmp_path}/", "") == "error: " + message.format(m="two.onnx") + "\n"


def test_bench_refuses_a_batch_beyond_memory(onnx_file):
    result = dlspec_cli("bench", onnx_file, "--batch", "4000000000", "--provider", "cpu")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: --batch 4000000000: the inputs alone take 12,544.0 GB, more than half of "
                                    "this machine's ")
    assert result.stderr.endswith(" GB of memory. Received: --batch 4000000000\n")


def test_cuda_graph_without_cuda_is_a_usage_error(onnx_file):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    result = dlspec_cli("bench", onnx_file, "--provider", "cuda", "--cuda-graph")
    providers = ", ".join(onnxruntime.get_available_providers())
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"error: --cuda-graph needs CUDA, and onnxruntime {onnxruntime.__version__} has no "
               f"CUDAExecutionProvider here (providers: {providers}; dlspec[gpu] installs onnxruntime-gpu). "
               "Received: --cuda-graph --provider cuda\n")


def test_slow_bench_reports_progress(onnx_file, monkeypatch):
    from types import SimpleNamespace

    clock = iter(range(0, 10 ** 6, 3))  # every run appears to take 3 s
    monkeypatch.setattr("dlspec.deploy.time", SimpleNamespace(perf_counter=lambda: next(clock)))
    events = []
    result = bench(str(onnx_file), 1, "cpu", iterations=20, warmup=2, progress=lambda e, i: events.append((e, i)))
    assert events[0] == ("start", {"provider": "CPUExecutionProvider", "batch": 1, "warmup": 2, "iterations": 20})
    runs = [i for e, i in events if e == "run"]
    assert runs[0]["done"] == 1 and runs[0]["total"] == 22 and runs[0]["left_s"] > 0
    assert [r["done"] for r in runs] == [1, 5, 9, 13, 17, 21]  # then one line per 20 s or so
    assert result["iterations"] == 20


def test_bench_says_what_it_runs_before_the_first_run(onnx_file):
    """The first line comes at once (not after minutes of CPU runs); Ctrl-C then writes nothing and exits 130."""
    proc = subprocess.Popen([PYTHON, "-m", "dlspec", "bench", str(onnx_file), "--provider", "cpu", "--iterations",
                             "100000000", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        first = proc.stdout.readline()
        assert first == f"{onnx_file}: CPUExecutionProvider, batch 1, 100000000 runs with IO binding, 1 CPU thread\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (130, "", "interrupted; nothing was written\n")


# ---- item 11: interrupts and atomic writes -----------------------------------------------------------------

def _wait_for(path: Path, proc, seconds=120):
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


def test_ctrl_c_during_training_keeps_one_run_and_says_what(tmp_path, spec_file):
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("weights.safetensors", "model.keras", "model.pt"):  # a previous run's files
        (out / stale).write_text("previous run")
    spec = spec_file(SMALL.format(schedule="null", epochs=100000))
    proc = subprocess.Popen([PYTHON, "-m", "dlspec", "train", str(spec), "--backend", "torch", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        _wait_for(out / "history.json", proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.splitlines()[-1] == f"interrupted; kept {out}/best.safetensors and {out}/history.json (written before " \
                                   "the interrupt)"
    assert "Traceback" not in err
    assert tree(out) == ["best.safetensors", "history.json"]  # no file of the previous run beside this one
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    assert len(epochs) >= 1 and epochs[0]["epoch"] == 1


def test_training_reports_and_keeps_only_its_own_files(tmp_path, spec_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.keras").write_text("an earlier Keras run")
    spec = spec_file(SMALL.format(schedule="null", epochs=1))
    result = dlspec_cli("train", spec, "--backend", "torch", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (f"wrote {out}/weights.safetensors, {out}/best.safetensors, "
                                              f"{out}/history.json and the framework's own file (model.pt)")
    assert tree(out) == ["best.safetensors", "history.json", "model.pt", "weights.safetensors"]


def test_next_write_removes_partials_of_killed_runs(tmp_path):
    code = ("import sys, time; from dlspec import files\n"
            "with files.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half of a model'); print(tmp.name, flush=True); time.sleep(600)\n")
    writer = subprocess.Popen([PYTHON, "-c", code, str(tmp_path / "mnist_mlp.onnx")], stdout=subprocess.PIPE, text=True)
    partial = writer.stdout.readline().strip()
    writer.kill()  # SIGKILL: no cleanup runs
    writer.wait()
    assert files.PART.fullmatch(partial) and (tmp_path / partial).exists()
    kept = [".notes.txt", ".other.onnx.abcd1234", f".live.{os.getpid()}-abcd1234.dlspec-part"]
    removed = [".mnist_mlp_torch.py.x1y2z3_9"]  # an unmarked partial of this very target (older dlspec)
    for name in kept + removed:
        (tmp_path / name).write_text("x")
    assert dlspec_cli("build", MLP, "--backend", "torch", "-o", tmp_path).returncode == 0
    assert tree(tmp_path) == sorted(kept + ["mnist_mlp_torch.py"])


def test_a_failed_native_save_keeps_the_previous_file(tmp_path):
    (tmp_path / "model.keras").write_text("previous")
    with pytest.raises(RuntimeError, match="writer failed"), files.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras"  # Keras insists on the suffix
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert tree(tmp_path) == ["model.keras"] and (tmp_path / "model.keras").read_text() == "previous"


def test_every_cli_output_goes_through_a_temporary(tmp_path, monkeypatch):
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append((Path(a).name, Path(b).name)), real(a, b)))
    for args in (["build", MLP, "--backend", "keras", "--seed", "0"], ["build", MLP, "--backend", "onnx"]):
        assert cli.main([*map(str, args), "-o", str(tmp_path)]) == 0
    assert cli.main(["schema", "-o", str(tmp_path / "schema.json")]) == 0
    targets = [b for _, b in renamed]
    assert targets == ["mnist_mlp_keras.py", "mnist_mlp.safetensors", "mnist_mlp.onnx", "schema.json"]
    assert all(files.PART.fullmatch(a) for a, _ in renamed)


# ---- item 12: divergence -----------------------------------------------------------------------------------

def test_a_diverging_run_stops_with_exit_1_and_keeps_the_last_finite_weights(tmp_path, spec_file):
    spec = spec_file(SMALL.format(schedule="{type: step, step_size: 1, gamma: 1.0e+30}", epochs=4))
    out = tmp_path / "out"
    result = dlspec_cli("train", spec, "--backend", "torch", "-o", out)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: training diverged: the loss is nan at step 59 (epoch 2); kept the weights after epoch 1 in "
        f"{out}/weights.safetensors. A lower learning rate, gradient clipping or inputs of a smaller scale may help")
    assert tree(out) == ["best.safetensors", "history.json", "weights.safetensors"]
    kept = dlspec.load_weights(out / "weights.safetensors", dlspec.load(spec))
    assert all(np.isfinite(w).all() for w in kept.values())
    best = dlspec.load_weights(out / "best.safetensors")
    assert all(np.array_equal(kept[k], best[k]) for k in kept)  # epoch 1 was also the best
    history = json.loads((out / "history.json").read_text())
    assert history["diverged"] == {"epoch": 2, "reason": "the loss is nan at step 59 (epoch 2)"}
    assert len(history["epochs"]) == 1 and len(history["step_loss"]) == 57


def test_overflowing_inputs_stop_training_at_the_first_epoch_writing_nothing(tmp_path, spec_file):
    spec = spec_file(SMALL.format(schedule="null", epochs=3))
    np.savez(tmp_path / "huge.npz", x_train=np.full((64, 64), 3e38, np.float32), y_train=np.arange(64) % 10)
    result = dlspec_cli("train", spec, "--backend", "torch", "--data", tmp_path / "huge.npz", "-o", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "error: training diverged: the loss is nan at step 1 (epoch 1); no epoch ended with finite weights, so "
        "nothing was written. A lower learning rate, gradient clipping or inputs of a smaller scale may help")
    assert not (tmp_path / "out").exists()


def test_the_api_raises_training_diverged_with_the_last_finite_weights(spec_file):
    from dlspec.train import fit

    model = dlspec.load(spec_file(SMALL.format(schedule="{type: step, step_size: 1, gamma: 1.0e+30}", epochs=4)))
    data = prepare(model, "digits")
    with pytest.raises(dlspec.TrainingDiverged) as info:
        fit(model, "keras", data, dlspec.init_weights(model, 0), progress=False)
    assert str(info.value).startswith("training diverged: the loss is ")
    assert "(epoch 2); the last finite weights are those after epoch 1." in str(info.value)
    assert sorted(info.value.weights) == sorted(dlspec.init_weights(model, 0))
    assert len(info.value.history.epochs) == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_tolerance_must_be_a_positive_finite_number(value, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["parity", str(MLP), "--tol", value])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"dlspec parity: error: argument --tol: must be a positive number. Received: {value!r}")


def test_interrupt_message_lists_what_was_written(monkeypatch):
    monkeypatch.setattr(files, "WRITTEN", [])
    assert files.interrupted_message() == "interrupted; nothing was written"
    monkeypatch.setattr(files, "WRITTEN", [Path("o/a.py"), Path("o/b.safetensors"), Path("o/c.json")])
    assert files.interrupted_message() == ("interrupted; kept o/a.py, o/b.safetensors and o/c.json (written before "
                                           "the interrupt)")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_partials_left_by_an_interrupt_between_creation_and_rename_are_removed(tmp_path):
    """A Ctrl-C that lands while a ``with atomic_path(...)`` is being entered never reaches the generator's
    cleanup; the CLI's interrupt handler removes this process's partial files before it reports."""
    from dlspec.files import PENDING, atomic_path, remove_pending

    manager = atomic_path(tmp_path / "history.json")
    entered = manager.__enter__()  # as if interrupted right after entering: no __exit__ runs
    assert entered.exists() and str(entered) in PENDING
    remove_pending()
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and not PENDING
