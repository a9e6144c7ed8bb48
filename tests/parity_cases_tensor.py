"""Parity rows of the tensor ops: permute, transpose, slice, split, select, parameter, broadcasting
arithmetic, concat with a parameter, reductions and matmul. Run at batch 1 and 3.

Many rows start with a convolution so that Keras feeds the op a channels-last value: axes,
broadcasting and permutes must then still mean what the spec says.
"""


def conv(filters=4, **kw):
    return {"type": "conv2d", "filters": filters, "kernel": 3, "padding": "same", **kw}


def param(name, shape, init="normal"):
    return {"type": "parameter", "name": name, "shape": shape, "initializer": init}


CASES = [
    # permute / transpose
    ("permute_convnext", [3, 5, 6], [conv(), {"type": "permute", "dims": [2, 3, 1]}, {"type": "layernorm"},
                                     {"type": "dense", "units": 4}, {"type": "permute", "dims": [3, 1, 2]},
                                     conv()]),
    ("permute_logical_rank3", [3, 4, 5], [{"type": "permute", "dims": [3, 1, 2]}]),
    ("permute_after_conv_odd", [2, 5, 7], [conv(filters=3), {"type": "permute", "dims": [3, 2, 1]}]),
    ("permute_seq", [7, 4], [{"type": "permute", "dims": [2, 1]}, {"type": "dense", "units": 3}]),
    ("transpose_last_two", [3, 4, 5], [{"type": "transpose", "axes": [2, -1]}]),
    ("transpose_after_conv", [3, 6, 5], [conv(), {"type": "transpose", "axes": [1, 3]}]),
    # slice / split / select
    ("slice_channels_after_conv", [3, 6, 7], [conv(filters=5), {"type": "slice", "axis": 1, "start": 1, "stop": 4}]),
    ("slice_width_step", [3, 5, 7], [{"type": "slice", "axis": 3, "start": -6, "step": 2}]),
    ("slice_width_step_after_conv", [3, 5, 8], [conv(), {"type": "slice", "axis": -1, "start": 1, "step": 3}]),
    ("slice_seq", [9, 4], [{"type": "slice", "axis": 1, "start": 2, "stop": -1}]),
    ("split_sections", [4, 6, 5], [{"type": "split", "name": "s", "axis": 1, "sections": 2},
                                   {"type": "subtract", "inputs": ["s.0", "s.1"]}]),
    ("split_sizes_after_conv", [3, 5, 6], [conv(filters=5), {"type": "split", "name": "s", "axis": 1,
                                                             "sizes": [2, 3]},
                                           {"type": "concat", "inputs": ["s.1", "s.0"], "axis": 1}]),
    ("split_width_odd", [2, 4, 7], [conv(filters=3), {"type": "split", "name": "s", "axis": 3, "sizes": [3, 4]},
                                    {"type": "reduce_sum", "inputs": ["s.1"], "axes": [3]}]),
    ("select_token", [5, 6], [{"type": "select", "axis": 1, "index": 0}]),
    ("select_spatial_after_conv", [3, 5, 6], [conv(), {"type": "select", "axis": 2, "index": -1}]),
    ("select_channel_after_conv", [3, 5, 6], [conv(), {"type": "select", "axis": 1, "index": 2}]),
    # roll (Swin's shifted windows: H and W by minus half a window)
    ("roll_tokens_odd", [5, 6], [{"type": "roll", "shifts": [2], "axes": [1]}]),
    ("roll_swin_after_conv", [3, 6, 7], [conv(), {"type": "roll", "shifts": [-3, -3], "axes": [2, 3]}, conv()]),
    ("roll_channels_and_wrap", [4, 5, 6], [conv(), {"type": "roll", "shifts": [9, -1], "axes": [1, -1]}]),
    ("roll_by_size_is_identity", [3, 4], [{"type": "roll", "shifts": [4], "axes": [-1]},
                                          {"type": "dense", "units": 3}]),
    # parameter and broadcasting
    ("param_add_vector", [4, 5], [param("bias", [5]), {"type": "add", "inputs": ["x", "bias"]}]),
    ("param_layer_scale_after_conv", [3, 5, 6], [conv(), param("layer_scale", [4, 1, 1]),
                                                 {"type": "multiply", "inputs": ["conv2d_1", "layer_scale"]}]),
    ("param_pos_embedding", [6, 4], [param("encoder.pos_embedding", [1, 6, 4]),
                                     {"type": "add", "inputs": ["x", "encoder.pos_embedding"]}]),
    ("param_divide_after_conv", [3, 6, 5], [conv(), param("scale", [4, 1, 1], "ones"),
                                            {"type": "divide", "inputs": ["conv2d_1", "scale"]}]),
    ("param_times_param", [4, 5], [param("a", [5]), param("b", [4, 1]),
                                   {"type": "multiply", "name": "ab", "inputs": ["a", "b"]},
                                   {"type": "add", "inputs": ["x", "ab"]}]),
    ("concat_class_token", [6, 4], [param("class_token", [1, 1, 4]),
                                    {"type": "concat", "inputs": ["class_token", "x"], "axis": 1},
                                    {"type": "dense", "units": 3}, {"type": "select", "axis": 1, "index": 0}]),
    ("se_multiply_after_conv", [3, 6, 5], [conv(), {"type": "reduce_mean", "axes": [2, 3], "keepdims": True},
                                           {"type": "conv2d", "filters": 4, "kernel": 1},
                                           {"type": "activation", "activation": "sigmoid", "name": "gate"},
                                           {"type": "multiply", "inputs": ["conv2d_1", "gate"]}]),
    ("subtract_mean_width", [3, 4, 7], [conv(), {"type": "reduce_mean", "axes": [-1], "keepdims": True,
                                                 "name": "m"},
                                        {"type": "subtract", "inputs": ["conv2d_1", "m"]}]),
    ("add_three_broadcast", [3, 4, 5], [{"type": "reduce_max", "axes": [1], "keepdims": True, "name": "a"},
                                        {"type": "reduce_sum", "axes": [3], "keepdims": True, "name": "b",
                                         "inputs": ["x"]},
                                        {"type": "add", "inputs": ["x", "a", "b"]}]),
    ("divide_seq", [5, 4], [{"type": "activation", "activation": "sigmoid", "name": "d"},
                            {"type": "divide", "inputs": ["x", "d"]}]),
    # reductions
    ("reduce_mean_spatial", [3, 4, 5], [{"type": "reduce_mean", "axes": [2, 3]}]),
    ("reduce_max_channels_after_conv", [3, 5, 6], [conv(), {"type": "reduce_max", "axes": [1]}]),
    ("reduce_sum_width_after_conv", [3, 5, 6], [conv(), {"type": "reduce_sum", "axes": [-1]}]),
    ("reduce_mean_spatial_after_conv", [3, 6, 7], [conv(), {"type": "reduce_mean", "axes": [3, 2]}]),
    ("reduce_sum_seq_keepdims", [7, 4], [{"type": "reduce_sum", "axes": [1], "keepdims": True}]),
    # matmul
    ("matmul_3d", [5, 4], [{"type": "transpose", "axes": [1, 2], "name": "t"},
                           {"type": "matmul", "inputs": ["x", "t"]}]),
    ("matmul_4d", [2, 5, 4], [{"type": "transpose", "axes": [2, 3], "name": "t"},
                              {"type": "matmul", "inputs": ["x", "t"]}]),
    ("matmul_4d_broadcast", [2, 5, 4], [{"type": "slice", "axis": 1, "stop": 1, "name": "head"},
                                        {"type": "transpose", "axes": [2, 3], "name": "t"},
                                        {"type": "matmul", "inputs": ["x", "t"]}]),
    ("matmul_param", [5, 4], [param("w", [4, 3]), {"type": "matmul", "inputs": ["x", "w"]}]),
]
