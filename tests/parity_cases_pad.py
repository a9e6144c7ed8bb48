"""Parity rows of `pad`: fixed widths, padding up to a multiple (odd and even sizes), a non-zero value, and
padding after a convolution, where Keras holds the value channels-last and pads it in that layout."""


def pad(axes, **attrs):
    return {"type": "pad", "axes": axes, **attrs}


RELU = {"type": "activation", "activation": "relu"}
CONV = {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}

CASES = [
    ("pad_fixed_widths", [3, 5, 4], [pad([1, -1], before=[1, 0], after=[2, 3])]),
    ("pad_to_even_odd_sizes", [7, 5, 6], [pad([1, 2], multiple=2), {"type": "layernorm"}]),
    ("pad_to_even_even_sizes", [8, 6, 6], [pad([1, 2], multiple=2), {"type": "layernorm"}]),  # no padding
    ("pad_value_and_multiple", [2, 5, 3], [pad([2], before=[1], multiple=4, value=-1.5)]),
    ("pad_after_conv", [3, 7, 5], [CONV, pad([2, 3], before=[1, 2], after=[0, 1]), RELU]),
    ("pad_channels_after_conv", [3, 5, 5], [CONV, pad([1], after=[2], value=0.5), CONV]),
    ("pad_rank1", [5], [pad([1], before=[2], multiple=3), {"type": "dense", "units": 4}]),
]
