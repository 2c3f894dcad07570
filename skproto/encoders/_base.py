"""What the open_clip encoders share: parameters, lazy loading, batching, caching."""

import os
import sys
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_memory

from ._loading import load_model, require_open_clip, resolve_device, source_fingerprint


def _embed_cached(key, encoder, items):
    """Target of ``memory.cache``: only ``key`` is hashed (encoder, items ignored)."""
    return encoder._embed(items)


class _BaseOpenCLIPEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Lazy-loading, batched, cached open_clip tower as a stateless transformer.

    Subclasses define ``_as_items`` (validate the container), ``_fingerprint`` (what
    identifies an item for ``memory``), ``_iter_batches`` (model-ready batches) and
    ``_forward`` (one batch through the tower).
    """

    _parameter_constraints = {
        "model_name": [str],
        "pretrained": [str, os.PathLike, None],
        "device": [str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "precision": [StrOptions({"fp32", "fp16", "bf16"})],
        "show_progress": ["boolean", None],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "cache_dir": [str, os.PathLike, None],
    }

    # ------------------------------------------------------------------ loading
    def _load(self):
        """The loaded model, loading it on first use (or after a loading parameter changed)."""
        key = (
            source_fingerprint(self.model_name, self.pretrained),
            self.device,
            self.precision,
            self.cache_dir,
        )
        cached = self.__dict__.get("_loaded")
        if cached is not None and cached[0] == key:
            return cached[1]
        loaded = load_model(
            type(self).__name__,
            self.model_name,
            self.pretrained,
            self.device,
            self.precision,
            self.cache_dir,
        )
        self._loaded = (key, loaded)
        return loaded

    def __getstate__(self):
        # A pickle stores the parameters (where to load the weights from), never the
        # weights: the model is loaded again on first use after unpickling.
        state = super().__getstate__()
        state.pop("_loaded", None)
        return state

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X=None, y=None):
        """Load the model (if not loaded yet); nothing is learned.

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The encoder.
        """
        self._validate_params()
        self._load()
        return self

    def partial_fit(self, X=None, y=None, **fit_params):
        """Same as :meth:`fit`: lets the encoder sit in a streaming pipeline.

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.
        **fit_params : dict
            Ignored (e.g. ``classes`` passed by a streaming pipeline).

        Returns
        -------
        self : object
            The encoder.
        """
        return self.fit(X, y)

    def __sklearn_is_fitted__(self):
        # Stateless: transform works without fit (the model loads on first use).
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        # Inputs are images or strings, not a numeric 2-D array: scikit-learn's
        # data-driven estimator checks cannot feed this transformer (same as its own
        # text vectorizers); tests/test_encoders.py checks the API on real inputs.
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _n_features_out(self):
        return self._load().embed_dim

    def transform(self, X):
        """Embed the inputs with the frozen tower.

        Parameters
        ----------
        X : sequence of n_samples inputs
            See the class docstring for the accepted kinds.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embed_dim), dtype float32
            One row per input, L2-normalised when ``normalize=True``.
        """
        self._validate_params()
        items = self._as_items(X)
        if self.memory is None:
            return self._embed(items)
        memory = self.memory
        memory = check_memory(os.fspath(memory) if isinstance(memory, os.PathLike) else memory)
        key = (
            type(self).__name__,
            source_fingerprint(self.model_name, self.pretrained),
            self.precision,
            self.normalize,
            self._device_type(),
            [self._fingerprint(item) for item in items],
        )
        cached = memory.cache(_embed_cached, ignore=["encoder", "items"])
        return cached(key, encoder=self, items=items)

    def _device_type(self):
        """Kind of device the model runs on, without loading the model."""
        torch, _ = require_open_clip(type(self).__name__)
        return resolve_device(torch, self.device).type

    def _embed(self, items):
        loaded = self._load()
        import torch  # importable: the model has loaded

        chunks = []
        progress = self._progress(len(items))
        try:
            with torch.inference_mode():
                for batch in self._iter_batches(items, loaded):
                    features = self._forward(loaded, batch).float()
                    if self.normalize:
                        features = torch.nn.functional.normalize(features, dim=-1)
                    chunks.append(features.cpu().numpy())
                    if progress is not None:
                        progress.update(features.shape[0])
        finally:
            if progress is not None:
                progress.close()
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def _progress(self, n_items):
        show = self.show_progress
        if show is None:
            show = n_items > self.batch_size and sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=n_items, desc=type(self).__name__, unit="item")

    def _batches(self, n_items):
        """Index ranges of consecutive batches of at most ``batch_size`` items."""
        return [
            range(start, min(start + self.batch_size, n_items))
            for start in range(0, n_items, self.batch_size)
        ]
