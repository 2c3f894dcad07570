"""GPU check of the torch backend: correctness against numpy, then timing at full size.

Where CUDA exists, (1) every torch kernel is compared with its numpy twin on a slice of
the data, (2) ``assign`` / ``topk`` / ``similarity`` chunks are timed at N=1e6, K=1e4,
D=768 float32 against a bare torch matmul of the same sizes (data already on the GPU, and
with the host-to-device copy included, since our kernels take numpy input). Runs in well
under 3 minutes on one H100. Without CUDA it stops with a message (exit code 0), unless
``--device cpu --quick`` asks for a small CPU run to check that the script works.

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --quick  # smoke run anywhere
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, write_json  # noqa: E402

from skproto import backend, config_context  # noqa: E402


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(func, torch, device, repeats=3):
    func()  # warm-up (CUDA context, cuBLAS handles, allocator)
    _sync(torch, device)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        _sync(torch, device)
        best = min(best, time.perf_counter() - start)
    return best


def check_correctness(X, P, working_memory):
    """Torch kernels on the device vs numpy, on the given slice; returns a list of rows."""
    rows = []
    codes = np.random.default_rng(1).integers(0, P.shape[0], size=X.shape[0])
    for metric in ("cosine", "euclidean", "dot"):
        results = {}
        for name in ("numpy", "torch"):
            with config_context(backend=name, working_memory=working_memory):
                results[name] = (
                    backend.similarity(X, P, metric),
                    backend.assign(X, P, metric),
                    backend.topk(X, P, 10, metric),
                )
        (S_n, (i_n, s_n), (ti_n, _)), (S_t, (i_t, s_t), (ti_t, _)) = (
            results["numpy"], results["torch"])
        scale = float(np.abs(S_n).max())
        rows.append({
            "kernel": f"similarity/assign/topk {metric}",
            "max abs diff / scale": float(np.abs(S_t - S_n).max()) / scale,
            "argmax agreement": float(np.mean(i_t == i_n)),
            "top-10 agreement": float(np.mean(ti_t == ti_n)),
            "best-score max diff / scale": float(np.abs(s_t - s_n).max()) / scale,
        })
    for name in ("numpy", "torch"):
        with config_context(backend=name, working_memory=working_memory):
            results[name] = backend.group_sum(X, codes, P.shape[0], squares=True)
    # The mixture E-step and the Sinkhorn assignment, on a smaller slice.
    rng = np.random.default_rng(2)
    Xs = X[:4096].astype(np.float32)
    k_mix = min(64, P.shape[0])
    means = P[:k_mix]
    log_w = np.log(np.full(k_mix, 1.0 / k_mix))
    precisions = {
        "spherical": rng.uniform(0.5, 1.5, k_mix),
        "diag": rng.uniform(0.5, 1.5, (k_mix, X.shape[1])),
    }
    for cov, prec in precisions.items():
        out = {}
        for name in ("numpy", "torch"):
            with config_context(backend=name, working_memory=working_memory):
                out[name] = backend.log_responsibilities(Xs, means, prec, log_w, cov)
        (lr_n, ll_n), (lr_t, ll_t) = out["numpy"], out["torch"]
        rows.append({
            "kernel": f"log_responsibilities {cov}",
            "max abs diff / scale": float(np.abs(ll_t - ll_n).max() / np.abs(ll_n).max()),
            "argmax agreement": float(np.mean(lr_t.argmax(1) == lr_n.argmax(1))),
        })
    Xn = Xs[:512] / np.linalg.norm(Xs[:512], axis=1, keepdims=True)
    Pn = means / np.linalg.norm(means, axis=1, keepdims=True)
    out = {}
    for name in ("numpy", "torch"):
        with config_context(backend=name, working_memory=working_memory):
            out[name] = backend.balanced_assignment(Xn, Pn, top_k=5)
    rows.append({
        "kernel": "balanced_assignment (Sinkhorn, top-5)",
        "max abs diff / scale": float(np.abs(out["torch"][0] - out["numpy"][0]).max()),
        "argmax agreement": float(np.mean(out["torch"][0].argmax(1) == out["numpy"][0].argmax(1))),
    })
    # PALM's whole fit (a few passes), on the device from start to end.
    Xf = Xs / np.linalg.norm(Xs, axis=1, keepdims=True)
    groups = rng.integers(0, 8, size=Xf.shape[0])
    P0 = Xf[rng.choice(Xf.shape[0], 8 * 6, replace=False)]
    for name in ("numpy", "torch"):
        with config_context(backend=name, working_memory=working_memory):
            out[name] = backend.balanced_prototypes(Xf, P0, groups, 8, top_k=5, max_iter=3, tol=0)
    rows.append({
        "kernel": "balanced_prototypes (3 PALM passes)",
        "max abs diff / scale": float(np.abs(out["torch"][0] - out["numpy"][0]).max()),
        "argmax agreement": float(np.mean(
            (Xf @ out["torch"][0].T).argmax(1) == (Xf @ out["numpy"][0].T).argmax(1))),
    })

    rows.append({
        "kernel": "group_sum (sums, squares)",
        "max abs diff / scale": max(
            float(np.abs(a - b).max() / np.abs(a).max())
            for a, b in zip(results["numpy"][::2], results["torch"][::2])),
        "argmax agreement": float(np.all(results["numpy"][1] == results["torch"][1])),
    })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--check-rows", type=int, default=20_000)
    parser.add_argument("--working-memory", type=float, default=4096)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="N=20,000, K=500, D=128")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.k, args.d, args.check_rows = 20_000, 500, 128, 2_000

    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install 'skproto[torch]'")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (use --device cpu --quick for a smoke run)")
        return 0
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {label}; N={args.n:,} K={args.k:,} D={args.d}")

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d), dtype=np.float32)
    P = rng.standard_normal((args.k, args.d), dtype=np.float32)

    t0 = time.perf_counter()
    with config_context(device=args.device):
        check_rows = check_correctness(X[: args.check_rows], P, args.working_memory)
    print_table(check_rows, ["kernel", "max abs diff / scale", "argmax agreement",
                             "top-10 agreement", "best-score max diff / scale"])
    print(f"(correctness on {args.check_rows:,} rows took {time.perf_counter() - t0:.1f}s)")
    ok = all(r["argmax agreement"] > 0.999 and r["max abs diff / scale"] < 1e-4
             for r in check_rows)

    # Bare matmul baselines: the same row chunks as our kernels, no reduction.
    chunk = max(int(args.working_memory * 2**20 // (4 * (args.d + 2 * args.k))), 1)
    P_dev = torch.from_numpy(P).to(device)
    X_dev = torch.from_numpy(X).to(device)

    def bare_resident():
        for start in range(0, args.n, chunk):
            X_dev[start:start + chunk] @ P_dev.T

    def bare_with_copy():
        for start in range(0, args.n, chunk):
            torch.from_numpy(X[start:start + chunk]).to(device) @ P_dev.T

    timing = []
    t_res = timed(bare_resident, torch, device)
    t_copy = timed(bare_with_copy, torch, device)
    timing.append({"operation": "bare matmul, X on device", "seconds": t_res, "x bare": 1.0})
    timing.append({"operation": "bare matmul + host->device copy", "seconds": t_copy,
                   "x bare": t_copy / t_res})
    with config_context(backend="torch", device=args.device,
                        working_memory=args.working_memory):
        for name, func in [
            ("assign cosine", lambda: backend.assign(X, P, "cosine")),
            ("assign euclidean", lambda: backend.assign(X, P, "euclidean")),
            ("topk k=10 cosine", lambda: backend.topk(X, P, 10, "cosine")),
            ("kth_similarity k=50 cosine", lambda: backend.kth_similarity(X, P, 50, "cosine")),
            ("mixture_em_statistics diag (one EM pass)",
             lambda: backend.mixture_em_statistics(
                 X, P, np.ones_like(P), np.log(np.full(len(P), 1.0 / len(P))), "diag")),
        ]:
            t = timed(func, torch, device, repeats=2)
            timing.append({"operation": name, "seconds": t, "x bare": t / t_res,
                           "x bare+copy": t / t_copy})
    flops = 2.0 * args.n * args.k * args.d
    for row in timing:
        row["TFLOP/s"] = flops / row["seconds"] / 1e12
    print_table(timing, ["operation", "seconds", "x bare", "x bare+copy", "TFLOP/s"])
    print("correctness:", "OK" if ok else "MISMATCH")
    write_json("gpu_check", {"device": label, "n": args.n, "k": args.k, "d": args.d,
                             "correctness": check_rows, "timing": timing, "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
