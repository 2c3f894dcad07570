"""``skproto demo``: each task of the package on scikit-learn's bundled digits data.

No download: the 8x8 digit images (64 pixel intensities, 1,797 samples, 10 classes)
stand in for frozen embeddings. Each demo prints a title line and a table, and returns
its rows (a list of dicts) for the tests.
"""

import sys

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import normalize

from .. import __version__, config_context
from ..discovery import SemiSupervisedGMM
from ..incremental import NearestMeanClassifier, TEENCalibrator
from ..metrics import (
    average_incremental_accuracy,
    cluster_accuracy,
    harmonic_mean_accuracy,
    ood_report,
    performance_drop,
)
from ..model_selection import (
    ClassIncrementalSplit,
    FewShotIncrementalSplit,
    evaluate_incremental,
)
from ..ood import KNNOODDetector, MahalanobisOODDetector, MixturePrototypeOODDetector
from ._table import format_accuracy, print_table


def _digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def run_demo(n_initial=2, increment=2, metric="cosine", backend="numpy", seed=0, file=None):
    """Class-incremental stream on the digits data; prints and returns the per-step table.

    Parameters
    ----------
    n_initial : int, default=2
        Classes of the first step.
    increment : int, default=2
        New classes per later step.
    metric : {"cosine", "euclidean"}, default="cosine"
        Similarity of :class:`~skproto.NearestMeanClassifier`.
    backend : {"numpy", "torch"}, default="numpy"
        Backend of the computation (see :func:`skproto.config_context`).
    seed : int, default=0
        Seed of the train/test split and of the class order.
    file : file-like, default=None
        Where to print; ``sys.stdout`` if None.

    Returns
    -------
    rows : list of dict
        One dict per step: ``step``, ``new_classes``, ``n_seen_classes``, ``acc_all``,
        ``acc_old``, ``acc_new`` (accuracy on the test samples of all seen / old / new
        classes; ``acc_old`` is NaN at the first step).

    Examples
    --------
    >>> import io
    >>> from skproto.cli import run_demo
    >>> rows = run_demo(n_initial=5, increment=5, file=io.StringIO())
    >>> [row["n_seen_classes"] for row in rows]
    [5, 10]
    """
    file = sys.stdout if file is None else file
    X, y = _digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    order = np.random.default_rng(seed).permutation(np.unique(y))
    splitter = ClassIncrementalSplit(n_initial, increment=increment, class_order=order)
    splitter.get_n_splits(y=y_train)  # bad values raise here, before any output
    print(
        f"skproto {__version__} demo: class-incremental digits (sklearn), "
        f"NearestMeanClassifier(metric={metric!r}), backend={backend!r}",
        file=file,
    )
    with config_context(backend=backend):
        res = evaluate_incremental(NearestMeanClassifier(metric=metric), X_train, y_train,
                                   X_test, y_test, splitter)
    print(f"{'step':>4}  {'new classes':<12} {'seen':>4}  {'acc all':>7}  {'acc old':>7}  "
          f"{'acc new':>7}", file=file)
    rows = []
    for step, new_classes in enumerate(res.new_classes):
        row = {
            "step": step,
            "new_classes": [int(c) for c in new_classes],
            "n_seen_classes": int(res.n_seen_classes[step]),
            "acc_all": float(res.accuracy[step]),
            "acc_old": float(res.accuracy_old[step]),
            "acc_new": float(res.accuracy_new[step]),
        }
        rows.append(row)
        old_txt = "      -" if np.isnan(row["acc_old"]) else f"{row['acc_old']:7.3f}"
        print(f"{step:>4}  {str(row['new_classes']):<12} {row['n_seen_classes']:>4}  "
              f"{row['acc_all']:7.3f}  {old_txt}  {row['acc_new']:7.3f}", file=file)
    avg = average_incremental_accuracy(res.accuracy)
    print(f"average incremental accuracy: {avg:.3f}", file=file)
    return rows


def run_fscil_demo(n_shots=1, alpha=0.5, n_draws=10, backend="numpy", seed=0, file=None):
    """Few-shot class-incremental digits: nearest class mean against TEEN.

    5 base classes, then 5 sessions of one new class with ``n_shots`` training samples
    (:class:`~skproto.model_selection.FewShotIncrementalSplit`); every number is the
    mean over ``n_draws`` draws of the class order and of the shots, which is what a
    few-shot result needs to be stable.

    Parameters
    ----------
    n_shots : int, default=1
        Training samples per novel class. One shot is where calibration pays; with
        five the plain nearest mean does as well on these pixel features.
    alpha : float, default=0.5
        TEEN's calibration strength.
    n_draws : int, default=10
        Draws averaged over (seeds ``seed`` to ``seed + n_draws - 1``).
    backend : {"numpy", "torch"}, default="numpy"
        Backend of the computation.
    seed : int, default=0
        Seed of the train/test split and of the first draw.
    file : file-like, default=None
        Where to print; ``sys.stdout`` if None.

    Returns
    -------
    rows : list of dict
        One dict per model: ``model``, ``accuracy`` (list, per session),
        ``average_accuracy``, ``performance_drop``, ``base``, ``novel`` and
        ``harmonic_mean`` (after the last session).

    Examples
    --------
    >>> import io
    >>> from skproto.cli._demo import run_fscil_demo
    >>> rows = run_fscil_demo(n_draws=2, file=io.StringIO())
    >>> [row["model"] for row in rows]
    ['NearestMeanClassifier', 'TEENCalibrator(alpha=0.5)']
    """
    file = sys.stdout if file is None else file
    X, y = _digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    models = {
        "NearestMeanClassifier": NearestMeanClassifier(),
        f"TEENCalibrator(alpha={alpha:g})": TEENCalibrator(alpha=alpha),
    }
    print(
        f"skproto {__version__} demo: few-shot class-incremental digits (sklearn), "
        f"5 base classes + 5 sessions of 1-way {n_shots}-shot, mean of {n_draws} draws, "
        f"backend={backend!r}",
        file=file,
    )
    rows = []
    with config_context(backend=backend):
        for name, model in models.items():
            runs = [
                evaluate_incremental(
                    model, X_train, y_train, X_test, y_test,
                    FewShotIncrementalSplit(5, n_ways=1, n_shots=n_shots, shuffle=True,
                                            random_state=seed + draw),
                )
                for draw in range(n_draws)
            ]
            acc = np.mean([r.accuracy for r in runs], axis=0)
            base = float(np.mean([r.accuracy_base[-1] for r in runs]))
            novel = float(np.mean([r.accuracy_novel[-1] for r in runs]))
            rows.append({
                "model": name,
                "accuracy": acc.tolist(),
                "average_accuracy": average_incremental_accuracy(acc),
                "performance_drop": performance_drop(acc),
                "base": base,
                "novel": novel,
                "harmonic_mean": float(harmonic_mean_accuracy(base, novel)),
            })
    n_sessions = len(rows[0]["accuracy"])
    print_table(
        ["session", "seen"] + [row["model"] for row in rows],
        [[s, 5 + s] + [format_accuracy(row["accuracy"][s]) for row in rows]
         for s in range(n_sessions)],
        file=file,
    )
    print(file=file)
    print_table(
        ["model", "avg acc", "PD", "base", "novel", "HM"],
        [[row["model"]] + [format_accuracy(row[key]) for key in (
            "average_accuracy", "performance_drop", "base", "novel", "harmonic_mean")]
         for row in rows],
        file=file,
    )
    print("(PD: first minus last session accuracy; base / novel / HM: accuracy on the "
          "base and novel classes after the last session and their harmonic mean)",
          file=file)
    return rows


def run_gcd_demo(backend="numpy", seed=0, file=None):
    """Generalized category discovery on digits: half the classes known, half unseen.

    Digits 0-4 are the known classes and half of their samples are labelled; the other
    samples (all of digits 5-9 among them) are unlabelled. Reported on the unlabelled
    samples with :func:`~skproto.metrics.cluster_accuracy` (one Hungarian matching):
    All / Old (known classes) / New accuracy, and the number of clusters found.

    Parameters
    ----------
    backend : {"numpy", "torch"}, default="numpy"
        Backend of the computation.
    seed : int, default=0
        Seed of the labelled subset and of the models.
    file : file-like, default=None
        Where to print; ``sys.stdout`` if None.

    Returns
    -------
    rows : list of dict
        One dict per method: ``method``, ``all``, ``old``, ``new``, ``n_clusters``.

    Examples
    --------
    >>> import io
    >>> from skproto.cli._demo import run_gcd_demo
    >>> rows = run_gcd_demo(file=io.StringIO())
    >>> [row["n_clusters"] for row in rows]
    [10, 11, 10]
    """
    file = sys.stdout if file is None else file
    X, y = _digits()
    X = normalize(X)
    known = np.arange(5)
    labelled = np.isin(y, known) & (np.random.default_rng(seed).random(len(y)) < 0.5)
    y_train = np.where(labelled, y, -1)
    methods = {
        "SemiSupervisedGMM(n_components=10, hard)": SemiSupervisedGMM(
            10, assignment="hard", n_init=10, random_state=seed),
        "SemiSupervisedGMM(n_components='auto', hard)": SemiSupervisedGMM(
            "auto", assignment="hard", n_init=10, random_state=seed),
        "KMeans(10), labels unused": KMeans(10, n_init=10, random_state=seed),
    }
    print(
        f"skproto {__version__} demo: category discovery on digits (sklearn), "
        f"known classes 0-4 with half their samples labelled, {int((~labelled).sum())} "
        f"unlabelled samples, backend={backend!r}",
        file=file,
    )
    rows = []
    with config_context(backend=backend):
        for name, method in methods.items():
            if isinstance(method, KMeans):
                labels = method.fit(X).labels_
            else:
                labels = method.fit(X, y_train).labels_
            acc_all, acc_old, acc_new = cluster_accuracy(
                y[~labelled], labels[~labelled], old_classes=known)
            rows.append({"method": name, "all": acc_all, "old": acc_old, "new": acc_new,
                         "n_clusters": int(len(np.unique(labels)))})
    print_table(
        ["method", "All", "Old", "New", "clusters"],
        [[r["method"], format_accuracy(r["all"]), format_accuracy(r["old"]),
          format_accuracy(r["new"]), r["n_clusters"]] for r in rows],
        file=file,
    )
    return rows


def run_ood_demo(backend="numpy", seed=0, file=None):
    """Out-of-distribution detection on digits: 0-5 in distribution, 6-9 out.

    Three detectors are fitted on 70% of the digits 0-5 and compared on the other 30%
    (in-distribution, the positive class) against all the digits 6-9:
    :class:`~skproto.MixturePrototypeOODDetector` (PALM, 6 prototypes per class, its
    prototype score), :class:`~skproto.ood.MahalanobisOODDetector` (its default,
    relative Mahalanobis with FeCAM shrinkage) and :class:`~skproto.ood.KNNOODDetector`
    (KNN+, k growing with the training set).

    Parameters
    ----------
    backend : {"numpy", "torch"}, default="numpy"
        Backend of the computation.
    seed : int, default=0
        Seed of the split and of the detector.
    file : file-like, default=None
        Where to print; ``sys.stdout`` if None.

    Returns
    -------
    rows : list of dict
        One dict per score: ``score``, ``auroc``, ``fpr@95tpr``, ``aupr_in``,
        ``aupr_out``.

    Examples
    --------
    >>> import io
    >>> from skproto.cli._demo import run_ood_demo
    >>> rows = run_ood_demo(file=io.StringIO())
    >>> [row["score"] for row in rows]
    ['prototype', 'mahalanobis', 'knn']
    >>> all(0.5 < row["auroc"] <= 1 for row in rows)
    True
    """
    file = sys.stdout if file is None else file
    X, y = _digits()
    inside = y < 6
    X_train, X_test, y_train, _ = train_test_split(
        X[inside], y[inside], test_size=0.3, stratify=y[inside], random_state=seed
    )
    X_out = X[~inside]
    print(
        f"skproto {__version__} demo: OOD detection on digits (sklearn), fitted on "
        f"{len(y_train)} digits 0-5; {len(X_test)} held-out 0-5 (in) vs {len(X_out)} "
        f"digits 6-9 (out), backend={backend!r}",
        file=file,
    )
    truth = np.r_[np.ones(len(X_test)), np.zeros(len(X_out))]
    rows = []
    with config_context(backend=backend):
        detectors = {
            "prototype": MixturePrototypeOODDetector(random_state=seed),
            "mahalanobis": MahalanobisOODDetector(),
            "knn": KNNOODDetector(),
        }
        for score, det in detectors.items():
            det.fit(X_train, y_train)
            report = ood_report(truth, np.r_[det.score_samples(X_test),
                                             det.score_samples(X_out)])
            rows.append({"score": score, **report})
    print_table(
        ["detector", "AUROC", "FPR@95TPR", "AUPR-in", "AUPR-out"],
        [[r["score"]] + [format_accuracy(r[key]) for key in (
            "auroc", "fpr@95tpr", "aupr_in", "aupr_out")] for r in rows],
        file=file,
    )
    return rows
