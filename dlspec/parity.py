"""Inference parity: the same weights and inputs through every backend, compared pairwise."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .api import Model, build
from .backends import registry
from .ir import weight_name
from .weights import init_weights


@dataclass(frozen=True)
class Pair:
    """Differences between two backends on one output."""

    output: str
    a: str
    b: str
    max_abs: float
    max_rel: float
    scale: float
    tol: float

    @property
    def ok(self) -> bool:
        """Within tolerance: absolute for outputs up to 1 in magnitude, relative beyond."""
        return self.max_abs <= self.tol * max(1.0, self.scale)


@dataclass(frozen=True)
class Report:
    """All pairs, plus the outputs each backend produced."""

    model: str
    pairs: list[Pair]
    outputs: dict
    batch: int
    seed: int
    tol: float
    threads: int | None = None  # CPU threads of the frameworks, for the header (dlspec.threads)

    @property
    def ok(self) -> bool:
        """Every pair within tolerance."""
        return all(p.ok for p in self.pairs)

    def table(self) -> str:
        """Printable table of max absolute and relative differences."""
        width = max([12, *(len(p.output) for p in self.pairs)])
        head = f"{'output':<{width}} {'pair':<16} {'max abs diff':>13} {'max rel diff':>13}  status"
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        lines = [f"parity: {self.model}, batch {self.batch}, seed {self.seed}, float32, tolerance {self.tol:g}"
                 + threads,
                 head, "-" * len(head)]
        for p in self.pairs:
            lines.append(f"{p.output:<{width}} {p.a + ' vs ' + p.b:<16} {p.max_abs:>13.3e} {p.max_rel:>13.3e}  "
                         f"{'ok' if p.ok else 'FAIL'}")
        lines.append("parity: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready data (``dlspec parity --json``): every pair's differences, not the outputs."""
        return {"model": self.model, "kind": "inference", "batch": self.batch, "seed": self.seed,
                "tolerance": self.tol, "dtype": "float32", "threads": self.threads,
                "pairs": [{"output": p.output, "a": p.a, "b": p.b, "max_abs": p.max_abs, "max_rel": p.max_rel,
                           "scale": p.scale, "ok": p.ok} for p in self.pairs], "ok": self.ok}


def random_weights(model: Model, seed: int = 0) -> dict:
    """:func:`init_weights`, with the tensors it sets to constants made random too.

    Biases, norm shifts and running means become N(0, 0.2); norm scales and running
    variances U(0.5, 1.5); other constants (prelu slopes) U(-0.5, 1). Scaled initialisers keep
    activations of order 1, so the tolerance applies at the scale real models have, while every term of every formula
    is exercised.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = init_weights(model, seed)
    for node in model.graph.nodes:
        for p in node.params:
            name = weight_name(node.name, p.name)
            if p.init == "zeros":
                weights[name] = rng.normal(0.0, 0.2, p.shape).astype(np.float32)
            elif p.init == "ones":
                weights[name] = rng.uniform(0.5, 1.5, p.shape).astype(np.float32)
            elif p.init.startswith("constant:"):  # e.g. prelu slopes: per element, negative ones too
                weights[name] = rng.uniform(-0.5, 1.0, p.shape).astype(np.float32)
    return weights


def random_inputs(model: Model, batch: int, seed: int) -> list:
    """One array per model input: standard-normal float32, or int64 tokens below the smallest
    vocabulary of the embeddings that read the input."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for inp in model.graph.inputs:
        if inp.dtype == "int64":
            vocab = [n.attrs["vocabulary"] for n in model.graph.nodes if n.op == "embedding" and inp.name in n.inputs]
            out.append(rng.integers(0, min(vocab, default=2), size=(batch, *inp.shape), dtype=np.int64))
        else:
            out.append(rng.standard_normal((batch, *inp.shape)).astype(np.float32))
    return out


def run_all(model: Model, weights: dict, inputs: list, backends=registry.BACKENDS) -> dict:
    """Outputs of each backend: {backend: [array per output]}."""
    results = {}
    for name in backends:
        backend = registry.load(name)
        results[name] = backend.run(build(model, name, weights), inputs)
    return results


def parity(model: Model, *, weights: dict | None = None, batch: int = 8, seed: int = 0, tol: float = 1e-5,
           backends=registry.BACKENDS, inputs: list | None = None) -> Report:
    """Build every backend with the same weights and compare outputs on the same inputs.

    Without ``weights``, every tensor is random (see :func:`random_weights`); without ``inputs`` (one
    array per model input), so are the inputs (see :func:`random_inputs`), ``batch`` samples of them.
    """
    import numpy as np

    weights = weights if weights is not None else random_weights(model, seed)
    if inputs is None:
        inputs = random_inputs(model, batch, seed)
    batch = len(inputs[0])
    outputs = run_all(model, weights, inputs, backends)
    pairs = []
    for a, b in itertools.combinations(backends, 2):
        for name, x, y in zip(model.graph.outputs, outputs[a], outputs[b]):
            diff = float(np.max(np.abs(x.astype(np.float64) - y)))
            scale = float(np.max(np.abs(x)))
            pairs.append(Pair(name, a, b, diff, diff / scale if scale else diff, scale, tol))
    return Report(model.name, pairs, outputs, batch, seed, tol)
