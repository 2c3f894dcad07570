"""skproto: prototype-based learning on frozen pretrained embeddings, the scikit-learn way."""

from . import io
from ._config import config_context, get_config, set_config
from ._parallel import install as _install_config_propagation
from .discovery import SemiSupervisedGMM
from .incremental import FeCAM, FeTrIL, NearestMeanClassifier, RanPAC, TEENCalibrator
from .ood import KNNOODDetector, MahalanobisOODDetector, MixturePrototypeOODDetector

__version__ = "0.1.0.dev0"

# GridSearchCV(n_jobs=...) and friends run their workers under the caller's config.
_install_config_propagation()

__all__ = [
    "FeCAM",
    "FeTrIL",
    "KNNOODDetector",
    "MahalanobisOODDetector",
    "MixturePrototypeOODDetector",
    "NearestMeanClassifier",
    "RanPAC",
    "SemiSupervisedGMM",
    "TEENCalibrator",
    "config_context",
    "get_config",
    "io",
    "set_config",
    "__version__",
]
