# The doctests of this package save and load models with skops: skip them where the
# optional ``skops`` extra is not installed (the package itself imports without it).
import importlib.util

if importlib.util.find_spec("skops") is None:
    collect_ignore_glob = ["_skops.py"]
