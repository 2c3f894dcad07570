"""Utilities shared by skproto's estimators, and the index of its public estimators."""

from ._estimator_index import all_estimators

__all__ = ["all_estimators"]
