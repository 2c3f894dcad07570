"""NearestMeanClassifier: predict against the bare GEMM and scikit-learn's NearestCentroid.

Default size N=200,000, K=1,000, D=512, float32, as in real use. All timings run side by
side in this process, alternated (GEMM, ours, NearestCentroid, GEMM, ...) after one
untimed warm-up each; figures are per-round ratios to the bare GEMM ``X @ P.T`` (it
writes the N x K matrix that ``predict`` never builds), printed as median [min, max]
over the repeats, with the load average before and after.

Targets (issue 16): ``predict`` at most 1.0x the bare GEMM for both metrics, and at
least 3x faster than ``NearestCentroid.predict``.

    python benchmarks/bench_nearest_mean.py            # full size
    python benchmarks/bench_nearest_mean.py --quick    # N=20,000, K=200
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.neighbors import NearestCentroid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    alternated_times,
    format_stats,
    best_time,
    peak_memory_mib,
    print_table,
    ratio_stats,
    time_stats,
    uptime,
    write_json,
)

from skproto import NearestMeanClassifier, config_context  # noqa: E402


def make_data(n, k, d, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d), dtype=np.float32)
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.standard_normal((n, d), dtype=np.float32)
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=1_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="N=20,000, K=200")
    parser.add_argument("--torch", action="store_true", help="also time backend='torch' (CPU)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.k = 20_000, 200
    load_before = uptime()

    X, y = make_data(args.n, args.k, args.d)
    print(f"N={args.n:,} K={args.k:,} D={args.d} float32, {args.repeats} alternated rounds")
    print(f"before: {load_before}")

    cosine = NearestMeanClassifier(metric="cosine").fit(X, y)
    euclid = NearestMeanClassifier(metric="euclidean").fit(X, y)
    centroid = NearestCentroid().fit(X, y)
    P = cosine.prototypes_

    funcs = {
        "gemm": lambda: X @ P.T,
        "cosine": lambda: cosine.predict(X),
        "euclidean": lambda: euclid.predict(X),
        "centroid": lambda: centroid.predict(X),
    }
    if args.torch:
        def torch_predict():
            with config_context(backend="torch", device="cpu"):
                return cosine.predict(X)
        funcs["torch"] = torch_predict
    times, results = alternated_times(funcs, args.repeats)
    agree = float(np.mean(results["euclidean"] == results["centroid"]))
    if args.torch:
        assert np.mean(results["torch"] == results["cosine"]) > 0.999
    gemm = times["gemm"]
    names = {
        "gemm": "bare GEMM X @ P.T",
        "cosine": "NearestMeanClassifier(cosine).predict",
        "euclidean": "NearestMeanClassifier(euclidean).predict",
        "torch": "NearestMeanClassifier(cosine).predict, torch CPU",
        "centroid": "sklearn NearestCentroid.predict",
    }
    rows, ratios = [], {}
    for key in ["gemm", "cosine", "euclidean", "torch", "centroid"]:
        if key not in times:
            continue
        ratios[key] = ratio_stats(times[key], gemm)
        row = {"method": names[key], "seconds": format_stats(time_stats(times[key])),
               "x GEMM": format_stats(ratios[key])}
        if key not in ("gemm", "centroid"):
            ratios[f"centroid/{key}"] = ratio_stats(times["centroid"], times[key])
            row["NearestCentroid / ours"] = format_stats(ratios[f"centroid/{key}"])
        rows.append(row)

    # Memory: the GEMM materialises N x K; predict works in row chunks.
    mem_gemm = peak_memory_mib(lambda: X @ P.T)
    mem_pred = peak_memory_mib(lambda: cosine.predict(X))
    mem_nc = peak_memory_mib(lambda: centroid.predict(X))
    rows[0]["peak MiB"] = f"{mem_gemm:.1f}"
    rows[1]["peak MiB"] = f"{mem_pred:.1f}"
    rows[-1]["peak MiB"] = f"{mem_nc:.1f}"

    # partial_fit throughput: the stream in batches of 10,000, classes arriving over time.
    batch = 10_000
    order = np.argsort(y, kind="stable")
    Xs, ys = X[order], y[order]

    def stream():
        clf = NearestMeanClassifier()
        for start in range(0, args.n, batch):
            clf.partial_fit(Xs[start:start + batch], ys[start:start + batch])
        return clf

    t_pf, streamed = best_time(stream, 1)
    t_fit, _ = best_time(lambda: NearestMeanClassifier().fit(X, y), 3)
    assert np.allclose(streamed.prototypes_, cosine.prototypes_, rtol=1e-4, atol=1e-5)
    mem_pf = peak_memory_mib(lambda: cosine.partial_fit(X[:batch], y[:batch]))
    rows += [
        {"method": f"partial_fit stream (batches of {batch:,})", "seconds": t_pf,
         "samples/s": args.n / t_pf, "peak MiB": mem_pf},
        {"method": "fit (all at once)", "seconds": t_fit, "samples/s": args.n / t_fit},
    ]

    load_after = uptime()
    print_table(rows, ["method", "seconds", "x GEMM", "NearestCentroid / ours",
                       "samples/s", "peak MiB"])
    print("seconds and ratios: median [min, max] over the alternated rounds")
    print(f"euclidean predictions equal to NearestCentroid's on {agree:.4%} of samples")
    for key in ("cosine", "euclidean"):
        r, c = ratios[key]["median"], ratios[f"centroid/{key}"]["median"]
        print(f"target {key} predict <= 1.0x GEMM: {'met' if r <= 1.0 else 'NOT met'} "
              f"({r:.2f}x); >= 3x faster than NearestCentroid: "
              f"{'met' if c >= 3 else 'NOT met'} ({c:.2f}x)")
    print(f"before: {load_before}\nafter:  {load_after}")
    write_json("bench_nearest_mean", {
        "n": args.n, "k": args.k, "d": args.d, "repeats": args.repeats, "rows": rows,
        "ratios": ratios, "times": times, "euclidean_agreement": agree,
        "load_before": load_before, "load_after": load_after,
    })


if __name__ == "__main__":
    main()
