"""How long `dlspec import` takes on a ~100 MB ONNX file, end to end (`dlspec import MODEL.onnx -o DIR` as a
command, and `dlspec.onnx_import.import_onnx` in-process, split into its stages).

Run: .venv/bin/python bench/import_onnx.py [--spec specs/resnet50.yaml | --onnx MODEL.onnx] [--runs 3]
The file is dlspec's own ONNX export of the spec (ResNet-50: 25.6 M parameters, 102 MB) with seeded weights, or
any ONNX file (`--onnx`, e.g. torchvision's vit_b_16 exported as tests/test_onnx_import.py does: 346 MB).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", default=str(ROOT / "specs" / "resnet50.yaml"))
    p.add_argument("--onnx", help="an ONNX file to import instead of the spec's export")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    import onnx

    import dlspec
    from dlspec.onnx_import import import_onnx
    from dlspec.onnx_import.build import build_spec
    from dlspec.onnx_import.graph import read

    with tempfile.TemporaryDirectory() as tmp:
        if args.onnx:
            path = Path(args.onnx)
            stem = path.stem
        else:
            model = dlspec.load(args.spec)
            path, stem = Path(tmp) / f"{model.name}.onnx", model.name
            onnx.save(dlspec.build(model, "onnx", dlspec.init_weights(model, 0)), str(path))
        size = path.stat().st_size / 1e6
        print(f"{path.name}: {size:.1f} MB, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, onnx {onnx.__version__}")
        api, stages = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            import_onnx(path)
            api.append(time.perf_counter() - start)
            start = time.perf_counter()
            graph = read(path)
            mid = time.perf_counter()
            build_spec(graph, str(path), stem)
            stages.append((mid - start, time.perf_counter() - mid))
        cli = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dlspec", "import", str(path), "-o", tmp], check=True,
                           capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            cli.append(time.perf_counter() - start)
        best = min(stages)
        print(f"import_onnx (in-process): median {statistics.median(api):.2f} s, best {min(api):.2f} s "
              f"(read + fold + shapes {best[0]:.2f} s, convert + blocks + validate {best[1]:.2f} s)")
        print(f"dlspec import (command, with interpreter start and writing {size:.0f} MB of safetensors): "
              f"median {statistics.median(cli):.2f} s, best {min(cli):.2f} s")


if __name__ == "__main__":
    main()
