"""Class-incremental and few-shot class-incremental estimators."""

from ._fetril import FeTrIL, fetril_pseudo_features
from ._nearest_mean import NearestMeanClassifier
from ._teen import TEENCalibrator, teen_calibrate

__all__ = [
    "FeTrIL",
    "NearestMeanClassifier",
    "TEENCalibrator",
    "fetril_pseudo_features",
    "teen_calibrate",
]
