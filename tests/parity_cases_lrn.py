"""Parity rows for the lrn layer (torch.nn.LocalResponseNorm): odd and even window sizes, odd and even
channel counts, ranks 2 to 4, a window wider than the channels."""

CASES = [
    ("lrn_alexnet", [7, 6, 5], [{"type": "lrn", "size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}]),
    ("lrn_zfnet_strong", [8, 5, 6], [{"type": "lrn", "size": 5, "alpha": 0.5, "beta": 0.75, "k": 2.0}]),
    ("lrn_even_size", [6, 5, 5], [{"type": "lrn", "size": 4, "alpha": 0.3, "beta": 0.6}]),
    ("lrn_size_1", [3, 4, 4], [{"type": "lrn", "size": 1, "alpha": 0.5}]),
    ("lrn_wider_than_channels", [3, 5], [{"type": "lrn", "size": 7, "alpha": 0.8, "beta": 0.5, "k": 1.5}]),
    ("lrn_after_conv", [3, 7, 6], [{"type": "conv2d", "filters": 5, "kernel": 3},
                                   {"type": "lrn", "size": 3, "alpha": 0.2}]),
    ("lrn_rank4", [4, 3, 3, 4], [{"type": "lrn", "size": 2, "alpha": 0.4, "beta": 1.0}]),
]
