"""Frozen open_clip encoders as scikit-learn transformers, and zero-shot prototypes.

Needs the optional ``clip`` extra (``pip install 'skproto[clip]'``): this package
imports without it, and loading a model raises an ImportError saying so.
"""

from ._image import OpenCLIPImageEncoder
from ._text import OpenCLIPTextEncoder
from ._tiny import make_tiny_open_clip
from ._zero_shot import zero_shot_prototypes

__all__ = [
    "OpenCLIPImageEncoder",
    "OpenCLIPTextEncoder",
    "make_tiny_open_clip",
    "zero_shot_prototypes",
]
