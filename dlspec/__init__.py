"""dlspec: one typed model spec, lowered to PyTorch, Keras and ONNX with identical meaning.

Importing dlspec and validating specs imports no deep-learning framework.
"""

from .api import Model, build, from_dict, generate, load, loads
from .errors import DataError, InternalError, MissingExtra, SpecError, TrainingDiverged, UsageError
from .onnx_import import import_onnx
from .weights import init_weights, load_weights, save_weights

__version__ = "0.1.0"

__all__ = ["DataError", "InternalError", "MissingExtra", "Model", "SpecError", "build", "from_dict", "generate",
           "import_onnx", "init_weights", "load", "load_weights", "loads", "save_weights", "TrainingDiverged",
           "UsageError"]
