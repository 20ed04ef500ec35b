"""Shared fixtures."""

from __future__ import annotations

import pytest

from hsr_xr.kernels import jit


@pytest.fixture(params=["compiled", "numpy"])
def kernel_passes(request, monkeypatch):
    """Run a test with the compiled (Numba) kernel passes, then with the NumPy forms."""
    if request.param == "compiled" and not jit.AVAILABLE:
        pytest.skip("Numba is not installed (the 'fast' extra)")
    monkeypatch.setenv("HSR_XR_NUMBA", "1" if request.param == "compiled" else "0")
    assert jit.enabled() == (request.param == "compiled")  # Numba really is in use (or not)
    return request.param


@pytest.fixture
def compiled_calls(monkeypatch):
    """Count the calls of the compiled loops (by name) while a test runs."""
    from hsr_xr.kernels import covariance, regression, sorts

    calls: dict[str, int] = {}

    def counting(name, fn):
        def counted(*args):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args)

        return counted

    for module, name in [
        (regression, "_count_missing"),
        (regression, "_cube_sums"),
        (regression, "_fitted_values"),
        (covariance, "_scan_rows"),
        (sorts, "_combo_bins"),
    ]:
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    return calls
