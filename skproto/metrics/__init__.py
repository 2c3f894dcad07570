"""Metrics for incremental learning, category discovery and OOD detection."""

__all__ = []
