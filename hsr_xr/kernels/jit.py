"""Optional Numba compilation and date-block threading for the kernels.

Numba is an optional extra (``pip install hsr_xr[fast]``). A kernel step whose
NumPy form makes several memory-bound passes (the regression's passes over the
(date, asset, style) loadings, the EWMA recursion) may also have a compiled
single-pass loop; the NumPy form stays the reference and the fallback, and tests
check that both give the same numbers.
Set ``HSR_XR_NUMBA=0`` to force the NumPy forms (benchmarks report both).

Compiled functions release the GIL (``nogil``), so :func:`map_blocks` can run
independent date blocks on a thread pool.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: Whether Numba can be imported (it is imported only when a compiled pass first runs).
AVAILABLE = importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """True when Numba is installed and not disabled by ``HSR_XR_NUMBA=0``."""
    return AVAILABLE and os.environ.get("HSR_XR_NUMBA", "1") != "0"


def compiled(fn: Callable) -> Callable:
    """Decorator: ``fn`` compiled by ``numba.njit(nogil=True, cache=True)`` on first call.

    Numba is imported then, not with hsr_xr. Callers use their NumPy form unless
    :func:`enabled`.
    """
    lock = threading.Lock()
    jitted: list[Callable] = []

    @functools.wraps(fn)
    def call(*args):
        if not jitted:
            with lock:
                if not jitted:
                    import numba

                    jitted.append(numba.njit(nogil=True, cache=True)(fn))
        return jitted[0](*args)

    return call


def default_threads() -> int:
    """Threads for one kernel call on in-memory input: the machine's cores."""
    return max(1, os.cpu_count() or 1)


def map_blocks(fn: Callable[[int], T], starts: Sequence[int], threads: int) -> list[T]:
    """``[fn(s) for s in starts]``, on ``threads`` threads when there are several blocks."""
    if threads <= 1 or len(starts) <= 1:
        return [fn(s) for s in starts]
    with ThreadPoolExecutor(min(threads, len(starts))) as pool:
        return list(pool.map(fn, starts))
