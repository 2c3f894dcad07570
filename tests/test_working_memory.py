"""Temporaries of every kernel stay within ``working_memory`` on both backends.

Method: the peak allocation of a call on many rows, minus that of the same call on
a few rows (the per-call constants: normalised prototypes, mixture constants, ...)
and minus the outputs, is what the row chunks cost; it must stay under the budget.
numpy allocations are read with tracemalloc; torch's CPU allocations with the
profiler's memory events (the CPU stand-in for ``torch.cuda.max_memory_allocated``,
which ``benchmarks/gpu_check.py`` reads on a GPU).
"""

import importlib.util
import tracemalloc

import numpy as np
import pytest

from skproto import backend, config_context

torch_installed = importlib.util.find_spec("torch") is not None

rng = np.random.default_rng(5)
N, D, K_MIX = 4000, 48, 16
X = rng.normal(size=(N, D)).astype(np.float32)
P = rng.normal(size=(1500, D)).astype(np.float32)
CODES = rng.integers(0, 40, N)
MEANS = P[:K_MIX]
LOG_W = np.log(np.full(K_MIX, 1 / K_MIX))
W = rng.normal(size=(D, D)).astype(np.float32)
FULL = np.stack([np.eye(D)] * K_MIX)
WORKING_MEMORY = 1.5  # MiB; one N x 1500 float32 score matrix is 23 MiB

KERNELS = {
    "similarity": lambda X, c: backend.similarity(X, P),
    "assign-cosine": lambda X, c: backend.assign(X, P),
    "assign-euclidean": lambda X, c: backend.assign(X, P, "euclidean"),
    "topk": lambda X, c: backend.topk(X, P, 10),
    "kth_similarity": lambda X, c: backend.kth_similarity(X, P, 10),
    "whitened_sq_distance": lambda X, c: backend.whitened_sq_distance(X, P[0], W),
    "l2_normalize": lambda X, c: backend.l2_normalize(X),
    "group_sum": lambda X, c: backend.group_sum(X, c, 40, squares=True),
    "class_moments-diag": lambda X, c: backend.class_moments(X, c, 40, moments="diag"),
    "class_moments-full": lambda X, c: backend.class_moments(X, c, 40, moments="full"),
    "log_responsibilities-diag": lambda X, c: backend.log_responsibilities(
        X, MEANS, np.ones((K_MIX, D)), LOG_W, "diag"),
    "log_responsibilities-full": lambda X, c: backend.log_responsibilities(
        X, MEANS, FULL, LOG_W, "full"),
    "mixture_assign-diag": lambda X, c: backend.mixture_assign(
        X, MEANS, np.ones((K_MIX, D)), LOG_W, "diag"),
    "mixture_assign-full": lambda X, c: backend.mixture_assign(X, MEANS, FULL, LOG_W, "full"),
    "mixture_em_statistics-spherical": lambda X, c: backend.mixture_em_statistics(
        X, MEANS, np.ones(K_MIX), LOG_W, "spherical"),
    "mixture_em_statistics-diag": lambda X, c: backend.mixture_em_statistics(
        X, MEANS, np.ones((K_MIX, D)), LOG_W, "diag"),
    "mixture_em_statistics-full": lambda X, c: backend.mixture_em_statistics(
        X, MEANS, FULL, LOG_W, "full"),
    # Whole runs: every iteration's temporaries within the budget (X itself, held on
    # the device by the torch loops, is the input: shared, not copied, on a CPU).
    "mixture_em-diag": lambda X, c: backend.mixture_em(
        X, MEANS, np.ones((K_MIX, D)), LOG_W, "diag", max_iter=3, tol=0),
    "mixture_em-full": lambda X, c: backend.mixture_em(
        X, MEANS, FULL, LOG_W, "full", reg_covar=1e-2, max_iter=2, tol=0),
    "mixture_em-spherical-fixed": lambda X, c: backend.mixture_em(
        X, MEANS, np.ones(K_MIX), LOG_W, "spherical", np.where(c < K_MIX, c, -1),
        max_iter=2, tol=0),
    "semi_supervised_kmeans": lambda X, c: backend.semi_supervised_kmeans(
        X, MEANS, np.where(c < K_MIX, c, -1), max_iter=3),
}
# mixture_m_step has no rows: its arrays are the (K, D[, D]) parameters.


def _numpy_peak(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _torch_peak(call):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    current = peak = 0
    for event in events:  # allocations are positive, frees negative
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def _output_bytes(out):
    outs = tuple(out.values()) if isinstance(out, dict) else (
        out if isinstance(out, tuple) else (out,))
    return sum(o.nbytes for o in outs if isinstance(o, np.ndarray))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_numpy_temporaries_stay_within_working_memory(name):
    kernel = KERNELS[name]
    with config_context(working_memory=WORKING_MEMORY):
        out = kernel(X, CODES)
        constants = _numpy_peak(lambda: kernel(X[:20], CODES[:20]))
        peak = _numpy_peak(lambda: kernel(X, CODES))
    chunks = (peak - constants - _output_bytes(out)) / 2**20
    assert chunks <= 1.05 * WORKING_MEMORY, f"{name}: {chunks:.2f} MiB of chunks"


@pytest.mark.skipif(not torch_installed, reason="needs torch")
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_torch_temporaries_stay_within_working_memory(name):
    kernel = KERNELS[name]
    with config_context(backend="torch", device="cpu", working_memory=WORKING_MEMORY):
        constants = _torch_peak(lambda: kernel(X[:20], CODES[:20]))
        peak = _torch_peak(lambda: kernel(X, CODES))
    # The results are numpy arrays (not torch allocations); what torch holds at its
    # peak is the chunks' tensors.
    chunks = (peak - constants) / 2**20
    assert chunks <= 1.05 * WORKING_MEMORY, f"{name}: {chunks:.2f} MiB of chunks"


def test_the_measure_sees_a_kernel_that_ignores_the_budget():
    # The same measure on an unchunked computation reports the full matrix.
    full = _numpy_peak(lambda: X @ P.T) / 2**20
    assert full > 0.9 * N * P.shape[0] * 4 / 2**20
    if torch_installed:
        import torch

        Xt, Pt = torch.from_numpy(X), torch.from_numpy(P)
        assert _torch_peak(lambda: Xt @ Pt.T) / 2**20 > 0.9 * N * P.shape[0] * 4 / 2**20
