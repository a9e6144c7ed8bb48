"""PyTorch emitters for sequence layers (batch_first everywhere)."""

from __future__ import annotations

from .. import ir
from .codegen import kwargs
from .context import EmitContext
from .registry import emitter
from .torch_emit import TorchLayer, construct, init_statement


@emitter("torch", ir.sequence.Embedding)
def _embedding(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = f"nn.Embedding({kwargs(num_embeddings=a['vocabulary'], embedding_dim=a['units'])})"
    weight = ctx.node.params[0]
    return TorchLayer(f"{ctx.module}({ctx.x})", module, [init_statement(weight, f"{ctx.module}.weight")])


@emitter("torch", ir.sequence.PositionalEmbedding)
def _positional(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = f"nn.Embedding({kwargs(num_embeddings=a['max_length'], embedding_dim=ctx.in_shape[1])})"
    weight = ctx.node.params[0]
    return TorchLayer(f"{ctx.x} + {ctx.module}.weight[:{ctx.in_shape[0]}]", module,
                      [init_statement(weight, f"{ctx.module}.weight")])


def _recurrent(cls: str):
    def emit(ctx: EmitContext) -> TorchLayer:
        a = ctx.node.attrs
        module = construct(f"nn.{cls}", input_size=ctx.in_shape[1], hidden_size=a["units"], batch_first=True,
                           bidirectional=a["bidirectional"])
        if a["return_sequences"]:
            call = f"{ctx.module}({ctx.x})[0]"
        else:  # h_n is (directions, batch, units): concatenate the directions per sample
            state = "[1][0]" if cls == "LSTM" else "[1]"
            call = f"{ctx.module}({ctx.x}){state}.transpose(0, 1).flatten(1)"
        return TorchLayer(call, module)

    return emit


emitter("torch", ir.sequence.LSTM)(_recurrent("LSTM"))
emitter("torch", ir.sequence.GRU)(_recurrent("GRU"))


# A masked key's score becomes the lowest value of the model's float type (added to the score, which then rounds
# to it), so an all-masked query averages the values uniformly; torch's boolean masks would give NaN there. The
# mask takes the dtype of x, so a model converted with .half() or .bfloat16() still runs.
def _lowest(x: str) -> str:
    return f"torch.finfo({x}.dtype).min"


@emitter("torch", ir.sequence.Attention)
def _attention(ctx: EmitContext) -> TorchLayer:
    a, (t, e) = ctx.node.attrs, ctx.in_shape
    module = f"nn.MultiheadAttention({kwargs(embed_dim=e, num_heads=a['heads'], batch_first=True)})"
    x = ctx.x
    if len(ctx.args) == 1:
        mask = f", attn_mask=torch.ones({t}, {t}, dtype=torch.bool).triu(1)" if a["causal"] else ""
    elif not a["causal"]:
        mask = f", key_padding_mask=torch.where({ctx.args[1]} == 0, {_lowest(x)}, 0.0).to({x}.dtype)"
    else:  # one float mask per sample and head, (N * heads, T, T), so both masks replace the score alike
        masked = f"({ctx.args[1]} == 0)[:, None, :] | torch.ones({t}, {t}, dtype=torch.bool).triu(1)"
        mask = (f", attn_mask=torch.where({masked}, {_lowest(x)}, 0.0).to({x}.dtype)"
                f".repeat_interleave({a['heads']}, dim=0)")
    return TorchLayer(f"{ctx.module}({x}, {x}, {x}, need_weights=False{mask})[0]", module)


@emitter("torch", ir.sequence.SequenceMean)
def _sequence_mean(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(f"{ctx.x}.mean(dim=1)")
