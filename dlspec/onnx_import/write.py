"""Layer records -> spec text (safe YAML, one flow mapping per layer, each with a comment naming its ONNX nodes)
and canonical weights."""

from __future__ import annotations

import re

import numpy as np
import yaml


def flow(data) -> str:
    """One YAML flow mapping or sequence on one line, written by the safe dumper."""
    return yaml.safe_dump(data, default_flow_style=True, width=1 << 30, sort_keys=False).strip()


def scalar(key: str, value) -> str:
    """``key: value`` on one line, the value quoted by the safe dumper where YAML needs it."""
    return yaml.safe_dump({key: value}, width=1 << 30).strip()


def comment(sources: list[str]) -> str:
    text = ", ".join(sources) if len(sources) <= 4 else f"{len(sources)} nodes, {sources[0]} ... {sources[-1]}"
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)
    return f"  # onnx: {text[:200]}{'...' if len(text) > 200 else ''}"


def layer_dict(layer, previous: str | None, names: dict) -> dict:
    d = {"name": layer.name, "type": layer.type, **layer.attrs}
    inputs = [names[i] for i in layer.inputs]
    if layer.type != "parameter" and inputs != ([previous] if previous else []):
        d["inputs"] = inputs
    return d


def weights_of(layers) -> dict:
    out = {}
    for layer in layers:
        for param, value in layer.weights.items():
            key = layer.name if param == "" else f"{layer.name}.{param}"
            out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def render(name: str, description: str, inputs: dict, body: list[str], outputs: list[str] | None,
           blocks: list[str] | None = None) -> str:
    lines = ["dlspec: 1", scalar("name", name), scalar("description", description)]
    lines.append("inputs:")
    for key, value in inputs.items():
        lines.append(f"  {key}: {flow(value)}")
    if blocks:
        lines += ["", "blocks:", *blocks]
    lines += ["", "layers:", *body]
    if outputs:
        lines.append(f"outputs: {flow(outputs)}")
    return "\n".join(lines) + "\n"
