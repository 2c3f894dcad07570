"""skproto: prototype-based learning on frozen pretrained embeddings, the scikit-learn way."""

from . import io
from ._config import config_context, get_config, set_config
from .discovery import SemiSupervisedGMM
from .incremental import FeTrIL, NearestMeanClassifier, TEENCalibrator
from .ood import MixturePrototypeOODDetector

__version__ = "0.1.0.dev0"

__all__ = [
    "FeTrIL",
    "MixturePrototypeOODDetector",
    "NearestMeanClassifier",
    "SemiSupervisedGMM",
    "TEENCalibrator",
    "config_context",
    "get_config",
    "io",
    "set_config",
    "__version__",
]
