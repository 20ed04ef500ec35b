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
from hsr_xr import pipeline


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


def test_risk_inputs_take_the_groups_labels_and_risk_steps_mix_numpy_and_dask(tmp_path):
    market = hx.simulate_market(n_dates=60, n_assets=120, n_industries=5, seed=4)
    market = market[["returns", "market_cap", "industry", "descriptors"]]
    older = hx.factor_regression(hx.compute_loadings(market)).factor_returns
    stale = market.assign(factor_returns=older.isel(factor=slice(0, -2)) * 0 + 1)
    store = tmp_path / "s.zarr"  # an older run (two industries fewer) left outputs at the root
    hx.to_store(stale, store, chunks={"date": 30})
    steps = pipeline.Steps(3, log=lambda s: None, progress=False, compute=False)
    cross, new = pipeline.cross_sectional_steps(hx.open_store(store), steps)
    hx.to_store(cross[new], store, group="model", mode="w")
    inputs = pipeline.risk_inputs(store, "model")
    fresh = hx.compute_loadings(market, orthogonalize=True, coverage=True)  # as the pipeline
    fresh = hx.factor_regression(fresh).factor_returns
    np.testing.assert_array_equal(inputs.indexes["factor"], older.indexes["factor"])
    np.testing.assert_allclose(inputs.factor_returns.values, fresh.values, rtol=1e-12)
    # computed step outputs next to Dask-backed inputs (caps, loadings): the USE4 specific VRA
    lazy = market.chunk({"date": 20})
    done = pipeline.Steps(3, log=lambda s: None, progress=False)
    got = pipeline.risk_steps(lazy, done, preset="use4s")
    ref = pipeline.risk_steps(market, done, preset="use4s")
    np.testing.assert_allclose(got.specific_var.values, ref.specific_var.values, rtol=1e-12)
