"""Pipeline-level checks: a Zarr store through the cross-sectional steps lazily,
and the same steps on a dask.distributed cluster, against in-memory NumPy results."""

from __future__ import annotations

import warnings

import dask
import distributed
import numpy as np
import pytest
import xarray as xr

import hsr_xr as hx


@pytest.fixture(scope="module")
def market():
    return hx.simulate_market(n_dates=90, n_assets=250, n_industries=8, seed=5)


def _steps(ds: xr.Dataset) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = hx.compute_loadings(ds, orthogonalize=True)
        return hx.factor_regression(ds, merge=False)


def test_store_to_regression_is_lazy_and_equals_numpy(market, tmp_path):
    expected = _steps(market)
    hx.to_store(market, tmp_path / "m.zarr", chunks={"date": 17})

    def forbid(*args, **kwargs):
        raise AssertionError("graph building computed something")

    lazy_in = hx.open_store(tmp_path / "m.zarr")
    with dask.config.set(scheduler=forbid):
        lazy = _steps(lazy_in)
    assert isinstance(lazy.factor_returns.data, dask.array.Array)
    hx.to_store(lazy, tmp_path / "out.zarr")
    got = hx.open_store(tmp_path / "out.zarr").load()
    xr.testing.assert_allclose(got.factor_returns, expected.factor_returns, rtol=1e-10, atol=1e-14)
    xr.testing.assert_allclose(
        got.specific_returns, expected.specific_returns, rtol=1e-10, atol=1e-14
    )


def test_distributed_cluster_equals_numpy(market):
    expected = _steps(market)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,  # fmt: skip
        distributed.Client(cluster),
    ):
        got = _steps(market.chunk({"date": 25})).compute()
    np.testing.assert_allclose(got.factor_returns, expected.factor_returns, rtol=1e-10, atol=1e-14)
