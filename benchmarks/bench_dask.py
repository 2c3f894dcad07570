"""Dask: throughput of fit / predict / one EM iteration on local workers, and overhead.

Three tables, all float32, D features, K classes (or mixture components):

1. **Lazily generated data on a ``distributed.LocalCluster``** of 1 and 2 worker
   processes (1 thread each, BLAS single-threaded as distributed sets it): samples/s of
   ``NearestMeanClassifier.fit`` (N rows), ``predict`` (N_predict rows, computed on
   the workers and reduced to a checksum, so the labels do not travel) and one EM
   iteration of ``SemiSupervisedGMM`` (diagonal covariances, the distributed E-step
   statistics, N_em rows), next to the cost of generating the blocks alone. Blocks
   are made on the workers from a cached random block plus a per-block shift, so the
   generator costs one copy, not a random number per value.
2. **In memory** (numpy, one BLAS thread): the same three operations on the largest N
   that fits here (N_memory).
3. **Overhead of the Dask path on data that fits**: the same in-memory array wrapped
   by ``da.from_array``, on dask's threaded scheduler with one thread, against the
   plain numpy call, alternated in this process; median, min and max of the ratios.

The issue's sizes are the defaults (N = 2e7, D = 512, K = 1,000); on a small machine
pass smaller ones (``--n``, ``--n-predict``, ``--n-em``, ``--n-memory``).

    python benchmarks/bench_dask.py --n 4000000 --n-predict 400000 --n-em 400000
    python benchmarks/bench_dask.py --memory-check   # 4 GB on 2 workers of 1 GB
"""

import argparse
import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The worker processes import the block generators from this file, as bench_dask.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]
)

from _common import print_table, write_json

ROWS = 65536  # rows per block: 128 MiB at D = 512


@functools.lru_cache(maxsize=2)
def _base_block(rows, n_features):
    return np.random.default_rng(0).random((rows, n_features), dtype=np.float32)


def _make_block(block_id, rows, n_features):
    return _base_block(rows, n_features) + np.float32(1e-3 * (block_id % 97))


def _make_labels(block_id, rows, n_classes):
    return (np.arange(rows, dtype=np.int64) * 7919 + block_id) % n_classes


def lazy_data(n_rows, n_features, n_classes, rows=ROWS):
    """X (n_rows, n_features) and y, generated block by block where they are computed."""
    import dask
    import dask.array as da

    # By reference to this module (not __main__), with its block cache on each worker.
    from bench_dask import _make_block, _make_labels

    n_blocks = -(-n_rows // rows)
    sizes = [min(rows, n_rows - b * rows) for b in range(n_blocks)]
    X = da.concatenate([
        da.from_delayed(dask.delayed(_make_block)(b, s, n_features), (s, n_features),
                        dtype=np.float32)
        for b, s in enumerate(sizes)
    ])
    y = da.concatenate([
        da.from_delayed(dask.delayed(_make_labels)(b, s, n_classes), (s,), dtype=np.int64)
        for b, s in enumerate(sizes)
    ])
    return X, y


def gmm_params(n_components, n_features, seed=0):
    """Means, diagonal precision factors and log weights of a fixed K-component mixture."""
    rng = np.random.default_rng(seed)
    means = rng.random((n_components, n_features))
    precisions_chol = np.full((n_components, n_features), 3.0)
    log_weights = np.full(n_components, -np.log(n_components))
    return means, precisions_chol, log_weights


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def cluster_rows(args, n_workers):
    import dask
    from distributed import Client, LocalCluster

    from skproto import NearestMeanClassifier
    from skproto.dask import _adapters

    rows = []
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None,
                      memory_limit=args.worker_memory) as cluster, Client(cluster):
        # Warm-up: the workers import skproto and build their block cache.
        small, small_y = lazy_data(2 * ROWS * n_workers, args.d, args.k)
        warm = NearestMeanClassifier().fit(small, small_y)
        warm.predict(small).sum().compute()
        X, y = lazy_data(args.n, args.d, args.k)
        t, _ = timed(lambda: dask.compute(X[:, 0].sum(), y.sum()))
        rows.append({"operation": "generate X, y only (floor)", "workers": n_workers,
                     "N": args.n, "seconds": t, "samples/s": args.n / t})
        t, clf = timed(lambda: NearestMeanClassifier().fit(X, y))
        assert clf.class_counts_.sum() == args.n
        rows.append({"operation": "NearestMeanClassifier.fit", "workers": n_workers,
                     "N": args.n, "seconds": t, "samples/s": args.n / t})
        Xp, _ = lazy_data(args.n_predict, args.d, args.k)
        t, _ = timed(lambda: clf.predict(Xp).sum().compute())
        rows.append({"operation": "NearestMeanClassifier.predict", "workers": n_workers,
                     "N": args.n_predict, "seconds": t, "samples/s": args.n_predict / t})
        Xe, _ = lazy_data(args.n_em, args.d, args.k)
        fixed = dask.array.full(args.n_em, -1, dtype=np.int64, chunks=(Xe.chunks[0],))
        params = gmm_params(args.k, args.d)
        t, stats = timed(lambda: _adapters.gmm_em_statistics(Xe, *params, "diag", fixed))
        assert abs(stats[1].sum() - args.n_em) < 1e-3 * args.n_em
        rows.append({"operation": "SemiSupervisedGMM: one EM iteration (diag)",
                     "workers": n_workers, "N": args.n_em, "seconds": t,
                     "samples/s": args.n_em / t})
    return rows


def memory_rows(args, X, y):
    from skproto import NearestMeanClassifier, backend

    n = X.shape[0]
    rows = []
    t, clf = timed(lambda: NearestMeanClassifier().fit(X, y))
    rows.append({"operation": "NearestMeanClassifier.fit", "N": n, "seconds": t,
                 "samples/s": n / t})
    m = min(n, args.n_predict)
    t, _ = timed(lambda: clf.predict(X[:m]))
    rows.append({"operation": "NearestMeanClassifier.predict", "N": m, "seconds": t,
                 "samples/s": m / t})
    m = min(n, args.n_em)
    params = gmm_params(args.k, args.d)
    fixed = np.full(m, -1, dtype=np.int64)
    t, _ = timed(lambda: backend.mixture_em_statistics(X[:m], *params, "diag", fixed))
    rows.append({"operation": "SemiSupervisedGMM: one EM iteration (diag)", "N": m,
                 "seconds": t, "samples/s": m / t})
    return rows


def overhead_rows(args, X, y):
    import dask
    import dask.array as da

    from skproto import NearestMeanClassifier

    clf = NearestMeanClassifier().fit(X, y)
    m = min(X.shape[0], args.n_overhead_predict)
    Xd, yd = da.from_array(X, chunks=(ROWS, -1)), da.from_array(y, chunks=ROWS)
    Xpd = da.from_array(X[:m], chunks=(ROWS, -1))
    cases = {
        "NearestMeanClassifier.fit": (
            lambda: NearestMeanClassifier().fit(X, y),
            lambda: NearestMeanClassifier().fit(Xd, yd), X.shape[0]),
        "NearestMeanClassifier.predict": (
            lambda: clf.predict(X[:m]), lambda: clf.predict(Xpd).compute(), m),
    }
    rows = []
    with dask.config.set(scheduler="threads", num_workers=1):
        for name, (in_memory, on_dask, n) in cases.items():
            on_dask()  # warm-up
            ratios, t_mem, t_dask = [], [], []
            for _ in range(args.repeats):
                a, _ = timed(in_memory)
                b, _ = timed(on_dask)
                t_mem.append(a)
                t_dask.append(b)
                ratios.append(b / a)
            rows.append({"operation": name, "N": n,
                         "in-memory s (median)": float(np.median(t_mem)),
                         "dask s (median)": float(np.median(t_dask)),
                         "ratio median": float(np.median(ratios)),
                         "ratio min": float(np.min(ratios)),
                         "ratio max": float(np.max(ratios))})
    return rows


def memory_check(args):
    """4 GB of float32 on 2 workers of 1 GB: the fit succeeds, only statistics move."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from skproto import NearestMeanClassifier

    n_features, rows = 256, 32768
    n_rows = int(args.memory_check_gb * 1e9) // (4 * n_features) // rows * rows
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="1GB") as cluster, \
            Client(cluster):
        generator = da.random.default_rng(0)
        X = generator.standard_normal((n_rows, n_features), chunks=(rows, n_features),
                                      dtype=np.float32)
        y = generator.integers(0, 10, n_rows, chunks=rows)
        t, clf = timed(lambda: NearestMeanClassifier().fit(X, y))
    print(f"fit on {X.nbytes / 1e9:.2f} GB ({n_rows:,} x {n_features}) with 2 workers of "
          f"1 GB: {t:.1f} s, {clf.class_counts_.sum():,} samples counted")
    return {"gigabytes": X.nbytes / 1e9, "seconds": t}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000_000, help="rows for fit")
    parser.add_argument("--n-predict", type=int, default=20_000_000)
    parser.add_argument("--n-em", type=int, default=20_000_000)
    parser.add_argument("--n-memory", type=int, default=2_000_000,
                        help="rows held in memory (tables 2 and 3)")
    parser.add_argument("--n-overhead-predict", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=1_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--worker-memory", default="4GB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-check", action="store_true",
                        help="only the bounded-memory fit (4 GB, 2 workers of 1 GB)")
    parser.add_argument("--memory-check-gb", type=float, default=4.0)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    print("uptime before:", uptime())
    if args.memory_check:
        result = memory_check(args)
        print("uptime after:", uptime())
        write_json("bench_dask_memory", result)
        return
    print(f"D={args.d} K={args.k} float32; fit N={args.n:,}, predict N={args.n_predict:,}, "
          f"EM N={args.n_em:,}; in memory N={args.n_memory:,}; {os.cpu_count()} CPUs")

    cluster = []
    for n_workers in (int(w) for w in args.workers.split(",")):
        cluster += cluster_rows(args, n_workers)
    print("\n1. lazily generated data on a LocalCluster")
    print_table(cluster, ["operation", "workers", "N", "seconds", "samples/s"])

    X, y = lazy_data(args.n_memory, args.d, args.k)
    X, y = (np.asarray(a) for a in __import__("dask").compute(X, y, scheduler="sync"))
    with threadpool_limits(1):
        memory = memory_rows(args, X, y)
        print(f"\n2. in memory (numpy, 1 BLAS thread), N up to {args.n_memory:,}")
        print_table(memory, ["operation", "N", "seconds", "samples/s"])
        overhead = overhead_rows(args, X, y)
    print(f"\n3. Dask path on in-memory data / numpy (threaded scheduler, 1 thread, "
          f"{args.repeats} alternated repeats)")
    print_table(overhead, ["operation", "N", "in-memory s (median)", "dask s (median)",
                           "ratio median", "ratio min", "ratio max"])
    print("uptime after:", uptime())
    write_json("bench_dask", {"args": vars(args), "cluster": cluster, "memory": memory,
                              "overhead": overhead})


if __name__ == "__main__":
    main()
