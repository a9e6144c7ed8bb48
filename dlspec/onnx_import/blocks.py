"""Repeated structure written as blocks (filled in below)."""

from __future__ import annotations

from .write import comment, flow, layer_dict


def find_blocks(layers, names):
    body, previous = [], None
    for layer in layers:
        body.append(f"  - {flow(layer_dict(layer, previous, names))}{comment(layer.source)}")
        previous = layer.name
    return body, None
