"""The parity table: every layer type with representative attributes, one row per case.

Each row is (id, input shape, layers). The test builds a spec from it, runs torch, Keras
and onnxruntime on the same weights and inputs, and requires agreement within 1e-5.
Known gaps are listed in UNSUPPORTED: that backend must refuse the case with a clear error,
and the other backends must still agree.
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


def conv(**kw):
    return {"type": "conv2d", "filters": 4, "kernel": 3, **kw}


def pool(kind, **kw):
    return {"type": kind, "kernel": 3, "stride": 2, **kw}


def two_branches(merge, **kw):
    return [conv(name="a", padding="same"), conv(name="b", padding="same", inputs=["x"]),
            {"type": merge, "inputs": ["a", "b"], **kw}]


CASES += [
    ("conv2d_valid", [3, 9, 9], [conv()]),
    ("conv2d_same_s1", [3, 8, 8], [conv(padding="same")]),
    ("conv2d_same_s2_even", [3, 8, 8], [conv(padding="same", stride=2)]),
    ("conv2d_same_s2_odd", [3, 9, 9], [conv(padding="same", stride=2)]),
    ("conv2d_same_s2_k4", [3, 10, 7], [conv(padding="same", stride=2, kernel=4)]),
    ("conv2d_explicit_pad", [3, 8, 7], [conv(padding=[2, 1], stride=[2, 1])]),
    ("conv2d_dilation", [3, 12, 12], [conv(dilation=2, padding="same")]),
    ("conv2d_dilation_s2_pad", [3, 12, 12], [conv(dilation=2, padding=2, stride=1, kernel=[3, 2])]),
    ("conv2d_groups", [4, 8, 8], [conv(groups=2, filters=6)]),
    ("conv2d_depthwise", [4, 8, 8], [conv(groups=4, filters=4, padding=1)]),
    ("conv2d_depthwise_mult2_s2", [4, 9, 9], [conv(groups=4, filters=8, stride=2, padding="same")]),
    ("conv2d_no_bias_relu", [3, 6, 6], [conv(use_bias=False, activation="relu")]),
    ("conv1d_same_s2", [3, 10], [{"type": "conv1d", "filters": 5, "kernel": 4, "stride": 2, "padding": "same"}]),
    ("conv1d_depthwise", [4, 11], [{"type": "conv1d", "filters": 4, "kernel": 3, "groups": 4, "padding": 1}]),
    ("conv_transpose2d", [4, 5, 5], [{"type": "conv_transpose2d", "filters": 3, "kernel": 3, "stride": 2}]),
    ("conv_transpose2d_pad_outpad", [4, 5, 6], [{"type": "conv_transpose2d", "filters": 3, "kernel": 3,
                                                 "stride": 2, "padding": 1, "output_padding": 1}]),
    ("maxpool2d", [3, 8, 8], [pool("maxpool2d")]),
    ("maxpool2d_pad", [3, 8, 8], [pool("maxpool2d", padding=1)]),
    ("maxpool2d_ceil", [3, 8, 8], [pool("maxpool2d", ceil_mode=True)]),
    ("maxpool2d_ceil_pad_odd", [3, 9, 10], [pool("maxpool2d", ceil_mode=True, padding=1)]),
    ("maxpool1d_ceil", [3, 10], [pool("maxpool1d", ceil_mode=True)]),
    ("avgpool2d", [3, 8, 8], [pool("avgpool2d", kernel=2)]),
    ("avgpool2d_pad_include", [3, 8, 8], [pool("avgpool2d", padding=1)]),
    ("avgpool2d_pad_exclude", [3, 8, 8], [pool("avgpool2d", padding=1, count_include_pad=False)]),
    ("avgpool2d_ceil_include", [3, 8, 9], [pool("avgpool2d", ceil_mode=True, padding=1)]),
    ("avgpool2d_ceil_exclude", [3, 8, 9], [pool("avgpool2d", ceil_mode=True, padding=1, count_include_pad=False)]),
    ("avgpool1d_ceil", [3, 10], [pool("avgpool1d", ceil_mode=True)]),
    ("global_avgpool", [3, 5, 6], [{"type": "global_avgpool"}]),
    ("global_maxpool", [3, 5, 6], [{"type": "global_maxpool"}]),
    ("global_avgpool_1d", [3, 7], [{"type": "global_avgpool"}]),
    ("adaptive_avgpool", [3, 5, 6], [{"type": "adaptive_avgpool"}, {"type": "flatten"}]),
    ("groupnorm", [6, 4, 5], [{"type": "groupnorm", "groups": 3}]),
    ("groupnorm_seq", [8, 5], [{"type": "groupnorm", "groups": 2, "eps": 1e-3}]),
    ("zero_pad", [3, 4, 5], [{"type": "zero_pad", "padding": [[1, 0], [2, 3]]}]),
    ("zero_pad_1d", [3, 4], [{"type": "zero_pad", "padding": 2}]),
    ("upsample_nearest", [3, 4, 5], [{"type": "upsample", "scale": 2}]),
    ("upsample_nearest_1d", [3, 4], [{"type": "upsample", "scale": 3}]),
    ("upsample_bilinear", [3, 4, 5], [{"type": "upsample", "scale": [2, 3], "mode": "bilinear"}]),
    ("upsample_bilinear_corners", [3, 4, 5], [{"type": "upsample", "scale": 2, "mode": "bilinear",
                                              "align_corners": True}]),
    ("add", [3, 6, 6], two_branches("add")),
    ("multiply", [3, 6, 6], two_branches("multiply")),
    ("concat_channels", [3, 6, 6], two_branches("concat", axis=1)),
    ("concat_width", [3, 6, 6], two_branches("concat", axis=-1)),
    ("concat_features", [5], [{"type": "dense", "units": 3, "name": "a"},
                              {"type": "dense", "units": 2, "inputs": ["x"]},
                              {"type": "concat", "inputs": ["a", "dense_1"], "axis": 1}]),
    ("relu6", [3, 7], [{"type": "activation", "activation": "relu6"}]),
    ("conv_bn_flatten_dense", [3, 8, 8], [conv(padding="same", stride=2), {"type": "batchnorm"},
                                          {"type": "activation", "activation": "relu"}, {"type": "flatten"},
                                          {"type": "dense", "units": 5}]),
]

SEQ = [8, 6]  # [T, features]
CASES += [
    ("lstm_last", SEQ, [{"type": "lstm", "units": 5}]),
    ("lstm_sequences", SEQ, [{"type": "lstm", "units": 5, "return_sequences": True}]),
    ("lstm_bidirectional", SEQ, [{"type": "lstm", "units": 4, "bidirectional": True}]),
    ("lstm_bidirectional_sequences", SEQ, [{"type": "lstm", "units": 4, "bidirectional": True,
                                            "return_sequences": True}]),
    ("gru_last", SEQ, [{"type": "gru", "units": 5}]),
    ("gru_bidirectional_sequences", SEQ, [{"type": "gru", "units": 4, "bidirectional": True,
                                           "return_sequences": True}]),
    ("attention", SEQ, [{"type": "attention", "heads": 2}]),
    ("attention_causal", SEQ, [{"type": "attention", "heads": 3, "causal": True}]),
    ("positional_embedding", SEQ, [{"type": "positional_embedding", "max_length": 10}]),
    ("sequence_mean", SEQ, [{"type": "sequence_mean"}]),
]
TOKEN_CASES = [
    ("embedding", [7], [{"type": "embedding", "vocabulary": 11, "units": 4}]),
    ("embedding_lstm", [7], [{"type": "embedding", "vocabulary": 11, "units": 4},
                             {"type": "gru", "units": 3, "bidirectional": True}]),
]

# Known gaps: case id -> (backend, the start of the error that backend raises instead of building).
UNSUPPORTED: dict[str, tuple[str, str]] = {
    "upsample_bilinear_corners": ("keras", "layers[0].align_corners: the keras backend has no bilinear upsampling "
                                           "with align_corners=true"),
}

CASES += [
    ("maxpool2d_ceil_drops_last_window", [3, 5, 5], [{"type": "maxpool2d", "kernel": 2, "stride": 2, "padding": 1,
                                                      "ceil_mode": True}]),
    ("avgpool2d_ceil_drops_last_window", [3, 5, 5], [{"type": "avgpool2d", "kernel": 2, "stride": 2, "padding": 1,
                                                      "ceil_mode": True}]),
    ("avgpool1d_ceil_drops_exclude", [3, 5], [{"type": "avgpool1d", "kernel": 2, "stride": 2, "padding": 1,
                                               "ceil_mode": True, "count_include_pad": False}]),
    ("conv_transpose2d_kernel_below_stride", [4, 5, 5], [{"type": "conv_transpose2d", "filters": 3, "kernel": 2,
                                                          "stride": 3}]),
    ("conv2d_stride_and_dilation", [3, 12, 12], [conv(dilation=2, stride=2, padding=1)]),
]
UNSUPPORTED["conv2d_stride_and_dilation"] = (
    "keras", "layers[0].dilation: the keras backend cannot combine stride > 1 with dilation > 1")


def _group_cases():
    """Rows from every ``parity_cases_<group>.py`` beside this file, found without a list to keep.

    A group module defines CASES (float32 input) and may define TOKEN_CASES (int64 input) and
    UNSUPPORTED. Group rows run at batch 1 and 3, so batch-dependent lowerings are caught.
    """
    import importlib
    from pathlib import Path

    cases, tokens = [], []
    for path in sorted(Path(__file__).parent.glob("parity_cases_*.py")):
        module = importlib.import_module(path.stem)
        cases += getattr(module, "CASES", [])
        tokens += getattr(module, "TOKEN_CASES", [])
        UNSUPPORTED.update(getattr(module, "UNSUPPORTED", {}))
    return cases, tokens


GROUP_CASES, GROUP_TOKEN_CASES = _group_cases()
