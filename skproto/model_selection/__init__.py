"""Splitters and evaluation loops for incremental-learning protocols."""

from ._plot import IncrementalAccuracyDisplay
from ._protocol_estimator import IncrementalProtocolEstimator
from ._split import ClassIncrementalSplit, FewShotIncrementalSplit
from ._validation import evaluate_incremental

__all__ = [
    "ClassIncrementalSplit",
    "FewShotIncrementalSplit",
    "IncrementalAccuracyDisplay",
    "IncrementalProtocolEstimator",
    "evaluate_incremental",
]
