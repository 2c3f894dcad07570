"""Metrics for incremental learning, category discovery and OOD detection."""

from ._clustering import cluster_accuracy

__all__ = ["cluster_accuracy"]
