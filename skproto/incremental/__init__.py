"""Class-incremental and few-shot class-incremental estimators."""

from ._nearest_mean import NearestMeanClassifier

__all__ = ["NearestMeanClassifier"]
