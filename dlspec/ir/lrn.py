"""Local response normalisation and its channel window, re-exported from their definitions in dlspec/spec/lrn.py."""

from ..spec.lrn import LRN, lrn_window

__all__ = ["LRN", "lrn_window"]
