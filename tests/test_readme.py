"""The README works as written: its bash and python blocks, pasted in order into a shell on a fresh clone.

A block is preceded by an optional marker line, ``<!-- readme-test: KIND ... -->``:
no marker: cheap, run by test_readme_cheap_blocks; ``slow``: run too by the slow test (downloads nothing,
but takes minutes); ``gpu``: run only where CUDA is available; ``skip``: never (it sets up the environment
or installs packages). The blocks run in a temporary directory that holds ``specs`` and a ``.venv`` whose
``dlspec`` and ``python`` are this checkout's, as ``./dev`` would leave them.
"""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

import dlspec

README = ROOT / "README.md"
MARK = re.compile(r"<!-- readme-test: (\w+)")
KINDS = {None, "slow", "gpu", "skip"}


def blocks() -> list[tuple[str, str, str | None, int]]:
    """(language, code, marker kind, line) of every bash and python block, in order."""
    out, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"```(bash|python)$", lines[i])
        if fence:
            j = i + 1
            while lines[j] != "```":
                j += 1
            before = next((line for line in reversed(lines[:i]) if line.strip()), "")
            mark = MARK.match(before)
            out.append((fence.group(1), "\n".join(lines[i + 1:j]), mark.group(1) if mark else None, i + 1))
            i = j
        i += 1
    return out


def script(kinds: set) -> str:
    parts = ["set -euo pipefail"]
    for lang, code, kind, line in blocks():
        if kind not in kinds:
            continue
        parts.append(f"echo '## README line {line}'")
        parts.append(code if lang == "bash" else f"python - <<'PYTHON_BLOCK'\n{code}\nPYTHON_BLOCK")
    return "\n".join(parts) + "\n"


def fresh_clone(tmp_path):
    """A directory as a fresh clone after ./dev setup: specs/ and .venv/bin/{dlspec,python,activate}."""
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("python", ""), ("dlspec", " -m dlspec")):  # scripts: a symlink would lose the venv
        launcher = bin_dir / name
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        launcher.chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\nexport PYTHONPATH="{ROOT}"\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DLSPEC_PROGRESS_SECONDS"] = "3600"
    return env


def run_readme(tmp_path, kinds):
    env = fresh_clone(tmp_path)
    code = script(kinds)
    result = subprocess.run(["bash", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (code + "\n---\n" + result.stdout[-4000:] + result.stderr[-4000:])
    return result


def test_every_block_is_marked_with_a_known_kind():
    found = blocks()
    assert {kind for _, _, kind, _ in found} <= KINDS
    assert sum(kind is None for _, _, kind, _ in found) >= 3  # the cheap ones run below
    skipped = [code.splitlines()[0] for _, code, kind, _ in found if kind == "skip"]
    assert skipped == ["./dev demo     # the main job: build, parity, then training on the embedded digits in torch "
                       "and Keras", "pip install torch==2.14.1 torchvision==0.29.1 --index-url "
                       "https://download.pytorch.org/whl/cpu"]


def test_readme_cheap_blocks(tmp_path):
    result = run_readme(tmp_path, {None})
    out = result.stdout
    assert f"dlspec {dlspec.__version__}\n" in out  # after `source .venv/bin/activate`
    assert "zoo:resnet18 " in out
    assert "specs/resnet18.yaml: ok (resnet18: 69 nodes, 11,689,512 parameters, 9,600 buffers)\n" in out
    assert "Total params: 11,689,512\n" in out and "Total mult-adds (batch 1): 1.81 G\n" in out
    assert "parity: ok\n" in out and "done after 3 epochs and 135 steps" in out
    assert (tmp_path / "out" / "mnist_mlp.onnx").exists() and (tmp_path / "run" / "weights.safetensors").exists()
    assert re.search(r"^\d\.\d+e-0[6-8]$", out, re.M), out[-2000:]


@pytest.mark.slow
def test_readme_slow_blocks(tmp_path):
    kinds = {None, "slow"} | ({"gpu"} if _has_cuda() else set())
    result = run_readme(tmp_path, kinds)
    assert "training parity: ok\n" in result.stdout
    assert (tmp_path / "y.npy").exists() and (tmp_path / "finetuned" / "weights.safetensors").exists()


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_the_zoo_table_has_the_counts_of_the_specs():
    rows = re.findall(r"^\| `specs/(\w+)\.yaml` \| .* \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", README.read_text(),
                      re.M)
    assert len(rows) >= 12
    for name, params, frozen, buffers in rows:
        trainable, f, b = dlspec.load(ROOT / "specs" / f"{name}.yaml").graph.counts()
        assert (params, frozen, buffers) == (f"{trainable + f:,}", f"{f:,}", f"{b:,}"), name


def test_the_readme_states_the_pins_of_dev():
    dev = (ROOT / "dev").read_text()
    pin = re.search(r'DLSPEC_TORCH:-([^}]*)\}', dev).group(1)
    assert pin == "torch==2.14.1 torchvision==0.29.1"
    text = README.read_text()
    assert f"`{pin}`" in text and "2.13" not in text
    assert "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu" in text
