"""PyTorch emitters for sequence layers (batch_first everywhere)."""

from __future__ import annotations

from .. import ir
from .context import EmitContext
from .registry import emitter
from .source import Atom, Attr, BinOp, Lit, Node, Paren, Subscript, call, method
from .torch_emit import TorchLayer, construct, init_statement


@emitter("torch", ir.sequence.Embedding)
def _embedding(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = call("nn.Embedding", num_embeddings=a["vocabulary"], embedding_dim=a["units"])
    weight = ctx.node.params[0]
    return TorchLayer(call(ctx.module, ctx.x), module, [init_statement(weight, Attr(ctx.module, "weight"))])


@emitter("torch", ir.sequence.PositionalEmbedding)
def _positional(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = call("nn.Embedding", num_embeddings=a["max_length"], embedding_dim=ctx.in_shape[1])
    weight = ctx.node.params[0]
    rows = Subscript(Attr(ctx.module, "weight"), (Atom(f":{ctx.in_shape[0]}"),))
    return TorchLayer(BinOp("+", (ctx.x, rows)), module, [init_statement(weight, Attr(ctx.module, "weight"))])


def _recurrent(cls: str):
    def emit(ctx: EmitContext) -> TorchLayer:
        a = ctx.node.attrs
        module = construct(f"nn.{cls}", input_size=ctx.in_shape[1], hidden_size=a["units"], batch_first=True,
                           bidirectional=a["bidirectional"])
        out = call(ctx.module, ctx.x)
        if a["return_sequences"]:
            out = Subscript(out, (Atom("0"),))
        else:  # h_n is (directions, batch, units): concatenate the directions per sample
            out = Subscript(out, (Atom("1"),))
            out = Subscript(out, (Atom("0"),)) if cls == "LSTM" else out
            out = method(method(out, "transpose", 0, 1), "flatten", 1)
        return TorchLayer(out, module)

    return emit


emitter("torch", ir.sequence.LSTM)(_recurrent("LSTM"))
emitter("torch", ir.sequence.GRU)(_recurrent("GRU"))


# A masked key's score becomes the lowest value of the model's float type (added to the score, which then rounds
# to it), so an all-masked query averages the values uniformly; torch's boolean masks would give NaN there. The
# mask takes the dtype of x, so a model converted with .half() or .bfloat16() still runs.
def _lowest(x: Node) -> Node:
    return Attr(call("torch.finfo", Attr(x, "dtype")), "min")


@emitter("torch", ir.sequence.Attention)
def _attention(ctx: EmitContext) -> TorchLayer:
    a, (t, e) = ctx.node.attrs, ctx.in_shape
    module = call("nn.MultiheadAttention", embed_dim=e, num_heads=a["heads"], batch_first=True)
    x = ctx.x
    causal = method(call("torch.ones", t, t, dtype=Atom("torch.bool")), "triu", 1)
    if len(ctx.args) == 1:
        mask = {"attn_mask": causal} if a["causal"] else {}
    elif not a["causal"]:
        padding = BinOp("==", (ctx.args[1], Lit(0)))
        mask = {"key_padding_mask": method(call("torch.where", padding, _lowest(x), 0.0), "to", Attr(x, "dtype"))}
    else:  # one float mask per sample and head, (N * heads, T, T), so both masks replace the score alike
        keys = Subscript(Paren(BinOp("==", (ctx.args[1], Lit(0)))), (Atom(":"), Atom("None"), Atom(":")))
        masked = method(call("torch.where", BinOp("|", (keys, causal)), _lowest(x), 0.0), "to", Attr(x, "dtype"))
        mask = {"attn_mask": method(masked, "repeat_interleave", a["heads"], dim=0)}
    return TorchLayer(Subscript(call(ctx.module, x, x, x, need_weights=False, **mask), (Atom("0"),)), module)


@emitter("torch", ir.sequence.SequenceMean)
def _sequence_mean(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(method(ctx.x, "mean", dim=1))
