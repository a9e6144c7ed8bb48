"""PyTorch emitter for Swin's shifted-window attention: a helper module with torchvision's parameter names."""

from __future__ import annotations

from .. import ir
from ..ir.swin import compact, windows
from .context import EmitContext
from .registry import emitter
from .source import Attr, call
from .torch_emit import HELPERS, TorchLayer, init_statement

HELPERS["WindowAttention"] = '''
class WindowAttention(nn.Module):
    """torchvision's ShiftedWindowAttention (Swin v1) on [N, H, W, C]: multi-head self-attention inside windows
    (H, W zero-padded to multiples of the window) with a relative position bias; with a shift, the sample is
    rolled by -shift first and back after, and keys from another region of the rolled sample get -100. An axis
    that one window covers is not shifted (torchvision's rule), so the module fits any H and W."""

    def __init__(self, dim, heads, window, shift):
        super().__init__()
        self.heads = heads
        self.window = (window, window) if isinstance(window, int) else tuple(window)
        self.shift = (shift, shift) if isinstance(shift, int) else tuple(shift)
        wh, ww = self.window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        table = torch.zeros((2 * wh - 1) * (2 * ww - 1), heads)
        self.relative_position_bias_table = nn.Parameter(table)
        grid = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        y, x = (t.flatten() for t in grid)
        dy = y[:, None] - y[None, :] + wh - 1
        dx = x[:, None] - x[None, :] + ww - 1
        index = dy * (2 * ww - 1) + dx
        self.register_buffer("relative_position_index", index.flatten())

    def partition(self, x):
        """[N, H, W, C] -> [N, windows, tokens, C], windows and tokens row-major."""
        (n, h, w, c), (wh, ww) = x.shape, self.window
        x = x.reshape(n, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, -1, wh * ww, c)

    def mask(self, h, w, shift, device):
        """[windows, tokens, tokens]: -100 where query and key lie in different regions of the rolled sample."""
        (wh, ww), (sh, sw) = self.window, shift

        def regions(size, window, shift):
            # 0, 1, 2 for rows [0, size - window), [.., size - shift), the rest
            r = torch.arange(size, device=device)
            if not shift:
                return torch.zeros_like(r)
            return (r >= size - window).long() + (r >= size - shift).long()

        label = 3 * regions(h, wh, sh)[:, None] + regions(w, ww, sw)[None, :]
        label = self.partition(label[None, :, :, None])[0, :, :, 0]
        return torch.where(label[:, :, None] == label[:, None, :], 0.0, -100.0)

    def forward(self, x):
        (n, h, w, c), (wh, ww), heads = x.shape, self.window, self.heads
        x = nn.functional.pad(x, (0, 0, 0, -w % ww, 0, -h % wh))
        ph, pw = x.shape[1], x.shape[2]
        covered = (wh >= ph, ww >= pw)
        shift = tuple(0 if f else s for f, s in zip(covered, self.shift, strict=True))
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        # q, k, v: [N, windows, heads, tokens, C / heads]
        qkv = self.qkv(self.partition(x)).unflatten(-1, (3, heads, c // heads))
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)
        scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        table = self.relative_position_bias_table
        bias = table[self.relative_position_index].view(wh * ww, wh * ww, heads)
        scores = scores + bias.permute(2, 0, 1)
        if any(shift):
            mask = self.mask(ph, pw, shift, x.device).to(scores.dtype)
            scores = scores + mask[:, None]
        out = self.proj((scores.softmax(dim=-1) @ v).transpose(2, 3).flatten(3))
        out = out.view(n, ph // wh, pw // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(n, ph, pw, c)
        if any(shift):
            out = torch.roll(out, shifts=shift, dims=(1, 2))
        return out[:, :h, :w]
'''


@emitter("torch", ir.swin.WindowAttention)
def _window_attention(ctx: EmitContext) -> TorchLayer:
    g, shift = windows(ctx.node.attrs, ctx.in_shape), ctx.node.attrs["shift"]  # the module applies the shift rule
    module = call("WindowAttention", dim=g.c, heads=g.heads, window=compact(g.window), shift=compact(shift))
    inits = [init_statement(p, Attr(ctx.module, p.name)) for p in ctx.node.params if p.trainable]
    return TorchLayer(call(ctx.module, ctx.x), module, inits, helpers=("WindowAttention",))

