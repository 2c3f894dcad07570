"""A tiny random open_clip model written to a folder, to try the encoders offline."""

import json
from numbers import Integral
from pathlib import Path

from ._loading import require_open_clip

# About 1.7 million parameters: loads and encodes in well under a second on a CPU.
TINY_MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 32,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 2,
    },
}


def make_tiny_open_clip(path, *, random_state=0):
    """Write a tiny open_clip model with random weights; return its ``model_name``.

    The folder gets ``open_clip_config.json`` and ``open_clip_pytorch_model.bin``, the
    layout open_clip loads with ``model_name="local-dir:PATH"``, so the returned name
    works in :class:`OpenCLIPImageEncoder`, :class:`OpenCLIPTextEncoder`, ``skproto
    encode --model`` and ``open_clip.create_model_and_transforms`` alike, without
    network. The model is a 2-layer ViT (32x32 images, 8x8 patches) and a 2-layer text
    transformer with CLIP's tokenizer, embedding dimension 32. Its embeddings mean
    nothing: it is for trying the API, tests and pipelines, not for accuracy (use a
    pretrained tag such as ``model_name="ViT-B-32", pretrained="laion2b_s34b_b79k"``).

    Parameters
    ----------
    path : str or path-like
        Folder to write (created if missing; the two files are overwritten).
    random_state : int, default=0
        Seed of the random weights: the same seed writes the same model.

    Returns
    -------
    model_name : str
        ``"local-dir:" + absolute path of the folder``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skproto.encoders import OpenCLIPImageEncoder, make_tiny_open_clip
    >>> name = make_tiny_open_clip(tempfile.mkdtemp())
    >>> name.startswith("local-dir:")
    True
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    >>> OpenCLIPImageEncoder(name, device="cpu").transform(images).shape
    (3, 32)
    """
    if not isinstance(random_state, Integral) or isinstance(random_state, bool):
        raise TypeError(f"random_state must be an int, got {random_state!r}.")
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path must be a str or path-like, got {path!r}.")
    torch, open_clip = require_open_clip("make_tiny_open_clip")
    folder = Path(path).resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path {str(folder)!r} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    # The global torch generator is left as it was: only this model's init is seeded.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(random_state))
        model = open_clip.model.CLIP(**TINY_MODEL_CFG)
    config = {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return f"local-dir:{folder}"
