"""A whole training step (forward, loss, backward, clipping, optimizer update) captured once as a CUDA
graph and replayed for every full batch.

Small models spend most of an eager step launching kernels from Python; a replay launches them all
at once. Capturing needs a few warm-up steps (lazy initialisations must not happen during capture),
and those steps change the weights, the optimizer state and the random generator, so all three are
saved before and put back after: the first replayed step continues exactly where the eager run was.
"""

from __future__ import annotations


class GraphedStep:
    """Replays one captured step; ``compute(x, y)`` is the trainer's eager step on static buffers."""

    WARMUP = 3

    def __init__(self, torch, compute, state: list, x, y, keep_outputs: bool):
        self.keep_outputs = keep_outputs
        self.x, self.y = x.clone(), y.clone()
        saved = [t.detach().clone() for t in state]
        rng = torch.cuda.get_rng_state()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.WARMUP):
                    compute(self.x, self.y)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.loss, self.out = compute(self.x, self.y)
        finally:  # captured or not, training goes on from the state before the warm-up
            torch.cuda.synchronize()
            with torch.no_grad():
                for tensor, value in zip(state, saved):
                    tensor.copy_(value)
            torch.cuda.set_rng_state(rng)

    def fits(self, x) -> bool:
        """Whether a batch has the captured shape (a short last batch runs eagerly)."""
        return x.shape == self.x.shape

    def __call__(self, x, y):
        """One step on a batch: copy it in, replay, and return (loss, outputs) as fresh tensors."""
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss.clone(), self.out.clone() if self.keep_outputs else self.out


def state_tensors(net, optimizer) -> list:
    """Every tensor a step changes: parameters, buffers (BatchNorm statistics) and optimizer state."""
    import torch

    tensors = list(net.parameters()) + list(net.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors
