"""The ``dlspec`` subcommands, one function ``cmd_<name>(args) -> exit status`` each; dlspec/cli.py parses the
command line and calls them. Each imports what it needs when it runs, so that ``dlspec validate`` starts without
any framework.

- specs.py: validate, summary, zoo, schema (read specs, write nothing but the schema)
- artifacts.py: build, weights, import-weights, import (write source, ONNX, weights and specs)
- runtime.py: run, bench, compare (run ONNX files, time them against torch)
- training.py: train, parity, demo (train, and compare the backends)
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_SPEC = Path(__file__).parent.parent / "zoo" / "mnist_mlp.yaml"
BACKENDS = ("torch", "keras", "onnx")


def print_json(data) -> None:
    """``data`` as indented JSON on stdout (the form of every command's ``--json``)."""
    print(json.dumps(data, indent=1))
