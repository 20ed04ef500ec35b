"""Shared helpers for the benchmarks: timing, peak memory, result lines and JSON."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def timed(fn: Callable, repeat: int = 1):
    """Best wall time over ``repeat`` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB, Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, rows: list[dict], extra: dict | None = None, unit: str = "s") -> Path:
    """Print one line per case and write ``results/<name>.json``.

    Each row has ``case``, ``size``, ``ours_s``, ``baseline_s`` and ``ratio``
    (baseline / ours, so > 1 means ours is faster or smaller); ``unit`` labels
    the printed columns when they hold something other than seconds.
    """
    ours, base = f"ours_{unit}", f"baseline_{unit}"
    print(f"{'case':<34} {'size':<28} {ours:>9} {base:>11} {'ratio':>8}")
    for r in rows:
        print(
            f"{r['case']:<34} {r['size']:<28} {r['ours_s']:>9.4f} "
            f"{r['baseline_s']:>11.4f} {r['ratio']:>8.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rows": rows,
        **(extra or {}),
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return out
