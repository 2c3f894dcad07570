"""Frozen open_clip image tower as a scikit-learn transformer."""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

from joblib import effective_n_jobs

from ._base import _BaseOpenCLIPEncoder
from ._images import as_image_list, image_fingerprint, to_rgb_image


class OpenCLIPImageEncoder(_BaseOpenCLIPEncoder):
    """Embed images with a frozen open_clip image tower (a stateless transformer).

    Images in, float32 embeddings out, inside a :class:`~sklearn.pipeline.Pipeline`
    that can be cloned, grid-searched, pickled and streamed (:meth:`fit` and
    :meth:`partial_fit` learn nothing and return ``self``).

    The model is loaded lazily, at :meth:`fit` or at the first :meth:`transform`,
    never in ``__init__``: :func:`~sklearn.base.clone`, ``get_params`` and
    ``set_params`` load nothing. Encoders alive in one process with the same
    loading parameters (``model_name``, ``pretrained``, ``device``, ``precision``,
    ``cache_dir``) share one model, also between image and text encoders. **A
    pickle stores the parameters, not the weights**: unpickling is instant and the
    model is loaded again, from the same source, on first use, so the file or
    cache named by ``pretrained`` must exist where the pickle is loaded.

    Each image goes through exactly open_clip's evaluation preprocessing (resize,
    center crop, normalise) after conversion to RGB, so the output equals
    ``model.encode_image(torch.stack([preprocess(img.convert("RGB")), ...]))``
    (L2-normalised when ``normalize=True``). Decoding and preprocessing run in
    ``n_jobs`` threads that prepare the next batches while the model runs on the
    current one.

    Parameters
    ----------
    model_name : str, default="ViT-B-32"
        Anything ``open_clip.create_model_and_transforms`` accepts: a built-in
        architecture (``open_clip.list_models()``), ``"local-dir:PATH"`` (a folder
        holding ``open_clip_config.json`` and ``open_clip_pytorch_model.bin``) or
        ``"hf-hub:org/repo"``.
    pretrained : str or path-like, default=None
        For a built-in architecture: a pretrained tag (``open_clip.list_pretrained()``,
        downloaded once into the Hugging Face cache, the only case where the network
        is used), or a local checkpoint file. ``None``: random weights, drawn from a
        fixed seed so that equal parameters give equal embeddings (for tests and
        benchmarks). Ignored by open_clip for ``local-dir:`` and ``hf-hub:`` names.
        With ``HF_HUB_OFFLINE=1`` a tag whose weights are not cached fails at once
        with a clear error instead of trying the network.
    device : str, default="auto"
        Torch device of the model: ``"auto"`` (CUDA if available, else CPU),
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...
    batch_size : int, default=64
        Images per forward pass.
    normalize : bool, default=True
        L2-normalise the embeddings (CLIP's convention). Keep it on in front of
        :class:`~skproto.NearestMeanClassifier`, which averages raw features: then
        image means and text prototypes (unit vectors, see
        :func:`zero_shot_prototypes`) are on the same scale.
    precision : {"fp32", "fp16", "bf16"}, default="fp32"
        Precision of the weights and inputs. The output is float32 in every case.
    n_jobs : int, default=None
        Threads that decode and preprocess images, overlapping the model.
        ``None`` or 1: in the calling thread, no overlap; -1: as many threads as
        CPUs. PyTorch's own thread settings are left untouched.
    show_progress : bool, default=None
        tqdm progress bar over the images. ``None``: shown only when stderr is a
        terminal and there is more than one batch.
    memory : str, path-like or joblib.Memory, default=None
        Cache of the embeddings of a whole ``transform`` call (like
        :class:`~sklearn.pipeline.Pipeline`'s ``memory``): the same inputs with the
        same model give the cached array without running the model. Files are
        identified by path, size and modification time; arrays and PIL images by
        their pixels.
        joblib stores the cache as pickle files, which run code when read: keep
        it in a directory only you can write.
    cache_dir : str or path-like, default=None
        Where open_clip downloads / finds pretrained weights (default: the Hugging
        Face cache).

    See Also
    --------
    OpenCLIPTextEncoder : The text tower.
    zero_shot_prototypes : Class prototypes from class names.

    References
    ----------
    .. [1] A. Radford et al. "Learning Transferable Visual Models From Natural
       Language Supervision", ICML 2021 (CLIP).
    .. [2] M. Cherti et al. "Reproducible scaling laws for contrastive
       language-image learning", CVPR 2023 (OpenCLIP).

    Examples
    --------
    From image files to predictions. Random weights keep this example offline; use
    for instance ``model_name="ViT-B-32", pretrained="laion2b_s34b_b79k"`` for real
    embeddings.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn.pipeline import make_pipeline
    >>> from skproto import NearestMeanClassifier
    >>> from skproto.encoders import OpenCLIPImageEncoder
    >>> rng = np.random.default_rng(0)
    >>> folder = Path(tempfile.mkdtemp())
    >>> files, labels = [], []
    >>> for i, label in enumerate(["bright", "bright", "dark", "dark"]):
    ...     pixels = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    ...     if label == "dark":
    ...         pixels //= 4
    ...     Image.fromarray(pixels).save(folder / f"img{i}.png")
    ...     files.append(folder / f"img{i}.png")
    ...     labels.append(label)
    >>> encoder = OpenCLIPImageEncoder("ViT-S-32", device="cpu")
    >>> encoder.transform(files).shape
    (4, 384)
    >>> clf = make_pipeline(encoder, NearestMeanClassifier())
    >>> clf.fit(files, labels).predict(files)
    array(['bright', 'bright', 'dark', 'dark'], dtype='<U6')
    >>> import shutil; shutil.rmtree(folder)

    PIL images, uint8 arrays and a stacked (N, H, W, 3) array work the same way.
    """

    _parameter_constraints = {
        **_BaseOpenCLIPEncoder._parameter_constraints,
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        model_name="ViT-B-32",
        *,
        pretrained=None,
        device="auto",
        batch_size=64,
        normalize=True,
        precision="fp32",
        n_jobs=None,
        show_progress=None,
        memory=None,
        cache_dir=None,
    ):
        self.model_name = model_name
        self.pretrained = pretrained
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.precision = precision
        self.n_jobs = n_jobs
        self.show_progress = show_progress
        self.memory = memory
        self.cache_dir = cache_dir

    def transform(self, X):
        """Embed images.

        Parameters
        ----------
        X : sequence of n_samples images, or uint8 array (n_samples, H, W, C)
            File paths (str or path-like), PIL images (any mode) or uint8 arrays
            (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); a one-column DataFrame or a
            (n_samples, 1) array of paths works too. Grey and RGBA images are
            converted to RGB (alpha dropped). A bad item raises an error naming it.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embed_dim), dtype float32
            L2-normalised when ``normalize=True``.
        """
        return super().transform(X)

    def _as_items(self, X):
        return as_image_list(X)

    def _fingerprint(self, item):
        return image_fingerprint(item)

    def _forward(self, loaded, batch):
        batch = batch.to(loaded.device, dtype=loaded.input_dtype)
        return loaded.model.encode_image(batch)

    def _iter_batches(self, items, loaded):
        """Yield stacked, preprocessed batches; with workers, two batches ahead."""
        import torch

        preprocess = loaded.preprocess

        def prepare(index):
            return preprocess(to_rgb_image(items[index], index))

        batches = self._batches(len(items))
        n_workers = 1 if self.n_jobs is None else effective_n_jobs(self.n_jobs)
        if n_workers <= 1:
            for batch in batches:
                yield torch.stack([prepare(i) for i in batch])
            return
        executor = ThreadPoolExecutor(n_workers, thread_name_prefix="skproto-decode")
        try:
            pending = deque()
            upcoming = iter(batches)
            for batch in upcoming:
                pending.append([executor.submit(prepare, i) for i in batch])
                if len(pending) == 2:
                    break
            while pending:
                futures = pending.popleft()
                batch = next(upcoming, None)
                if batch is not None:
                    pending.append([executor.submit(prepare, i) for i in batch])
                yield torch.stack([future.result() for future in futures])
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
