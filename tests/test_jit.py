"""The optional Numba layer: switches, the fallback when Numba cannot be used, threads."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from hsr_xr.kernels import covariance as kcov
from hsr_xr.kernels import jit


@pytest.mark.parametrize("value", ["0", "false", "Off", " no "])
def test_environment_switches_the_compiled_passes_off(value, monkeypatch):
    monkeypatch.setenv("HSR_XR_NUMBA", value)
    assert not jit.enabled()
    with jit.numpy_forms():
        assert not jit.enabled()
    assert os.environ["HSR_XR_NUMBA"] == value  # back as it was


@pytest.mark.parametrize("value", [None, "1"])
def test_compiled_passes_are_on_by_default(value, monkeypatch):
    if not jit.AVAILABLE:
        pytest.skip("Numba is not installed (the 'fast' extra)")
    if value is None:
        monkeypatch.delenv("HSR_XR_NUMBA", raising=False)
    else:
        monkeypatch.setenv("HSR_XR_NUMBA", value)
    assert jit.enabled()
    with jit.numpy_forms():
        assert not jit.enabled()
    assert jit.enabled()


def test_a_broken_numba_install_warns_and_falls_back(monkeypatch):
    if not jit.AVAILABLE:
        pytest.skip("Numba is not installed (the 'fast' extra)")
    monkeypatch.setenv("HSR_XR_NUMBA", "1")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError

    def no_compiled_scan(*args):
        raise AssertionError("the compiled scan ran")

    monkeypatch.setattr(kcov, "_scan_rows", no_compiled_scan)
    jit._importable.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="cannot be imported"):
            assert not jit.enabled()
        x = np.random.default_rng(0).normal(size=(9, 2))
        y, _ = kcov.ewma_scan(x, 0.5)  # the NumPy form runs, and right
        state = np.zeros(2)
        for t in range(9):
            state = 0.5 * state + x[t]
        np.testing.assert_allclose(y[-1], state, rtol=1e-12)
    finally:
        jit._importable.cache_clear()


def test_map_blocks_runs_blocks_at_once_in_order():
    meet = threading.Barrier(2, timeout=10)  # breaks unless two blocks run concurrently
    assert jit.map_blocks(lambda i: (meet.wait(), i)[1], range(2), threads=2) == [0, 1]
    assert jit.map_blocks(lambda i: i * i, range(7), threads=3) == [i * i for i in range(7)]
    assert jit.map_blocks(lambda i: -i, [4], threads=3) == [-4]


def test_default_threads_is_one_off_the_main_thread():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(jit.default_threads()))
    worker.start()
    worker.join()
    assert seen == [1]
