"""Bad input across the public API: a clear ValidationError naming the variable, never a
wrong answer (found by a bug hunt; each case used to give a silent wrong result or a raw error)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
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


# ---------------------------------------------- second bug hunt: resample, FF5, loadings, simulator
@pytest.fixture(scope="module")
def market():
    sim = hx.simulate_market(n_dates=40, n_assets=60, n_industries=5, seed=1)
    return sim.drop_vars(["truth_factor_cov", "truth_specific_var"])


def _with(var: xr.DataArray, value, t: int = 3, n: int = 2) -> xr.DataArray:
    out = var.copy(deep=True)
    out[t, n] = value
    return out


def _rf(market, values=1e-4, **kw) -> xr.DataArray:
    return xr.DataArray(
        np.full(market.sizes["date"], values), dims="date", coords={"date": market.date}, **kw
    )


def _long_market():
    """Three years of dates (a July each year) for the annual-rebalance cases."""
    sim = hx.simulate_market(n_dates=700, n_assets=60, n_industries=5, seed=1)
    return sim.drop_vars(["truth_factor_cov", "truth_specific_var"])


def _names(m, names):
    industry = m.industry.copy()
    industry.attrs = {"industry_names": names}
    return m.assign(industry=industry)


def _no_names(m):
    industry = m.industry.copy()
    industry.attrs = {}
    return m.assign(industry=industry)


@functools.cache
def _fitted() -> xr.Dataset:
    """A small fitted model (loadings = the planted exposures) for the analytics calls."""
    sim = hx.simulate_market(n_dates=40, n_assets=60, n_industries=5, seed=1)
    sim = hx.factor_regression(sim.assign(loadings=sim.truth_exposures))
    return hx.risk_model(sim, "seed", min_periods=5, specific_min_periods=5)


def _ones(ds: xr.Dataset) -> xr.DataArray:
    return xr.ones_like(ds.asset, dtype=float)


BAD_CALLS = {
    # empty axes and selections (used to escape as reshape / index errors)
    "risk_model no dates": (
        "factor_returns",
        lambda m: hx.risk_model(_fitted().isel(date=slice(0, 0)), "seed"),
    ),
    "risk_model no factors": (
        "factor_returns",
        lambda m: hx.risk_model(_fitted().isel(factor=slice(0, 0), factor2=slice(0, 0)), "use4s"),
    ),
    "portfolio_risk no dates": (
        "loadings",
        lambda m: hx.portfolio_risk(_fitted().isel(date=slice(0, 0)), _ones(_fitted())),
    ),
    "portfolio_risk date range without dates": (
        "date",
        lambda m: hx.portfolio_risk(_fitted(), _ones(_fitted()), date=slice("1990", "1991")),
    ),
    "variance_explained date range without dates": (
        "date",
        lambda m: hx.variance_explained(_fitted(), date=slice("1990", "1991")),
    ),
    "portfolio_risk fill_exposures='x'": (
        "fill_exposures",
        lambda m: hx.portfolio_risk(_fitted(), _ones(_fitted()), fill_exposures="x"),
    ),
    "variance_explained fill_exposures=nan": (
        "fill_exposures",
        lambda m: hx.variance_explained(_fitted(), fill_exposures=np.nan),
    ),
    # resample: return variables are validated (they used to skip validation)
    "resample inf returns": (
        "returns",
        lambda m: hx.resample(m.assign(returns=_with(m.returns, np.inf)), "W"),
    ),
    "resample renamed returns dim": (
        "returns",
        lambda m: hx.resample(m.assign(returns=m.returns.rename(asset="stock")), "W"),
    ),
    "resample inf custom return": (
        "r",
        lambda m: hx.resample(m.assign(r=_with(m.returns, -np.inf)), "W", returns="r"),
    ),
    "resample returns=5": ("returns", lambda m: hx.resample(m, "W", returns=5)),
    "resample end_of_period=5": ("end_of_period", lambda m: hx.resample(m, "W", end_of_period=5)),
    "resample require_full='no'": (
        "require_full",
        lambda m: hx.resample(m, "W", require_full="no"),
    ),
    "string dates": (
        "date",
        lambda m: hx.resample(m.assign_coords(date=[str(d)[:10] for d in m.date.values]), "W"),
    ),
    "tz-aware dates": (
        "date",
        lambda m: hx.ff5_factors(m.assign_coords(date=m.indexes["date"].tz_localize("UTC"))),
    ),
    # FF5
    "ff5 annual on quarters": (
        "rebalance",
        lambda m: hx.ff5_factors(hx.resample(_long_market(), "Q"), rebalance="annual"),
    ),
    "ff5 merge='no'": ("merge", lambda m: hx.ff5_factors(m, merge="no")),
    "regression weight_by_specific_var='no'": (
        "weight_by_specific_var",
        lambda m: hx.factor_regression(
            m.assign(loadings=m.truth_exposures), weight_by_specific_var="no"
        ),
    ),
    "long frame tz-aware dates": (
        "date",
        lambda m: hx.from_long_frame(
            m.returns.isel(asset=slice(0, 3))
            .to_dataframe()
            .reset_index()
            .assign(date=lambda d: d["date"].dt.tz_localize("UTC"), descriptor="x")
            .rename(columns={"returns": "val"})
        ),
    ),
    "ff5 rf nan": ("risk_free", lambda m: hx.ff5_factors(m, risk_free=float("nan"))),
    "ff5 rf True": ("risk_free", lambda m: hx.ff5_factors(m, risk_free=True)),
    "ff5 rf bool series": ("risk_free", lambda m: hx.ff5_factors(m, risk_free=_rf(m) > 0)),
    "ff5 rf object series": (
        "risk_free",
        lambda m: hx.ff5_factors(m, risk_free=_rf(m).astype(object)),
    ),
    "ff5 rf inf series": ("risk_free", lambda m: hx.ff5_factors(m, risk_free=_rf(m, np.inf))),
    "ff5 rf without dates": (
        "date",
        lambda m: hx.ff5_factors(m, risk_free=_rf(m).drop_vars("date")),
    ),
    "ff5 universe without assets": (
        "universe",
        lambda m: hx.ff5_factors(m, universe=xr.DataArray(np.ones(60, bool), dims="asset")),
    ),
    "ff5 panel without assets": ("returns", lambda m: hx.ff5_factors(m.drop_vars("asset"))),
    "ff5 weight_lag=True": ("weight_lag", lambda m: hx.ff5_factors(m, weight_lag=True)),
    "ff5 design list": ("design", lambda m: hx.ff5_factors(m, design=["2x3"])),
    "ff5 no Dataset": ("ds", lambda m: hx.ff5_factors(None, merge=True)),
    # loadings
    "loadings min_valid=None": ("min_valid", lambda m: hx.compute_loadings(m, min_valid=None)),
    # one +inf descriptor used to blank that descriptor's whole cross-section for the date
    "loadings inf descriptor": (
        "descriptors",
        lambda m: hx.compute_loadings(m.assign(descriptors=_with(m.descriptors, np.inf))),
    ),
    "loadings inf descriptor dask": (
        "descriptors",
        lambda m: hx.compute_loadings(
            m.assign(descriptors=_with(m.descriptors, -np.inf)).chunk(date=7)
        ).compute(),
    ),
    "loadings min_valid=True": ("min_valid", lambda m: hx.compute_loadings(m, min_valid=True)),
    "loadings lower='0.1'": ("lower", lambda m: hx.compute_loadings(m, lower="0.1")),
    "loadings n_std=[3]": ("n_std", lambda m: hx.compute_loadings(m, n_std=[3])),
    "loadings styles='value'": ("styles", lambda m: hx.compute_loadings(m, styles="value")),
    "loadings styles={value: 5}": ("styles", lambda m: hx.compute_loadings(m, styles={"value": 5})),
    "loadings orthogonalize='no'": (
        "orthogonalize",
        lambda m: hx.compute_loadings(m, orthogonalize="no"),
    ),
    "standardize inf value": (
        "book_to_price",
        lambda m: hx.standardize(_with(m.book_to_price, np.inf), m.market_cap),
    ),
    "standardize -inf value dask": (
        "book_to_price",
        lambda m: hx.standardize(
            _with(m.book_to_price, -np.inf).chunk(date=7), m.market_cap.chunk(date=7)
        ).compute(),
    ),
    "standardize no assets": (
        "book_to_price",
        lambda m: hx.standardize(
            m.book_to_price.isel(asset=slice(0, 0)), m.market_cap.isel(asset=slice(0, 0))
        ),
    ),
    "loadings lazy industry without names": (
        "industry",
        lambda m: hx.compute_loadings(_no_names(m.chunk(date=10)), fill_missing=True),
    ),
    "industry_names repeated": (
        "industry",
        lambda m: hx.factor_regression(
            m.assign(loadings=m.truth_exposures).pipe(_names, ["a", "b", "a", "c", "d"])
        ),
    ),
    "industry_names=5": (
        "industry",
        lambda m: hx.factor_regression(m.assign(loadings=m.truth_exposures).pipe(_names, 5)),
    ),
    # simulator
    "simulate n_dates=0": ("n_dates", lambda m: hx.simulate_market(n_dates=0, n_assets=50)),
    "simulate n_assets=2.5": ("n_assets", lambda m: hx.simulate_market(n_dates=5, n_assets=2.5)),
    "simulate seed='a'": ("seed", lambda m: hx.simulate_market(n_dates=5, n_assets=50, seed="a")),
    "simulate descriptors_per_style=0": (
        "descriptors_per_style",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, descriptors_per_style=0),
    ),
    "simulate suspension_frac=5": (
        "suspension_frac",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, suspension_frac=5),
    ),
    "simulate market_vol=nan": (
        "market_vol",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, market_vol=np.nan),
    ),
    "simulate premia nan": (
        "premia",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, premia={"country": np.nan}),
    ),
    "simulate premia unknown": (
        "premia",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, premia={"xyz": 0.1}),
    ),
    "simulate start='bad'": (
        "start",
        lambda m: hx.simulate_market(n_dates=5, n_assets=50, start="bad"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_a_named_validation_error(market, case):
    variable, call = BAD_CALLS[case]
    with pytest.raises(hx.ValidationError) as info:
        call(market)
    assert info.value.variable == variable


def test_fixed_silent_answers(market):
    # end_of_period="<name>" is one name, not a substring test (market_cap is as-of)
    weekly = hx.resample(market, "W", end_of_period="market_cap_level")
    at_first = market.market_cap.sel(date=weekly.first_date.values)
    np.testing.assert_array_equal(weekly.market_cap.values, at_first.values)
    # a simulator with a subset of styles keeps the default premia of those styles
    sim = hx.simulate_market(n_dates=5, n_assets=50, styles=["value", "size"])
    assert sim.truth_premia.sel(factor="value") > 0
    # an empty panel goes through the loadings with industry fill (no reshape error)
    empty = hx.compute_loadings(market.isel(date=slice(0, 0)), fill_missing=True)
    assert empty.loadings.sizes["date"] == 0


def test_review_regressions_stay_fixed(market):
    # annual rebalancing on monthly periods of the same long panel works (the quarterly
    # case above fails because of the labels, not because the panel has no July)
    monthly = hx.ff5_factors(hx.resample(_long_market(), "M"), rebalance="annual")
    assert int(monthly.HML.notnull().sum()) > 12
    # resample never needs industry names, so lazy codes without them are fine
    unnamed = _no_names(market).chunk(date=10)
    assert hx.resample(unnamed, "W").sizes["date"] == hx.resample(market, "W").sizes["date"]
    # any iterable of names (arrays, pandas indexes) is accepted
    np.testing.assert_array_equal(
        hx.resample(market, "W", returns=np.array(["returns"])).returns.values,
        hx.resample(market, "W", returns=["returns"]).returns.values,
    )
    sim = hx.simulate_market(n_dates=5, n_assets=50, styles=pd.Index(["value", "size"]))
    assert list(sim.style.values) == ["value", "size"]
    # a risk-free series chunked unlike the returns is rechunked, not blamed on 'returns'
    fac = hx.ff5_factors(market)[["MKT", "SMB"]]
    rf = _rf(market).chunk(date=15)
    lazy = hx.rolling_regression(
        market.returns.chunk(date=-1), fac.chunk(date=-1), window=20, risk_free=rf
    )
    eager = hx.rolling_regression(market.returns, fac, window=20, risk_free=_rf(market))
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12)
