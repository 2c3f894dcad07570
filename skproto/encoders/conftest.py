# The doctests of this package load open_clip models: skip them where the optional
# ``clip`` extra is not installed (the package itself imports without it).
import importlib.util

if any(importlib.util.find_spec(name) is None for name in ("torch", "open_clip")):
    collect_ignore_glob = ["_image.py", "_text.py", "_tiny.py", "_zero_shot.py"]
