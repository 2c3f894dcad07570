"""Class-incremental and few-shot class-incremental estimators."""

from ._fecam import FeCAM, fecam_shrinkage
from ._fetril import FeTrIL, fetril_pseudo_features
from ._nearest_mean import NearestMeanClassifier
from ._ranpac import RanPAC
from ._teen import TEENCalibrator, teen_calibrate

__all__ = [
    "FeCAM",
    "FeTrIL",
    "NearestMeanClassifier",
    "RanPAC",
    "TEENCalibrator",
    "fecam_shrinkage",
    "fetril_pseudo_features",
    "teen_calibrate",
]
