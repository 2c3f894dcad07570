"""``skproto evaluate``: run an incremental protocol on saved embeddings."""

import math
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from ..incremental import FeTrIL, NearestMeanClassifier, TEENCalibrator
from ..metrics import (
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)
from ..model_selection import (
    ClassIncrementalSplit,
    FewShotIncrementalSplit,
    IncrementalAccuracyDisplay,
    evaluate_incremental,
)
from ._table import format_accuracy, print_table

ESTIMATORS = ("nmc", "teen", "fetril")


def make_estimator(name, *, metric="cosine", alpha=0.5, tau=16.0):
    """The estimator a command-line name stands for.

    Parameters
    ----------
    name : {"nmc", "teen", "fetril"}
        :class:`~skproto.NearestMeanClassifier`, :class:`~skproto.TEENCalibrator` or
        :class:`~skproto.FeTrIL`.
    metric : {"cosine", "euclidean"}, default="cosine"
        Similarity of ``nmc``.
    alpha, tau : float, default=0.5, 16.0
        Calibration of ``teen``.

    Returns
    -------
    estimator : estimator

    Examples
    --------
    >>> from skproto.cli._evaluate import make_estimator
    >>> make_estimator("teen", alpha=0.25)
    TEENCalibrator(alpha=0.25)
    """
    if name == "nmc":
        return NearestMeanClassifier(metric=metric)
    if name == "teen":
        return TEENCalibrator(alpha=alpha, tau=tau)
    if name == "fetril":
        return FeTrIL()
    raise ValueError(f"unknown estimator {name!r}; choose from {list(ESTIMATORS)}.")


def load_embeddings(path, *, require_labels=True):
    """``X`` and ``y`` of an ``.npz`` file written by ``skproto encode`` (or by hand).

    Parameters
    ----------
    path : str or path-like
        File with a 2-D array ``X`` and, when ``require_labels``, a 1-D array ``y``.
    require_labels : bool, default=True
        Raise if ``y`` is missing.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) or None

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skproto.cli._evaluate import load_embeddings
    >>> path = Path(tempfile.mkdtemp()) / "emb.npz"
    >>> np.savez(path, X=np.zeros((3, 2), np.float32), y=np.array([0, 1, 1]))
    >>> X, y = load_embeddings(path)
    >>> X.shape, y.tolist()
    ((3, 2), [0, 1, 1])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}.")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npz file ({exc}).") from exc
    if "X" not in data.files:
        raise ValueError(f"{str(path)!r} has no array 'X' (it holds {data.files}).")
    X = data["X"]
    if X.ndim != 2:
        raise ValueError(f"'X' in {str(path)!r} must be 2-D, got shape {X.shape}.")
    y = data["y"] if "y" in data.files else None
    if y is None and require_labels:
        raise ValueError(
            f"{str(path)!r} has no labels 'y': encode with --labels-from-folders, or "
            "save an array y with the embeddings."
        )
    if y is not None and len(y) != len(X):
        raise ValueError(f"{str(path)!r}: X has {len(X)} rows but y has {len(y)}.")
    return X, y


def _splitter(protocol, n_classes, *, initial, increment, shots, seed):
    """The protocol's splitter, with the documented defaults for missing values."""
    if protocol == "cil":
        initial = math.ceil(n_classes / 2) if initial is None else initial
        increment = max(1, n_classes // 10) if increment is None else increment
        return ClassIncrementalSplit(initial, increment=increment, shuffle=True,
                                     random_state=seed)
    initial = max(1, round(0.6 * n_classes)) if initial is None else initial
    increment = max(1, min(5, n_classes - initial)) if increment is None else increment
    return FewShotIncrementalSplit(initial, n_ways=increment, n_shots=shots, shuffle=True,
                                   random_state=seed)


def run_evaluate(embeddings, *, protocol="cil", estimators=("nmc",), test=None,
                 test_size=0.3, initial=None, increment=None, shots=5, metric="cosine",
                 alpha=0.5, tau=16.0, seed=0, plot=None, file=None):
    """Run a class-incremental or few-shot protocol on embeddings; print the tables.

    Parameters
    ----------
    embeddings : str or path-like
        ``.npz`` file with ``X`` and ``y`` (see :func:`load_embeddings`).
    protocol : {"cil", "fscil"}, default="cil"
        ``"cil"``: :class:`~skproto.model_selection.ClassIncrementalSplit`
        (``initial`` classes, then ``increment`` per step; defaults: half of the
        classes, then a tenth of them). ``"fscil"``:
        :class:`~skproto.model_selection.FewShotIncrementalSplit` (``initial`` base
        classes, then sessions of ``increment`` ways x ``shots`` shots; defaults: 60%
        of the classes, 5 ways or fewer). Class order shuffled with ``seed``.
    estimators : sequence of {"nmc", "teen", "fetril"}, default=("nmc",)
        Estimators to compare (see :func:`make_estimator`).
    test : str or path-like or None, default=None
        A separate test ``.npz``; None: a stratified ``test_size`` split of
        ``embeddings``.
    test_size : float, default=0.3
        Fraction of ``embeddings`` held out for testing when ``test`` is None.
    initial, increment, shots : int or None
        The protocol (see ``protocol``).
    metric, alpha, tau
        Parameters of the estimators (see :func:`make_estimator`).
    seed : int, default=0
        Seed of the split, of the class order and of the shots.
    plot : str or path-like or None, default=None
        Save the accuracy plot (:class:`~skproto.model_selection.IncrementalAccuracyDisplay`)
        to this image file.
    file : file-like, default=None
        Where to print; ``sys.stdout`` if None.

    Returns
    -------
    results : dict
        ``{estimator name: evaluate_incremental results}``.

    Examples
    --------
    >>> import io, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skproto.cli._evaluate import run_evaluate
    >>> X, y = load_digits(return_X_y=True)
    >>> path = Path(tempfile.mkdtemp()) / "digits.npz"
    >>> np.savez(path, X=X, y=y)
    >>> res = run_evaluate(path, estimators=["nmc"], file=io.StringIO())
    >>> res["nmc"].n_seen_classes
    array([ 5,  6,  7,  8,  9, 10])
    """
    file = sys.stdout if file is None else file
    X, y = load_embeddings(embeddings)
    if test is None:
        if not 0 < test_size < 1:
            raise ValueError(f"--test-size must be in (0, 1), got {test_size}.")
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=seed
        )
        source = f"{embeddings}: {len(y_train)} train / {len(y_test)} test samples"
    else:
        X_train, y_train = X, y
        X_test, y_test = load_embeddings(test)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(
                f"{test} has {X_test.shape[1]} features, {embeddings} has {X.shape[1]}."
            )
        source = f"{embeddings} (train, {len(y_train)}) and {test} (test, {len(y_test)})"
    n_classes = len(np.unique(y_train))
    splitter = _splitter(protocol, n_classes, initial=initial, increment=increment,
                         shots=shots, seed=seed)
    list(splitter.split(X_train, y_train))  # a protocol the data cannot hold raises here
    print(f"skproto evaluate: {source}, {n_classes} classes, {X.shape[1]} features",
          file=file)
    print(f"protocol: {splitter!r}", file=file)
    results = {}
    for name in dict.fromkeys(estimators):      # unique, in the given order
        estimator = make_estimator(name, metric=metric, alpha=alpha, tau=tau)
        results[name] = evaluate_incremental(estimator, X_train, y_train, X_test, y_test,
                                             splitter)
    first = next(iter(results.values()))
    print_table(
        ["step", "new classes", "seen"] + list(results),
        [[t, _classes_text(first.new_classes[t]), int(first.n_seen_classes[t])]
         + [format_accuracy(res.accuracy[t]) for res in results.values()]
         for t in range(len(first.accuracy))],
        file=file,
    )
    print(file=file)
    if protocol == "cil":
        header = ["estimator", "avg acc", "last acc", "forgetting"]
        rows = [[name, format_accuracy(average_incremental_accuracy(res.accuracy)),
                 format_accuracy(res.accuracy[-1]),
                 format_accuracy(forgetting(res.accuracy_matrix))]
                for name, res in results.items()]
    else:
        header = ["estimator", "avg acc", "PD", "base", "novel", "HM"]
        rows = []
        for name, res in results.items():
            base, novel = res.accuracy_base[-1], res.accuracy_novel[-1]
            rows.append([name, format_accuracy(average_incremental_accuracy(res.accuracy)),
                         format_accuracy(performance_drop(res.accuracy)),
                         format_accuracy(base), format_accuracy(novel),
                         format_accuracy(harmonic_mean_accuracy(base, novel))])
    print_table(header, rows, file=file)
    if plot is not None:
        _save_plot(results, plot)
        print(f"saved the accuracy plot to {plot}", file=file)
    return results


def _classes_text(classes, limit=24):
    text = " ".join(str(c) for c in classes)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _save_plot(results, path):
    from ..utils._plotting import import_pyplot

    plt = import_pyplot("skproto evaluate --plot")
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    try:
        for name, res in results.items():
            IncrementalAccuracyDisplay.from_results(res, name=name, ax=ax)
        ax.set_title("Accuracy on all classes seen")
        fig.savefig(path)
    finally:
        plt.close(fig)
