"""Metrics for incremental learning, category discovery and OOD detection."""

from ._ood import fpr_at_tpr, ood_report
from ._ood_display import OODScoreDisplay

__all__ = [
    "OODScoreDisplay",
    "fpr_at_tpr",
    "ood_report",
]
