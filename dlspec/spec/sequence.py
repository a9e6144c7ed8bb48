"""Sequence layers: token embeddings, recurrent layers, self-attention. Samples are [T, features]."""

from __future__ import annotations

from typing import ClassVar, Literal

from .layers import Initializer, LayerBase, op
from .shapes import Param, ShapeError
from .types import Bool, PositiveInt


def _sequence(inputs, what):
    if len(inputs[0]) != 2:
        raise ShapeError(f"{what} needs [T, features] samples", inputs[0])
    return inputs[0]


@op
class Embedding(LayerBase):
    """Looks up a learned vector for each int64 token: [T] -> [T, units], y[t] = weight[x[t]], with weight
    (vocabulary, units)."""

    type: Literal["embedding"] = "embedding"
    vocabulary: PositiveInt
    """Number of distinct tokens; inputs must lie in [0, vocabulary)."""
    units: PositiveInt
    """Size of each vector."""
    embeddings_initializer: Initializer = "normal"
    """Initial distribution (torch N(0, 1); Keras U(-0.05, 0.05); dlspec's default: normal, N(0, 1))."""

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs[0]) != 1:
            raise ShapeError("embedding needs [T] samples of int64 tokens", inputs[0])
        return (inputs[0][0], attrs["units"])

    @classmethod
    def params(cls, attrs, inputs):
        return (Param("weight", (attrs["vocabulary"], attrs["units"]), attrs["embeddings_initializer"]),)


@op
class PositionalEmbedding(LayerBase):
    """Adds a learned vector per position: y[t] = x[t] + weight[t], for [T, units] samples, with weight
    (max_length, units)."""

    type: Literal["positional_embedding"] = "positional_embedding"
    max_length: PositiveInt
    """Number of positions the weight holds; T must not exceed it."""
    embeddings_initializer: Initializer = "normal"
    """Initial distribution (dlspec's default: normal, N(0, 1))."""

    @classmethod
    def infer(cls, attrs, inputs):
        t, _ = _sequence(inputs, "positional_embedding")
        if t > attrs["max_length"]:
            raise ShapeError(f"the sequence ({t} steps) is longer than max_length", attrs["max_length"],
                             "max_length")
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        return (Param("weight", (attrs["max_length"], inputs[0][1]), attrs["embeddings_initializer"]),)


class _Recurrent(LayerBase):
    units: PositiveInt
    """Hidden size (per direction)."""
    return_sequences: Bool = False
    """true: [T, units * directions], every step; false: [units * directions], the final state of each
    direction (torch's h_n; the backward direction's final state is at t = 0). Keras defaults to false,
    torch returns both."""
    bidirectional: Bool = False
    """Also run over the reversed sequence; outputs are concatenated, forward first."""

    gates: ClassVar[int] = 4

    @classmethod
    def infer(cls, attrs, inputs):
        t, _ = _sequence(inputs, cls.op_name)
        width = attrs["units"] * (2 if attrs["bidirectional"] else 1)
        return (t, width) if attrs["return_sequences"] else (width,)

    @classmethod
    def params(cls, attrs, inputs):
        n, h, i = cls.gates, attrs["units"], inputs[0][1]
        out = ()
        for suffix in ("_l0", "_l0_reverse") if attrs["bidirectional"] else ("_l0",):
            # torch's default: U(-1/sqrt(h), 1/sqrt(h)) for every tensor, i.e. lecun_uniform with fan_in 3h
            out += (Param(f"weight_ih{suffix}", (n * h, i), "lecun_uniform", 3 * h),
                    Param(f"weight_hh{suffix}", (n * h, h), "lecun_uniform", 3 * h),
                    Param(f"bias_ih{suffix}", (n * h,), "lecun_uniform", 3 * h),
                    Param(f"bias_hh{suffix}", (n * h,), "lecun_uniform", 3 * h))
        return out


@op
class LSTM(_Recurrent):
    """LSTM with torch's gates (input, forget, cell, output), sigmoid/tanh, and two bias vectors: torch.nn.LSTM
    (batch_first), gates i, f, g, o stacked in that order in weight_ih/weight_hh; c' = f*c + i*g, h' = o*tanh(c').
    Initial states are zero. Parameters weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 (and *_l0_reverse)."""

    type: Literal["lstm"] = "lstm"


@op
class GRU(_Recurrent):
    """GRU as torch defines it (torch.nn.GRU, batch_first): gates r, z, n in that order;
    n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h' = (1-z)*n + z*h: the reset gate multiplies (W_hn h + b_hn),
    i.e. Keras' reset_after=True. Initial state zero."""

    type: Literal["gru"] = "gru"

    gates: ClassVar[int] = 3


@op
class Attention(LayerBase):
    """Multi-head scaled dot-product self-attention over [T, E] samples, as torch.nn.MultiheadAttention(E, heads)
    on (x, x, x): q, k, v = x @ in_proj_weight.T + in_proj_bias split in three; per head
    softmax(q k^T / sqrt(E / heads)) v, then out_proj. Parameters: in_proj_weight (3E, E), in_proj_bias,
    out_proj.weight (E, E), out_proj.bias.

    Masking: key s is masked for query t when causal and s > t, or when an optional second input, the key
    padding mask m of shape [T] per sample (HF's attention_mask: nonzero = attend, 0 = padding; int64 or
    float32), has m[s] == 0. A masked key's score is replaced by the lowest float32 (-3.4028235e38), the
    value HF's BERT adds: it gets weight 0, and a query whose every key is masked averages v uniformly over
    all T keys (HF's eager BERT on an all-padding sample) instead of producing NaN."""

    type: Literal["attention"] = "attention"
    heads: PositiveInt
    """Number of heads; must divide E."""
    causal: Bool = False
    """Mask future positions: step t attends to steps <= t only."""

    arity: ClassVar[int | None] = None

    @classmethod
    def infer(cls, attrs, inputs):
        t, e = _sequence(inputs, "attention")
        if e % attrs["heads"]:
            raise ShapeError(f"heads must divide the features ({e})", attrs["heads"], "heads")
        if len(inputs) > 2:
            raise ShapeError("attention takes the sequence and an optional key padding mask", len(inputs), "inputs")
        if len(inputs) == 2 and inputs[1] != (t,):
            raise ShapeError(f"the key padding mask must have shape [{t}] (one entry per key)", inputs[1], "inputs")
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        e = inputs[0][1]
        return (Param("in_proj_weight", (3 * e, e), "glorot_uniform", e, e),
                Param("in_proj_bias", (3 * e,), "zeros"),
                Param("out_proj.weight", (e, e), "glorot_uniform", e, e),
                Param("out_proj.bias", (e,), "zeros"))


@op
class SequenceMean(LayerBase):
    """Mean over the time axis: [T, E] -> [E], y[e] = mean over t of x[t, e]."""

    type: Literal["sequence_mean"] = "sequence_mean"

    @classmethod
    def infer(cls, attrs, inputs):
        return (_sequence(inputs, "sequence_mean")[1],)
