"""The PyTorch backend: generate source, execute it, load weights, run."""

from __future__ import annotations

from ..ir import Graph
from .execsource import exec_source
from .native import preload_triton
from .torch_generate import generate

__all__ = ["build", "count_params", "generate", "run"]


def build(graph: Graph, weights: dict | None = None):
    """An ``nn.Module`` in eval mode built by executing the generated source."""
    preload_triton(only_after_tensorflow=True)  # torch's optimizers import triton later: a crash after TensorFlow
    module = exec_source(generate(graph), f"dlspec_generated.{graph.name}_torch", f"<{graph.name}_torch.py>")
    model = module.build_model(weights)
    return model.eval()


def count_params(model) -> int:
    """Parameters plus BatchNorm running statistics (as Keras counts them)."""
    stats = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    return sum(p.numel() for p in model.parameters()) + stats


def run(model, inputs: list) -> list:
    """Inference on numpy inputs; returns numpy outputs."""
    import torch

    with torch.no_grad():
        out = model(*[torch.from_numpy(x) for x in inputs])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]
