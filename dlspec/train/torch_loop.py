"""The torch side of training: the generated model, torch.optim, and torch's losses."""

from __future__ import annotations

import os
import sys

from ..api import Model, build
from ..spec import train as spec
from . import registry
from .registry import Registry

DEVICE_SHARE = 0.5  # the most of a GPU's free memory that the training and validation data may take


class TorchTrainer:
    """One optimizer step at a time on the generated torch model; the driver supplies batches and rates."""

    host_data = False  # set by tensors() when the data stays in host memory

    def __init__(self, model: Model, weights: dict, cfg, device: str = "cpu", frozen=frozenset(),
                 amp: str | None = None, channels_last: bool = False, compile: bool = False,
                 cuda_graph: bool = False):
        import torch

        self.torch, self.device, self.cfg = torch, torch.device(device), cfg
        self.world, self.rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        # dropout masks repeat from run to run; under DDP each process draws its own (the same seed
        # everywhere would drop the same positions in every process's share)
        torch.manual_seed(cfg.seed + 1_000_003 * self.rank)
        self.net = build(model, "torch", weights).to(self.device)
        if self.world > 1:
            self._share_batch_statistics()
        self.frozen_modules = []
        for name, module in self.net.named_modules():
            if name in frozen:
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
                self.frozen_modules.append(module)
        for name, p in self.net.named_parameters():
            if name in frozen:  # a `parameter` node: the tensor is the node
                p.requires_grad_(False)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        named = dict(self.net.named_parameters())
        self.penalties = [(named[k], l1, l2) for k, (l1, l2) in model.regularizers().items()
                          if named[k].requires_grad]
        self.graphed, self.cuda_graph, self.steps = None, cuda_graph, 0  # check_options vetted cuda_graph
        self.opt = self._optimizer(cfg.optimizer)
        self.lr = cfg.optimizer.lr
        self.loss = self._loss(cfg.loss_spec())
        self.forward_net = self.net
        if channels_last:  # NHWC tensor-core convolutions on GPUs; weights keep their canonical values
            self.net.to(memory_format=torch.channels_last)
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
        self.channels_last = channels_last
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None
        if self.world > 1:
            self._distribute()
        if compile:
            self.forward_net = torch.compile(self.forward_net)

    @property
    def is_main(self) -> bool:
        """Whether this process reports and writes files (rank 0 under torchrun)."""
        return self.rank == 0

    def _share_batch_statistics(self):
        """BatchNorm over the global batch under DDP, as one process computes it: torch's SyncBatchNorm on
        CUDA, dlspec's GlobalBatchNorm on the CPU (SyncBatchNorm has no CPU kernels)."""
        from .torch_batchnorm import NORMS, globalise

        if not any(isinstance(m, NORMS) for m in self.net.modules()):
            return
        if self.device.type == "cuda":
            self.net = self.torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
        else:
            self.net = globalise(self.net)

    def _distribute(self):
        """DDP under torchrun: gloo on the CPU, NCCL on GPUs. Each process takes a contiguous share of
        every global batch; losses are weighted so that the averaged gradient is the global batch's."""
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.dist = dist
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward_net = self.torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)

    def _optimizer(self, o):
        # fused kernels (one per step instead of a few per tensor) compute the same formulas, faster
        fused = {"fused": True} if self.params else {}
        # a captured step reads the learning rate from device memory, so schedules write it there
        lr = self.torch.tensor(o.lr, device=self.device) if self.cuda_graph else o.lr
        capturable = {"capturable": True} if self.cuda_graph else {}
        return OPTIMIZERS[o](self.torch.optim, self.params, o, lr, fused, capturable)

    def _set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            if not isinstance(group["lr"], self.torch.Tensor):
                group["lr"] = lr
            elif lr != self.lr:
                group["lr"].fill_(lr)
        self.lr = lr

    def _loss(self, config):
        return LOSSES[config](self.torch.nn.functional, config)

    def tensors(self, x, y):
        """Data on the training device, copied once, when it takes at most DEVICE_SHARE of the device's free
        memory; otherwise in pinned host memory, each batch copied when it is used."""
        torch = self.torch
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if x.nbytes + y.nbytes > DEVICE_SHARE * free:
                self.host_data = True
                return x.pin_memory(), y.pin_memory()
        x = x.to(self.device)
        if self.channels_last and x.dim() == 4:  # once, not per step: batches gathered from it stay NHWC
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device)

    def indices(self, order: list) -> list:
        """An epoch's batch indices where the data is (the device: copied in one transfer)."""
        import numpy as np

        torch = self.torch
        flat = torch.from_numpy(np.concatenate(order))
        flat = flat if self.host_data else flat.to(self.device)
        return list(torch.split(flat, [len(i) for i in order]))

    def take(self, tensor, index):
        """Rows ``index`` of a tensor, on the training device."""
        return tensor[index].to(self.device, non_blocking=True)

    def scalars(self, values: list) -> list[float]:
        """Loss tensors as floats, fetched together."""
        return self.torch.stack(values).float().cpu().tolist() if values else []

    def _forward(self, x, net=None):
        out = (self.net if net is None else net)(x)
        return out[0] if isinstance(out, tuple) else out

    def step(self, x, y, lr: float):
        """One optimizer step; returns (loss, outputs) as tensors."""
        torch = self.torch
        self._set_lr(lr)
        n = len(x)
        if self.world > 1:
            if n < self.world:
                raise ValueError(f"a batch of {n} samples cannot be shared by {self.world} processes")
            start, stop = n * self.rank // self.world, n * (self.rank + 1) // self.world
            x, y = x[start:stop], y[start:stop]
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        # DDP averages gradients over processes: weight each share so the average is the global mean
        weight = len(x) * self.world / n
        if self.cuda_graph and self.graphed is None and self.steps >= 1 and n == self.cfg.batch_size:
            self._capture(x, y, weight)
        self.steps += 1
        if self.graphed is not None and self.graphed.fits(x):
            loss, out = self.graphed(x, y)
        else:
            loss, out = self._compute(x, y, weight)
        if self.world > 1:
            total = loss * len(x)
            self.dist.all_reduce(total)
            loss = total / n
            if self.cfg.metrics:
                shares = [None] * self.world
                self.dist.all_gather_object(shares, out.cpu())
                out = torch.cat(shares)
        return loss, out

    def _capture(self, x, y, weight: float) -> None:
        """The step as a CUDA graph, captured after one eager step (when optimizer state such as momentum
        buffers exists); a model whose step cannot be captured trains eagerly, with a notice."""
        from .cuda_graph import GraphedStep, state_tensors

        try:
            self.graphed = GraphedStep(self.torch, lambda a, b: self._compute(a, b, weight),
                                       state_tensors(self.net, self.opt), x, y, bool(self.cfg.metrics))
        except RuntimeError as e:
            self.cuda_graph = False
            self.opt.zero_grad(set_to_none=True)
            if self.is_main:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                print(f"dlspec: --cuda-graph: this model's training step cannot be captured as a CUDA graph "
                      f"({reason}); training on with eager steps", file=sys.stderr)

    def _compute(self, x, y, weight: float):
        """Forward, loss, backward, clipping and the optimizer update on one (share of a) batch."""
        torch = self.torch
        self.net.train()
        for module in self.frozen_modules:  # frozen = inference mode: BatchNorm keeps its statistics
            module.eval()
        self.opt.zero_grad(set_to_none=True)
        # a captured graph cannot keep autocast's weight cache between replays
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None,
                            cache_enabled=not self.cuda_graph):
            out = self._forward(x, self.forward_net)
            loss = self.loss(out.float(), y)
        objective = loss * weight if weight != 1 else loss
        for param, l1, l2 in self.penalties:  # in the objective, not in the reported loss
            objective = objective + l1 * param.abs().sum() + l2 * param.square().sum()
        if self.scaler is not None:  # fp16: scale the loss so small gradients survive, unscale before clipping
            self.scaler.scale(objective).backward()
            self.scaler.unscale_(self.opt)
        else:
            objective.backward()
        clip = self.cfg.clip
        if clip is not None and clip.norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, clip.norm)
        elif clip is not None:
            torch.nn.utils.clip_grad_value_(self.params, clip.value)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        return loss.detach(), out.detach().float()

    def evaluate(self, x, y, batch_size: int):
        """Mean loss and outputs in inference mode."""
        torch = self.torch
        self.net.eval()
        outs, total = [], 0.0
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb, yb = (t[i:i + batch_size].to(self.device, non_blocking=True) for t in (x, y))
                out = self._forward(xb)
                total += self.loss(out, yb).double() * len(out)  # summed on the device: one transfer at the end
                outs.append(out)
        return float(total) / len(x), torch.cat(outs)

    def fetch(self, outputs: list):
        """Outputs of several steps as one numpy array, in one transfer."""
        return self.torch.cat(outputs).cpu().numpy()

    def numpy(self, tensor):
        """A tensor as a numpy array."""
        return tensor.detach().cpu().numpy()

    def close(self) -> None:
        """End the process group of a torchrun run (every process waits for the others)."""
        if self.world > 1 and self.dist.is_initialized():
            self.dist.barrier()
            self.dist.destroy_process_group()

    native_file = "model.pt"

    def save_native(self, path) -> None:
        """The trained model as a torch state dict (``model.pt``, written by the caller through a temporary)."""
        self.torch.save(self.net.state_dict(), path)

    def weights(self) -> dict:
        """Canonical weights (float32: integer buffers such as Swin's relative_position_index too)."""
        return {k: v.detach().cpu().float().numpy().copy() for k, v in self.net.state_dict().items()
                if not k.endswith("num_batches_tracked")}


OPTIMIZERS = Registry("optimizer", "torch", registry.OPTIMIZERS)
LOSSES = Registry("loss", "torch", registry.LOSSES)


@OPTIMIZERS.register(spec.SGD)
def _sgd(optim, params, o, lr, fused, capturable):
    return optim.SGD(params, lr=lr, momentum=o.momentum, dampening=o.dampening, nesterov=o.nesterov,
                     weight_decay=o.weight_decay, **fused)


@OPTIMIZERS.register(spec.Adam, spec.AdamW)
def _adam(optim, params, o, lr, fused, capturable):
    cls = optim.AdamW if isinstance(o, spec.AdamW) else optim.Adam
    return cls(params, lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, **fused, **capturable)


@OPTIMIZERS.register(spec.RMSprop)
def _rmsprop(optim, params, o, lr, fused, capturable):
    return optim.RMSprop(params, lr=lr, alpha=o.alpha, eps=o.eps, momentum=o.momentum, centered=o.centered,
                         weight_decay=o.weight_decay, **capturable)


@LOSSES.register(spec.CrossEntropy)
def _cross_entropy(f, config):
    return lambda out, y: f.cross_entropy(out, y, label_smoothing=config.label_smoothing)


@LOSSES.register(spec.BinaryCrossEntropy)
def _binary_cross_entropy(f, config):
    return lambda out, y: f.binary_cross_entropy_with_logits(out, y.reshape(out.shape))


@LOSSES.register(spec.Huber)
def _huber(f, config):
    return lambda out, y: f.huber_loss(out, y.reshape(out.shape), delta=config.delta)


@LOSSES.register(spec.MSE)
def _mse(f, config):
    return lambda out, y: f.mse_loss(out, y.reshape(out.shape))


@LOSSES.register(spec.L1)
def _l1(f, config):
    return lambda out, y: f.l1_loss(out, y.reshape(out.shape))
