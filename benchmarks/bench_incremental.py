"""Class-incremental and few-shot class-incremental protocols on real embeddings.

Two protocols, run with :func:`skproto.model_selection.evaluate_incremental` on the
frozen embeddings of ``../shared/data`` (see its README; skipped cleanly if absent):

1. Class-incremental (CIL): ``NearestMeanClassifier`` (cosine, SimpleCIL) vs
   ``FeTrIL`` (LinearSVC, both pairings) vs a joint ``LogisticRegression`` refitted on
   all the data seen so far (the non-incremental upper bound).
2. Few-shot class-incremental (FSCIL): ``NearestMeanClassifier`` vs ``TEENCalibrator``
   for a few ``alpha``, averaged over several seeds (class order and shots).

Prints per-step accuracy tables, average incremental accuracy (AIA), forgetting,
performance drop (PD), harmonic mean of base/novel accuracy (HM), fit time per step,
its ratio to the nearest-mean baseline run in the same process, and peak traced memory
(tracemalloc: numpy and Python allocations; liblinear's own buffers are not traced).
Writes ``benchmarks/results/bench_incremental.json``.

    python benchmarks/bench_incremental.py            # ~2-3 minutes on 2 busy cores
    python benchmarks/bench_incremental.py --full     # all training samples (slower)
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import Normalizer  # noqa: E402

from skproto import FeTrIL, NearestMeanClassifier, TEENCalibrator  # noqa: E402
from skproto.metrics import (  # noqa: E402
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)
from skproto.model_selection import (  # noqa: E402
    ClassIncrementalSplit,
    FewShotIncrementalSplit,
    evaluate_incremental,
)


def data_dir():
    default = ROOT.parent / "shared" / "data"
    return Path(os.environ.get("SKPROTO_DATA", default))


def load(name, max_train_per_class, seed=0):
    """Train/test split: the official one where the file has it, else 50/50 stratified."""
    d = np.load(data_dir() / f"{name}.npz")
    X, y = d["X"].astype(np.float32), d["y"]
    if "split" in d:
        train, test = d["split"] == 0, d["split"] == 1
        Xtr, ytr, Xte, yte = X[train], y[train], X[test], y[test]
    else:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
    if max_train_per_class:
        rng = np.random.default_rng(seed)
        keep = np.concatenate([
            rng.permutation(np.flatnonzero(ytr == c))[:max_train_per_class]
            for c in np.unique(ytr)
        ])
        keep.sort()
        Xtr, ytr = Xtr[keep], ytr[keep]
    return Xtr, ytr, Xte, yte


def run(estimator, data, splitter, strategy="partial_fit", trace=True):
    """One protocol run; with ``trace``, peak traced memory in ``res.peak_mib``."""
    if trace:
        tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = evaluate_incremental(estimator, *data, splitter, strategy=strategy)
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        res.peak_mib = peak / 2**20
    return res


def fmt(x, width=6, digits=3):
    return f"{'-':>{width}}" if x is None or np.isnan(x) else f"{x:{width}.{digits}f}"


def class_incremental(name, data, n_initial, increment, seed):
    splitter = ClassIncrementalSplit(n_initial, increment, shuffle=True, random_state=seed)
    methods = [
        ("NCM (cosine)", NearestMeanClassifier(), "partial_fit"),
        ("FeTrIL (euclid)", FeTrIL(pairing="euclidean"), "partial_fit"),
        ("FeTrIL (cosine)", FeTrIL(pairing="cosine"), "partial_fit"),
        ("Joint LogReg (upper)",
         make_pipeline(Normalizer(), LogisticRegression(C=10.0, max_iter=100)), "joint"),
    ]
    rows = []
    for label, est, strategy in methods:
        res = run(est, data, splitter, strategy)
        rows.append({
            "method": label,
            "accuracy": res.accuracy.tolist(),
            "aia": average_incremental_accuracy(res.accuracy),
            "last": float(res.accuracy[-1]),
            "forgetting": forgetting(res.accuracy_matrix),
            "fit_s_per_step": res.fit_time.tolist(),
            "fit_s_mean": float(res.fit_time.mean()),
            "predict_s_mean": float(res.predict_time.mean()),
            "peak_mib": res.peak_mib,
        })
        seen = res.n_seen_classes
    base = rows[0]["fit_s_mean"]
    print(f"\n## Class-incremental: {name}, {n_initial} initial classes + {increment} per "
          f"step, class order seed {seed}; train {len(data[1])}, test {len(data[3])}")
    head = " ".join(f"{int(s):>6}" for s in seen)
    print(f"{'method':<22} acc @ classes seen: {head} |    AIA   last  forget | "
          f"fit s/step  x NCM  pred s/step  peak MiB")
    for r in rows:
        accs = " ".join(fmt(a) for a in r["accuracy"])
        print(f"{r['method']:<22} {'':>19} {accs} | {fmt(r['aia'])} {fmt(r['last'])} "
              f"{fmt(r['forgetting'])} | {r['fit_s_mean']:10.3f} {r['fit_s_mean'] / base:6.0f} "
              f"{r['predict_s_mean']:11.4f} {r['peak_mib']:9.1f}")
        r["fit_ratio_vs_ncm"] = r["fit_s_mean"] / base
    return {"dataset": name, "protocol": "class-incremental", "n_initial": n_initial,
            "increment": increment, "seed": seed, "n_seen_classes": seen.tolist(),
            "n_train": int(len(data[1])), "n_test": int(len(data[3])), "methods": rows}


def few_shot(name, data, n_base, n_ways, n_shots, seeds, alphas, tau=16.0):
    methods = [("NCM (cosine)", lambda: NearestMeanClassifier())] + [
        (f"TEEN a={a:g}", lambda a=a: TEENCalibrator(alpha=a, tau=tau)) for a in alphas
    ]
    rows = []
    for label, make in methods:
        per_seed = []
        for seed in seeds:
            splitter = FewShotIncrementalSplit(n_base, n_ways=n_ways, n_shots=n_shots,
                                               shuffle=True, random_state=seed)
            # Timed without tracemalloc (its overhead dominates millisecond fits).
            per_seed.append(run(make(), data, splitter, trace=False))
        traced = run(make(), data, FewShotIncrementalSplit(
            n_base, n_ways=n_ways, n_shots=n_shots, shuffle=True, random_state=seeds[0]))
        acc = np.array([r.accuracy for r in per_seed])
        base = np.array([r.accuracy_base[-1] for r in per_seed])
        novel = np.array([r.accuracy_novel[-1] for r in per_seed])
        rows.append({
            "method": label,
            "accuracy": acc.mean(0).tolist(),
            "accuracy_std": acc.std(0).tolist(),
            "aia": float(np.mean([average_incremental_accuracy(a) for a in acc])),
            "pd": float(np.mean([performance_drop(a) for a in acc])),
            "base_last": float(base.mean()),
            "novel_last": float(novel.mean()),
            "hm_last": float(np.mean(harmonic_mean_accuracy(base, novel))),
            "fit_s_mean": float(np.mean([r.fit_time[1:].mean() for r in per_seed])),
            "peak_mib": float(traced.peak_mib),
        })
        seen = per_seed[0].n_seen_classes
    print(f"\n## Few-shot class-incremental: {name}, {n_base} base classes + "
          f"{len(seen) - 1} sessions of {n_ways}-way {n_shots}-shot, tau={tau:g}, "
          f"mean over {len(seeds)} seeds (class order + shots)")
    head = " ".join(f"{int(s):>6}" for s in seen)
    print(f"{'method':<14} acc @ classes seen: {head} |    AIA     PD   base  novel     HM | "
          f"fit ms/session  x NCM  peak MiB")
    base_t = rows[0]["fit_s_mean"]
    for r in rows:
        accs = " ".join(fmt(a) for a in r["accuracy"])
        print(f"{r['method']:<14} {'':>19} {accs} | {fmt(r['aia'])} {fmt(r['pd'])} "
              f"{fmt(r['base_last'])} {fmt(r['novel_last'])} {fmt(r['hm_last'])} | "
              f"{1e3 * r['fit_s_mean']:14.2f} {r['fit_s_mean'] / base_t:6.2f} "
              f"{r['peak_mib']:9.1f}")
        r["fit_ratio_vs_ncm"] = r["fit_s_mean"] / base_t
    return {"dataset": name, "protocol": "few-shot", "n_base": n_base, "n_ways": n_ways,
            "n_shots": n_shots, "seeds": list(seeds), "tau": tau,
            "n_seen_classes": seen.tolist(), "methods": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="every training sample (default: at most 300 per class)")
    parser.add_argument("--seeds", type=int, default=5, help="FSCIL seeds")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: stable timings on a shared machine; "
                        "0 leaves the library default)")
    args = parser.parse_args(argv)
    if not data_dir().exists():
        print(f"skipped: no data in {data_dir()} (set SKPROTO_DATA)")
        return 0
    cap = None if args.full else 300
    if args.threads:
        threadpool_limits(args.threads)
    start = time.perf_counter()
    fmnist = load("fmnist_effnet", cap)
    wordnet = load("wordnet_minilm", cap)
    seeds = list(range(args.seeds))
    alphas = (0.1, 0.25, 0.5, 0.75)
    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "max_train_per_class": cap,
        "blas_threads": args.threads or "default",
        "results": [
            class_incremental("fmnist_effnet", fmnist, 2, 2, 0),
            class_incremental("wordnet_minilm", wordnet, 15, 10, 0),
            few_shot("fmnist_effnet", fmnist, 5, 1, 5, seeds, alphas),
            few_shot("wordnet_minilm", wordnet, 25, 5, 5, seeds, alphas),
        ],
    }
    out["total_s"] = time.perf_counter() - start
    out["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {out['total_s']:.0f} s, max RSS {out['max_rss_mib']:.0f} MiB")
    path = ROOT / "benchmarks" / "results" / "bench_incremental.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
