"""MixturePrototypeOODDetector.fit (PALM) against its GEMM floor and k-means, and threads.

On the Fashion-MNIST EfficientNet-Lite0 embeddings of ``../shared/data`` (train split,
8,000 x 1280, 10 classes), default parameters (6 prototypes a class, batches of 512),
all in this process:

1. **Speed**, at one BLAS/OpenMP thread and at the default thread count: the fit
   (everything: validation, normalisation, k-means++ seeds, the passes, the training
   scores), against (a) the bare dense GEMMs of the passes the fit ran, ``Xb @ P.T``
   and ``W.T @ Xb`` for every batch (the floor of any implementation that computes
   PALM's assignment over all prototypes and its dense update), and (b) scikit-learn's
   ``KMeans(n_prototypes, n_init=1)`` fitted on each class of the same normalised data.
   Targets: fit <= 2x the GEMMs, <= 3x the k-means.
2. **Threads under load**: a busy process (a one-thread numpy GEMM loop in a
   subprocess, stopped after) holds one core; the fit with the default threads, with
   one thread (``threadpool_limits(1)``), and with the small-GEMM thread limit
   switched off (the behaviour before it, BLAS on every core). Target: default no
   slower than one thread. ``--torch`` adds the torch backend on the CPU (with and
   without its ``set_num_threads(1)``).

Each measurement alternates the things compared, ``--repeats`` times (default 5), and
prints median, min and max, with ``uptime`` before and after.

    python benchmarks/bench_palm.py [--repeats 5] [--torch] [--quick]
"""

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import alternated_times, print_table, shared_data_dir, write_json  # noqa: E402

import skproto  # noqa: E402
from skproto import MixturePrototypeOODDetector  # noqa: E402
from skproto.backend import _transport, l2_normalize  # noqa: E402

_BUSY = (
    "import numpy as np\n"
    "a = np.random.rand(1500, 1500)\n"
    "while True:\n"
    "    a @ a\n"
)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def load():
    data = shared_data_dir()
    path = None if data is None else data / "fmnist_effnet.npz"
    if path is None or not path.exists():
        sys.exit("needs ../shared/data/fmnist_effnet.npz (or $SKPROTO_DATA)")
    d = np.load(path)
    train = d["split"] == 0
    return d["X"][train].astype(np.float32), d["y"][train]


def fit_detector(X, y, backend="numpy"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with skproto.config_context(backend=backend, device="cpu"):
            return MixturePrototypeOODDetector(random_state=0).fit(X, y)


def dense_gemms(Xn, n_passes, n_prototypes_total, batch_size):
    """The two dense GEMMs of every batch of ``n_passes`` passes, nothing else."""
    rng = np.random.RandomState(0)
    P = l2_normalize(rng.rand(n_prototypes_total, Xn.shape[1]).astype(Xn.dtype))
    W = rng.rand(batch_size, n_prototypes_total).astype(Xn.dtype)
    for _ in range(n_passes):
        for start in range(0, Xn.shape[0], batch_size):
            Xb = Xn[start : start + batch_size]
            Xb @ P.T
            W[: Xb.shape[0]].T @ Xb


def kmeans_per_class(Xn, y, n_clusters):
    for c in np.unique(y):
        KMeans(n_clusters, n_init=1, random_state=0).fit(Xn[y == c])


def alternate(funcs, repeats):
    """``{name: [seconds, ...]}``, the functions called in turn ``repeats`` times (no warm-up)."""
    return alternated_times(funcs, repeats, warmup=False)[0]


def summary(times, reference=None):
    rows = []
    for name, values in times.items():
        row = {"what": name, "median s": float(np.median(values)),
               "min s": float(np.min(values)), "max s": float(np.max(values))}
        if reference is not None:
            ratios = np.array(values) / np.array(times[reference])
            row.update({f"/ {reference} median": float(np.median(ratios)),
                        "min": float(ratios.min()), "max": float(ratios.max())})
        rows.append(row)
    return rows


def speed(X, y, repeats, threads):
    Xn = l2_normalize(X)
    n_passes = fit_detector(X, y).n_iter_
    label = "1 thread" if threads == 1 else f"default threads ({os.cpu_count()} cores)"
    limit = threadpool_limits(1) if threads == 1 else threadpool_limits(None)
    with limit:
        funcs = {
            "fit": lambda: fit_detector(X, y),
            "GEMMs": lambda: dense_gemms(Xn, n_passes, 10 * 6, 512),
            "KMeans": lambda: kmeans_per_class(Xn, y, 6),
        }
        times = alternate(funcs, repeats)
    rows = summary(times)
    fit = np.array(times["fit"])
    for ref in ("GEMMs", "KMeans"):
        ratios = fit / np.array(times[ref])
        rows[0][f"fit / {ref} median"] = float(np.median(ratios))
        rows[0][f"fit / {ref} min-max"] = f"{ratios.min():.2f}-{ratios.max():.2f}"
    print(f"\nSpeed, {label}: fit ran {n_passes} passes; GEMMs = the dense Xb @ P.T and "
          f"W.T @ Xb of those passes; KMeans(6, n_init=1) on each class ({repeats} "
          "alternated repeats)")
    print_table(rows, ["what", "median s", "min s", "max s", "fit / GEMMs median",
                       "fit / GEMMs min-max", "fit / KMeans median", "fit / KMeans min-max"])
    return {"threads": label, "passes": n_passes, "rows": rows}


class _NoThreadLimit:
    """The PALM kernel without its small-GEMM thread limit (the behaviour before it)."""

    def __enter__(self):
        self.saved = _transport.SMALL_GEMM_FLOPS
        _transport.SMALL_GEMM_FLOPS = 0

    def __exit__(self, *exc):
        _transport.SMALL_GEMM_FLOPS = self.saved


def contention(X, y, repeats, with_torch):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    busy = subprocess.Popen([sys.executable, "-c", _BUSY], env=env)
    try:
        time.sleep(2)  # let it start

        def one_thread(backend="numpy"):
            with threadpool_limits(1):
                if backend == "torch":
                    import torch

                    previous = torch.get_num_threads()
                    torch.set_num_threads(1)
                    try:
                        return fit_detector(X, y, backend)
                    finally:
                        torch.set_num_threads(previous)
                return fit_detector(X, y, backend)

        def unlimited(backend="numpy"):
            with _NoThreadLimit():
                return fit_detector(X, y, backend)

        funcs = {
            "numpy, default threads": lambda: fit_detector(X, y),
            "numpy, 1 thread": one_thread,
            "numpy, no small-GEMM limit": unlimited,
        }
        if with_torch:
            funcs.update({
                "torch cpu, default threads": lambda: fit_detector(X, y, "torch"),
                "torch cpu, 1 thread": lambda: one_thread("torch"),
                "torch cpu, no small-GEMM limit": lambda: unlimited("torch"),
            })
        times = alternate(funcs, repeats)
    finally:
        busy.terminate()
        busy.wait()
    rows = summary(times)
    for row in rows:
        ref = row["what"].split(",")[0] + ", 1 thread"
        ratios = np.array(times[row["what"]]) / np.array(times[ref])
        row["/ 1 thread median"] = float(np.median(ratios))
        row["/ 1 thread min-max"] = f"{ratios.min():.2f}-{ratios.max():.2f}"
    print(f"\nThreads while another process keeps one of the {os.cpu_count()} cores busy "
          f"({repeats} alternated repeats)")
    print_table(rows, ["what", "median s", "min s", "max s", "/ 1 thread median",
                       "/ 1 thread min-max"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch", action="store_true", help="also the torch backend (CPU)")
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 2 repeats")
    args = parser.parse_args(argv)
    X, y = load()
    if args.quick:
        X, y, args.repeats = X[:2000], y[:2000], 2
    print("uptime before:", uptime(), flush=True)
    out = {"n_samples": X.shape[0], "n_features": X.shape[1], "repeats": args.repeats,
           "uptime_before": uptime()}
    out["speed"] = [speed(X, y, args.repeats, 1), speed(X, y, args.repeats, None)]
    out["contention"] = contention(X, y, args.repeats, args.torch)
    out["uptime_after"] = uptime()
    print("\nuptime after:", out["uptime_after"])
    write_json("bench_palm", out)


if __name__ == "__main__":
    main()
