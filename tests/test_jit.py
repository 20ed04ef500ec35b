"""The optional Numba layer: switches, and the fallback when Numba cannot be used."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hsr_xr.kernels import covariance as kcov
from hsr_xr.kernels import jit


@pytest.mark.parametrize("value", ["0", "false", "Off", " no "])
def test_environment_switches_the_compiled_passes_off(value, monkeypatch):
    monkeypatch.setenv("HSR_XR_NUMBA", value)
    assert not jit.enabled()


def test_a_broken_numba_install_warns_and_falls_back(monkeypatch):
    if not jit.AVAILABLE:
        pytest.skip("Numba is not installed (the 'fast' extra)")
    monkeypatch.setenv("HSR_XR_NUMBA", "1")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    jit._importable.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="cannot be imported"):
            assert not jit.enabled()
        x = np.arange(6.0).reshape(3, 2)
        y, _ = kcov.ewma_scan(x, 0.5)  # the NumPy form runs
        np.testing.assert_allclose(y[-1], [4.0 + 1.0 + 0.0, 5.0 + 1.5 + 0.25])
    finally:
        jit._importable.cache_clear()


def test_map_blocks_keeps_the_order():
    assert jit.map_blocks(lambda i: i * i, range(7), threads=3) == [i * i for i in range(7)]
    assert jit.map_blocks(lambda i: -i, [4], threads=3) == [-4]
    assert jit.default_threads() >= 1
