"""BatchNorm over the global batch when torchrun processes each hold a share of it.

torch's SyncBatchNorm does this on CUDA only. On the CPU (gloo) dlspec swaps each BatchNorm for
GlobalBatchNorm: the count, the per-channel sums and the squared deviations are summed over the
processes with a differentiable all-reduce, so normalisation, gradients and running statistics are
those of one process holding the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed.nn.functional as dist_nn
from torch import nn

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """torch's BatchNorm (biased variance to normalise, unbiased for the running variance), with batch
    statistics summed over the default process group in training mode."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        axes = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = torch.cat([x.sum(axes), x.new_tensor([x.numel() // x.shape[1]])])
        total = dist_nn.all_reduce(local)
        n, mean = total[-1], total[:-1] / total[-1]
        centred = x - mean.view(shape)
        variance = dist_nn.all_reduce(centred.square().sum(axes)) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean, alpha=m)
            self.running_var.mul_(1 - m).add_(variance * n / (n - 1), alpha=m)
            self.num_batches_tracked.add_(1)
        y = centred * torch.rsqrt(variance + self.eps).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def globalise(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm replaced by a GlobalBatchNorm sharing its tensors (names unchanged)."""
    if isinstance(module, NORMS):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, globalise(child))
    return module
