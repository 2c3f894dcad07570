# The encode doctests load an open_clip model: skip them where the optional ``clip``
# extra is not installed (the command line itself imports without it).
import importlib.util

if any(importlib.util.find_spec(name) is None for name in ("torch", "open_clip", "PIL")):
    collect_ignore_glob = ["_encode.py"]
