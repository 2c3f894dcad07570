"""MixturePrototypeOODDetector: knn scoring speed, and OOD quality on real embeddings.

Part 1 (synthetic, float32): the ``"knn"`` score (cosine similarity to the k-th
nearest training embedding, KNN+) for N queries against a training set, timed side
by side with the bare GEMM ``Xn @ Tn.T`` in the same row chunks (the floor of any
exact knn), faiss-cpu ``IndexFlatIP`` (exact inner-product search) and scikit-learn
``NearestNeighbors(metric="cosine", algorithm="brute")``. Defaults: N=200,000 queries,
10,000 training points, D=512, k=50. Peak memory: tracemalloc peak of Python / numpy
allocations during one run on the first 20,000 queries (faiss allocates in C++, which
tracemalloc does not see).

Part 2 (real embeddings, ``../shared/data``): Fashion-MNIST EfficientNet-Lite0
embeddings as in-distribution (fit on ``split == 0``, ID test ``split == 1``) vs all
MNIST digits (OOD). AUROC, FPR@95%TPR, AUPR-in/out of the three scores, 1 vs 6
prototypes per class, and scikit-learn's IsolationForest and
LocalOutlierFactor(novelty=True). Skipped if the data are absent.

Run: ``python benchmarks/bench_ood.py`` (``--quick`` for small sizes). Prints tables
and writes ``benchmarks/results/bench_ood.json``.
"""

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import alternated_times, ratio_stats, time_stats, uptime  # noqa: E402

from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors  # noqa: E402

from skproto import KNNOODDetector, MixturePrototypeOODDetector  # noqa: E402
from skproto.metrics import ood_report  # noqa: E402


def _data_dir():
    env = os.environ.get("SKPROTO_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _timed(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _peak_mib(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def bench_knn_speed(n_queries, n_train, dim, k, repeats):
    rng = np.random.RandomState(0)
    # Clustered data, like embeddings: 100 directions plus noise.
    centers = rng.randn(100, dim).astype(np.float32)
    T = centers[rng.randint(100, size=n_train)] + rng.randn(n_train, dim).astype(np.float32)
    Q = centers[rng.randint(100, size=n_queries)] + rng.randn(n_queries, dim).astype(
        np.float32
    )
    det = KNNOODDetector(n_neighbors=k).fit(T)
    Tn = _unit(T)
    chunk = 4096

    def ours(X=Q):
        return det.score_samples(X)

    def gemm(X=Q):
        Xn_all = _unit(X)
        for start in range(0, X.shape[0], chunk):
            Xn_all[start : start + chunk] @ Tn.T
        return None

    funcs = {"skproto KNNOODDetector.score_samples (kth_similarity)": ours,
             "bare GEMM Xn @ Tn.T (chunks of 4096)": gemm}
    try:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count())

        def run_faiss(X=Q):
            index = faiss.IndexFlatIP(dim)
            index.add(Tn)
            D, _ = index.search(np.ascontiguousarray(_unit(X)), k)
            return D[:, k - 1]

        funcs[f"faiss-cpu {faiss.__version__} IndexFlatIP"] = run_faiss
    except ImportError:
        print("faiss-cpu not installed: skipping it (pip install faiss-cpu)")

    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(T)

    def run_sklearn(X=Q):
        dist, _ = nn.kneighbors(X)
        return 1.0 - dist[:, k - 1]

    funcs["sklearn NearestNeighbors(cosine, brute)"] = run_sklearn
    load_before = uptime()
    times, outputs = alternated_times(funcs, repeats, warmup=False)
    load_after = uptime()
    names = list(funcs)
    ours_name, gemm_name = names[0], names[1]
    s_ours = outputs[ours_name]

    sub = Q[: min(20_000, n_queries)]
    mem = {
        ours_name: _peak_mib(lambda: ours(sub)),
        gemm_name: _peak_mib(lambda: gemm(sub)),
        "sklearn NearestNeighbors(cosine, brute)": _peak_mib(lambda: run_sklearn(sub)),
    }
    flops = 2.0 * n_queries * n_train * dim
    print(
        f"\nknn score, N={n_queries:,} queries x {n_train:,} train x D={dim}, k={k}, "
        f"float32, {repeats} alternated rounds: median [min, max]"
    )
    print(f"before: {load_before}")
    header = (
        f"{'method':52s} {'time s':>8s} {'vs GEMM':>20s} {'vs ours':>8s} "
        f"{'GFLOP/s':>8s} {'max |diff|':>11s} {'peak MiB*':>9s}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for name in names:
        t = time_stats(times[name])
        vs_gemm = ratio_stats(times[name], times[gemm_name])
        vs_ours = ratio_stats(times[name], times[ours_name])
        out = outputs[name]
        diff = None if out is None else float(np.abs(np.asarray(out) - s_ours).max())
        peak = mem.get(name)
        print(
            f"{name:52s} {t['median']:8.2f} "
            f"{vs_gemm['median']:6.2f} [{vs_gemm['min']:.2f}, {vs_gemm['max']:.2f}] "
            f"{vs_ours['median']:8.2f} {flops / t['median'] / 1e9:8.1f} "
            f"{'' if diff is None else f'{diff:.1e}':>11s} "
            f"{'n/a' if peak is None else f'{peak:.0f}':>9s}"
        )
        results[name] = {"seconds": t, "ratio_vs_gemm": vs_gemm, "ratio_vs_ours": vs_ours,
                         "max_abs_diff_vs_ours": diff, "peak_mib_20k_queries": peak}
    print(f"* tracemalloc peak on the first {sub.shape[0]:,} queries (faiss: C++, not seen)")
    print(f"after:  {load_after}")
    return {
        "n_queries": n_queries,
        "n_train": n_train,
        "dim": dim,
        "k": k,
        "repeats": repeats,
        "methods": results,
    }


def bench_quality(max_iter):
    data = _data_dir()
    fm, mn = data / "fmnist_effnet.npz", data / "mnist_effnet.npz"
    if not (fm.exists() and mn.exists()):
        print(f"\n{data} has no fmnist_effnet.npz / mnist_effnet.npz: quality part skipped")
        return None
    d, m = np.load(fm), np.load(mn)
    X = d["X"].astype(np.float32)
    train, test = d["split"] == 0, d["split"] == 1
    X_tr, y_tr, X_te, y_te = X[train], d["y"][train], X[test], d["y"][test]
    X_ood = m["X"].astype(np.float32)
    y_eval = np.r_[np.ones(len(X_te)), np.zeros(len(X_ood))]

    def mpd(**kw):
        return MixturePrototypeOODDetector(**{"random_state": 0, "max_iter": max_iter, **kw})

    # The mahalanobis and knn scores do not use the prototypes: one pass fits them.
    candidates = [
        ("prototype score, 6 prototypes/class", mpd(n_prototypes=6), X_tr, y_tr),
        ("prototype score, 1 prototype/class", mpd(n_prototypes=1), X_tr, y_tr),
        ("prototype score, 60 prototypes, unsupervised fit(X)",
         mpd(n_prototypes=60, top_k=None), X_tr, None),
        ("mahalanobis (SSD+, centre = mean)",
         mpd(ood_score="mahalanobis", max_iter=1), X_tr, y_tr),
        ("mahalanobis (PALM release centre)",
         mpd(ood_score="mahalanobis", mahalanobis_center="palm", max_iter=1), X_tr, y_tr),
        ("knn (KNN+, k=50)", mpd(ood_score="knn", n_neighbors=50, max_iter=1), X_tr, y_tr),
        ("sklearn IsolationForest (raw X)", IsolationForest(random_state=0), X_tr, None),
        ("sklearn LOF(novelty=True) (raw X)", LocalOutlierFactor(novelty=True), X_tr, None),
        ("sklearn LOF(novelty=True) (L2-normalised X)",
         LocalOutlierFactor(novelty=True), _unit(X_tr), None),
    ]
    print(
        f"\nOOD quality: Fashion-MNIST (EfficientNet-Lite0, fit on {len(X_tr):,}, "
        f"ID test {len(X_te):,}) vs MNIST ({len(X_ood):,}, OOD)"
    )
    header = (
        f"{'detector':52s} {'AUROC':>6s} {'FPR95':>6s} {'AUPRin':>6s} {'AUPRout':>7s} "
        f"{'ID acc':>6s} {'fit s':>6s} {'passes':>6s}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for name, est, Xfit, yfit in candidates:
        t0 = time.perf_counter()
        est.fit(Xfit) if yfit is None else est.fit(Xfit, yfit)
        fit_s = time.perf_counter() - t0
        normalised = Xfit is not X_tr
        Xi, Xo = (_unit(X_te), _unit(X_ood)) if normalised else (X_te, X_ood)
        s = np.r_[est.score_samples(Xi), est.score_samples(Xo)]
        rep = ood_report(y_eval, s)
        acc = None
        # ID accuracy of predict_class, where the prototypes were fitted to convergence
        if (
            isinstance(est, MixturePrototypeOODDetector)
            and est.classes_ is not None
            and est.ood_score == "prototype"
        ):
            acc = float((est.predict_class(X_te) == y_te).mean())
        passes = getattr(est, "n_iter_", None)
        print(
            f"{name:52s} {rep['auroc']:6.4f} {rep['fpr@95tpr']:6.4f} {rep['aupr_in']:6.4f} "
            f"{rep['aupr_out']:7.4f} {'' if acc is None else f'{acc:.4f}':>6s} "
            f"{fit_s:6.1f} {'' if passes is None else passes:>6}"
        )
        results[name] = dict(rep, id_accuracy=acc, fit_seconds=fit_s, passes=passes)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-queries", type=int, default=200_000)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n_queries, args.n_train, args.max_iter = 5_000, 2_000, 3

    out = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        }
    }
    if not args.skip_speed:
        out["knn_speed"] = bench_knn_speed(
            args.n_queries, args.n_train, args.dim, args.k, args.repeats
        )
    if not args.skip_quality:
        out["quality_fmnist_vs_mnist"] = bench_quality(args.max_iter)
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "bench_ood.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
