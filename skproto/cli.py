"""The ``skproto`` console command.

``skproto demo`` runs a class-incremental stream with :class:`NearestMeanClassifier`
on scikit-learn's bundled digits data (no download) and prints one row per step.
"""

import argparse
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from . import __version__, config_context
from .incremental import NearestMeanClassifier
from .metrics import average_incremental_accuracy
from .model_selection import ClassIncrementalSplit, evaluate_incremental


def run_demo(n_initial=2, increment=2, metric="cosine", backend="numpy", seed=0, file=None):
    """Class-incremental stream on the digits data; prints and returns the per-step table.

    Returns
    -------
    rows : list of dict
        One dict per step: ``step``, ``new_classes``, ``n_seen_classes``, ``acc_all``,
        ``acc_old``, ``acc_new`` (accuracy on the test samples of all seen / old / new
        classes; ``acc_old`` is NaN at the first step).
    """
    file = sys.stdout if file is None else file
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    order = np.random.default_rng(seed).permutation(np.unique(y))
    splitter = ClassIncrementalSplit(n_initial, increment, class_order=order)
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skproto", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"skproto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="class-incremental demo on sklearn's digits")
    demo.add_argument("--initial", type=int, default=2, help="classes in the first step")
    demo.add_argument("--increment", type=int, default=2, help="new classes per step")
    demo.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine")
    demo.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args.initial, args.increment, args.metric, args.backend, args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
