"""Metrics for incremental learning, category discovery and OOD detection."""

from ._clustering import cluster_accuracy
from ._incremental import (
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)
from ._ood import fpr_at_tpr, ood_report
from ._ood_display import OODScoreDisplay

__all__ = [
    "OODScoreDisplay",
    "average_incremental_accuracy",
    "cluster_accuracy",
    "forgetting",
    "fpr_at_tpr",
    "harmonic_mean_accuracy",
    "ood_report",
    "performance_drop",
]
