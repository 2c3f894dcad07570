"""Out-of-distribution detection on frozen embeddings."""

from ._mixture_prototype import MixturePrototypeOODDetector

__all__ = ["MixturePrototypeOODDetector"]
