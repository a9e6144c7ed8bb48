"""The parity table: every layer type with representative attributes, one row per case.

Each row is (id, input shape, layers). The test builds a spec from it, runs torch, Keras
and onnxruntime on the same weights and inputs, and requires agreement within 1e-5.
Known gaps would be listed in XFAIL with a reason; there are none.
"""

CASES = [
    ("dense", [16], [{"type": "dense", "units": 8}]),
    ("dense_no_bias", [16], [{"type": "dense", "units": 8, "use_bias": False}]),
    ("dense_rank3", [5, 16], [{"type": "dense", "units": 8}]),
    ("dense_rank3_no_bias", [5, 16], [{"type": "dense", "units": 8, "use_bias": False}]),
    *[(f"dense_{a}", [16], [{"type": "dense", "units": 8, "activation": a}])
      for a in ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax")],
    ("dense_he_init", [16], [{"type": "dense", "units": 8, "kernel_initializer": "he_normal",
                              "bias_initializer": "glorot_uniform"}]),
    ("relu", [3, 7], [{"type": "activation", "activation": "relu"}]),
    ("leaky_relu", [3, 7], [{"type": "activation", "activation": "leaky_relu", "negative_slope": 0.2}]),
    ("elu", [3, 7], [{"type": "activation", "activation": "elu", "alpha": 0.7}]),
    ("gelu_exact", [3, 7], [{"type": "activation", "activation": "gelu"}]),
    ("gelu_tanh", [3, 7], [{"type": "activation", "activation": "gelu", "approximate": "tanh"}]),
    ("silu", [3, 7], [{"type": "activation", "activation": "silu"}]),
    ("sigmoid", [3, 7], [{"type": "activation", "activation": "sigmoid"}]),
    ("tanh", [3, 7], [{"type": "activation", "activation": "tanh"}]),
    ("linear", [3, 7], [{"type": "activation", "activation": "linear"}]),
    ("softmax_last", [3, 7], [{"type": "activation", "activation": "softmax"}]),
    ("softmax_axis1", [3, 7], [{"type": "activation", "activation": "softmax", "axis": 1}]),
    ("softmax_axis1_rank4", [3, 4, 5], [{"type": "activation", "activation": "softmax", "axis": 1}]),
    ("dropout", [10], [{"type": "dropout", "rate": 0.5}]),
    ("batchnorm_features", [6], [{"type": "batchnorm", "eps": 1e-3, "momentum": 0.01}]),
    ("batchnorm_seq", [6, 5], [{"type": "batchnorm"}]),
    ("batchnorm_image", [4, 5, 3], [{"type": "batchnorm", "eps": 1e-4}]),
    ("batchnorm_image_square", [3, 3, 3], [{"type": "batchnorm"}]),
    ("layernorm", [12], [{"type": "layernorm"}]),
    ("layernorm_rank3", [4, 12], [{"type": "layernorm", "eps": 1e-3}]),
    ("flatten", [3, 4, 5], [{"type": "flatten"}]),
    ("reshape", [12], [{"type": "reshape", "shape": [3, 4]}]),
    ("reshape_infer", [24], [{"type": "reshape", "shape": [2, -1, 3]}]),
    ("reshape_bn_flatten", [24], [{"type": "reshape", "shape": [2, 3, 4]}, {"type": "batchnorm"},
                                  {"type": "flatten"}, {"type": "dense", "units": 5}]),
]

XFAIL: dict[str, str] = {}
