"""Stage 2: the typed spec (pydantic) and its validation into located errors."""

from .layers import LAYER_TYPES
from .model import Spec
from .validate import validate

__all__ = ["LAYER_TYPES", "Spec", "validate"]
