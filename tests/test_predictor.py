"""dlspec.deploy.Predictor (a fixed batch bound once with IO binding, optionally a CUDA graph) and
`dlspec run --batch N [--cuda-graph]`. CUDA graphs are tested here through their refusals (no GPU);
tests/test_gpu.py runs them on the GPU machine."""

import subprocess
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.deploy import Predictor, session

NO_CUDA = "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
PROVIDERS = ", ".join(onnxruntime.get_available_providers())
NEEDS_CUDA = (f"--cuda-graph needs CUDA, and onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
              f"here (providers: {PROVIDERS}; dlspec[gpu] installs onnxruntime-gpu). Received: --cuda-graph "
              "--provider {provider}")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """mnist_mlp as an ONNX file, and ten samples (not a multiple of the batches used below)."""
    root = tmp_path_factory.mktemp("mlp")
    model = dlspec.load(SPECS / "mnist_mlp.yaml")
    proto = dlspec.build(model, "onnx", dlspec.init_weights(model, 0))
    (root / "mlp.onnx").write_bytes(proto.SerializeToString())
    x = np.random.default_rng(0).random((10, 784), dtype=np.float32)
    np.save(root / "x.npy", x)
    return root, proto, x


def test_predictor_runs_a_fixed_batch_like_the_session(mlp):
    _, proto, x = mlp
    reference = session(proto, "cpu").run(None, {"x": x})[0]
    predictor = Predictor(proto, 4, "cpu")
    assert (predictor.device, predictor.batch, predictor.cuda_graph) == ("cpu", 4, False)
    first = predictor({"x": x[:4]})[0]
    second = predictor({"x": x[4:8].astype(np.float64)})[0]  # cast to the input's float32
    assert first.shape == (4, 10) and second.dtype == np.float32
    assert np.max(np.abs(first - reference[:4])) <= 1e-6 and np.max(np.abs(second - reference[4:8])) <= 1e-6
    assert np.max(np.abs(first - reference[:4])) <= 1e-6  # a copy: the second run did not overwrite it
    assert np.max(np.abs(predictor.predict({"x": x})[0] - reference)) <= 1e-6
    assert predictor.predict({"x": x[:0]})[0].shape == (0, 10)


@pytest.mark.parametrize("inputs, message", [
    ({"x": np.zeros((3, 784))}, "input 'x': this Predictor runs batches of exactly 4 samples. Received: 3 samples "
                                "(shape [3, 784])"),
    ({"x": np.zeros((4, 783))}, "input 'x' takes shape [4, 784]. Received: shape [4, 783]"),
    ({"y": np.zeros((4, 784))}, "the model takes inputs ['x']. Received: ['y']"),
])
def test_predictor_refuses_other_batches_and_shapes(mlp, inputs, message):
    predictor = Predictor(mlp[1], 4, "cpu")
    with pytest.raises(dlspec.DataError) as info:
        predictor(inputs)
    assert str(info.value) == message


def test_predict_needs_the_same_samples_in_every_input(mlp):
    with pytest.raises(dlspec.DataError) as info:
        Predictor(mlp[1], 4, "cpu").predict({"x": np.zeros(784), "y": np.zeros((2, 3))})
    assert str(info.value) == ("the inputs must hold the same number of samples, batch first. Received: 'x': shape "
                               "[784], 'y': shape [2, 3]")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_predictor_cuda_graph_needs_cuda(mlp):
    for provider, message in (("auto", NEEDS_CUDA.format(provider="auto")),
                              ("cpu", "--cuda-graph needs --provider cuda. Received: --provider cpu")):
        with pytest.raises(dlspec.UsageError) as info:
            Predictor(mlp[1], 2, provider, cuda_graph=True)
        assert str(info.value) == message


def test_a_cuda_graph_needs_outputs_that_follow_from_the_batch():
    """Outputs get fixed buffers where their shapes follow from the batch; onnxruntime allocates the others,
    which a CUDA graph cannot replay."""
    from types import SimpleNamespace

    from dlspec.deploy import output_buffers

    outputs = [SimpleNamespace(name="y", shape=["N", 10], type="tensor(float)"),
               SimpleNamespace(name="ids", shape=["N", None], type="tensor(int64)")]
    sess = SimpleNamespace(get_outputs=lambda: outputs)
    assert output_buffers(sess, 3, False) == {"y": ([3, 10], np.dtype("float32")), "ids": None}
    with pytest.raises(dlspec.UsageError) as info:
        output_buffers(sess, 3, True)
    assert str(info.value) == ("a CUDA graph replays fixed buffers, so every output's shape must follow from the "
                               "batch. Received: output 'ids' of shape ['N', None]")


def dlspec_run(*args):
    return subprocess.run([PYTHON, "-m", "dlspec", "run", *map(str, args)], capture_output=True, text=True)


def test_cli_run_in_batches_writes_the_same_array(mlp, tmp_path):
    root, _, _ = mlp
    model, x = root / "mlp.onnx", root / "x.npy"
    whole = dlspec_run(model, "--input", x, "--provider", "cpu", "-o", tmp_path / "a.npy")
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == f"logits: shape [10, 10], dtype float32\nwrote {tmp_path / 'a.npy'}\n"  # as before
    for batch, line in (("4", "batch 4, 3 runs with IO binding for 10 samples (the last padded with 2 zero samples)"),
                        ("5", "batch 5, 2 runs with IO binding for 10 samples"),
                        ("16", "batch 16, 1 run with IO binding for 10 samples (padded with 6 zero samples)")):
        result = dlspec_run(model, "--input", x, "--provider", "cpu", "--batch", batch, "-o", tmp_path / "b.npy")
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == (f"{model}: CPUExecutionProvider, {line}, without a CUDA graph\n"
                                 f"logits: shape [10, 10], dtype float32\nwrote {tmp_path / 'b.npy'}\n")
        a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
        assert b.shape == (10, 10) and np.max(np.abs(a - b)) <= 1e-6


def test_cli_run_in_batches_with_several_inputs(tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text("dlspec: 1\nname: two\ninputs:\n  tokens: {shape: [5], dtype: int64}\n  extra: {shape: [5, 4]}\n"
                    "layers:\n  - {name: emb, type: embedding, vocabulary: 10, units: 4, inputs: [tokens]}\n"
                    "  - {name: sum, type: add, inputs: [emb, extra]}\n")
    assert subprocess.run([PYTHON, "-m", "dlspec", "build", spec, "--backend", "onnx", "-o", tmp_path]).returncode == 0
    rng = np.random.default_rng(0)
    tokens, extra = rng.integers(0, 10, (7, 5)), rng.standard_normal((7, 5, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", tokens=tokens, extra=extra)
    result = dlspec_run(tmp_path / "two.onnx", "--input", tmp_path / "in.npz", "--provider", "cpu", "--batch", "3",
                        "-o", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"{tmp_path / 'two.onnx'}: CPUExecutionProvider, batch 3, 3 runs with IO binding for 7 samples (the last "
        "padded with 2 zero samples), without a CUDA graph", "sum: shape [7, 5, 4], dtype float32"]
    weights = dlspec.init_weights(dlspec.load(spec), 0)
    assert np.max(np.abs(np.load(tmp_path / "y.npy") - (weights["emb.weight"][tokens] + extra))) <= 1e-6
    np.savez(tmp_path / "uneven.npz", tokens=tokens, extra=extra[:6])
    result = dlspec_run(tmp_path / "two.onnx", "--input", tmp_path / "uneven.npz", "--provider", "cpu", "--batch", "3")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("error: the inputs must hold the same number of samples, batch first. Received: 'tokens': "
                             "shape [7, 5], 'extra': shape [6, 5, 4]\n")


def test_cli_cuda_graph_needs_batch_and_cuda(mlp, tmp_path):
    root, _, _ = mlp
    model, x = root / "mlp.onnx", root / "x.npy"
    result = dlspec_run(model, "--input", x, "--cuda-graph", "-o", tmp_path / "y.npy")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "error: --cuda-graph needs --batch N: a CUDA graph replays one fixed shape. Received: --cuda-graph "
               "without --batch\n")
    result = dlspec_run(model, "--input", x, "--cuda-graph", "--batch", "2", "--provider", "cpu")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "error: --cuda-graph needs --provider cuda. Received: --provider cpu\n")
    if NO_CUDA:
        result = dlspec_run(model, "--input", x, "--cuda-graph", "--batch", "2", "-o", tmp_path / "y.npy")
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == "error: " + NEEDS_CUDA.format(provider="auto") + "\n"
    assert not (tmp_path / "y.npy").exists()


def test_outputs_that_onnxruntime_allocates_come_back_too(mlp, monkeypatch):
    from dlspec import deploy

    monkeypatch.setattr(deploy, "output_buffers", lambda sess, batch, graph: {o.name: None for o in sess.get_outputs()})
    _, proto, x = mlp
    reference = session(proto, "cpu").run(None, {"x": x})[0]
    predicted = Predictor(proto, 3, "cpu").predict({"x": x})[0]
    assert predicted.shape == (10, 10) and np.max(np.abs(predicted - reference)) <= 1e-6


def test_cli_run_in_batches_ends_on_ctrl_c_in_one_line(tmp_path):
    """The line naming the batch comes before the first run; Ctrl-C then writes nothing and exits 130."""
    import signal

    spec = tmp_path / "tiny.yaml"
    spec.write_text("dlspec: 1\nname: tiny\ninputs:\n  x: {shape: [2]}\nlayers:\n  - {type: dense, units: 2}\n")
    assert subprocess.run([PYTHON, "-m", "dlspec", "build", spec, "--backend", "onnx", "-o", tmp_path]).returncode == 0
    np.save(tmp_path / "x.npy", np.zeros((2_000_000, 2), np.float32))  # two million runs of one sample
    proc = subprocess.Popen([PYTHON, "-m", "dlspec", "run", str(tmp_path / "tiny.onnx"), "--input",
                             str(tmp_path / "x.npy"), "--provider", "cpu", "--batch", "1", "-o",
                             str(tmp_path / "y.npy")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()
        assert first == (f"{tmp_path / 'tiny.onnx'}: CPUExecutionProvider, batch 1, 2000000 runs with IO binding for "
                         "2000000 samples, without a CUDA graph\n")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (130, "", "interrupted; nothing was written\n")
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.skipif(NO_CUDA, reason="onnxruntime has no CUDA here (run on the GPU machine)")
def test_cuda_graph_replays_with_new_inputs_on_the_gpu():
    """On CUDA: each call of a graphed Predictor sees its own inputs (the replay reads the bound buffers), within
    1e-4 of the CPU (TF32 off); compare's cuda-graph path agrees with its onnxruntime path."""
    from dlspec.compare import compare

    model = dlspec.load(SPECS / "mnist_cnn.yaml")
    proto = dlspec.build(model, "onnx", dlspec.init_weights(model, 0))
    x = np.random.default_rng(0).random((7, 1, 28, 28), dtype=np.float32)
    reference = session(proto, "cpu").run(None, {"image": x})[0]
    predictor = Predictor(proto, 2, "cuda", cuda_graph=True)
    assert (predictor.device, predictor.cuda_graph) == ("cuda", True)
    for _ in range(2):  # the first pass captures, the second replays only
        y = predictor.predict({"image": x})[0]
        assert np.max(np.abs(y - reference)) <= 1e-4 * max(1.0, float(np.max(np.abs(reference))))
    timings = compare(model, batch=4, device="cuda", iterations=5, warmup=2,
                      paths=("onnxruntime", "onnxruntime cuda-graph"), notice=None)
    assert timings[1].path == "onnxruntime cuda-graph" and timings[1].max_diff <= 1e-5


CLASS_TOKEN = {"dlspec": 1, "name": "tok", "inputs": {"x": {"shape": [4, 6]}},
               "layers": [{"name": "cls", "type": "parameter", "shape": [1, 1, 6], "initializer": "normal"},
                          {"name": "seq", "type": "concat", "axis": 1, "inputs": ["cls", "x"]},
                          {"name": "out", "type": "dense", "units": 3}]}


def test_a_fixed_batch_folds_the_shape_arithmetic(tmp_path):
    """With a CUDA graph the Predictor fixes the batch dimension (``session(..., batch=)``), so onnxruntime folds the
    Shape/Gather/Expand that broadcast a class token over the batch: onnxruntime runs such int64 nodes on the CPU,
    and a CUDA graph needs all on the device."""
    import onnx

    model = dlspec.from_dict(CLASS_TOKEN)
    proto = dlspec.build(model, "onnx", dlspec.init_weights(model, 0))
    assert {"Shape", "Expand"} <= {n.op_type for n in proto.graph.node}
    counts = {}
    for batch in (None, 3):
        path = tmp_path / f"optimized_{batch}.onnx"
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(path)
        for name in dlspec.deploy.batch_dims(proto) if batch else ():
            options.add_free_dimension_override_by_name(name, batch)
        onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        counts[batch] = sum(n.op_type in ("Shape", "Expand") for n in onnx.load(str(path)).graph.node)
    assert counts == {None: 2, 3: 0}
    fixed = session(proto, "cpu", batch=3)
    assert fixed.get_inputs()[0].shape == [3, 4, 6]
    assert Predictor(proto, 3, "cpu").session.get_inputs()[0].shape == ["batch", 4, 6]  # no graph: as exported
    x = np.random.default_rng(0).random((3, 4, 6), dtype=np.float32)
    reference = session(proto, "cpu").run(None, {"x": x})[0]
    assert np.max(np.abs(fixed.run(None, {"x": x})[0] - reference)) <= 1e-6


@pytest.mark.skipif(NO_CUDA, reason="onnxruntime has no CUDA here (run on the GPU machine)")
def test_vit_is_captured_as_a_cuda_graph():
    """ViT-B/16's class token is broadcast by shape arithmetic; with the batch fixed it folds away and the whole
    model replays as one CUDA graph (before: onnxruntime refused, some nodes being on the CPU)."""
    from dlspec.parity import random_weights

    model = dlspec.load(SPECS / "vit_b_16.yaml")
    weights = random_weights(model, 0)
    proto = dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    reference = session(dlspec.build(model, "onnx", weights), "cpu").run(None, {"image": x})[0]
    y = Predictor(proto, 2, "cuda", cuda_graph=True).predict({"image": x})[0]
    assert np.max(np.abs(y - reference)) <= 2e-3 * float(np.max(np.abs(reference)))  # the fp16 bound


def test_a_refused_capture_is_retried_with_the_batch_fixed(monkeypatch):
    """Where onnxruntime refuses a CUDA graph (nodes on the CPU), the Predictor makes the session again with the
    batch fixed, and only then; a second refusal reaches the user as its one line."""
    from dlspec import deploy

    model = dlspec.from_dict(CLASS_TOKEN)
    proto = dlspec.build(model, "onnx", dlspec.init_weights(model, 0))
    calls = []

    def fake(model, provider, notice=None, cuda_options=None, profile=None, batch=None, refuse=2):
        calls.append(batch)
        if len(calls) < refuse:
            raise deploy.CaptureRefused("onnxruntime cannot replay this model as a CUDA graph: ...")
        return session(model, "cpu", batch=batch)

    monkeypatch.setattr(deploy, "check_cuda_graph", lambda provider, sess=None: None)
    monkeypatch.setattr(deploy, "session", fake)
    predictor = Predictor(proto, 3, "cuda", cuda_graph=True)
    assert calls == [None, 3] and predictor.session.get_inputs()[0].shape == [3, 4, 6]
    calls.clear()
    monkeypatch.setattr(deploy, "session", lambda *a, **k: fake(*a, **k, refuse=3))
    with pytest.raises(deploy.CaptureRefused):
        Predictor(proto, 3, "cuda", cuda_graph=True)
    assert calls == [None, 3]


def test_fixed_batch_session_keeps_the_free_batch_fusions(tmp_path):
    """With the batch fixed, onnxruntime's MatMulAddFusion would turn 3-D MatMul+Add into Reshape/Gemm/Reshape
    (ViT-B/16 then ran 0.83x as fast on the H200): the fixed session runs the same operators as the free one."""
    import json

    from dlspec.parity import random_inputs, random_weights

    model = dlspec.load(SPECS / "text_transformer.yaml")
    proto = dlspec.build(model, "onnx", random_weights(model, 0), fp16=True, optimize=True)
    feeds = {"tokens": random_inputs(model, 2, 0)[0]}
    ops = {}
    for batch in (None, 2):
        sess = session(proto, "cpu", notice=None, profile=tmp_path / f"run{batch}", batch=batch)
        sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
        ops[batch] = sorted(e["args"]["op_name"] for e in events if e.get("cat") == "Node" and
                            e["name"].endswith("_kernel_time"))
    # per layer q, k, v, out and two feed-forward MatMuls; the head is a Gemm
    assert ops[2] == ops[None] and ops[2].count("Gemm") == 1 and ops[2].count("MatMul") == 2 * 6
