"""Optional Numba compilation and date-block threading for the kernels.

Numba is an optional extra (``pip install hsr_xr[fast]``). A kernel step whose
NumPy form makes several memory-bound passes (the regression's passes over the
(date, asset, style) loadings, the EWMA recursion, the FF5 sorts' bucket pass)
may also have a compiled loop; the NumPy form stays the reference and the
fallback, and tests check that both give the same numbers.
Set ``HSR_XR_NUMBA=0`` to force the NumPy forms (benchmarks report both). The
variable is read at each kernel call, so for Dask it is the setting at compute
time, in the process that runs the task (both forms agree to rounding).
If Numba is installed but cannot be imported, a warning says so and the NumPy
forms run.

Compiled functions release the GIL (``nogil``), so :func:`map_blocks` can run
independent date blocks on a thread pool.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: Whether Numba is installed (it is imported only when a kernel first asks for it).
AVAILABLE = importlib.util.find_spec("numba") is not None
#: ``HSR_XR_NUMBA`` values that turn the compiled passes off.
OFF = ("0", "false", "no", "off")


@functools.cache
def _importable() -> bool:
    """Import Numba once; a broken install (e.g. a NumPy it does not support) warns
    and leaves the NumPy forms in use."""
    try:
        import numba  # noqa: F401
    except Exception as exc:  # ImportError, or whatever a broken install raises
        warnings.warn(
            f"Numba is installed but cannot be imported ({exc}); hsr_xr uses its NumPy forms",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def enabled() -> bool:
    """True when Numba can be used and ``HSR_XR_NUMBA`` is not 0 / false / no / off."""
    if os.environ.get("HSR_XR_NUMBA", "1").strip().lower() in OFF:
        return False
    return AVAILABLE and _importable()


def compiled(fn: Callable) -> Callable:
    """Decorator: ``fn`` compiled by ``numba.njit(nogil=True)`` on first call.

    The machine code is cached on disk when Numba finds a writable cache
    location, and compiled afresh in each process otherwise. Callers use their
    NumPy form unless :func:`enabled`.
    """
    lock = threading.Lock()
    jitted: list[Callable] = []

    @functools.wraps(fn)
    def call(*args):
        if not jitted:
            with lock:
                if not jitted:
                    import numba

                    try:
                        jitted.append(numba.njit(nogil=True, cache=True)(fn))
                    except RuntimeError:  # no writable cache location
                        jitted.append(numba.njit(nogil=True)(fn))
        return jitted[0](*args)

    return call


def default_threads() -> int:
    """Threads for one kernel call on in-memory input: the cores this process may use,
    or 1 off the main thread (the caller is already running in parallel)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def numpy_forms() -> Iterator[None]:
    """Within the block, kernels use their NumPy forms (``HSR_XR_NUMBA=0``)."""
    saved = os.environ.get("HSR_XR_NUMBA")
    os.environ["HSR_XR_NUMBA"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HSR_XR_NUMBA"]
        else:
            os.environ["HSR_XR_NUMBA"] = saved


def map_blocks(fn: Callable[[int], T], starts: Sequence[int], threads: int) -> list[T]:
    """``[fn(s) for s in starts]``, on ``threads`` threads when there are several blocks."""
    if threads <= 1 or len(starts) <= 1:
        return [fn(s) for s in starts]
    with ThreadPoolExecutor(min(threads, len(starts))) as pool:
        return list(pool.map(fn, starts))
