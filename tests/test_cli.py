"""The command line: every subcommand, its output, its exit status, and atomic writes."""

import json
import subprocess

import pytest
from conftest import PYTHON, SPECS

MLP = str(SPECS / "mnist_mlp.yaml")


def dlspec(*args, cwd=None):
    return subprocess.run([PYTHON, "-m", "dlspec", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_validate_ok():
    result = dlspec("validate", MLP)
    assert result.returncode == 0
    assert result.stdout == f"{MLP}: ok (mnist_mlp: 4 nodes, 235,146 parameters)\n"


def test_summary_table():
    lines = dlspec("summary", MLP).stdout.splitlines()
    assert lines[0] == f"Model: mnist_mlp ({MLP})"
    assert lines[2].split() == ["node", "type", "output", "shape", "params", "trainable", "connected", "to",
                                "mult-adds"]
    assert lines[4].split() == ["x", "input", "(batch,", "784)", "0", "-", "-", "0"]
    assert lines[5].split() == ["dense_1", "dense/relu", "(batch,", "256)", "200,960", "Y", "x", "200,960"]
    assert lines[8].split() == ["logits", "dense", "(batch,", "10)", "1,290", "Y", "dense_2", "1,290"]
    assert lines[10:15] == ["Total params: 235,146", "Trainable params: 235,146", "Frozen params: 0", "Buffers: 0",
                            "Total mult-adds (batch 1): 235,146"]
    assert lines[16:20] == ["Input size (MB): 0.00", "Forward/backward pass size (MB): 0.00",
                            "Params size (MB): 0.94", "Estimated total size (MB): 0.95"]


def test_summary_counts_batchnorm_statistics_as_buffers(spec_file):
    path = spec_file("dlspec: 1\nname: b\ninputs: {x: {shape: [6]}}\nlayers: [{type: batchnorm}]\n")
    assert dlspec("summary", path).stdout.splitlines()[7:11] == [
        "Total params: 12", "Trainable params: 12", "Frozen params: 0",
        "Buffers: 12 (BatchNorm running statistics, not parameters)"]


def test_parity_passes_and_prints_every_pair():
    result = dlspec("parity", MLP)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[3:6]]
    assert [r[1:4] for r in rows] == [["torch", "vs", "keras"], ["torch", "vs", "onnx"], ["keras", "vs", "onnx"]]
    assert all(float(r[4]) <= 1e-5 and r[-1] == "ok" for r in rows)
    assert result.stdout.endswith("parity: ok\n")


def test_parity_fails_above_tolerance():
    result = dlspec("parity", MLP, "--tol", "1e-12")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and result.stdout.endswith("parity: FAILED\n")


def test_training_commands_need_a_train_section(tmp_path, spec_file):
    """`parity --train` and `train` on a spec without `train:`: one located line, exit 2, nothing written."""
    path = spec_file("dlspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nlayers: [{type: dense, units: 2}]\n")
    for args, purpose in ((("parity", path, "--train"), "for --train to compare"),
                          (("train", path, "--backend", "torch", "-o", tmp_path / "out"), "to train with")):
        result = dlspec(*args, cwd=tmp_path)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr == f"error: {path}:1:1: train: this spec has no `train:` section {purpose}.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_build_keras_writes_one_file(tmp_path):
    result = dlspec("build", MLP, "--backend", "keras", "-o", tmp_path / "out")
    assert result.returncode == 0
    assert result.stdout == f"wrote {tmp_path / 'out' / 'mnist_mlp_keras.py'}\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mnist_mlp_keras.py"]


def test_failed_build_keeps_the_previous_good_output(tmp_path, spec_file):
    out = tmp_path / "out"
    assert dlspec("build", MLP, "--backend", "onnx", "-o", out).returncode == 0
    before = (out / "mnist_mlp.onnx").read_bytes()
    bad_weights = tmp_path / "w.safetensors"
    bad_weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")  # valid file, no tensors
    result = dlspec("build", MLP, "--backend", "onnx", "--weights", bad_weights, "-o", out)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad_weights}: weights do not fit model 'mnist_mlp': missing tensor")
    assert "Traceback" not in result.stderr
    assert (out / "mnist_mlp.onnx").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["mnist_mlp.onnx"]


def test_bad_spec_writes_nothing(tmp_path, spec_file):
    path = spec_file("dlspec: 1\nname: m\ninputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: 0}]\n")
    result = dlspec("build", path, "--backend", "torch", "-o", tmp_path / "out")
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()


def test_weights_command_matches_init_weights(tmp_path):
    import numpy as np

    import dlspec as api

    assert dlspec("weights", MLP, "--seed", "3", "-o", tmp_path / "w.safetensors").returncode == 0
    loaded = api.load_weights(tmp_path / "w.safetensors")
    expected = api.init_weights(api.load(MLP), 3)
    assert all(np.array_equal(loaded[k], expected[k]) for k in expected)


def test_schema_validates_the_zoo_and_documents_keys(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    result = dlspec("schema", "-o", tmp_path / "s.json")
    assert result.returncode == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    dense = schema["$defs"]["Dense"]["properties"]
    assert dense["units"]["description"] == "Number of output features."
    assert schema["$defs"]["Dense"]["additionalProperties"] is False
    specs = [yaml.safe_load(spec.read_text()) for spec in SPECS.glob("*.yaml")]
    assert sum("base" in data for data in specs) >= 1  # derived specs hold only what they change
    for data in specs:
        jsonschema.validate(data, schema)
    jsonschema.validate({"dlspec": 1, "base": "resnet18.yaml", "freeze": ["conv1"]}, schema)
    head = {"dlspec": 1, "name": "m", "inputs": {"x": {"shape": [3]}}}
    for bad, message in [({**head, "layers": [{"type": "dense", "unit": 3}]}, None),
                         (head, "'layers' is a required property"),
                         ({"name": "m", "base": "resnet18.yaml"}, "'dlspec' is a required property")]:
        with pytest.raises(jsonschema.ValidationError) as err:
            jsonschema.validate(bad, schema)
        assert message is None or err.value.message == message


def test_demo_runs_the_main_job(tmp_path):
    result = dlspec("demo", "-o", tmp_path / "out", "--epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for section in ("== validate", "== summary", "== build", "== parity", "== train (torch)", "== train (keras)",
                    "== training parity"):
        assert section in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "digits_cnn_train_parity.png", "mnist_mlp.onnx", "mnist_mlp.safetensors", "mnist_mlp_keras.py",
        "mnist_mlp_torch.py", "train_keras", "train_torch"]
    assert "\nparity: ok\n" in result.stdout and result.stdout.endswith("training parity: ok\n")
    assert (tmp_path / "out" / "train_keras" / "model.keras").exists()


@pytest.mark.parametrize("args, message", [
    (["train", MLP, "--backend", "torch", "--epochs", "0", "-o", "x"],
     "argument --epochs: must be a positive integer. Received: '0'"),
    (["parity", MLP, "--tol=-1e-5"], "argument --tol: must be a positive number. Received: '-1e-5'"),
    (["parity", MLP, "--train", "--steps", "ten"], "argument --steps: must be a positive integer. Received: 'ten'"),
    (["weights", MLP, "--seed", "-2", "-o", "w"], "argument --seed: must be a non-negative integer. Received: '-2'"),
])
def test_numeric_options_reject_nonsense(args, message):
    result = dlspec(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith(message)
    assert "Traceback" not in result.stderr
