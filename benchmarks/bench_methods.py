"""The strongest methods on frozen features: RanPAC, FeCAM and the OOD detectors.

Real frozen embeddings from ``../shared/data`` (see its README; skipped cleanly if
absent). Two parts, each a separate run (``--part cil`` / ``--part ood``; both by
default), each meant to stay under 10 minutes on a busy 2-core machine:

1. ``cil``: the class-incremental protocols of ``bench_incremental.py`` (Fashion-MNIST
   B2 Inc2, WordNet B15 Inc10, at most 300 training samples per class, class order
   seed 0) for NearestMeanClassifier (SimpleCIL), FeTrIL, FeCAM, RanPAC and a joint
   LogisticRegression refitted on all the data seen so far (the upper bound):
   accuracy after each step, average incremental accuracy (AIA), last accuracy,
   fit time per step and its ratio to the nearest mean in the same run.
2. ``ood``: near-OOD by held-out classes (Fashion-MNIST: 3 of the 10 classes held out,
   ``--repeats`` random choices; WordNet: one part of speech held out, each of the 4
   twice with two random 50/50 train/test splits) and far-OOD (Fashion-MNIST, official
   split, vs all MNIST digits). AUROC and FPR@95%TPR (in-distribution = positive) of
   every skproto score and, side by side in the same process on the same features,
   the peers: pytorch-ood 0.4 ``Mahalanobis``, ``RMD`` and ``KNN`` (raw and
   L2-normalised features) and scikit-learn's ``LocalOutlierFactor(novelty=True)`` on
   normalised features. Mean (and min, max) over the repeats of each split family.

Prints tables, ``uptime`` before and after, and writes
``benchmarks/results/bench_methods.json`` (one file per part).

    python benchmarks/bench_methods.py --part cil
    python benchmarks/bench_methods.py --part ood --repeats 5
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import LocalOutlierFactor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import Normalizer  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from skproto import (  # noqa: E402
    FeCAM,
    FeTrIL,
    KNNOODDetector,
    MahalanobisOODDetector,
    NearestMeanClassifier,
    RanPAC,
)
from skproto.metrics import average_incremental_accuracy, ood_report  # noqa: E402
from skproto.model_selection import ClassIncrementalSplit, evaluate_incremental  # noqa: E402


def data_dir():
    return Path(os.environ.get("SKPROTO_DATA", ROOT.parent / "shared" / "data"))


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


# ---------------------------------------------------------------- class-incremental


def cil_methods(dataset, n_components):
    methods = [
        ("NCM (cosine)", NearestMeanClassifier(), "partial_fit"),
        ("FeTrIL (euclid)", FeTrIL(), "partial_fit"),
        ("FeCAM (defaults, ViT script)", FeCAM(), "partial_fit"),
        ("FeCAM pooled", FeCAM("pooled"), "partial_fit"),
    ]
    if dataset == "fmnist_effnet":  # ReLU6 features: non-negative, Tukey applies
        methods.append(("FeCAM Tukey 0.5, a2=1", FeCAM(tukey_beta=0.5, offdiag_shrinkage=1.0),
                        "partial_fit"))
    for m in n_components:
        methods.append((f"RanPAC M={m}", RanPAC(n_components=m, random_state=0),
                        "partial_fit"))
    methods.append(("Joint LogReg (upper)",
                    make_pipeline(Normalizer(), LogisticRegression(C=10.0, max_iter=100)),
                    "joint"))
    return methods


def class_incremental(name, data, n_initial, increment, n_components):
    from bench_incremental import run

    splitter = ClassIncrementalSplit(n_initial, increment, shuffle=True, random_state=0)
    rows = []
    for label, est, strategy in cil_methods(name, n_components):
        res = run(est, data, splitter, strategy, trace=False)
        rows.append({
            "method": label,
            "accuracy": res.accuracy.tolist(),
            "aia": average_incremental_accuracy(res.accuracy),
            "last": float(res.accuracy[-1]),
            "fit_s_per_step": res.fit_time.tolist(),
            "fit_s_mean": float(res.fit_time.mean()),
            "predict_s_mean": float(res.predict_time.mean()),
        })
        seen = res.n_seen_classes
        print(f"  {label}: last {rows[-1]['last']:.3f} ({time.strftime('%X')})", flush=True)
    base = rows[0]["fit_s_mean"]
    print(f"\n## Class-incremental: {name}, B{n_initial} Inc{increment}, class order seed 0;"
          f" train {len(data[1])}, test {len(data[3])}")
    head = " | ".join(f"{int(s)}" for s in seen)
    print(f"| method | {head} | AIA | fit s/step (x NCM) |")
    print("|---|" + "---|" * len(seen) + "---|---|")
    for r in rows:
        r["fit_ratio_vs_ncm"] = r["fit_s_mean"] / base
        accs = " | ".join(f"{a:.3f}" for a in r["accuracy"])
        print(f"| {r['method']} | {accs} | {r['aia']:.3f} | {r['fit_s_mean']:.2f} "
              f"({r['fit_ratio_vs_ncm']:.0f}x) |")
    return {"dataset": name, "n_initial": n_initial, "increment": increment,
            "n_seen_classes": seen.tolist(), "methods": rows}


def part_cil(args):
    from bench_incremental import load

    fmnist = load("fmnist_effnet", 300)
    wordnet = load("wordnet_minilm", 300)
    n_components = [int(m) for m in args.n_components.split(",")]
    return [
        class_incremental("fmnist_effnet", fmnist, 2, 2, n_components),
        class_incremental("wordnet_minilm", wordnet, 15, 10, n_components),
    ]


# ---------------------------------------------------------------- OOD


def unit(A):
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)


def ood_splits(repeats):
    """(family, description, X_train, y_train, X_in_test, X_ood) for every split."""
    d = np.load(data_dir() / "fmnist_effnet.npz")
    X, y, split = d["X"].astype(np.float32), d["y"], d["split"]
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        held = np.sort(rng.choice(10, 3, replace=False))
        known = ~np.isin(y, held)
        yield ("fmnist near (3 classes held out)", f"held out {held.tolist()}",
               X[known & (split == 0)], y[known & (split == 0)],
               X[known & (split == 1)], X[~known & (split == 1)])
    mnist = np.load(data_dir() / "mnist_effnet.npz")["X"].astype(np.float32)
    yield ("fmnist vs mnist (far)", "official split", X[split == 0], y[split == 0],
           X[split == 1], mnist)
    w = np.load(data_dir() / "wordnet_minilm.npz")
    X, y, pos, names = w["X"].astype(np.float32), w["y"], w["superclass"], w["superclass_names"]
    for seed in range(max(1, repeats // 4 + (repeats % 4 > 0))):
        for p in range(4):
            train = np.random.default_rng(100 * seed + p).random(len(y)) < 0.5
            known = pos != p
            yield ("wordnet near (1 part of speech held out)",
                   f"held out {names[p]}, split seed {seed}",
                   X[known & train], y[known & train], X[known & ~train], X[~known & ~train])


def skproto_detectors():
    dets = [
        ("skproto Mahalanobis rmds + fecam (default)", lambda: MahalanobisOODDetector()),
    ]
    for method in ("mds", "rmds", "ssd"):
        for cov in ("empirical", "ledoit-wolf", "oas", "fecam"):
            if method == "rmds" and cov == "fecam":
                continue
            dets.append((f"skproto Mahalanobis {method} + {cov}",
                         lambda m=method, c=cov: MahalanobisOODDetector(m, covariance=c)))
    dets += [
        ("skproto KNN+ k=auto (default)", lambda: KNNOODDetector()),
        ("skproto KNN+ k=50", lambda: KNNOODDetector(50)),
    ]
    return dets


def peer_scores(Xtr, ytr, Xin, Xout):
    """pytorch-ood (raw and normalised features) and LOF; scores higher = more normal."""
    import torch
    from pytorch_ood.detector import KNN, RMD, Mahalanobis

    out = {}
    _, codes = np.unique(ytr, return_inverse=True)
    for suffix, f in (("raw", lambda A: A), ("L2-normalised", unit)):
        z, labels = torch.from_numpy(f(Xtr)), torch.from_numpy(codes)
        for cls in (Mahalanobis, RMD):
            start = time.perf_counter()
            det = cls(None)
            det.fit_features(z, labels)
            si = -det.predict_features(torch.from_numpy(f(Xin))).numpy()
            so = -det.predict_features(torch.from_numpy(f(Xout))).numpy()
            out[f"pytorch-ood {cls.__name__} ({suffix})"] = (si, so, time.perf_counter() - start)
    start = time.perf_counter()
    knn = KNN(None, k=50)  # normalises inside, as the paper
    knn.fit_features(torch.from_numpy(Xtr), torch.from_numpy(codes))
    si = -knn.predict_features(torch.from_numpy(Xin)).numpy()
    so = -knn.predict_features(torch.from_numpy(Xout)).numpy()
    out["pytorch-ood KNN k=50"] = (si, so, time.perf_counter() - start)
    start = time.perf_counter()
    lof = LocalOutlierFactor(novelty=True).fit(unit(Xtr))
    out["sklearn LocalOutlierFactor(novelty=True), L2-normalised"] = (
        lof.score_samples(unit(Xin)), lof.score_samples(unit(Xout)),
        time.perf_counter() - start)
    return out


def part_ood(args):
    import logging

    import torch

    logging.getLogger("pytorch_ood").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads or os.cpu_count())
    results = {}
    for family, desc, Xtr, ytr, Xin, Xout in ood_splits(args.repeats):
        t0 = time.perf_counter()
        scores = {}
        for label, make in skproto_detectors():
            start = time.perf_counter()
            det = make().fit(Xtr, ytr)
            scores[label] = (det.score_samples(Xin), det.score_samples(Xout),
                             time.perf_counter() - start)
        scores.update(peer_scores(Xtr, ytr, Xin, Xout))
        for label, (si, so, seconds) in scores.items():
            report = ood_report(np.r_[np.ones(len(si)), np.zeros(len(so))], np.r_[si, so])
            entry = results.setdefault(family, {}).setdefault(label, [])
            entry.append({"split": desc, "auroc": report["auroc"],
                          "fpr95": report["fpr@95tpr"], "seconds": seconds})
        print(f"  {family}: {desc}, train {len(Xtr)}, in {len(Xin)}, out {len(Xout)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {}
    for family, per_method in results.items():
        print(f"\n## {family}: mean over {len(next(iter(per_method.values())))} split(s)"
              " (min-max of AUROC)")
        print("| detector | AUROC | FPR@95 | fit+score s |")
        print("|---|---|---|---|")
        rows = []
        for label, runs in per_method.items():
            a = np.array([r["auroc"] for r in runs])
            f = np.array([r["fpr95"] for r in runs])
            s = np.array([r["seconds"] for r in runs])
            rows.append((label, a.mean(), a.min(), a.max(), f.mean(), s.mean()))
        rows.sort(key=lambda r: -r[1])
        for label, am, amin, amax, fm, sm in rows:
            spread = f" ({amin:.3f}-{amax:.3f})" if amin != amax else ""
            print(f"| {label} | {am:.3f}{spread} | {fm:.3f} | {sm:.2f} |")
        summary[family] = {r[0]: {"auroc": r[1], "auroc_min": r[2], "auroc_max": r[3],
                                  "fpr95": r[4], "seconds": r[5]} for r in rows}
        peers = [r for r in rows if not r[0].startswith("skproto")]
        default = next(r for r in rows if r[0].endswith("(default)") and "Mahalanobis" in r[0])
        best_peer = max(peers, key=lambda r: r[1])
        print(f"default vs best peer ({best_peer[0]}): AUROC {default[1]:.3f} vs "
              f"{best_peer[1]:.3f} ({default[1] - best_peer[1]:+.3f})")
    return {"per_split": results, "summary": summary}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["cil", "ood", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5,
                        help="random held-out choices per near-OOD family (>= 5)")
    parser.add_argument("--n-components", default="2000,10000",
                        help="RanPAC projection sizes, comma separated")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS / torch threads (default 1; 0: library default)")
    args = parser.parse_args(argv)
    if not data_dir().exists():
        print(f"skipped: no data in {data_dir()} (set SKPROTO_DATA)")
        return 0
    if args.threads:
        threadpool_limits(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = ["cil", "ood"] if args.part == "both" else [args.part]
    for part in parts:
        before = uptime()
        print(f"uptime before: {before}", flush=True)
        start = time.perf_counter()
        payload = part_cil(args) if part == "cil" else part_ood(args)
        total = time.perf_counter() - start
        after = uptime()
        print(f"\n{part}: total {total:.0f} s\nuptime after: {after}")
        out = {"part": part, "results": payload, "total_s": total, "uptime_before": before,
               "uptime_after": after, "threads": args.threads, "repeats": args.repeats,
               "python": platform.python_version(), "cpu_count": os.cpu_count()}
        path = ROOT / "benchmarks" / "results" / f"bench_methods_{part}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
