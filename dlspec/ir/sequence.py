"""The sequence ops (embeddings, recurrent layers, attention, sequence_mean), re-exported from their
definitions in dlspec/spec/sequence.py. Samples are [T, features] (time first, as torch's batch_first layout)."""

from ..spec.sequence import GRU, LSTM, Attention, Embedding, PositionalEmbedding, SequenceMean

__all__ = ["GRU", "LSTM", "Attention", "Embedding", "PositionalEmbedding", "SequenceMean"]
