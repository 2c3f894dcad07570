"""Safe persistence of skproto models, on top of :mod:`skops.io`.

:func:`dump` writes a model (an estimator, a fitted ``Pipeline`` holding skproto
estimators, ...) in the skops format; :func:`load` reads it back without running any
code from the file: it accepts only the types that skops trusts by default (numpy,
scipy, scikit-learn, Python builtins) and the types defined in skproto
(:func:`trusted_types`). Needs the optional extra: ``pip install 'skproto[skops]'``.
"""

from ._skops import dump, load, trusted_types

__all__ = ["dump", "load", "trusted_types"]
