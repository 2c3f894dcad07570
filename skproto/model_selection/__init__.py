"""Splitters and evaluation loops for incremental-learning protocols."""

__all__ = []
