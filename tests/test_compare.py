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
                                  "torch.compile reduce-overhead, onnxruntime tensorrt\n")


@pytest.mark.parametrize("flag", ["--batch=0", "--iterations=-1"])
def test_cli_rejects_nonsense_counts(flag):
    result = subprocess.run([PYTHON, "-m", "dlspec", "compare", str(SPECS / "mnist_mlp.yaml"), flag],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
