"""``skproto encode``: image files -> open_clip embeddings in an ``.npz`` file."""

import sys
from pathlib import Path

import numpy as np

# What a folder is searched for (lower-case suffixes); files named explicitly are
# always taken, whatever their suffix.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def find_images(inputs):
    """Image files named by ``inputs``: files as given, folders searched recursively.

    Parameters
    ----------
    inputs : list of str or path-like
        Files and folders. In a folder, files whose suffix is in ``IMAGE_SUFFIXES``
        (any case) are taken, in sorted path order; hidden files and folders are
        skipped.

    Returns
    -------
    paths : list of pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skproto.cli._encode import find_images
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ["cat/1.png", "cat/notes.txt", "dog/2.JPG"]:
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     _ = (root / name).write_bytes(b"")
    >>> [str(p.relative_to(root)) for p in find_images([root])]
    ['cat/1.png', 'dog/2.JPG']
    """
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
            if not found:
                raise ValueError(
                    f"folder {str(item)!r} holds no image file "
                    f"({', '.join(IMAGE_SUFFIXES)})."
                )
            paths.extend(found)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such file or folder: {str(item)!r}.")
    return paths


def run_encode(inputs, *, model, output, pretrained=None, labels_from_folders=False,
               batch_size=64, device="auto", n_jobs=None, precision="fp32",
               normalize=True, progress=None, cache_dir=None, file=None):
    """Embed image files with a frozen open_clip image tower and save them.

    Parameters
    ----------
    inputs : list of str or path-like
        Image files and folders (see :func:`find_images`).
    model : str
        ``model_name`` of :class:`~skproto.encoders.OpenCLIPImageEncoder`: an
        open_clip architecture (``"ViT-B-32"``), ``"local-dir:PATH"`` or
        ``"hf-hub:org/repo"``.
    output : str or path-like
        The ``.npz`` file to write (``.npz`` is appended if missing). It holds ``X``
        (float32 embeddings, one row per image, in the order of the images), ``paths``
        (the image files), ``y`` (with ``labels_from_folders``), ``model_name`` and
        ``pretrained``.
    pretrained : str or None, default=None
        Pretrained tag or checkpoint file (None: random weights).
    labels_from_folders : bool, default=False
        Label each image with the name of the folder that holds it
        (``root/<label>/image.jpg``, the layout of torchvision's ``ImageFolder``).
    batch_size, device, n_jobs, precision, normalize
        As in :class:`~skproto.encoders.OpenCLIPImageEncoder`.
    progress : bool or None, default=None
        Progress bar on stderr; None: only in a terminal.
    cache_dir : str or None, default=None
        Where open_clip looks for / downloads pretrained weights.
    file : file-like, default=None
        Where to print the summary; ``sys.stdout`` if None.

    Returns
    -------
    summary : dict
        ``output`` (the file written), ``n_images``, ``n_features``, ``classes``
        (sorted labels, or None).

    Examples
    --------
    >>> import io, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from skproto.cli._encode import run_encode
    >>> from skproto.encoders import make_tiny_open_clip
    >>> root = Path(tempfile.mkdtemp())
    >>> for label in ["bright", "dark"]:
    ...     (root / label).mkdir()
    ...     Image.new("RGB", (32, 32), (250, 250, 250) if label == "bright"
    ...               else (5, 5, 5)).save(root / label / "a.png")
    >>> summary = run_encode([root], model=make_tiny_open_clip(root / "model"),
    ...                      output=root / "emb.npz", labels_from_folders=True,
    ...                      device="cpu", file=io.StringIO())
    >>> summary["n_images"], summary["classes"]
    (2, ['bright', 'dark'])
    >>> sorted(np.load(root / "emb.npz").files)
    ['X', 'model_name', 'paths', 'pretrained', 'y']
    """
    from ..encoders import OpenCLIPImageEncoder

    file = sys.stdout if file is None else file
    paths = find_images(inputs)
    output = Path(output)
    if output.suffix != ".npz":
        output = output.with_name(output.name + ".npz")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"the folder of --output {str(output)!r} does not exist.")
    encoder = OpenCLIPImageEncoder(
        model, pretrained=pretrained, device=device, batch_size=batch_size,
        normalize=normalize, precision=precision, n_jobs=n_jobs, show_progress=progress,
        cache_dir=cache_dir,
    )
    X = encoder.transform(paths)
    arrays = {
        "X": X,
        "paths": np.array([str(p) for p in paths]),
        "model_name": np.array(model),
        "pretrained": np.array("" if pretrained is None else str(pretrained)),
    }
    classes = None
    if labels_from_folders:
        arrays["y"] = np.array([p.parent.name for p in paths])
        classes = np.unique(arrays["y"]).tolist()
    np.savez(output, **arrays)
    labels_txt = f", {len(classes)} classes from folder names" if classes else ""
    print(f"encoded {len(paths)} images{labels_txt} with {model}"
          f"{'' if pretrained is None else f' ({pretrained})'}", file=file)
    print(f"wrote {output}: X {X.shape} {X.dtype}"
          f"{', y' if classes else ''}, paths", file=file)
    return {"output": output, "n_images": len(paths), "n_features": X.shape[1],
            "classes": classes}
