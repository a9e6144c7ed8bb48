"""Every layer type x every backend agrees within 1e-5 (the parity table in parity_cases.py)."""

import dataclasses
import re

import numpy as np
import pytest
from parity_cases import CASES, GROUP_CASES, GROUP_TOKEN_CASES, TOKEN_CASES, UNSUPPORTED

import dlspec
from dlspec.parity import parity
from dlspec.spec import LAYER_TYPES

TOKENS = {case[0] for case in TOKEN_CASES + GROUP_TOKEN_CASES}
ALL_CASES = CASES + TOKEN_CASES + GROUP_CASES + GROUP_TOKEN_CASES


def spec_for(case_id, shape, layers):
    dtype = "int64" if case_id in TOKENS else "float32"
    return dlspec.from_dict({"dlspec": 1, "name": f"case_{case_id}", "inputs": {"x": {"shape": shape, "dtype": dtype}},
                             "layers": layers})


@pytest.mark.parametrize("case_id, shape, layers", CASES + TOKEN_CASES, ids=[c[0] for c in CASES + TOKEN_CASES])
def test_parity(case_id, shape, layers):
    check_case(case_id, shape, layers, batch=5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case_id, shape, layers", GROUP_CASES + GROUP_TOKEN_CASES,
                         ids=[c[0] for c in GROUP_CASES + GROUP_TOKEN_CASES])
def test_group_parity(case_id, shape, layers, batch):
    check_case(case_id, shape, layers, batch=batch)


def check_case(case_id, shape, layers, batch):
    """Torch, Keras and onnxruntime agree within 1e-5 relative to max(1, |reference|)."""
    model = spec_for(case_id, shape, layers)
    backends = ["torch", "keras", "onnx"]
    if case_id in UNSUPPORTED:
        backend, message = UNSUPPORTED[case_id]
        with pytest.raises(dlspec.UsageError, match=r"^<dict>:\d+:\d+: " + re.escape(message)):
            dlspec.build(model, backend)
        backends.remove(backend)
    report = parity(model, batch=batch, seed=3, backends=tuple(backends))
    outputs = report.outputs["torch"][0]
    assert outputs.shape[0] == batch
    assert np.std(outputs) > 1e-3, "degenerate output: the case would not detect a difference"
    for pair in report.pairs:
        assert pair.max_abs <= 1e-5 * max(1.0, pair.scale), report.table()
    assert len(report.pairs) == len(backends) * (len(backends) - 1) // 2


def test_table_covers_every_layer_type():
    covered = {layer["type"] for _, _, layers in ALL_CASES for layer in layers}
    assert covered == set(LAYER_TYPES)


def test_parity_catches_a_framework_default(monkeypatch):
    """Emit Keras' default LayerNorm eps (1e-3) instead of the spec's: parity must fail."""
    from dlspec.backends import registry
    from dlspec.ir.norm import LayerNorm

    registry.emitters("keras")
    table = registry._EMITTERS["keras"]
    original = table[LayerNorm]

    def keras_default_eps(ctx):
        node = dataclasses.replace(ctx.node, attrs={**ctx.node.attrs, "eps": 1e-3})
        return original(dataclasses.replace(ctx, node=node))

    monkeypatch.setitem(table, LayerNorm, keras_default_eps)
    report = parity(spec_for("bug", [4], [{"type": "layernorm"}]), batch=4)
    failed = {(p.a, p.b) for p in report.pairs if not p.ok}
    assert failed == {("torch", "keras"), ("keras", "onnx")}
    assert not report.ok
    assert "FAIL" in report.table() and report.table().endswith("parity: FAILED")
