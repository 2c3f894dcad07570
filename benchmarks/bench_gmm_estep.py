"""The GMM E-step kernels against the bare GEMMs they need (issue 16: at most 1.3x).

For each covariance type, at realistic sizes (N=200,000 x D=512 with K=100 for diag
and spherical; N=200,000 x D=128 with K=20 for full; float32), times

- ``mixture_em_statistics`` (one EM pass: the E-step reduced into the M-step sums)
  against its two GEMMs: the scores (``[x, x^2] @ W`` for diag, ``x @ W``
  spherical, ``x @ [L_1 .. L_K]`` full) and the moments (``F^T R``, and for full
  ``Z^T X`` with ``Z = (r_ik x_i)_k`` side by side, the responsibility-weighted outer
  products; ``Z`` is given, not built, in the bare GEMM);
- ``log_responsibilities`` and ``mixture_assign`` (prediction) against the score GEMM.

The bare GEMMs are the same matmuls alone, on the same operands (R random), in row
blocks of 8,192 into reused buffers (what a kernel can reach; one call over all N
rows is also timed where it fits in memory, and the floor is the faster of the two).
Kernel and GEMMs alternate, at least 5 repeats each; the table gives median, min and
max seconds and the ratio of the medians; ``uptime`` is printed before and after.

    python benchmarks/bench_gmm_estep.py                 # full size
    python benchmarks/bench_gmm_estep.py --quick         # N=20,000
    python benchmarks/bench_gmm_estep.py --threads 1     # BLAS limited to one thread
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import alternated_times, print_table, write_json  # noqa: E402

from skproto import backend, config_context  # noqa: E402

BLOCK = 8192
TARGET = 1.3


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def make_mixture(n, d, k, cov_type, seed=0):
    """Data around k centres and a mixture near them (random precisions)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d), dtype=np.float32)
    X = centres[rng.integers(0, k, n)] + rng.standard_normal((n, d), dtype=np.float32)
    means = centres.astype(np.float64) + 0.1 * rng.standard_normal((k, d))
    if cov_type == "spherical":
        prec_chol = rng.uniform(0.8, 1.2, k)
    elif cov_type == "diag":
        prec_chol = rng.uniform(0.8, 1.2, (k, d))
    else:
        A = rng.standard_normal((k, d, d)) / np.sqrt(d)
        cov = A @ A.transpose(0, 2, 1) + np.eye(d)
        prec_chol = np.linalg.inv(np.linalg.cholesky(cov)).transpose(0, 2, 1)
    log_w = np.log(np.full(k, 1.0 / k))
    return X, means, prec_chol, log_w


def bare_gemms(X, k, cov_type, rng, one_call):
    """Closures running the GEMMs of the E-step alone: (scores, scores + moments)."""
    n, d = X.shape
    f32 = np.float32
    R = rng.random((n, k), dtype=f32)
    if cov_type == "diag":
        F = np.concatenate([X, X * X], axis=1)
        W = rng.standard_normal((2 * d, k), dtype=f32)
    elif cov_type == "spherical":
        F, W = X, rng.standard_normal((d, k), dtype=f32)
    else:
        F, W = X, rng.standard_normal((d, k * d), dtype=f32)
    S = np.empty((min(n, BLOCK), W.shape[1]), dtype=f32)
    # full: the rows r_ik x_i side by side, (rows, K * D); one random block stands for
    # every block (a GEMM's time does not depend on the values), so that only the
    # matmul is timed, not the building of its operand.
    Z = rng.random((min(n, BLOCK), k * d), dtype=f32) if cov_type == "full" else None

    def scores():
        if one_call:
            return F @ W
        for start in range(0, n, BLOCK):
            Fb = F[start:start + BLOCK]
            np.matmul(Fb, W, out=S[: Fb.shape[0]])

    def scores_and_moments():
        if one_call:
            F @ W
            (F.T @ R)
            return
        for start in range(0, n, BLOCK):
            Fb, Rb = F[start:start + BLOCK], R[start:start + BLOCK]
            np.matmul(Fb, W, out=S[: Fb.shape[0]])
            Fb.T @ Rb
            if Z is not None:  # sum_i r_ik x_i x_i^T: (R (x) X)^T X
                Z[: Fb.shape[0]].T @ Fb

    return scores, scores_and_moments


def alternate(funcs, repeats):
    """``{name: [seconds, ...]}``, the functions called in turn ``repeats`` times (after one warm-up each)."""
    return alternated_times(funcs, repeats, warmup=True)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N=20,000")
    parser.add_argument("--types", default="diag,spherical,full")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS threads (threadpoolctl) for the whole run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 20_000
    sizes = {"diag": (512, 100), "spherical": (512, 100), "full": (128, 20)}
    before = uptime()
    print("uptime before:", before)
    print(f"N={args.n:,} float32, {args.repeats} alternated repeats, BLAS threads: "
          f"{args.threads or 'default'}")
    if args.threads:
        from threadpoolctl import threadpool_limits

        # The kernels' modules (numpy's BLAS and scipy's, a second OpenBLAS) must be
        # loaded for threadpoolctl to limit them.
        import skproto.backend._numpy.mixture  # noqa: F401

        limiter = threadpool_limits(args.threads, user_api="blas")
    rows = []
    for cov_type in args.types.split(","):
        d, k = sizes[cov_type]
        X, means, prec_chol, log_w = make_mixture(args.n, d, k, cov_type)
        params = (X, means, prec_chol, log_w, cov_type)
        rng = np.random.default_rng(1)
        # One call over all N rows where its operands and output fit easily.
        one_call = cov_type != "full"
        blocked = bare_gemms(X, k, cov_type, rng, one_call=False)
        funcs = {
            "em_statistics": lambda: backend.mixture_em_statistics(*params, check_input=False),
            "log_responsibilities": lambda: backend.log_responsibilities(
                *params, check_input=False),
            "mixture_assign": lambda: backend.mixture_assign(*params, check_input=False),
            "gemm scores (blocks)": blocked[0],
            "gemm scores+moments (blocks)": blocked[1],
        }
        if one_call:
            whole = bare_gemms(X, k, cov_type, rng, one_call=True)
            funcs["gemm scores (one call)"] = whole[0]
            funcs["gemm scores+moments (one call)"] = whole[1]
        with config_context(backend="numpy"):
            times = alternate(funcs, args.repeats)
        med = {name: float(np.median(t)) for name, t in times.items()}

        def floor(kind):
            names = [n for n in med if n.startswith(f"gemm {kind} ")]
            return min(med[n] for n in names), min(names, key=med.get)

        for name, t in times.items():
            row = {"type": cov_type, "D": d, "K": k, "operation": name,
                   "median s": med[name], "min s": min(t), "max s": max(t)}
            if not name.startswith("gemm"):
                kind = "scores+moments" if name == "em_statistics" else "scores"
                t_floor, floor_name = floor(kind)
                row["x GEMMs"] = med[name] / t_floor
                row["floor"] = floor_name
                row["meets 1.3x"] = bool(med[name] / t_floor <= TARGET)
            rows.append(row)
        del funcs, blocked, X
    after = uptime()
    print_table(rows, ["type", "D", "K", "operation", "median s", "min s", "max s",
                       "x GEMMs", "floor", "meets 1.3x"])
    print("uptime after: ", after)
    write_json("bench_gmm_estep", {"n": args.n, "repeats": args.repeats,
                                   "threads": args.threads, "uptime_before": before,
                                   "uptime_after": after, "rows": rows})
    if args.threads:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
