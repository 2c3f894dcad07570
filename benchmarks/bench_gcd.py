"""SemiSupervisedGMM: speed against scikit-learn's GaussianMixture, and GCD quality.

Speed (synthetic, float32): one EM iteration (E-step + M-step from the same parameters)
and a full fit, ours vs ``sklearn.mixture.GaussianMixture`` with the same covariance
type, side by side in this process; the final mean log-likelihood of each fit (on the
same data) is reported next to its time, and peak memory (tracemalloc: numpy's
allocations) of each.

Quality (real embeddings in ../shared/data, skipped if absent): for each dataset, half
of the classes are "known" and half of their samples labelled; the rest is unlabelled.
All / Old / New accuracy (``skproto.metrics.cluster_accuracy``, one Hungarian matching)
on the unlabelled samples, and the estimated number of classes, for
SemiSupervisedGMM(n_components="auto"), SemiSupervisedGMM with the true K (soft and
hard), KMeans with the true K and GaussianMixture with the true K. Embeddings are
L2-normalised first (as GPC does; the NIW prior scale assumes it).

K estimation (``--k-estimation``; real embeddings plus synthetic data): for each data
set and each of ``--seeds`` choices of the known classes (half the classes known, half
of their samples labelled; the synthetic sets: 10 known and 6 novel classes), every
``k_estimation`` method of ``SemiSupervisedGMM(n_components="auto",
assignment="hard")``: the estimated K, its relative error ``|K_hat - K| / K``, All /
Old / New accuracy on the unlabelled samples with that K, and the fit time
(estimation + final fit); then, with the true K, semi-supervised k-means
(``assignment="hard"``), EM (``"soft"``) and scikit-learn's KMeans (``n_init=1``,
unsupervised); and the package defaults ``SemiSupervisedGMM()`` (soft EM at the
``class_size`` estimate). Every fit uses ``--n-init`` initialisations (default 1, the
package default). No subsampling: the real sets are small enough (3,000 to
12,473 samples).

Usage::

    python benchmarks/bench_gcd.py            # N=100,000, D=256, K=100 (slow on 2 cores)
    python benchmarks/bench_gcd.py --quick    # N=20,000, D=128, K=50
    python benchmarks/bench_gcd.py --skip-speed / --skip-quality
    python benchmarks/bench_gcd.py --k-estimation   # only the K-estimation table
"""

import argparse
import json
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky  # noqa: E402

from skproto import SemiSupervisedGMM, backend  # noqa: E402
from skproto.metrics import cluster_accuracy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def data_dir():
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get("SKPROTO_DATA", default))
    return path if path.is_dir() else None


def measure(fn):
    """(seconds, peak MiB of numpy/Python allocations, result)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def synthetic(n, d, k, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.randn(k, d).astype(np.float32)
    labels = rng.randint(0, k, n)
    scales = rng.uniform(0.5, 1.5, (k, 1)).astype(np.float32)
    X = centres[labels] + scales[labels] * rng.randn(n, d).astype(np.float32) * 1.5
    return X.astype(np.float32)


def _warm_sklearn(k, cov_type, max_iter, start):
    """A GaussianMixture whose fit() runs EM from the given parameters."""
    sk = GaussianMixture(k, covariance_type=cov_type, max_iter=max_iter, tol=1e-3,
                         warm_start=True)
    sk.means_ = start["means"].astype(np.float32)
    sk.weights_ = start["weights"].astype(np.float32)
    sk.covariances_ = start["covariances"].astype(np.float32)
    sk.precisions_cholesky_ = start["precisions_chol"].astype(np.float32)
    sk.converged_, sk.lower_bound_ = False, -np.inf  # warm start from these parameters
    return sk


def bench_speed(n, d, k, cov_type, max_iter, seed=0):
    X = synthetic(n, d, k, seed)
    rng = np.random.RandomState(seed)
    rows = []

    # --- one EM iteration from identical parameters
    means = X[rng.choice(n, k, replace=False)].astype(np.float64)
    var = X.var(axis=0).astype(np.float64)
    covariances = {
        "spherical": np.full(k, var.mean()),
        "diag": np.tile(var, (k, 1)),
        "full": np.stack([np.diag(var)] * k),
    }[cov_type]
    weights = np.full(k, 1.0 / k)
    prec_chol = _compute_precision_cholesky(covariances, cov_type)

    ref = GaussianMixture(k, covariance_type=cov_type)
    ref.means_, ref.weights_, ref.covariances_ = (
        means.astype(np.float32), weights.astype(np.float32), covariances.astype(np.float32),
    )
    ref.precisions_cholesky_ = prec_chol.astype(np.float32)

    def sk_step():
        # Restart from the same parameters every repeat, as our step does.
        ref.means_, ref.weights_ = means.astype(np.float32), weights.astype(np.float32)
        ref.precisions_cholesky_ = prec_chol.astype(np.float32)
        log_norm, log_resp = ref._e_step(X)
        ref._m_step(X, log_resp)
        return log_norm

    def our_step():
        ll, nk, sums, sq = backend.mixture_em_statistics(
            X, means, prec_chol, np.log(weights), cov_type
        )
        # The M-step with the precisions' Cholesky factors, as sklearn's _m_step.
        backend.mixture_m_step(nk, sums, sq, cov_type, reg_covar=1e-6, n_samples=n)
        return ll / n

    def best_of(fn, repeats=3):
        runs = [measure(fn) for _ in range(repeats)]
        return min(r[0] for r in runs), max(r[1] for r in runs), runs[0][2]

    our_step()  # warm-up (BLAS threads, page faults)
    t_sk, m_sk, ll_sk = best_of(sk_step)
    t_us, m_us, ll_us = best_of(our_step)
    rows.append(dict(
        task=f"one EM iteration ({cov_type}), best of 3", ours_s=t_us, sklearn_s=t_sk,
        speedup=t_sk / t_us, ours_peak_mib=m_us, sklearn_peak_mib=m_sk,
        ours_loglik=float(ll_us), sklearn_loglik=float(ll_sk),
    ))

    # --- EM to convergence from identical parameters (same tol): equal log-likelihood
    start = dict(
        means=means, covariances=covariances, weights=weights, precisions_chol=prec_chol
    )
    ours = SemiSupervisedGMM(k, covariance_type=cov_type, max_iter=max_iter, tol=1e-3)
    fixed = np.full(n, -1, dtype=np.int64)
    runs_us, runs_sk = [], []
    for _ in range(2):  # alternate, keep the faster of two runs each (shared machine)
        runs_us.append(measure(lambda: ours._em(X, fixed, dict(start))))
        runs_sk.append(measure(lambda: _warm_sklearn(k, cov_type, max_iter, start).fit(X)))
    t_us, m_us, state = min(runs_us, key=lambda r: r[0])
    t_sk, m_sk, sk = min(runs_sk, key=lambda r: r[0])
    _, our_norm = backend.log_responsibilities(
        X, state["means"], state["precisions_chol"], np.log(state["weights"]), cov_type
    )
    print(f"  one iteration: ours {rows[0]['ours_s']:.2f} s, sklearn {rows[0]['sklearn_s']:.2f} s",
          flush=True)
    rows.append(dict(
        task=f"EM to convergence, same start ({cov_type})", ours_s=t_us, sklearn_s=t_sk,
        speedup=t_sk / t_us, ours_peak_mib=m_us, sklearn_peak_mib=m_sk,
        ours_loglik=float(our_norm.astype(np.float64).mean()),
        sklearn_loglik=float(sk.score(X)), ours_iters=int(state["n_iter"]),
        sklearn_iters=int(sk.n_iter_),
    ))

    # --- full fits with each library's own initialisation (no labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = GaussianMixture(
            k, covariance_type=cov_type, max_iter=max_iter, tol=1e-3, random_state=seed
        )
        t_sk, m_sk, _ = measure(lambda: sk.fit(X))
        ours = SemiSupervisedGMM(
            k, covariance_type=cov_type, max_iter=max_iter, tol=1e-3, random_state=seed
        )
        t_us, m_us, _ = measure(lambda: ours.fit(X))
    rows.append(dict(
        task=f"fit() with defaults ({cov_type})", ours_s=t_us,
        sklearn_s=t_sk, speedup=t_sk / t_us, ours_peak_mib=m_us,
        sklearn_peak_mib=m_sk, ours_loglik=float(ours.score(X)),
        sklearn_loglik=float(sk.score(X)), ours_iters=int(ours.n_iter_),
        sklearn_iters=int(sk.n_iter_),
    ))
    return rows


def gcd_split(y, seed=0):
    """Half of the classes known, half of their samples labelled (the GCD protocol)."""
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    known = np.sort(rng.choice(classes, len(classes) // 2, replace=False))
    labelled = np.isin(y, known) & (rng.rand(y.size) < 0.5)
    return known, np.where(labelled, y, -1)


def bench_quality(path, names, seed=0):
    rows = []
    for name in names:
        file = path / name
        if not file.exists():
            continue
        d = np.load(file)
        X = d["X"].astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        y = d["y"]
        k_true = len(np.unique(y))
        known, y_train = gcd_split(y, seed)
        unl = y_train < 0

        def evaluate(method, labels, k_est, seconds):
            acc = cluster_accuracy(y[unl], labels[unl], old_classes=known)
            rows.append(dict(
                dataset=name.replace(".npz", ""), method=method, all=acc[0], old=acc[1],
                new=acc[2], k_est=int(k_est), k_true=k_true, seconds=seconds,
            ))
            print(f"  {rows[-1]['dataset']:16s} {method:44s} all={acc[0]:.3f} "
                  f"old={acc[1]:.3f} new={acc[2]:.3f} K={k_est}/{k_true} ({seconds:.1f} s)",
                  flush=True)

        for label, params in [
            ("SemiSupervisedGMM auto, class_size (soft)", dict()),
            ("SemiSupervisedGMM auto, class_size (hard)", dict(assignment="hard")),
            ("SemiSupervisedGMM auto, split_merge (soft)", dict(k_estimation="split_merge")),
            ("SemiSupervisedGMM auto, split_merge (hard)", dict(k_estimation="split_merge",
                                                                assignment="hard")),
            ("SemiSupervisedGMM true K (soft)", dict(n_components=k_true)),
            ("SemiSupervisedGMM true K (hard)", dict(n_components=k_true, assignment="hard")),
        ]:
            model = SemiSupervisedGMM(covariance_type="diag", random_state=seed, **params)
            t, _, _ = measure(lambda: model.fit(X, y_train))
            evaluate(label, model.labels_, model.n_components_, t)
        km = KMeans(k_true, n_init=3, random_state=seed)
        t, _, _ = measure(lambda: km.fit(X))
        evaluate("KMeans true K (unsupervised)", km.labels_, k_true, t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = GaussianMixture(k_true, covariance_type="diag", random_state=seed)
            t, _, _ = measure(lambda: gm.fit(X))
        evaluate("GaussianMixture diag true K", gm.predict(X), k_true, t)
    return rows


K_METHODS = ("class_size", "labelled_accuracy", "split_merge")


def synthetic_gcd(seed, overlap, n_known=10, n_novel=6, n_features=64, n_per_class=150,
                  novel_per_class=None):
    """Gaussian classes on the unit sphere, L2-normalised; half of each known class
    labelled. ``overlap`` False: well separated in 64 dimensions (k-means recovers them);
    True: 16 dimensions and a within-class spread close to the distance between classes
    (a linear classifier reaches about 0.90, semi-supervised k-means about 0.80)."""
    rng = np.random.RandomState(1000 + seed)
    k = n_known + n_novel
    n_features = 16 if overlap else n_features
    centres = rng.randn(k, n_features)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    std = 0.3 if overlap else 0.03
    sizes = [n_per_class] * n_known + [novel_per_class or n_per_class] * n_novel
    X = np.vstack([c + std * rng.randn(n, n_features) for c, n in zip(centres, sizes)])
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    y = np.repeat(np.arange(k), sizes)
    labelled = (y < n_known) & (rng.rand(y.size) < 0.5)
    return X, y, np.arange(n_known), np.where(labelled, y, -1)


def k_estimation_sets(path, seeds):
    """(name, true K, [(X, y, known, y_train) per seed]) for every data set."""
    sets = []
    for name in ["fmnist_effnet", "mnist_effnet", "wordnet_minilm"]:
        file = None if path is None else path / f"{name}.npz"
        if file is None or not file.exists():
            continue
        d = np.load(file)
        X = d["X"].astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        y = d["y"]
        splits = [(X, y, *gcd_split(y, seed)) for seed in seeds]
        sets.append((name, len(np.unique(y)), splits))
    for name, kwargs in [
        ("synthetic separated", dict(overlap=False)),
        ("synthetic overlapping", dict(overlap=True)),
        ("synthetic, novel classes half as large", dict(overlap=False, novel_per_class=75)),
    ]:
        sets.append((name, 16, [synthetic_gcd(seed, **kwargs) for seed in seeds]))
    return sets


def bench_k_estimation(path, seeds, n_init=1):
    rows = []
    for name, k_true, splits in k_estimation_sets(path, seeds):
        print(f"  {name} (K = {k_true})", flush=True)
        per_method = {}
        for seed, (X, y, known, y_train) in zip(seeds, splits):
            unl = y_train < 0
            runs = [(f"k_estimation={m!r}", dict(n_components="auto", k_estimation=m,
                                                 assignment="hard")) for m in K_METHODS]
            runs += [
                ("true K, semi-supervised k-means", dict(n_components=k_true,
                                                         assignment="hard")),
                ("true K, EM (soft)", dict(n_components=k_true)),
                ("SemiSupervisedGMM() defaults", dict()),
            ]
            for label, params in runs:
                model = SemiSupervisedGMM(random_state=seed, n_init=n_init, **params)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    t, _, _ = measure(lambda: model.fit(X, y_train))
                acc = cluster_accuracy(y[unl], model.labels_[unl], old_classes=known)
                per_method.setdefault(label, []).append(
                    (model.n_components_, *acc, t))
            km = KMeans(k_true, n_init=n_init, random_state=seed)
            t, _, _ = measure(lambda: km.fit(X))
            acc = cluster_accuracy(y[unl], km.labels_[unl], old_classes=known)
            per_method.setdefault("true K, KMeans (unsupervised)", []).append(
                (k_true, *acc, t))
        for label, runs in per_method.items():
            runs = np.array(runs, dtype=float)
            row = dict(
                dataset=name, k_true=k_true, method=label,
                k_est=[int(k) for k in runs[:, 0]],
                rel_error=float(np.mean(np.abs(runs[:, 0] - k_true) / k_true)),
                max_rel_error=float(np.max(np.abs(runs[:, 0] - k_true) / k_true)),
                all=float(runs[:, 1].mean()), old=float(runs[:, 2].mean()),
                new=float(np.nanmean(runs[:, 3])), seconds=float(np.median(runs[:, 4])),
            )
            rows.append(row)
            print(f"    {label:36s} K={row['k_est']} err={row['rel_error']:.2f} "
                  f"all={row['all']:.3f} old={row['old']:.3f} new={row['new']:.3f} "
                  f"({row['seconds']:.1f} s)", flush=True)
    return rows


def print_k_table(rows, seeds, n_init):
    print(f"\nK estimation, {len(seeds)} seeds, n_init={n_init} (mean over seeds; time = "
          "median fit, s)")
    print("| data (true K) | method | K per seed | rel. error (mean / max) | All | Old | New "
          "| fit s |")
    print("|---|---|---|---|---|---|---|---|")
    last = None
    for r in rows:
        data = f"{r['dataset']} ({r['k_true']})" if r["dataset"] != last else ""
        last = r["dataset"]
        print(f"| {data} | {r['method']} | {', '.join(map(str, r['k_est']))} | "
              f"{r['rel_error']:.2f} / {r['max_rel_error']:.2f} | {r['all']:.3f} | "
              f"{r['old']:.3f} | {r['new']:.3f} | {r['seconds']:.1f} |")


def print_speed(rows, size):
    print(f"\nSpeed, {size}, float32 (times in s, peak MiB by tracemalloc)")
    print(f"{'task':44s} {'ours':>8s} {'sklearn':>8s} {'ratio':>6s} {'ours MiB':>9s} "
          f"{'skl MiB':>8s} {'ours loglik':>12s} {'skl loglik':>11s} {'iters':>8s}")
    for r in rows:
        iters = f"{r['ours_iters']}/{r['sklearn_iters']}" if "ours_iters" in r else ""
        print(f"{r['task']:44s} {r['ours_s']:8.2f} {r['sklearn_s']:8.2f} {r['speedup']:5.2f}x "
              f"{r['ours_peak_mib']:9.0f} {r['sklearn_peak_mib']:8.0f} "
              f"{r['ours_loglik']:12.3f} {r['sklearn_loglik']:11.3f} {iters:>8s}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=20,000, D=128, K=50")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--cov", default="diag", choices=["spherical", "diag", "full"])
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--k-estimation", action="store_true",
                        help="only the K-estimation table")
    parser.add_argument("--seeds", type=int, default=3, help="splits per data set")
    parser.add_argument("--n-init", type=int, default=1,
                        help="n_init of every fit in the K-estimation table")
    args = parser.parse_args()
    if args.k_estimation:
        seeds = list(range(args.seeds))
        print(f"uptime before: {os.getloadavg()}", flush=True)
        start = time.perf_counter()
        rows = bench_k_estimation(data_dir(), seeds, args.n_init)
        print_k_table(rows, seeds, args.n_init)
        print(f"\ntotal {time.perf_counter() - start:.0f} s; uptime after: "
              f"{os.getloadavg()}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        target = RESULTS / f"bench_gcd_k_estimation_n_init{args.n_init}.json"
        target.write_text(json.dumps(dict(seeds=seeds, n_init=args.n_init, rows=rows),
                                     indent=2))
        print(f"wrote {target}")
        return
    n, d, k = (20_000, 128, 50) if args.quick else (100_000, 256, 100)
    out = dict(size=dict(n=n, d=d, k=k, cov=args.cov), speed=[], quality=[])

    if not args.skip_speed:
        out["speed"] = bench_speed(n, d, k, args.cov, args.max_iter)
        print_speed(out["speed"], f"N={n:,}, D={d}, K={k}, {args.cov}")

    if not args.skip_quality:
        path = data_dir()
        if path is None:
            print("\nQuality: ../shared/data not found (set SKPROTO_DATA); skipped.")
        else:
            print("\nQuality (unlabelled samples; half the classes known, half of their "
                  "samples labelled; L2-normalised embeddings)")
            out["quality"] = bench_quality(
                path, ["fmnist_effnet.npz", "mnist_effnet.npz", "wordnet_minilm.npz"]
            )

    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "quick" if args.quick else "full"
    target = RESULTS / f"bench_gcd_{suffix}.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {target}")


if __name__ == "__main__":
    main()
