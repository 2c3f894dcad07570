"""Peak temporaries of every backend kernel against the ``working_memory`` budget.

For each kernel and backend: the peak allocation of a call on N rows, minus that of
the same call on 20 rows (per-call constants) and minus the outputs (numpy only),
i.e. what the row chunks cost. numpy: tracemalloc; torch on CPU: the profiler's
memory events. The same measure is asserted, at a small size, by
tests/test_working_memory.py.

    python benchmarks/bench_working_memory.py [--n 50000] [--budget 16]
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_working_memory as t  # noqa: E402

from skproto import config_context  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--budget", type=float, default=16.0, help="working_memory, MiB")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, t.D)).astype(np.float32)
    codes = rng.integers(0, 40, args.n)
    libraries = ["numpy"] + (["torch"] if importlib.util.find_spec("torch") else [])
    print(f"N={args.n:,} D={t.D} prototypes={t.P.shape[0]} mixture K={t.K_MIX}, "
          f"working_memory={args.budget} MiB; MiB of chunk temporaries")
    print(f"{'kernel':34s}" + "".join(f"{lib:>10s}" for lib in libraries) + "    budget")
    for name, kernel in t.KERNELS.items():
        row = []
        for lib in libraries:
            measure = t._numpy_peak if lib == "numpy" else t._torch_peak
            with config_context(backend=lib, device="cpu", working_memory=args.budget):
                out = kernel(X, codes)
                constants = measure(lambda: kernel(X[:20], codes[:20]))
                peak = measure(lambda: kernel(X, codes))
            outputs = t._output_bytes(out) if lib == "numpy" else 0
            row.append((peak - constants - outputs) / 2**20)
        print(f"{name:34s}" + "".join(f"{v:10.2f}" for v in row) + f"{args.budget:10.1f}")


if __name__ == "__main__":
    main()
