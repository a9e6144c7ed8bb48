"""``dlspec import``: an ONNX file becomes a readable spec and canonical weights.

:func:`import_onnx` reads the file (:mod:`.graph` folds constant subgraphs), maps every node to dlspec layers
(one converter per op in :mod:`.ops`, :mod:`.ops_tensor` and :mod:`.ops_vision`), folds the exporters' patterns
back into single layers (:mod:`.patterns`, :mod:`.convert`), names the nodes by a documented rule
(:mod:`.names`), finds repeated structure and writes it as blocks (:mod:`.blocks`), and writes safe YAML
(:mod:`.write`). Nodes it cannot express exactly are collected and refused together: :class:`UnsupportedModel`
lists each op with a reason, a count and the node names.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError


class UnsupportedModel(UsageError):
    """The ONNX file has nodes dlspec cannot express; ``refused`` maps each reason to the nodes' names."""

    def __init__(self, path: str, refused: dict[str, list[str]]):
        self.refused = refused
        total = sum(len(v) for v in refused.values())
        lines = [f"{path}: cannot import {total} node{'s' if total != 1 else ''} (nothing written):"]
        for reason, nodes in sorted(refused.items()):
            shown = ", ".join(nodes[:6]) + (", ..." if len(nodes) > 6 else "")
            lines.append(f"  {reason}: {len(nodes)} node{'s' if len(nodes) != 1 else ''} ({shown})")
        super().__init__("\n".join(lines))


def import_onnx(path: str | os.PathLike, name: str | None = None, blocks: bool = True) -> tuple[str, dict]:
    """Read an ONNX model and return ``(spec_text, weights)``: the spec as YAML text and its canonical weights
    (``{tensor name: float32 array}``). Raises :class:`UnsupportedModel` (a :class:`dlspec.UsageError`) naming every
    node it cannot express, and :class:`dlspec.DataError` when the file cannot be read."""
    from ..errors import DataError
    from .build import build_spec
    from .graph import read

    path = Path(path)
    try:
        graph = read(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the ONNX file: {err}") from None
    except Exception as err:  # protobuf's DecodeError and onnx's checker errors have no common base
        raise DataError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    return build_spec(graph, str(path), name or path.stem, blocks=blocks)
