"""OOD scores against the bare GEMMs they need, side by side in one process.

For each score, ``score_samples`` on N queries is timed alternately with the bare numpy
matmuls of the same shapes (the physical floor of that score), and the per-round ratio
is printed as median [min, max] over the rounds, with the load average before and
after. Synthetic float32 data, D=512, 100 classes:

- ``MixturePrototypeOODDetector`` (PALM, ``ood_score="prototype"``, 6 prototypes a
  class): max cosine to 600 prototypes; floor ``X @ P.T`` (N x 512 x 600).
- ``KNNOODDetector(n_neighbors=50)`` on 10,000 training embeddings: the 50-th largest
  cosine; floor ``X @ T.T`` (N x 512 x 10,000).
- ``MahalanobisOODDetector`` (``rmds``): class and background distances; floor
  ``X @ W`` twice (N x 512 x 512) and ``Z @ M.T`` (N x 512 x 100).

The floors run in blocks of 4,096 rows (a single call would write the whole N x K
output, whose page faults are not part of the work).

Target (issue 16): at most 1.1x the GEMMs for each.

    python benchmarks/bench_ood_scores.py            # N=200,000 (KNN: 50,000)
    python benchmarks/bench_ood_scores.py --quick
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    alternated_times,
    format_stats,
    print_table,
    ratio_stats,
    time_stats,
    uptime,
    write_json,
)

from skproto import (  # noqa: E402
    KNNOODDetector,
    MahalanobisOODDetector,
    MixturePrototypeOODDetector,
)


def make_data(n, d, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, d), dtype=np.float32)
    y = rng.integers(0, n_classes, size=n)
    return centers[y] + rng.standard_normal((n, d), dtype=np.float32), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--n-knn", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_knn, args.repeats = 20_000, 5_000, 3
    load_before = uptime()
    print(f"before: {load_before}")
    d, n_classes = args.d, 100
    X_train, y_train = make_data(20_000, d, n_classes, seed=1)
    X, _ = make_data(args.n, d, n_classes, seed=2)
    X_knn = X[: args.n_knn]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PALM's ConvergenceWarning at 2 passes
        palm = MixturePrototypeOODDetector(max_iter=2, random_state=0).fit(X_train, y_train)
    knn = KNNOODDetector(n_neighbors=50).fit(X_train[:10_000])
    maha = MahalanobisOODDetector().fit(X_train, y_train)

    P = palm.prototypes_
    T = knn.train_features_
    W, W0 = maha.whitening_, maha.background_whitening_
    M = maha.means_ @ W

    # The floors run in blocks of 4,096 rows, as a kernel would: one call writing the
    # whole N x K output pays for page faults of GBs of memory and would flatter us.
    def blocked(A, *matmuls):
        for start in range(0, A.shape[0], 4096):
            for matmul in matmuls:
                matmul(A[start:start + 4096])

    cases = {
        "PALM prototype score": (
            lambda: palm.score_samples(X), lambda: blocked(X, lambda A: A @ P.T),
            f"N={args.n:,}, {P.shape[0]} prototypes"),
        "KNNOODDetector (k=50)": (
            lambda: knn.score_samples(X_knn), lambda: blocked(X_knn, lambda A: A @ T.T),
            f"N={args.n_knn:,}, {T.shape[0]:,} training"),
        "MahalanobisOODDetector (rmds)": (
            lambda: maha.score_samples(X),
            lambda: blocked(X, lambda A: (A @ W) @ M.T, lambda A: A @ W0),
            f"N={args.n:,}, {n_classes} classes"),
    }
    rows, out = [], {}
    for name, (score, floor, size) in cases.items():
        times, _ = alternated_times({"floor": floor, "score": score}, args.repeats)
        ratio = ratio_stats(times["score"], times["floor"])
        out[name] = {"ratio": ratio, "times": times, "size": size}
        rows.append({"score": name, "size": size,
                     "GEMM s": format_stats(time_stats(times["floor"])),
                     "score s": format_stats(time_stats(times["score"])),
                     "x GEMM": format_stats(ratio),
                     "target <= 1.1x": "met" if ratio["median"] <= 1.1 else "NOT met"})
    load_after = uptime()
    print_table(rows, ["score", "size", "GEMM s", "score s", "x GEMM", "target <= 1.1x"])
    print("median [min, max] over the alternated rounds")
    print(f"before: {load_before}\nafter:  {load_after}")
    write_json("bench_ood_scores", {"d": d, "repeats": args.repeats, "cases": out,
                                    "load_before": load_before, "load_after": load_after})


if __name__ == "__main__":
    main()
