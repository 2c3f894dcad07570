"""GPU check of the torch backend: every kernel and every estimator, checked and timed.

Three parts, all with ``backend="torch"`` on ``--device``:

1. **Correctness**: every public kernel of :mod:`skproto.backend` on a slice of the
   data, torch against numpy (max abs difference over the output's scale, and the
   agreement of integer outputs such as argmax indices).
2. **Kernels at full size** (design.md: N = 1e6, K = 1e4, D = 768, float32). Each
   kernel is timed against the bare ``torch.matmul`` calls it needs (same shapes, data
   already on the device, in the same row chunks), and its achieved FLOP rate is given
   as a fraction of the device's float32 GEMM roofline, measured here as the rate of one
   large square ``torch.matmul`` (TF32 stays as torch's default: off).
3. **Estimators**: the ``fit`` and ``predict`` (or ``score_samples``) of every estimator
   of :func:`skproto.utils.all_estimators` but the encoders (they run open_clip's model,
   timed in ``bench_encoders.py``); the GMM and the PALM detector fit at N = 1e6. Sizes
   where a method's state would not fit (a full covariance per class for 10,000
   classes is 47 GB) are printed on each row.

Our kernels take numpy arrays, so every call includes the host-to-device copy of X;
the "x bare+copy" column compares with the bare matmul plus that copy. The whole
script takes under 5 minutes on one H100/H200 (the sizes are chosen for that). Without
CUDA it stops with a message (exit code 0), unless ``--device cpu`` asks for a CPU run
(with ``--quick`` for small sizes, to check that the script works end to end).

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --quick  # smoke run anywhere

Exit status 1 if a torch kernel disagrees with its numpy twin.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, uptime, write_json  # noqa: E402

from skproto import backend, config_context  # noqa: E402

CONSTANTS = {"COVARIANCE_TYPES", "METRICS"}


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(func, torch, device, repeats=2):
    """Best wall time of ``repeats`` calls after one warm-up (CUDA context, caches)."""
    func()
    _sync(torch, device)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        _sync(torch, device)
        best = min(best, time.perf_counter() - start)
    return best


# ----------------------------------------------------------------------- the kernels


def kernel_calls(X, P, rng):
    """name -> (call, GEMM shapes (m, k, n) it needs) for every public kernel.

    The shapes are the matmuls of the algorithm (for example ``X @ P.T`` is
    ``(n, d, k)``); their flops, ``2 m k n`` each, are the kernel's nominal work.
    """
    n, d = X.shape
    k = P.shape[0]
    codes = rng.integers(0, k, size=n)
    k_mix = min(64, k)
    means = P[:k_mix]
    log_w = np.log(np.full(k_mix, 1.0 / k_mix))
    prec_diag = rng.uniform(0.5, 1.5, (k_mix, d)).astype(np.float32)
    prec_sph = rng.uniform(0.5, 1.5, k_mix).astype(np.float32)
    k_full, d_full = 8, min(d, 128)
    Xf = X[:, :d_full]
    prec_full = np.stack([np.eye(d_full, dtype=np.float32)] * k_full)
    m_rf = min(2048, 4 * d)
    W_rf = rng.standard_normal((d, m_rf)).astype(np.float32)
    coef = rng.standard_normal((10, m_rf)).astype(np.float32)
    W_maha = np.eye(d, dtype=np.float32)
    n_groups = min(100, k)
    groups = codes % n_groups
    batch = min(512, n)
    Xb = X[:batch] / np.linalg.norm(X[:batch], axis=1, keepdims=True)
    Pb = P[:600] / np.linalg.norm(P[:600], axis=1, keepdims=True)
    scores = Xb @ Pb.T
    Xn_palm = X / np.linalg.norm(X, axis=1, keepdims=True)
    palm_groups = codes % 10
    P_palm = P[:60] / np.linalg.norm(P[:60], axis=1, keepdims=True)
    return {
        "similarity": (lambda: backend.similarity(X[: n // 10], P), [(n // 10, d, k)]),
        "assign": (lambda: backend.assign(X, P, "cosine"), [(n, d, k)]),
        "topk": (lambda: backend.topk(X, P, 10, "cosine"), [(n, d, k)]),
        "kth_similarity": (lambda: backend.kth_similarity(X, P, 50, "cosine"), [(n, d, k)]),
        "l2_normalize": (lambda: backend.l2_normalize(X), []),
        "whitened_sq_distance": (
            lambda: backend.whitened_sq_distance(X, np.zeros(d, np.float32), W_maha),
            [(n, d, d)]),
        "mahalanobis_sq_distances": (
            lambda: backend.mahalanobis_sq_distances(X, P[:n_groups], W_maha),
            [(n, d, d), (n, d, n_groups)]),
        "nearest_mahalanobis": (
            lambda: backend.nearest_mahalanobis(X, P[:n_groups], W_maha),
            [(n, d, d), (n, d, n_groups)]),
        "group_sum": (lambda: backend.group_sum(X, groups, n_groups, squares=True), []),
        "class_moments": (
            lambda: backend.class_moments(X, groups, n_groups, moments="diag"), []),
        "random_features": (lambda: backend.random_features(X[: n // 10], W_rf),
                            [(n // 10, d, m_rf)]),
        "random_feature_gram": (
            lambda: backend.random_feature_gram(X[: n // 10], W_rf, groups[: n // 10],
                                                n_groups),
            [(n // 10, d, m_rf), (m_rf, n // 10, m_rf)]),
        "random_feature_scores": (
            lambda: backend.random_feature_scores(X[: n // 10], W_rf, coef),
            [(n // 10, d, m_rf), (n // 10, m_rf, 10)]),
        "log_responsibilities": (
            lambda: backend.log_responsibilities(X, means, prec_diag, log_w, "diag"),
            [(n, d, k_mix), (n, d, k_mix)]),
        "mixture_assign": (
            lambda: backend.mixture_assign(X, means, prec_sph, log_w, "spherical"),
            [(n, d, k_mix)]),
        "mixture_em_statistics": (
            lambda: backend.mixture_em_statistics(Xf, means[:k_full, :d_full], prec_full,
                                                  log_w[:k_full] - np.log(k_full / k_mix),
                                                  "full"),
            [(n, d_full, d_full)] * k_full + [(k_full, n, d_full), (d_full, n, d_full)]),
        # Whole runs (5 iterations, tol=0): per EM iteration the two score GEMMs
        # (x @ W, [x^2, 1] @ W_sq) and the two moment GEMMs, then the final assignment.
        "mixture_em": (
            lambda: tuple(backend.mixture_em(X, means, prec_diag, log_w, "diag", max_iter=5,
                                             tol=0)[key]
                          for key in ("weights", "means", "covariances", "labels")),
            [(n, d, k_mix)] * (4 * 5 + 2)),
        "mixture_m_step": (
            lambda: backend.mixture_m_step(
                np.full(k_full, n / k_full), n / k_full * means[:k_full, :d_full],
                n / k_full * (np.eye(d_full) + np.einsum(
                    "kd,ke->kde", means[:k_full, :d_full], means[:k_full, :d_full])),
                "full"),
            []),
        "semi_supervised_kmeans": (
            lambda: backend.semi_supervised_kmeans(X, means, max_iter=5)[:3],
            [(n, d, k_mix)] * 6),
        "sinkhorn": (lambda: backend.sinkhorn(scores), []),
        "balanced_assignment": (
            lambda: backend.balanced_assignment(Xb, Pb, top_k=5),
            [(batch, d, Pb.shape[0]), (Pb.shape[0], batch, d)]),
        # Three PALM passes over X (10 classes x 6 prototypes, batches of 512): per
        # batch the all-prototype GEMM and the per-class target GEMMs.
        "balanced_prototypes": (
            lambda: backend.balanced_prototypes(
                Xn_palm, P_palm, palm_groups, 10, top_k=5, max_iter=3, tol=0.0),
            [(n, d, 60), (6, n, d)] * 3),
    }


def _compare(a, b):
    """(max abs diff / scale of float outputs, agreement of integer outputs)."""
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    diff, agree = 0.0, 1.0
    for u, v in zip(a, b):
        if u is None:
            continue
        if np.ndim(u) == 0 and not isinstance(u, np.ndarray):  # Python scalars
            if isinstance(u, float):
                diff = max(diff, abs(u - v) / max(abs(u), 1e-30))
            continue
        u, v = np.asarray(u), np.asarray(v)
        if u.dtype.kind in "iub":
            agree = min(agree, float(np.mean(u == v)))
        else:
            finite = np.isfinite(u)
            scale = max(float(np.abs(u[finite]).max()) if finite.any() else 1.0, 1e-30)
            diff = max(diff, float(np.abs(np.where(finite, u - v, 0)).max()) / scale)
    return diff, agree


def check_correctness(calls_small, device, working_memory):
    rows = []
    for name, (call, _) in calls_small.items():
        out = {}
        for library in ("numpy", "torch"):
            with config_context(backend=library, device=device,
                                working_memory=working_memory):
                out[library] = call()
        diff, agree = _compare(out["numpy"], out["torch"])
        rows.append({"kernel": name, "max abs diff / scale": diff,
                     "integer agreement": agree})
    return rows


# --------------------------------------------------------------- bare matmul baseline


class BareMatmul:
    """Times of bare ``torch.matmul`` calls of given shapes, data on the device."""

    def __init__(self, torch, device, chunk_rows):
        self.torch, self.device, self.chunk_rows = torch, device, chunk_rows
        self.cache = {}

    def shape_time(self, m, k, n):
        key = (m, k, n)
        if key not in self.cache:
            torch, device = self.torch, self.device
            rows = min(m, self.chunk_rows)
            A = torch.randn(rows, k, device=device)
            B = torch.randn(k, n, device=device)
            n_chunks = -(-m // rows)

            def run():
                for _ in range(n_chunks):
                    torch.matmul(A, B)

            self.cache[key] = timed(run, torch, device)
        return self.cache[key]

    def time(self, shapes):
        return sum(self.shape_time(*s) for s in shapes)


def roofline(torch, device, size):
    """Measured float32 GEMM rate (FLOP/s) of one large square matmul."""
    A = torch.randn(size, size, device=device)
    B = torch.randn(size, size, device=device)
    t = timed(lambda: torch.matmul(A, B), torch, device, repeats=3)
    return 2.0 * size**3 / t


def copy_time(torch, device, X):
    """Host-to-device copy of X (as our kernels do it, from pageable memory)."""
    def run():
        torch.from_numpy(X).to(device)
    return timed(run, torch, device)


def time_kernels(calls, torch, device, bare, peak, t_copy, working_memory):
    rows = []
    with config_context(backend="torch", device=str(device), working_memory=working_memory):
        for name, (call, shapes) in calls.items():
            t = timed(call, torch, device, repeats=1)
            flops = sum(2.0 * m * k * n for m, k, n in shapes)
            row = {"kernel": name, "seconds": t}
            if shapes:
                t_bare = bare.time(shapes)
                row.update({"x bare": t / t_bare, "x bare+copy": t / (t_bare + t_copy),
                            "roofline": flops / t / peak})
            rows.append(row)
    return rows


# -------------------------------------------------------------------- the estimators


def estimator_runs(X, P, rng, n_gmm, n_palm, n_random_features):
    """(name, size label, fit, predict, GEMM shapes of fit, of predict)."""
    from sklearn.linear_model import SGDClassifier

    import skproto

    n, d = X.shape
    k = P.shape[0]
    y_many = rng.integers(0, k, size=n)
    n_small_classes = 100
    y = y_many % n_small_classes
    X_gmm, y_gmm = X[:n_gmm], np.where(rng.random(n_gmm) < 0.5, y[:n_gmm] % 10, -1)
    X_palm, y_palm = X[:n_palm], y[:n_palm] % 10
    n_rp, m_rp = min(n, 200_000), n_random_features
    sgd = SGDClassifier(max_iter=5, tol=None, random_state=0)
    runs = [
        ("NearestMeanClassifier", f"N={n:,} K={k:,}",
         skproto.NearestMeanClassifier(), X, y_many, [], [(n, d, k)]),
        ("TEENCalibrator", f"N={n:,} K={k:,}",
         skproto.TEENCalibrator(), X, y_many, [], [(n, d, k)]),
        ("FeTrIL", f"N={n // 10:,} K={n_small_classes} (SGD head, CPU-bound)",
         skproto.FeTrIL(classifier=sgd), X[: n // 10], y[: n // 10], [], []),
        ("RanPAC", f"N={n_rp:,} K={n_small_classes} M={m_rp:,}",
         skproto.RanPAC(n_components=m_rp, random_state=0), X[:n_rp], y[:n_rp],
         [(n_rp, d, m_rp), (m_rp, n_rp, m_rp)], [(n_rp, d, m_rp)]),
        ("FeCAM", f"N={n:,} K={n_small_classes} (full covariance per class)",
         skproto.FeCAM(), X, y, [], [(n, d, d)] * n_small_classes),
        ("SemiSupervisedGMM", f"N={n_gmm:,} K=20 diag, 10 EM iterations",
         skproto.SemiSupervisedGMM(n_components=20, covariance_type="diag", max_iter=10,
                                   random_state=0),
         X_gmm, y_gmm, [(n_gmm, d, 20)] * 2 * 10, [(n_gmm, d, 20)] * 2),
        ("MixturePrototypeOODDetector", f"N={n_palm:,} 10 classes x 6, 3 passes",
         skproto.MixturePrototypeOODDetector(max_iter=3, random_state=0),
         X_palm, y_palm, [(n_palm, d, 60), (60, n_palm, d)] * 3, [(n_palm, d, 60)]),
        ("MahalanobisOODDetector", f"N={n:,} K={n_small_classes}",
         skproto.MahalanobisOODDetector(), X, y, [],
         [(n, d, d), (n, d, n_small_classes)]),
        ("KNNOODDetector", f"N={n // 10:,} train, {n:,} queries",
         skproto.KNNOODDetector(), X[: n // 10], None, [], [(n, d, n // 10)]),
    ]
    return runs


def time_estimators(runs, X, torch, device, bare, peak, working_memory):
    from sklearn.exceptions import ConvergenceWarning

    rows = []
    with config_context(backend="torch", device=str(device),
                        working_memory=working_memory), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, size, est, Xfit, yfit, fit_shapes, pred_shapes in runs:
            def fit():
                return est.fit(Xfit) if yfit is None else est.fit(Xfit, yfit)

            t_fit = timed(fit, torch, device, repeats=1)
            print(f"  {name}.fit: {t_fit:.3f} s", flush=True)
            method = "predict" if hasattr(est, "predict_proba") or not hasattr(
                est, "score_samples") else "score_samples"
            # KNN is scored on all the queries; the others on the data they were fitted on.
            Xq = X if name == "KNNOODDetector" else Xfit
            predict = getattr(est, method)
            t_pred = timed(lambda: predict(Xq), torch, device, repeats=1)  # noqa: B023
            for op, t, shapes in (("fit", t_fit, fit_shapes),
                                  (method, t_pred, pred_shapes)):
                row = {"estimator": f"{name}.{op}", "size": size, "seconds": t}
                if shapes:
                    flops = sum(2.0 * m * k * n for m, k, n in shapes)
                    row["x bare"] = t / bare.time(shapes)
                    row["roofline"] = flops / t / peak
                rows.append(row)
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
    parser.add_argument("--skip-estimators", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.k, args.d, args.check_rows = 20_000, 500, 128, 2_000
        args.working_memory = min(args.working_memory, 256)

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
    start = time.perf_counter()
    print(f"torch {torch.__version__} on {label}; N={args.n:,} K={args.k:,} D={args.d}")
    print(f"before: {uptime()}")

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d), dtype=np.float32)
    P = rng.standard_normal((args.k, args.d), dtype=np.float32)

    calls = kernel_calls(X, P, np.random.default_rng(1))
    missing = sorted(set(backend.__all__) - CONSTANTS - set(calls))
    if missing:
        print(f"kernels not covered by this script: {missing}")
        return 1
    small = kernel_calls(X[: args.check_rows], P[: min(args.k, 1000)],
                         np.random.default_rng(1))
    check_rows = check_correctness(small, args.device, args.working_memory)
    print("\n1. torch vs numpy on a slice")
    print_table(check_rows, ["kernel", "max abs diff / scale", "integer agreement"])
    # float32 kernels: relative 1e-4; argmax-style outputs may differ on near-ties.
    ok = all(r["max abs diff / scale"] < 1e-3 and r["integer agreement"] > 0.99
             for r in check_rows)

    peak = roofline(torch, device, 8192 if device.type == "cuda" else 1024)
    t_copy = copy_time(torch, device, X)
    chunk_rows = max(int(args.working_memory * 2**20 // (4 * (args.d + 2 * args.k))), 1)
    bare = BareMatmul(torch, device, chunk_rows)
    print(f"\n2. kernels at N={args.n:,} K={args.k:,} D={args.d}; float32 GEMM roofline "
          f"(measured, {8192 if device.type == 'cuda' else 1024}^3 matmul): "
          f"{peak / 1e12:.2f} TFLOP/s; host->device copy of X: {t_copy:.3f} s")
    kernel_rows = time_kernels(calls, torch, device, bare, peak, t_copy, args.working_memory)
    print_table(kernel_rows, ["kernel", "seconds", "x bare", "x bare+copy", "roofline"])

    estimator_rows = []
    if not args.skip_estimators:
        n_big = args.n
        runs = estimator_runs(X, P, np.random.default_rng(2), n_gmm=n_big, n_palm=n_big,
                              n_random_features=1_000 if args.quick else 10_000)
        estimator_rows = time_estimators(runs, X, torch, device, bare, peak,
                                         args.working_memory)
        print("\n3. estimators (torch backend)")
        print_table(estimator_rows, ["estimator", "size", "seconds", "x bare", "roofline"])
    total = time.perf_counter() - start
    print(f"\ncorrectness: {'OK' if ok else 'MISMATCH'}; total {total:.0f} s")
    print(f"after: {uptime()}")
    write_json("gpu_check", {
        "device": label, "n": args.n, "k": args.k, "d": args.d,
        "roofline_tflops": peak / 1e12, "copy_seconds": t_copy,
        "correctness": check_rows, "kernels": kernel_rows, "estimators": estimator_rows,
        "ok": ok, "total_seconds": total,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
