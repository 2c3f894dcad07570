"""Splitters and evaluation loops for incremental-learning protocols."""

from ._plot import IncrementalAccuracyDisplay
from ._split import ClassIncrementalSplit, FewShotIncrementalSplit
from ._validation import evaluate_incremental

__all__ = [
    "ClassIncrementalSplit",
    "FewShotIncrementalSplit",
    "IncrementalAccuracyDisplay",
    "evaluate_incremental",
]
