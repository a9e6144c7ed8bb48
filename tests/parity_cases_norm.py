"""Parity rows for issue 9: activations of the registry, prelu, layernorm over any axes, rmsnorm,
adaptive pooling to any size, stochastic depth. Odd and even sizes; run at batch 1 and 3."""


def act(name, **kw):
    return {"type": "activation", "activation": name, **kw}


def conv(**kw):
    return {"type": "conv2d", "filters": 4, "kernel": 3, **kw}


CASES = [
    # the new activations, standalone and fused, on odd and even sizes
    *[(f"act_{a}", [3, 7], [act(a)]) for a in ("hardswish", "hardsigmoid", "mish", "softplus")],
    *[(f"act_{a}_even", [4, 6, 6], [act(a)]) for a in ("hardswish", "hardsigmoid", "mish", "softplus")],
    *[(f"dense_fused_{a}", [9], [{"type": "dense", "units": 6, "activation": a}])
      for a in ("hardswish", "hardsigmoid", "mish", "softplus")],
    *[(f"conv2d_fused_{a}", [3, 7, 6], [conv(activation=a)])
      for a in ("hardswish", "hardsigmoid", "mish", "softplus")],
    ("softplus_beta_threshold", [3, 7], [{"type": "dense", "units": 8, "kernel_initializer": "normal"},
                                         act("softplus", beta=2.0, threshold=1.5)]),
    ("softplus_threshold_low", [10], [{"type": "dense", "units": 8, "kernel_initializer": "normal"},
                                      act("softplus", threshold=0.5)]),
    # fixes found by differential testing
    ("conv2d_fused_softmax_logical_axis", [3, 6, 6], [conv(activation="softmax")]),
    ("conv1d_fused_softmax_logical_axis", [3, 7], [{"type": "conv1d", "filters": 4, "kernel": 3,
                                                     "activation": "softmax"}]),
    ("conv2d_softmax_axis1_after_conv", [3, 6, 5], [conv(), act("softmax", axis=1)]),
    ("leaky_relu_negative_slope", [3, 7], [act("leaky_relu", negative_slope=-0.3)]),
    ("leaky_relu_negative_slope_image", [3, 5, 6], [conv(), act("leaky_relu", negative_slope=-1.5)]),
]

CASES += [
    # prelu: per channel and shared, on ranks 1 to 3
    ("prelu_features", [7], [{"type": "prelu"}]),
    ("prelu_seq", [4, 5], [{"type": "prelu"}]),
    ("prelu_image", [3, 5, 6], [{"type": "prelu"}]),
    ("prelu_after_conv", [3, 7, 7], [conv(), {"type": "prelu"}]),
    ("prelu_shared", [3, 5, 6], [{"type": "prelu", "shared": True}]),
    ("prelu_shared_features", [6], [{"type": "prelu", "shared": True}]),
    # layernorm over any axes
    ("layernorm_odd", [7], [{"type": "layernorm"}]),
    ("layernorm_channels_nchw", [4, 5, 6], [{"type": "layernorm", "axes": [1], "eps": 1e-6}]),
    ("layernorm_channels_after_conv", [3, 7, 6], [conv(), {"type": "layernorm", "axes": [1], "eps": 1e-6}]),
    ("layernorm_last_two", [3, 5, 4], [{"type": "layernorm", "axes": [-2, -1]}]),
    ("layernorm_last_two_after_conv", [3, 7, 6], [conv(), {"type": "layernorm", "axes": [-2, -1]}]),
    ("layernorm_axes_1_3", [3, 4, 5], [{"type": "layernorm", "axes": [1, 3]}]),
    ("layernorm_axes_3_1_after_conv", [3, 6, 7], [conv(), {"type": "layernorm", "axes": [3, 1]}]),
    ("layernorm_all_axes", [2, 3, 5], [{"type": "layernorm", "axes": [1, 2, 3]}]),
    ("layernorm_seq_axis1", [6, 5], [{"type": "layernorm", "axes": [1]}]),
    # rmsnorm
    ("rmsnorm", [8], [{"type": "rmsnorm"}]),
    ("rmsnorm_odd_rank3", [5, 7], [{"type": "rmsnorm", "eps": 1e-5}]),
    ("rmsnorm_channels_after_conv", [3, 7, 6], [conv(), {"type": "rmsnorm", "axes": [1]}]),
    ("rmsnorm_last_two", [3, 4, 5], [{"type": "rmsnorm", "axes": [-2, -1]}]),
    # adaptive pooling to any size: uneven bins (overlapping), even bins, larger than the input, 1-D
    ("adaptive_avgpool_7x7_from_10x9", [3, 10, 9], [{"type": "adaptive_avgpool", "output_size": [7, 7]}]),
    ("adaptive_avgpool_3x2_from_6x6", [3, 6, 6], [{"type": "adaptive_avgpool", "output_size": [3, 2]}]),
    ("adaptive_avgpool_int_5", [2, 7, 8], [{"type": "adaptive_avgpool", "output_size": 5}]),
    ("adaptive_avgpool_upsizes", [2, 3, 4], [{"type": "adaptive_avgpool", "output_size": [5, 6]}]),
    ("adaptive_avgpool_1d", [3, 11], [{"type": "adaptive_avgpool", "output_size": 4}]),
    ("adaptive_avgpool_1d_even", [3, 12], [{"type": "adaptive_avgpool", "output_size": [4]}]),
    ("adaptive_avgpool_one_after_conv", [3, 7, 6], [conv(), {"type": "adaptive_avgpool", "output_size": [1, 1]},
                                                    {"type": "flatten"}]),
    ("adaptive_maxpool_one", [3, 5, 6], [{"type": "adaptive_maxpool"}, {"type": "flatten"}]),
    ("adaptive_maxpool_7x7_from_10x9", [3, 10, 9], [{"type": "adaptive_maxpool", "output_size": [7, 7]}]),
    ("adaptive_maxpool_2x3_from_6x6", [3, 6, 6], [{"type": "adaptive_maxpool", "output_size": [2, 3]}]),
    ("adaptive_maxpool_1d", [3, 11], [{"type": "adaptive_maxpool", "output_size": 3}]),
    ("adaptive_maxpool_after_conv", [3, 9, 8], [conv(), {"type": "adaptive_maxpool", "output_size": [4, 5]}]),
    # stochastic depth: identity at inference
    ("stochastic_depth_row", [3, 5, 6], [conv(), {"type": "stochastic_depth", "rate": 0.2}]),
    ("stochastic_depth_batch", [7], [{"type": "stochastic_depth", "rate": 0.5, "mode": "batch"},
                                     {"type": "dense", "units": 4}]),
]
