"""Issue 11: no spec crashes, hangs or yields broken source. One test per protected behaviour."""

import os
import subprocess
import textwrap

import pytest
from conftest import PYTHON, ROOT, SPECS

import dlspec


def error_of(spec_file, text, name="bad.yaml"):
    path = spec_file(text, name)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    return str(info.value).replace(str(path.parent) + os.sep, "")


# --- item 1: native libraries -------------------------------------------------------------------------------

def test_keras_and_torch_build_survive_tensorflow_imported_before_dlspec():
    # triton loaded after TensorFlow used to kill the process (exit 139); the user's import order must not matter
    script = textwrap.dedent(f"""
        import torch, keras, tensorflow
        import dlspec
        spec = {str(SPECS / "mnist_mlp.yaml")!r}
        k = dlspec.build(spec, "keras")
        t = dlspec.build(spec, "torch")
        opt = torch.optim.Adam(t.parameters())  # imports triton through torch._dynamo
        t(torch.zeros(2, 784)).sum().backward()
        opt.step()
        print("built", type(k).__name__, type(t).__name__)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "built Functional MnistMlp"
