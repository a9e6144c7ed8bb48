"""Stage 7: training with one meaning in every backend (``dlspec train``)."""

from .loop import History, fit, prepare

__all__ = ["History", "fit", "prepare"]
