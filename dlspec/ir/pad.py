"""The `pad` op and its width rules, re-exported from their definition in dlspec/spec/pad.py."""

from ..spec.pad import Pad, pad_axes, pad_widths

__all__ = ["Pad", "pad_axes", "pad_widths"]
