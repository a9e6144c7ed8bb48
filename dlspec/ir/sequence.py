"""IR ops for sequences. Samples are [T, features] (time first, as torch's batch_first layout)."""

from __future__ import annotations

from .. import spec
from .graph import Param
from .ops import Op, ShapeError, op


def _sequence(inputs, what):
    if len(inputs[0]) != 2:
        raise ShapeError(f"{what} needs [T, features] samples", inputs[0])
    return inputs[0]


@op(spec.sequence.Embedding)
class Embedding(Op):
    """y[t] = weight[x[t]] for int64 tokens x; weight is (vocabulary, units)."""

    def infer(self, attrs, inputs):
        if len(inputs[0]) != 1:
            raise ShapeError("embedding needs [T] samples of int64 tokens", inputs[0])
        return (inputs[0][0], attrs["units"])

    def params(self, attrs, inputs):
        return (Param("weight", (attrs["vocabulary"], attrs["units"]), attrs["embeddings_initializer"]),)


@op(spec.sequence.PositionalEmbedding)
class PositionalEmbedding(Op):
    """y[t] = x[t] + weight[t]; weight is (max_length, units)."""

    def infer(self, attrs, inputs):
        t, _ = _sequence(inputs, "positional_embedding")
        if t > attrs["max_length"]:
            raise ShapeError(f"the sequence ({t} steps) is longer than max_length", attrs["max_length"],
                             "max_length")
        return inputs[0]

    def params(self, attrs, inputs):
        return (Param("weight", (attrs["max_length"], inputs[0][1]), attrs["embeddings_initializer"]),)


class _Recurrent(Op):
    gates = 4

    def infer(self, attrs, inputs):
        t, _ = _sequence(inputs, self.name)
        width = attrs["units"] * (2 if attrs["bidirectional"] else 1)
        return (t, width) if attrs["return_sequences"] else (width,)

    def params(self, attrs, inputs):
        n, h, i = self.gates, attrs["units"], inputs[0][1]
        out = ()
        for suffix in ("_l0", "_l0_reverse") if attrs["bidirectional"] else ("_l0",):
            # torch's default: U(-1/sqrt(h), 1/sqrt(h)) for every tensor, i.e. lecun_uniform with fan_in 3h
            out += (Param(f"weight_ih{suffix}", (n * h, i), "lecun_uniform", 3 * h),
                    Param(f"weight_hh{suffix}", (n * h, h), "lecun_uniform", 3 * h),
                    Param(f"bias_ih{suffix}", (n * h,), "lecun_uniform", 3 * h),
                    Param(f"bias_hh{suffix}", (n * h,), "lecun_uniform", 3 * h))
        return out


@op(spec.sequence.LSTM)
class LSTM(_Recurrent):
    """torch.nn.LSTM (batch_first): gates i, f, g, o stacked in that order in weight_ih/weight_hh;
    c' = f*c + i*g, h' = o*tanh(c'). Initial states are zero. Names: weight_ih_l0, ..., *_l0_reverse."""


@op(spec.sequence.GRU)
class GRU(_Recurrent):
    """torch.nn.GRU (batch_first): gates r, z, n in that order; n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),
    h' = (1-z)*n + z*h. Initial state zero."""

    gates = 3


@op(spec.sequence.Attention)
class Attention(Op):
    """torch.nn.MultiheadAttention(E, heads) on (x, x, x): q, k, v = x @ in_proj_weight.T + in_proj_bias split
    in three; per head softmax(q k^T / sqrt(E / heads)) v, then out_proj. Parameters: in_proj_weight (3E, E),
    in_proj_bias, out_proj.weight (E, E), out_proj.bias.

    Masking: key s is masked for query t when causal and s > t, or when an optional second input, the key
    padding mask m of shape [T] per sample (HF's attention_mask: nonzero = attend, 0 = padding; int64 or
    float32), has m[s] == 0. A masked key's score is replaced by the lowest float32 (-3.4028235e38), the
    value HF's BERT adds: it gets weight 0, and a query whose every key is masked averages v uniformly over
    all T keys (HF's eager BERT on an all-padding sample) instead of producing NaN."""

    arity = None

    def infer(self, attrs, inputs):
        t, e = _sequence(inputs, "attention")
        if e % attrs["heads"]:
            raise ShapeError(f"heads must divide the features ({e})", attrs["heads"], "heads")
        if len(inputs) > 2:
            raise ShapeError("attention takes the sequence and an optional key padding mask", len(inputs), "inputs")
        if len(inputs) == 2 and inputs[1] != (t,):
            raise ShapeError(f"the key padding mask must have shape [{t}] (one entry per key)", inputs[1], "inputs")
        return inputs[0]

    def params(self, attrs, inputs):
        e = inputs[0][1]
        return (Param("in_proj_weight", (3 * e, e), "glorot_uniform", e, e),
                Param("in_proj_bias", (3 * e,), "zeros"),
                Param("out_proj.weight", (e, e), "glorot_uniform", e, e),
                Param("out_proj.bias", (e,), "zeros"))


@op(spec.sequence.SequenceMean)
class SequenceMean(Op):
    """y[e] = mean over t of x[t, e]: [T, E] samples become [E]."""

    def infer(self, attrs, inputs):
        return (_sequence(inputs, "sequence_mean")[1],)
