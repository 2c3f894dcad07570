"""Category discovery: clustering with known and novel classes."""

from ._semi_supervised_gmm import SemiSupervisedGMM

__all__ = ["SemiSupervisedGMM"]
