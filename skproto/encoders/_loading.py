"""Lazy, offline-safe loading of open_clip models, shared by the encoders.

Nothing here imports torch or open_clip at module import time: ``import
skproto.encoders`` works without them, and the first model load raises a clear
:class:`ImportError` naming the ``clip`` extra.
"""

import os
import socket
import threading
import urllib.parse
import urllib.request
import weakref
from pathlib import Path

from .._config import resolve_device_name

_INSTALL_HINT = "Install them with: pip install 'skproto[clip]'"
_LOCAL_DIR = "local-dir:"
_HF_HUB = "hf-hub:"
# The weight files open_clip looks for in a local-dir: folder.
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pth")

# Models shared by every live encoder with the same loading parameters (an image
# and a text encoder of one CLIP share its weights). Weak values: a model is freed
# when the last encoder holding it is.
_LOADED = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def require_open_clip(owner):
    """Import and return ``(torch, open_clip)``, or raise a clear ImportError."""
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise ImportError(
            f"{owner} needs the optional dependencies torch and open_clip_torch, "
            f"which could not be imported ({exc}). {_INSTALL_HINT}"
        ) from exc
    return torch, open_clip


def resolve_device(torch, device):
    """The torch.device for ``device``, with skproto's one device validator.

    ``"auto"`` is ``"cuda"`` when available, else ``"cpu"``; ``"cuda"``, ``"cuda:N"``
    and ``"mps"`` must exist on this machine (see
    :func:`skproto._config.resolve_device_name`).
    """
    return torch.device(resolve_device_name(device))


def hub_offline():
    """True when Hugging Face Hub access is switched off (HF_HUB_OFFLINE and friends)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hf_cached(repo_id, filename, cache_dir):
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    names = [filename]
    if filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    for name in names:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(hit, str) and os.path.isfile(hit):
            return True
    return False


def _tag_is_cached(cfg, cache_dir):
    """Whether the weights of a pretrained tag are on disk already (best effort)."""
    if cfg.get("file"):
        return os.path.isfile(cfg["file"])
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)
        return _hf_cached(repo_id, filename or "open_clip_pytorch_model.bin", cache_dir)
    url = cfg.get("url", "")
    if url:
        root = cache_dir or os.path.expanduser("~/.cache/clip")
        return os.path.isfile(os.path.join(root, os.path.basename(url)))
    return False


def _offline_error(what, model_name, pretrained):
    return FileNotFoundError(
        f"The weights of model_name={model_name!r}, pretrained={pretrained!r} ({what}) are "
        "not in the local cache and Hugging Face Hub access is switched off "
        "(HF_HUB_OFFLINE=1). Download them once with network access, or point "
        "`pretrained` at a local checkpoint file, or use model_name='local-dir:PATH' "
        "(a folder with open_clip_config.json and open_clip_pytorch_model.bin), or "
        "pretrained=None for random weights."
    )


def _download_host(cfg):
    """(host, port) that a download of this tag would contact first."""
    if cfg is not None and cfg.get("url") and not cfg.get("hf_hub"):
        url = cfg["url"]
    else:
        url = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)


def probe_network(cfg, model_name, pretrained, timeout=3.0):
    """One short connection attempt before a download, so that a machine without
    network fails in seconds instead of sitting in the downloaders' retry loops."""
    if urllib.request.getproxies():  # a proxy decides; let the downloader try
        return
    host, port = _download_host(cfg)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"The weights of model_name={model_name!r}, pretrained={pretrained!r} are not "
            f"in the local cache and {host}:{port} cannot be reached ({exc}). Connect to "
            "the network once to download them, or point `pretrained` at a local "
            "checkpoint file, or use model_name='local-dir:PATH'; set HF_HUB_OFFLINE=1 "
            "to never try the network."
        ) from exc


def check_source(open_clip, model_name, pretrained, cache_dir):
    """Fail fast, before any network access, on a source that cannot be loaded."""
    if model_name.startswith(_LOCAL_DIR):
        folder = Path(model_name[len(_LOCAL_DIR) :])
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(
                f"model_name={model_name!r}: {folder} must be a folder holding "
                "open_clip_config.json (and the weights, open_clip_pytorch_model.bin "
                "or open_clip_model.safetensors)."
            )
        # open_clip would only log a warning and go on with random weights: a
        # silent wrong model. (pretrained=None is the way to ask for random weights.)
        if not any(any(folder.glob(pattern)) for pattern in _WEIGHT_FILES):
            raise FileNotFoundError(
                f"model_name={model_name!r}: {folder} holds open_clip_config.json but no "
                "weights file (*.safetensors, *.bin or *.pth, e.g. "
                "open_clip_pytorch_model.bin or open_clip_model.safetensors)."
            )
        return
    if model_name.startswith(_HF_HUB):
        repo_id = model_name[len(_HF_HUB) :]
        if not _hf_cached(repo_id, "open_clip_config.json", cache_dir):
            if hub_offline():
                raise _offline_error("a Hugging Face Hub repository", model_name, pretrained)
            probe_network(None, model_name, pretrained)
        return
    name = model_name.replace("/", "-")
    if open_clip.get_model_config(name) is None:
        raise ValueError(
            f"Unknown open_clip model_name={model_name!r}. Use one of "
            "open_clip.list_models(), a 'local-dir:PATH' folder or an 'hf-hub:org/repo' id."
        )
    if pretrained is None or os.path.isfile(pretrained):
        return
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        raise FileNotFoundError(
            f"pretrained={pretrained!r} is neither an existing checkpoint file nor a "
            f"pretrained tag of {model_name!r} (known tags: "
            f"{open_clip.list_pretrained_tags_by_model(name)})."
        )
    if not _tag_is_cached(cfg, cache_dir):
        if hub_offline():
            raise _offline_error("a named pretrained tag", model_name, pretrained)
        probe_network(cfg, model_name, pretrained)


def _file_stamp(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def source_fingerprint(model_name, pretrained):
    """What identifies the weights: names, plus size and mtime of local files."""
    stamps = []
    if model_name.startswith(_LOCAL_DIR):
        folder = Path(model_name[len(_LOCAL_DIR) :])
        if folder.is_dir():
            stamps = [_file_stamp(p) for p in sorted(folder.iterdir()) if p.is_file()]
    elif pretrained is not None:
        stamps = [_file_stamp(pretrained)]
    return (model_name, None if pretrained is None else str(pretrained), tuple(stamps))


def _describe_source(model_name, pretrained, cache_dir):
    """The file(s) a load reads, in words, for the error message."""
    if model_name.startswith(_LOCAL_DIR):
        folder = Path(model_name[len(_LOCAL_DIR) :])
        files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return f"the folder {str(folder)!r} (holding {', '.join(files) or 'no files'})"
    if model_name.startswith(_HF_HUB):
        return (
            f"the files of the Hugging Face Hub repository {model_name[len(_HF_HUB) :]!r} "
            f"(cache_dir={cache_dir!r})"
        )
    if pretrained is None:
        return "no checkpoint (random weights)"
    if os.path.isfile(pretrained):
        return f"the checkpoint file {pretrained!r}"
    return f"the weights of the pretrained tag {pretrained!r} (cache_dir={cache_dir!r})"


def load_error(exc, model_name, pretrained, cache_dir):
    """One error for every way open_clip can fail to build or load a model.

    It names the file(s) and the model and says what is wrong in words; the
    caller chains the original exception. An OSError (permissions, network)
    stays an OSError; anything else about the content of the file (a pickle, an
    ``.npz``, a truncated download, weights of another architecture) is a
    ValueError: the file is a bad value for ``pretrained`` / ``model_name``.
    """
    import pickle

    source = _describe_source(model_name, pretrained, cache_dir)
    if isinstance(exc, pickle.UnpicklingError):
        hint = (
            "The file holds pickled Python objects besides tensors. Checkpoints are "
            "read with torch.load(weights_only=True), which refuses them because "
            "unpickling can run code; re-save only the weights, with "
            "torch.save(model.state_dict(), path) or as a .safetensors file."
        )
    elif isinstance(exc, OSError):
        hint = (
            "If the network is unavailable, set HF_HUB_OFFLINE=1 to fail immediately, "
            "and load the weights from a local file or a 'local-dir:PATH' folder."
        )
    else:
        hint = (
            "The weights must be a complete open_clip checkpoint of this architecture "
            "(a state_dict saved with torch.save, or a .safetensors file) whose tensor "
            "names and shapes match model_name; a truncated download, another file "
            "format (an .npz, a pickle) or the weights of another model fail here."
        )
    message = (
        f"Could not load {source} into the open_clip model model_name={model_name!r}. "
        f"{hint} The error was: {type(exc).__name__}: {exc}"
    )
    return (OSError if isinstance(exc, OSError) else ValueError)(message)


class LoadedModel:
    """A loaded open_clip model with its preprocessing and (lazily) its tokenizer."""

    def __init__(self, model, preprocess, model_name, cache_dir, device, input_dtype):
        self.model = model
        self.preprocess = preprocess
        self.model_name = model_name
        self.cache_dir = cache_dir
        self.device = device
        self.input_dtype = input_dtype
        self.embed_dim = _embed_dim(model)
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()

    @property
    def tokenizer(self):
        # Built on first use: only text encoders need it (reading the BPE vocab
        # takes a noticeable fraction of a second).
        if self._tokenizer is None:
            import open_clip

            with self._tokenizer_lock:
                if self._tokenizer is None:
                    self._tokenizer = open_clip.get_tokenizer(
                        self.model_name, cache_dir=self.cache_dir
                    )
        return self._tokenizer


def _embed_dim(model):
    for owner, attr in (("visual", "output_dim"), ("text", "output_dim")):
        value = getattr(getattr(model, owner, None), attr, None)
        if isinstance(value, int):
            return value
    projection = getattr(model, "text_projection", None)
    if projection is not None and hasattr(projection, "shape"):
        return int(projection.shape[-1])
    return None


def load_model(owner, model_name, pretrained, device, precision, cache_dir):
    """Load (or reuse) an open_clip model in eval mode, never touching the network
    unless a hub tag was named and the hub is reachable."""
    torch, open_clip = require_open_clip(owner)
    device = resolve_device(torch, device)
    pretrained = None if pretrained is None else os.fspath(pretrained)
    cache_dir = None if cache_dir is None else os.fspath(cache_dir)
    key = (source_fingerprint(model_name, pretrained), str(device), precision, cache_dir)
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        check_source(open_clip, model_name, pretrained, cache_dir)
        # Random initialisation (pretrained=None, or the layers a checkpoint then
        # overwrites) is drawn from a fixed seed in a forked RNG: equal parameters
        # give equal models (clones, pickles, processes) and the caller's global
        # torch RNG is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name,
                    pretrained=pretrained,
                    precision=precision,
                    device=device,
                    cache_dir=cache_dir,
                    # No download of base tower weights for a randomly initialised model.
                    pretrained_text=pretrained is not None,
                )
            except (ImportError, MemoryError, torch.cuda.OutOfMemoryError):
                # A missing optional package or a full device is not a bad file:
                # those errors already say what to do.
                raise
            except Exception as exc:
                raise load_error(exc, model_name, pretrained, cache_dir) from exc
        model.eval()
        input_dtype = open_clip.get_input_dtype(precision) or torch.float32
        loaded = LoadedModel(model, preprocess, model_name, cache_dir, device, input_dtype)
        _LOADED[key] = loaded
        return loaded
