"""Turning the image inputs the encoders accept into RGB PIL images.

Accepted items: file paths (``str`` or :class:`os.PathLike`), PIL images (any mode)
and uint8 arrays of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); a whole batch
may also be one uint8 array of shape (N, H, W, C). Grey, palette and RGBA images are
converted to RGB (the alpha channel is dropped) before open_clip's preprocessing.
"""

import os

import numpy as np


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow comes with torchvision
        raise ImportError(
            "Reading images needs pillow. Install it with: pip install 'skproto[clip]'"
        ) from exc
    return Image


def as_image_list(X):
    """Validate the container and return a list of items (each checked when loaded)."""
    if isinstance(X, (str, bytes, os.PathLike)) or _is_pil(X):
        raise TypeError(
            "X must be a sequence of images (paths, PIL images or uint8 arrays), not a "
            f"single {type(X).__name__}; wrap one image in a list: [image]."
        )
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # one-column DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"A DataFrame of images must have exactly one column, got {X.shape[1]}."
            )
        X = X.iloc[:, 0]
    if isinstance(X, np.ndarray) and X.dtype != object and X.dtype.kind not in "US":
        if X.ndim == 4:
            _check_pixels(X, "X")
            return list(X)
        raise ValueError(
            "A numeric array X must be a stack of images of shape (n_images, height, "
            f"width, channels), got shape {X.shape} and dtype {X.dtype}. Pass a single "
            "image as [image], and a list of images of different sizes as a list."
        )
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    try:
        items = list(X)
    except TypeError as exc:
        raise TypeError(
            f"X must be a sequence of images, got {type(X).__name__}."
        ) from exc
    if not items:
        raise ValueError("X is empty: at least one image is needed.")
    return items


def _is_pil(obj):
    Image = _pil()
    return isinstance(obj, Image.Image)


def _check_pixels(array, what):
    if array.dtype != np.uint8:
        raise TypeError(
            f"{what} is an array of dtype {array.dtype}; images given as arrays must be "
            "uint8 pixel values in [0, 255] (convert with "
            "(x * 255).round().astype(np.uint8) if they are floats in [0, 1])."
        )


def to_rgb_image(item, index):
    """Item ``index`` of X as an RGB PIL image; a clear error names a bad item."""
    Image = _pil()
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as image:
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"Could not read image X[{index}] = {item!r}: {exc}") from exc
    if isinstance(item, Image.Image):
        try:
            return item if item.mode == "RGB" else item.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"Could not convert the PIL image X[{index}] (mode {item.mode!r}) to RGB: "
                f"{exc}"
            ) from exc
    if isinstance(item, np.ndarray):
        _check_pixels(item, f"X[{index}]")
        array = item
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
            raise ValueError(
                f"X[{index}] has shape {item.shape}; an image array must be (height, "
                "width) grey, or (height, width, 1 | 3 | 4) grey, RGB or RGBA."
            )
        if min(array.shape[:2]) == 0:
            raise ValueError(f"X[{index}] is an empty image of shape {item.shape}.")
        image = Image.fromarray(np.ascontiguousarray(array))
        return image if image.mode == "RGB" else image.convert("RGB")
    raise TypeError(
        f"X[{index}] is a {type(item).__name__}; each image must be a file path, a PIL "
        "image or a uint8 array."
    )


def image_fingerprint(item):
    """What identifies an image for the embedding cache (cheap for files)."""
    Image = _pil()
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        try:
            stat = os.stat(path)
        except OSError:
            return ("path", path, None)
        return ("path", os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if isinstance(item, Image.Image):
        return ("pil", item.mode, item.size, item.tobytes())
    return item
