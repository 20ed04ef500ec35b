"""Bad input across the public API: a clear ValidationError naming the variable, never a
wrong answer (found by a bug hunt; each case used to give a silent wrong result or a raw error)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import hsr_xr as hx


@pytest.fixture(scope="module")
def ds():
    sim = hx.simulate_market(n_dates=60, n_assets=80, n_industries=6, seed=0)
    return (
        sim.assign(loadings=sim.truth_exposures)
        .drop_vars(["truth_factor_returns", "truth_factor_cov", "truth_premia", "factor2"])
        .drop_dims("factor")
    )


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_returns_and_caps_are_refused(ds, value):
    r = ds.returns.copy()
    r[5, 0] = value
    with pytest.raises(hx.ValidationError, match="returns.*infinite"):
        hx.factor_regression(ds.assign(returns=r), merge=False)
    lazy = hx.factor_regression(ds.assign(returns=r).chunk(date=20), merge=False)
    with pytest.raises(hx.ValidationError, match="infinite"):  # Dask: when computed
        lazy.compute()
    cap = ds.market_cap.copy()
    cap[5, 0] = abs(value)
    with pytest.raises(hx.ValidationError, match="market_cap.*infinite"):
        hx.validate(ds.assign(market_cap=cap), ["market_cap"])


def test_inf_in_model_returns_is_refused_by_the_risk_model(ds):
    reg = hx.factor_regression(ds, merge=False)
    f = reg.factor_returns.copy()
    f[10, 0] = np.inf
    with pytest.raises(hx.ValidationError, match="factor_returns"):
        hx.risk_model(reg.assign(factor_returns=f), merge=False)


def test_dataarray_arguments_are_keyed_by_role_not_by_their_name(ds):
    want = hx.factor_regression(ds, merge=False)
    caps = ds.market_cap.rename("returns")  # named like another input
    got = hx.factor_regression(ds, market_cap=caps, merge=False)
    xr.testing.assert_identical(got.factor_returns, want.factor_returns)
    ones = xr.ones_like(ds.returns)  # keeps the name "returns"
    want = hx.factor_regression(ds.assign(market_cap=ones), weights="cap", merge=False)
    got = hx.factor_regression(ds, market_cap=ones, weights="cap", merge=False)
    xr.testing.assert_identical(got.factor_returns, want.factor_returns)


def test_loadings_with_other_styles_are_refused(ds):
    with pytest.raises(hx.ValidationError, match="style"):
        hx.factor_regression(ds, loadings=ds.loadings.sel(style=["beta", "size"]), merge=False)
    renamed = ds.loadings.assign_coords(style=[f"s{i}" for i in range(ds.sizes["style"])])
    with pytest.raises(hx.ValidationError, match="style"):
        hx.factor_regression(ds, loadings=renamed, merge=False)
    shuffled = ds.loadings.isel(style=slice(None, None, -1))  # same labels, other order
    with pytest.raises(hx.ValidationError, match="style"):
        hx.factor_regression(ds, loadings=shuffled, merge=False)


def test_empty_dims_are_named(ds):
    none = ds.isel(asset=slice(0, 0))
    for call in (
        lambda: hx.factor_regression(none, merge=False),
        lambda: hx.compute_loadings(none),
        lambda: hx.ff5_factors(none),
    ):
        with pytest.raises(hx.ValidationError, match="no asset"):
            call()
    fac = xr.Dataset({"MKT": ds.returns.mean("asset")})
    with pytest.raises(hx.ValidationError, match="no date"):
        hx.rolling_regression(ds.returns.isel(date=slice(0, 0)), fac.isel(date=slice(0, 0)))


def test_newey_west_lags_beyond_the_history_have_no_pairs(ds):
    reg = hx.factor_regression(ds, merge=False)
    out = hx.risk_model(reg, merge=False, corr_lags=100, vol_lags=100, specific_lags=100)
    last = out.isel(date=-1)
    valid = np.isfinite(np.diagonal(last.factor_cov.values))
    assert valid.sum() > 10 and np.isfinite(last.factor_cov.values[np.ix_(valid, valid)]).all()
    assert (last.specific_var.values[np.isfinite(last.specific_var.values)] > 0).all()
