"""Out-of-distribution detection on frozen embeddings."""

from ._knn import KNNOODDetector
from ._mahalanobis import MahalanobisOODDetector
from ._mixture_prototype import MixturePrototypeOODDetector

__all__ = ["KNNOODDetector", "MahalanobisOODDetector", "MixturePrototypeOODDetector"]
