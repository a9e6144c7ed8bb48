"""How long `dlspec validate` takes, end to end, against bare Python start-up as the baseline.

Run: .venv/bin/python bench/startup.py [SPEC] [--runs N]
The issue's budget is 0.5 s for `dlspec validate`; the figures and the machine are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "mnist_mlp.yaml"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    dlspec = str(Path(sys.executable).with_name("dlspec"))
    cases = {"python -c pass (baseline)": [sys.executable, "-c", "pass"],
             "python -c 'import dlspec'": [sys.executable, "-c", "import dlspec"],
             "dlspec validate": [dlspec, "validate", args.spec]}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'max s':>7}  ratio to baseline")
    base = None
    for name, cmd in cases.items():
        t = timed(cmd, args.runs)
        med = statistics.median(t)
        base = base or med
        print(f"{name:<30} {med:>9.3f} {min(t):>7.3f} {max(t):>7.3f}  {med / base:.1f}x")


if __name__ == "__main__":
    main()
