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
    return request.param
