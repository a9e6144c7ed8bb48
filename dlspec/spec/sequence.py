"""Sequence layers: token embeddings, recurrent layers, self-attention. Samples are [T, features]."""

from __future__ import annotations

from typing import Literal

from .layers import Initializer, LayerBase, layer
from .types import Bool, PositiveInt


@layer
class Embedding(LayerBase):
    """Looks up a learned vector for each int64 token: [T] -> [T, units]."""

    type: Literal["embedding"] = "embedding"
    vocabulary: PositiveInt
    """Number of distinct tokens; inputs must lie in [0, vocabulary)."""
    units: PositiveInt
    """Size of each vector."""
    embeddings_initializer: Initializer = "normal"
    """Initial distribution (torch N(0, 1); Keras U(-0.05, 0.05); dlspec's default: normal, N(0, 1))."""


@layer
class PositionalEmbedding(LayerBase):
    """Adds a learned vector per position: y[t] = x[t] + weight[t], for [T, units] samples."""

    type: Literal["positional_embedding"] = "positional_embedding"
    max_length: PositiveInt
    """Number of positions the weight holds; T must not exceed it."""
    embeddings_initializer: Initializer = "normal"
    """Initial distribution (dlspec's default: normal, N(0, 1))."""


class _Recurrent(LayerBase):
    units: PositiveInt
    """Hidden size (per direction)."""
    return_sequences: Bool = False
    """true: [T, units * directions], every step; false: [units * directions], the final state of each
    direction (torch's h_n; the backward direction's final state is at t = 0). Keras defaults to false,
    torch returns both."""
    bidirectional: Bool = False
    """Also run over the reversed sequence; outputs are concatenated, forward first."""


@layer
class LSTM(_Recurrent):
    """LSTM with torch's gates (input, forget, cell, output), sigmoid/tanh, and two bias vectors."""

    type: Literal["lstm"] = "lstm"


@layer
class GRU(_Recurrent):
    """GRU as torch defines it: the reset gate multiplies (W_hn h + b_hn), i.e. Keras' reset_after=True."""

    type: Literal["gru"] = "gru"


@layer
class Attention(LayerBase):
    """Multi-head scaled dot-product self-attention over [T, E] samples, as torch.nn.MultiheadAttention."""

    type: Literal["attention"] = "attention"
    heads: PositiveInt
    """Number of heads; must divide E."""
    causal: Bool = False
    """Mask future positions: step t attends to steps <= t only."""


@layer
class SequenceMean(LayerBase):
    """Mean over the time axis: [T, E] -> [E]."""

    type: Literal["sequence_mean"] = "sequence_mean"
