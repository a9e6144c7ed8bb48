"""Swin's shifted-window attention op and its geometry (windows, relative position index, mask), re-exported
from their definitions in dlspec/spec/swin.py."""

from ..spec.swin import (
    MASKED,
    WindowAttention,
    Windows,
    compact,
    regions,
    relative_position_index,
    window_mask,
    windows,
)

__all__ = ["MASKED", "WindowAttention", "Windows", "compact", "regions", "relative_position_index", "window_mask",
           "windows"]
