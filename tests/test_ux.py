"""What a new user meets (issue 12): counts, the summary, the CLI's conventions, JSON output, the zoo by name,
Netron-ready ONNX, the parity plot, thread counts and training progress."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec import summary as summary_mod
from dlspec import threads
from dlspec.cli import parser

MLP = str(SPECS / "mnist_mlp.yaml")


def dlspec_cli(*args, cwd=None, env=None):
    return subprocess.run([PYTHON, "-m", "dlspec", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env)


# 2. counts -----------------------------------------------------------------------------------------------


def test_resnet18_counts_as_torchvision_and_torchinfo():
    model = dlspec.load(SPECS / "resnet18.yaml")
    assert model.graph.counts() == (11_689_512, 0, 9_600)
    assert model.graph.param_count() == 11_689_512
    # torchinfo 1.8, summary(torchvision.models.resnet18(), input_size=(1, 3, 224, 224)): total_mult_adds,
    # total_output_bytes, total_param_bytes
    t = summary_mod.totals(model)
    assert (t["mult_adds"], t["forward_backward_bytes"], t["params_bytes"]) == (1_814_083_944, 39_747_392,
                                                                                46_758_048)


def test_frozen_parameters_are_counted_apart():
    model = dlspec.load(SPECS / "resnet18_digits.yaml")
    assert model.graph.counts() == (8_399_562, 2_773_248, 9_600)  # layer1-3 of resnet18: 147,968 + 525,568 + 2,099,712
    result = dlspec_cli("validate", SPECS / "resnet18_digits.yaml")
    assert result.stdout == (f"{SPECS / 'resnet18_digits.yaml'}: ok (resnet18_digits: 69 nodes, 11,172,810 "
                             "parameters (2,773,248 frozen), 9,600 buffers)\n")


def test_torchinfo_agrees_when_installed():
    torchinfo = pytest.importorskip("torchinfo")
    torchvision = pytest.importorskip("torchvision")
    s = torchinfo.summary(torchvision.models.resnet18(), input_size=(1, 3, 224, 224), verbose=0)
    t = summary_mod.totals(dlspec.load(SPECS / "resnet18.yaml"))
    assert (s.total_params, s.trainable_params, s.total_mult_adds, s.total_output_bytes, s.total_param_bytes) == (
        t["total_params"], t["trainable_params"], t["mult_adds"], t["forward_backward_bytes"], t["params_bytes"])


# 3. the summary ------------------------------------------------------------------------------------------


def test_summary_rows_show_flags_and_connections():
    rows = {r["name"]: r for r in summary_mod.rows(dlspec.load(SPECS / "resnet18_digits.yaml"))}
    assert (rows["layer1.0.conv1"]["trainable"], rows["layer4.0.conv1"]["trainable"], rows["relu"]["trainable"]) \
        == (False, True, None)
    assert rows["layer1.0.add"]["inputs"] == ["layer1.0.bn2", "maxpool"]
    assert rows["layer2.0.bn1"]["buffers"] == 256 and rows["layer2.0.bn1"]["params"] == 256
    assert rows["conv1"]["mult_adds"] == 576 * 64  # 3x3x1x64 weights at 8x8 positions
    lines = dlspec_cli("summary", SPECS / "resnet18_digits.yaml").stdout.splitlines()
    row = next(line.split() for line in lines if line.startswith("layer1.0.add "))
    assert row == ["layer1.0.add", "add", "(batch,", "64,", "8,", "8)", "0", "-", "layer1.0.bn2,", "maxpool", "0"]
    row = next(line.split() for line in lines if line.startswith("layer1.0.conv1 "))
    assert row[-4:] == ["N", "maxpool", "2,359,296"] or row[-3:] == ["N", "maxpool", "2,359,296"]


def test_summary_json():
    result = dlspec_cli("summary", MLP, "--json")
    data = json.loads(result.stdout)
    assert data["name"] == "mnist_mlp" and data["totals"]["total_params"] == 235_146
    assert data["nodes"][1] == {"name": "dense_1", "type": "dense/relu", "output_shape": [None, 256],
                                "params": 200_960, "buffers": 0, "trainable": True, "inputs": ["x"],
                                "mult_adds": 200_960}


# 5. the command line -------------------------------------------------------------------------------------


def test_version():
    assert dlspec_cli("--version").stdout == f"dlspec {dlspec.__version__}\n"


def test_every_argument_has_help():
    import argparse

    missing = []
    subparsers = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not action.help:
                missing.append(f"{name} {action.dest}")
    assert missing == []
    assert "130 interrupted" in parser().format_help()


def test_validate_reports_every_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dlspec: 1\nname: m\ninputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: -3}]\n")
    result = dlspec_cli("validate", MLP, bad, tmp_path / "nope.yaml", "zoo:text_lstm")
    assert result.returncode == 2
    assert result.stdout == (f"{MLP}: ok (mnist_mlp: 4 nodes, 235,146 parameters)\n"
                             "zoo:text_lstm: ok (text_lstm: 4 nodes, 706,818 parameters)\n")
    assert result.stderr == (f"error: {bad}:4:31: layers[0].units: must be a positive integer. Received: -3\n"
                             f"error: {tmp_path / 'nope.yaml'}: no such file.\n"
                             "2 of 4 files failed\n")
    data = json.loads(dlspec_cli("validate", MLP, bad, "--json").stdout)
    assert data["ok"] is False
    assert data["files"][1] == {"file": str(bad), "ok": False, "line": 4, "col": 31, "path": "layers[0].units",
                                "rule": "must be a positive integer",
                                "error": f"{bad}:4:31: layers[0].units: must be a positive integer. Received: -3"}


def test_missing_name_shows_the_keys_not_the_document(spec_file):
    path = spec_file("dlspec: 1\ninputs: {x: {shape: [4]}}\nlayers: [{type: dense, units: 3}]\n")
    assert dlspec_cli("validate", path).stderr == (
        f"error: {path}:1:1: missing required key 'name'. Received: a mapping with keys dlspec, inputs, layers\n")


def test_the_api_names_the_missing_extra():
    code = ("import sys; sys.modules['torch'] = None\nimport dlspec\n"
            "try:\n    dlspec.build(dlspec.load(sys.argv[1]), 'torch')\n"
            "except ModuleNotFoundError as err:\n    print(type(err).__name__, err.name, err)\n")
    result = subprocess.run([PYTHON, "-c", code, MLP], capture_output=True, text=True)
    assert result.stdout == "MissingExtra torch this needs the torch package: pip install 'dlspec[torch]'\n"


def test_parity_json_and_threads_header():
    result = dlspec_cli("parity", MLP, "--json", "--threads", "1")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["ok"] is True and data["threads"] == 1
    assert [(p["a"], p["b"]) for p in data["pairs"]] == [("torch", "keras"), ("torch", "onnx"), ("keras", "onnx")]
    assert all(p["max_abs"] <= 1e-5 for p in data["pairs"])
    text = dlspec_cli("parity", MLP, "--threads", "2", "--tol", "1e-12")
    assert text.returncode == 1
    assert text.stdout.splitlines()[0] == "parity: mnist_mlp, batch 8, seed 0, float32, tolerance 1e-12, 2 threads"


def test_bench_json(tmp_path):
    assert dlspec_cli("build", MLP, "--backend", "onnx", "-o", tmp_path).returncode == 0
    result = dlspec_cli("bench", tmp_path / "mnist_mlp.onnx", "--provider", "cpu", "--iterations", "3", "--json",
                        "--threads", "1")
    data = json.loads(result.stdout)
    assert (data["provider"], data["batch"], data["iterations"], data["threads"]) == ("CPUExecutionProvider", 1, 3, 1)
    assert data["p50_ms"] > 0 and data["throughput"] > 0


def test_train_json_and_threads_header(tmp_path):
    result = dlspec_cli("train", SPECS / "digits_cnn.yaml", "--backend", "torch", "--epochs", "1", "--threads", "1",
                        "--json", "-o", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["model"], data["steps"], len(data["epochs"])) == ("digits_cnn", 45, 1)
    run = tmp_path / "run"
    assert data["files"] == {"weights": str(run / "weights.safetensors"), "best": str(run / "best.safetensors"),
                             "history": str(run / "history.json"), "native": str(run / "model.pt")}  # what it wrote
    assert sorted(p.name for p in run.iterdir()) == sorted(Path(f).name for f in data["files"].values())
    assert result.stderr.splitlines()[0].endswith(", batch 32, 1 thread (--threads)")


# 6. the zoo by name --------------------------------------------------------------------------------------


def test_zoo_names_work_everywhere(tmp_path):
    assert dlspec.load("zoo:mnist_mlp").graph.counts() == (235_146, 0, 0)
    derived = tmp_path / "d.yaml"
    derived.write_text("dlspec: 1\nbase: zoo:resnet18\nname: r\nreplace:\n  fc: {type: dense, units: 7}\n")
    assert dlspec.load(derived).graph.shape_of("fc") == (7,)
    listing = json.loads(dlspec_cli("zoo", "--json").stdout)
    names = [e["name"] for e in listing]
    assert {"zoo:resnet18", "zoo:resnet50", "zoo:mnist_mlp", "zoo:digits_cnn"} <= set(names)
    assert names == sorted(names)
    assert sorted(names) == sorted(f"zoo:{p.stem}" for p in SPECS.glob("*.yaml"))
    result = dlspec_cli("summary", "zoo:nah")
    assert result.returncode == 2 and result.stderr.startswith("error: zoo:nah: no such zoo spec (`dlspec zoo` ")
    bad = tmp_path / "b.yaml"
    bad.write_text("dlspec: 1\nbase: zoo:nah\nname: r\n")
    assert dlspec_cli("validate", bad).stderr.startswith(f"error: {bad}:2:7: base: no such zoo spec")


def test_a_cycle_of_bases_is_named_and_a_long_chain_is_refused(tmp_path):
    """A base that leads back to a file of its own chain is a cycle, named file by file; a chain of more than 9
    bases is refused (both located at the `base:` that breaks the rule)."""
    (tmp_path / "self.yaml").write_text("dlspec: 1\nname: s\nbase: self.yaml\n")
    (tmp_path / "a.yaml").write_text("dlspec: 1\nname: a\nbase: b.yaml\n")
    (tmp_path / "b.yaml").write_text("dlspec: 1\nname: b\nbase: a.yaml\n")
    for i in range(1, 12):
        (tmp_path / f"n{i}.yaml").write_text(f"dlspec: 1\nname: n{i}\nbase: n{i + 1}.yaml\n")
    (tmp_path / "n12.yaml").write_text((SPECS / "mnist_mlp.yaml").read_text())
    for spec, message in (("self.yaml", "self.yaml:3:7: base: bases form a cycle: self.yaml -> self.yaml. "
                                        "Received: 'self.yaml'"),
                          ("a.yaml", "b.yaml:3:7: base: bases form a cycle: a.yaml -> b.yaml -> a.yaml. "
                                     "Received: 'a.yaml'"),
                          ("n1.yaml", "n10.yaml:3:7: base: bases nest too deeply (at most 9 in a chain). "
                                      "Received: 'n11.yaml'")):
        with pytest.raises(dlspec.SpecError) as info:
            dlspec.load(tmp_path / spec)
        assert str(info.value) == f"{tmp_path}/{message}"
    assert dlspec.load(tmp_path / "n3.yaml").graph.counts() == (235_146, 0, 0)  # 9 bases: n4 ... n12


def test_the_zoo_ships_inside_the_package():
    from dlspec.loader import ZOO

    assert (SPECS / "resnet18.yaml").resolve() == (ZOO / "resnet18.yaml").resolve()
    text = (SPECS.parent / "pyproject.toml").read_text()
    assert '"zoo/*.yaml"' in text  # package data: pip install and wheels carry the specs


@pytest.mark.slow
def test_the_wheel_carries_the_zoo(tmp_path):
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(SPECS.parent / name, src / name)
    shutil.copytree(SPECS.parent / "dlspec", src / "dlspec", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([PYTHON, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "wheel")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("dlspec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("dlspec/zoo/")) == sorted(
        f"dlspec/zoo/{p.name}" for p in SPECS.glob("*.yaml"))


# 7. ONNX for Netron --------------------------------------------------------------------------------------


def test_onnx_is_folded_shaped_and_labelled():
    import onnx

    model = dlspec.load(SPECS / "text_lstm.yaml")
    proto = dlspec.build(model, "onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Gather", "Transpose", "LSTM", "Transpose", "Reshape",
                                                     "Identity", "Gemm"]  # 34 before folding
    assert {i.name for i in proto.graph.initializer} >= {"encoder/W", "encoder/R", "encoder/B"}
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in proto.graph.value_info}
    assert shapes["embedding"] == ["batch", 64, 64] and shapes["encoder"] == ["batch", 128]
    produced = {o for n in proto.graph.node for o in n.output} - {o.name for o in proto.graph.output}
    assert produced <= set(shapes)
    meta = {p.key: p.value for p in proto.metadata_props}
    from dlspec.backends.onnx_emit import spec_hash

    assert meta == {"dlspec.version": dlspec.__version__, "dlspec.spec": "text_lstm", "dlspec.source": "text_lstm.yaml",
                    "dlspec.spec_sha256": spec_hash(model.graph)}
    assert len(meta["dlspec.spec_sha256"]) == 64


def test_folded_onnx_runs_as_the_torch_model_and_peers_load_it(tmp_path):
    import onnx

    model = dlspec.load(SPECS / "text_lstm.yaml")
    weights = dlspec.init_weights(model, 3)
    proto = dlspec.build(model, "onnx", weights)
    x = np.random.default_rng(0).integers(0, 10000, (2, 64))
    from dlspec.backends import onnx as onnx_backend
    from dlspec.backends import torch as torch_backend

    y = onnx_backend.run(proto, [x])[0]
    ref = torch_backend.run(dlspec.build(model, "torch", weights), [x])[0]
    assert np.abs(y - ref).max() < 1e-5
    slim = pytest.importorskip("onnxslim")
    slimmed = slim.slim(proto)
    onnx.checker.check_model(slimmed, full_check=True)
    assert len(slimmed.graph.node) <= len(proto.graph.node)


# 8. the parity plot --------------------------------------------------------------------------------------


def test_parity_plot_has_a_tolerance_line_and_counts_exact_zeros():
    pytest.importorskip("matplotlib")
    from dlspec.train.parity import figure

    lt = np.array([2.0, 1.5, 1.0, 0.5])
    lk = np.array([2.0, 1.5 + 3e-7, 1.0, 0.5 + 1e-7])
    fig = figure(lt, lk, "m", 1e-5)
    bottom = fig.axes[1]
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert labels == ["|torch - keras| / |torch|", "tolerance 1e-05",
                      "exactly 0 (2 of 4 steps), drawn on the bottom edge"]
    line = next(ln for ln in bottom.get_lines() if ln.get_label() == "tolerance 1e-05")
    assert list(line.get_ydata()) == [1e-5, 1e-5]
    assert bottom.get_ylim()[0] == pytest.approx(2e-8)  # a decade below the smallest non-zero difference, 1e-7 / 0.5


# 9. threads ----------------------------------------------------------------------------------------------


def test_default_threads_are_the_free_cores():
    assert threads.default_threads(2, 9.6) == 1
    assert threads.default_threads(16, 0.4) == 16
    assert threads.default_threads(8, 3.2) == 5
    assert threads.default_threads(4, 0.0) == 4
    assert threads.default_threads(16, 0.0, processes=4) == 4  # torchrun --nproc-per-node 4 shares the cores


# 4. training progress ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_in_a_log_prints_periodic_lines_with_rate_and_eta():
    from dlspec.train.loop import Progress

    stream, clock = io.StringIO(), FakeClock()
    bar = Progress(2, 100, stream=stream, interval=30, clock=clock, tty=False)
    for epoch in range(2):
        bar.start_epoch(epoch)
        for i in range(100):
            clock.now += 1.0  # one step per second
            bar.step(epoch, i, 0.5)
        bar.epoch({"epoch": epoch + 1, "loss": 0.5, "lr": 1e-3}, 100.0)
    assert stream.getvalue().splitlines() == [
        "epoch 1/2 step 30/100 (30%) loss 0.5000, 1 steps/s, ETA 1:10 (epoch), 2:50 (run)",
        "epoch 1/2 step 60/100 (60%) loss 0.5000, 1 steps/s, ETA 0:40 (epoch), 2:20 (run)",
        "epoch 1/2 step 90/100 (90%) loss 0.5000, 1 steps/s, ETA 0:10 (epoch), 1:50 (run)",
        "epoch 1/2 loss 0.5000 lr 0.001 (100.0 s)",
        "epoch 2/2 step 30/100 (30%) loss 0.5000, 1 steps/s, ETA 1:10 (epoch), 1:10 (run)",
        "epoch 2/2 step 60/100 (60%) loss 0.5000, 1 steps/s, ETA 0:40 (epoch), 0:40 (run)",
        "epoch 2/2 step 90/100 (90%) loss 0.5000, 1 steps/s, ETA 0:10 (epoch), 0:10 (run)",
        "epoch 2/2 loss 0.5000 lr 0.001 (100.0 s)"]


def test_progress_on_a_terminal_is_a_tqdm_bar_with_rate_and_eta():
    from dlspec.train.loop import Progress

    stream = io.StringIO()
    bar = Progress(1, 50, stream=stream, tty=True)
    bar.start_epoch(0)
    for i in range(50):
        bar.step(0, i, 0.25)
    out = stream.getvalue()
    assert "epoch 1/1: 100%" in out and "50/50 [" in out and "step/s, loss 0.2500]" in out
    bar.epoch({"epoch": 1, "loss": 0.25, "lr": 0.01}, 1.5)
    assert stream.getvalue().endswith("epoch 1/1 loss 0.2500 lr 0.01 (1.5 s)\n")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
