"""Metrics for incremental learning, category discovery and OOD detection."""

from ._incremental import (
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)

__all__ = [
    "average_incremental_accuracy",
    "forgetting",
    "harmonic_mean_accuracy",
    "performance_drop",
]
