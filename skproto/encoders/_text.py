"""Frozen open_clip text tower as a scikit-learn transformer."""

import numpy as np

from ._base import _BaseOpenCLIPEncoder


def as_text_list(X):
    """Validate texts: a non-empty sequence of str; a bad item is named."""
    if isinstance(X, (str, bytes)):
        raise TypeError(
            "X must be a sequence of strings, not a single string; wrap one text in a "
            "list: [text]."
        )
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:
        if X.shape[1] != 1:
            raise ValueError(
                f"A DataFrame of texts must have exactly one column, got {X.shape[1]}."
            )
        X = X.iloc[:, 0]
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"X must be a 1-D sequence of strings, got shape {X.shape}.")
    try:
        items = list(X)
    except TypeError as exc:
        raise TypeError(f"X must be a sequence of strings, got {type(X).__name__}.") from exc
    if not items:
        raise ValueError("X is empty: at least one text is needed.")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"X[{index}] is a {type(item).__name__} ({item!r}); every text must be a str."
            )
    return [str(item) for item in items]


class OpenCLIPTextEncoder(_BaseOpenCLIPEncoder):
    """Embed texts with a frozen open_clip text tower (a stateless transformer).

    Same loading, batching, caching and pickling behaviour as
    :class:`OpenCLIPImageEncoder` (whose docstring details the parameters); an image
    and a text encoder with the same loading parameters share one model. Texts are
    tokenised by the model's own open_clip tokenizer (truncated to its context
    length), so the output equals ``model.encode_text(tokenizer(texts))``
    (L2-normalised when ``normalize=True``).

    Parameters
    ----------
    model_name : str, default="ViT-B-32"
        Built-in open_clip architecture, ``"local-dir:PATH"`` or ``"hf-hub:org/repo"``.
    pretrained : str or path-like, default=None
        Pretrained tag or local checkpoint file; ``None``: random weights from a
        fixed seed. No network unless a tag is named and not cached.
    device : str, default="auto"
        Torch device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``...
    batch_size : int, default=256
        Texts per forward pass.
    normalize : bool, default=True
        L2-normalise the embeddings.
    precision : {"fp32", "fp16", "bf16"}, default="fp32"
        Precision of the weights. The output is float32 in every case.
    show_progress : bool, default=None
        tqdm progress bar; ``None``: only when stderr is a terminal and there is
        more than one batch.
    memory : str, path-like or joblib.Memory, default=None
        Cache of the embeddings of a whole ``transform`` call.
        joblib stores the cache as pickle files, which run code when read: keep
        it in a directory only you can write.
    cache_dir : str or path-like, default=None
        Where open_clip finds / downloads pretrained weights.

    See Also
    --------
    OpenCLIPImageEncoder : The image tower.
    zero_shot_prototypes : Class prototypes from class names and prompt templates.

    References
    ----------
    .. [1] A. Radford et al. "Learning Transferable Visual Models From Natural
       Language Supervision", ICML 2021 (CLIP).

    Examples
    --------
    Random weights keep this example offline (``pretrained=None``).

    >>> from skproto.encoders import OpenCLIPTextEncoder
    >>> encoder = OpenCLIPTextEncoder("ViT-S-32", device="cpu")
    >>> Z = encoder.transform(["a photo of a cat", "a photo of a dog"])
    >>> Z.shape, Z.dtype
    ((2, 384), dtype('float32'))
    >>> import numpy as np
    >>> np.allclose(np.linalg.norm(Z, axis=1), 1.0)
    True
    """

    def __init__(
        self,
        model_name="ViT-B-32",
        *,
        pretrained=None,
        device="auto",
        batch_size=256,
        normalize=True,
        precision="fp32",
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
        self.show_progress = show_progress
        self.memory = memory
        self.cache_dir = cache_dir

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        return tags

    def transform(self, X):
        """Embed texts.

        Parameters
        ----------
        X : sequence of n_samples str
            A list, 1-D array, Series or one-column DataFrame of strings.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embed_dim), dtype float32
            L2-normalised when ``normalize=True``.
        """
        return super().transform(X)

    def _as_items(self, X):
        return as_text_list(X)

    def _fingerprint(self, item):
        return item

    def _forward(self, loaded, tokens):
        return loaded.model.encode_text(tokens.to(loaded.device))

    def _iter_batches(self, items, loaded):
        for batch in self._batches(len(items)):
            yield loaded.tokenizer([items[i] for i in batch])
