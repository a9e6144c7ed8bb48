"""Parity rows for attention (one input each; the key padding mask needs a second input, so the masked cases
are in tests/test_attention_mask.py)."""

_BERT_LAYER = [  # transformers' BertLayer: post-norm, eps 1e-12, exact GELU
    {"type": "attention", "name": "attn", "heads": 3},
    {"type": "add", "name": "attn_add", "inputs": ["attn", "x"]},
    {"type": "layernorm", "name": "attn_norm", "eps": 1e-12},
    {"type": "dense", "name": "intermediate", "units": 20, "activation": "gelu"},
    {"type": "dense", "name": "output", "units": 9},
    {"type": "add", "name": "output_add", "inputs": ["output", "attn_norm"]},
    {"type": "layernorm", "name": "output_norm", "eps": 1e-12},
]

CASES = [
    ("attention_odd", [7, 9], [{"type": "attention", "heads": 3}]),
    ("attention_one_head", [5, 6], [{"type": "attention", "heads": 1}]),
    ("attention_causal_even", [4, 8], [{"type": "attention", "heads": 4, "causal": True}]),
    ("attention_bert_layer", [7, 9], _BERT_LAYER),
]
