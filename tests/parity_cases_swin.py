"""Parity rows of Swin's shifted-window attention (window_attention) and its patch merging (slices with step 2,
concat, layernorm, dense). Run at batch 1 and 3. Samples are [H, W, C]; rows that start with a convolution and a
permute hand Keras a value it held channels-last, which the op must see in its logical layout."""


def wattn(heads, window, shift=0):
    return {"type": "window_attention", "heads": heads, "window": window, "shift": shift}


def conv(filters=4):
    return {"type": "conv2d", "filters": filters, "kernel": 3, "padding": "same"}


TO_HWC = {"type": "permute", "dims": [2, 3, 1]}


def merge(prefix, units):
    """torchvision's PatchMerging on an [H, W, C] value named hwc with even H, W."""
    parts = []
    for i, (row, col) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        parts += [{"name": f"{prefix}r{i}", "type": "slice", "axis": 1, "start": row, "step": 2, "inputs": ["hwc"]},
                  {"name": f"{prefix}x{i}", "type": "slice", "axis": 2, "start": col, "step": 2}]
    return parts + [{"type": "concat", "axis": -1, "inputs": [f"{prefix}x{i}" for i in range(4)]},
                    {"type": "layernorm"}, {"type": "dense", "units": units, "use_bias": False}]


CASES = [
    ("wattn_even_no_shift", [8, 8, 6], [wattn(2, 4)]),
    ("wattn_even_shift", [8, 8, 6], [wattn(3, 4, 2)]),
    ("wattn_odd_padded_shift", [7, 9, 6], [wattn(3, [3, 4], [1, 2])]),
    ("wattn_window_covers_sample", [5, 6, 4], [wattn(2, 7, 3)]),  # padded to 7x7: no shift on either axis
    ("wattn_one_axis_shifted", [4, 9, 4], [wattn(1, [4, 3], [2, 1])]),  # H's padded size is its window
    ("wattn_after_conv", [3, 6, 10], [conv(6), TO_HWC, wattn(2, 3, 1), {"type": "dense", "units": 3}]),
    ("wattn_on_a_permuted_view", [3, 6, 4], [conv(4), TO_HWC, wattn(2, [3, 2])]),  # no padding, no roll
    ("wattn_swin_block", [3, 8, 8], [conv(8), TO_HWC, {"name": "hwc", "type": "layernorm"}, wattn(2, 4, 2),
                                     {"type": "add", "inputs": ["hwc", "window_attention_1"]}]),
    ("patch_merging_after_conv", [3, 6, 8], [conv(4), {"name": "hwc", **TO_HWC}, *merge("m", 6)]),
]
