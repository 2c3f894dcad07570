"""Small helpers shared by the benchmark scripts (timing, peak memory, tables, JSON)."""

import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def shared_data_dir():
    """``../shared/data`` beside the repository, or ``$SKPROTO_DATA``; None if absent."""
    env = os.environ.get("SKPROTO_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def uptime():
    """The load averages (1, 5, 15 min) as ``uptime`` prints them, from /proc/loadavg."""
    try:
        with open("/proc/loadavg") as f:
            one, five, fifteen = f.read().split()[:3]
        return f"load average: {one}, {five}, {fifteen}"
    except OSError:  # not Linux
        return "load average: unknown (no /proc/loadavg)"


def alternated_times(funcs, repeats=5, warmup=True):
    """Wall times of each of ``funcs`` (name -> callable), run in turn ``repeats`` times.

    The callables alternate (a, b, c, a, b, c, ...) so that a change of load on a
    shared machine hits all of them alike; each is run once first, untimed, unless
    ``warmup`` is False. Returns name -> list of seconds and name -> last result.
    """
    times = {name: [] for name in funcs}
    results = {}
    if warmup:
        for name, func in funcs.items():
            results[name] = func()
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            results[name] = func()
            times[name].append(time.perf_counter() - start)
    return times, results


def ratio_stats(times, baseline):
    """Median, min and max of the per-round ratios ``times / baseline`` (same rounds)."""
    import numpy as np

    ratios = np.asarray(times) / np.asarray(baseline)
    return {"median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max())}


def time_stats(times):
    """Median, min and max seconds of a list of timings."""
    import numpy as np

    t = np.asarray(times)
    return {"median": float(np.median(t)), "min": float(t.min()), "max": float(t.max())}


def format_stats(stats):
    """``median [min, max]`` of a :func:`time_stats` / :func:`ratio_stats` dict."""
    return f"{stats['median']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]"


def best_time(func, repeats):
    """Minimum wall time over ``repeats`` calls (the least disturbed run on a shared machine)."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_memory_mib(func):
    """Peak of numpy / Python allocations during ``func()``, in MiB (tracemalloc)."""
    tracemalloc.start()
    try:
        func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def print_table(rows, columns):
    """Print ``rows`` (list of dicts) as an aligned text table in ``columns`` order."""
    def fmt(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    cells = [[fmt(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def write_json(name, payload):
    """Write ``payload`` plus machine facts to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path
