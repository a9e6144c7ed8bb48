"""dlspec compare: dlspec's ONNX beside torch eager (and torch.compile) on the same weights and input."""

import subprocess

import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.compare import compare, table


def test_paths_agree_and_the_table_gives_ratios():
    model = dlspec.load(SPECS / "mnist_mlp.yaml")
    timings = compare(model, batch=4, iterations=3, warmup=1, paths=("onnxruntime", "torch"), notice=None)
    assert [t.path for t in timings] == ["onnxruntime", "torch"]
    assert timings[0].max_diff == 0.0 and timings[1].max_diff <= 1e-5  # both compute the same function
    assert all(t.throughput > 0 and t.p50_ms <= t.p90_ms <= t.p99_ms for t in timings)
    lines = table(timings).splitlines()
    assert lines[0].split() == ["path", "samples/s", "p50", "ms", "p90", "ms", "p99", "ms", "vs", "torch", "max",
                                "diff"]
    torch_row = lines[3].split()
    assert torch_row[0] == "torch" and torch_row[-2] == "1.00x"


def test_cli_refuses_fp16_on_the_cpu_and_unknown_paths():
    run = [PYTHON, "-m", "dlspec", "compare", str(SPECS / "mnist_mlp.yaml")]
    result = subprocess.run(run + ["--fp16"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.endswith("error: --fp16 needs --device cuda (half precision on the CPU is not what anyone "
                                  "deploys)\n")
    result = subprocess.run(run + ["--paths", "onnxruntime,tensorrt"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.endswith("error: unknown path 'tensorrt'; choose from onnxruntime, torch, torch.compile, "
                                  "torch.compile reduce-overhead, onnxruntime tensorrt, onnxruntime cuda-graph\n")
    result = subprocess.run(run + ["--paths", "onnxruntime,onnxruntime cuda-graph"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (2, "")  # refused before any path runs
    assert result.stderr == ("error: the path onnxruntime cuda-graph needs --device cuda. Received: --device cpu\n")


def test_default_paths_add_the_cuda_graph_on_cuda_only():
    from dlspec.compare import DEFAULT_PATHS, default_paths

    assert default_paths("cpu") == DEFAULT_PATHS == ("onnxruntime", "torch", "torch.compile",
                                                     "torch.compile reduce-overhead")
    assert default_paths("cuda") == ("onnxruntime", "onnxruntime cuda-graph", "torch", "torch.compile",
                                     "torch.compile reduce-overhead")
    model = dlspec.load(SPECS / "mnist_mlp.yaml")
    for path in ("onnxruntime cuda-graph", "onnxruntime tensorrt"):
        with pytest.raises(dlspec.UsageError) as info:
            compare(model, paths=("onnxruntime", path), notice=None)
        assert str(info.value) == f"the path {path} needs --device cuda. Received: --device cpu"


def test_cli_default_paths_follow_the_device(monkeypatch, capsys):
    from dlspec import cli
    from dlspec.compare import Timing

    asked = []

    def fake(model, weights, *, paths, device, **_):
        asked.append((device, paths))
        return [Timing(p, 1, 100.0, 1.0, 1.0, 1.0, 0.0) for p in paths]

    monkeypatch.setattr("dlspec.compare.compare", fake)
    for device in ("cpu", "cuda"):
        assert cli.main(["compare", str(SPECS / "mnist_mlp.yaml"), "--device", device]) == 0
    assert asked == [("cpu", ("onnxruntime", "torch", "torch.compile", "torch.compile reduce-overhead")),
                     ("cuda", ("onnxruntime", "onnxruntime cuda-graph", "torch", "torch.compile",
                               "torch.compile reduce-overhead"))]
    rows = [line.split()[0:2] for line in capsys.readouterr().out.splitlines() if line.startswith("onnxruntime")]
    assert rows == [["onnxruntime", "100.0"], ["onnxruntime", "100.0"], ["onnxruntime", "cuda-graph"]]


def test_cli_on_cuda_without_cuda_says_so_in_one_line():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([PYTHON, "-m", "dlspec", "compare", str(SPECS / "mnist_mlp.yaml"), "--device", "cuda",
                             "--paths", "onnxruntime cuda-graph"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("dlspec compare: onnxruntime cuda-graph ...\nerror: onnxruntime could not start its CUDA "
                             "provider (install dlspec[gpu]). Received: --device cuda\n")


@pytest.mark.parametrize("flag", ["--batch=0", "--iterations=-1"])
def test_cli_rejects_nonsense_counts(flag):
    result = subprocess.run([PYTHON, "-m", "dlspec", "compare", str(SPECS / "mnist_mlp.yaml"), flag],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
