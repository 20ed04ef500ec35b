"""Rolling per-asset factor regressions: kernel vs statsmodels / lstsq, Dask, validation."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.regression.rolling import RollingOLS

import hsr_xr as hx
from hsr_xr.errors import ValidationError
from hsr_xr.kernels.rolling import OUTPUTS, STDERR_OUTPUTS, rolling_ols, window_sums

FACTORS = ["MKT", "SMB", "HML"]


def _panel(n_dates=160, n_assets=9, k=3, gap=0.1, seed=0, x_mean=0.0):
    """returns (date, asset) with gaps, factors (date, factor), planted betas (asset, factor)."""
    rng = np.random.default_rng(seed)
    x = x_mean + rng.normal(0.0, 0.01, (n_dates, k))
    betas = rng.normal(1.0, 0.5, (n_assets, k))
    alpha = rng.normal(0.0, 0.001, n_assets)
    y = alpha[:, None] + betas @ x.T + rng.normal(0.0, 0.01, (n_assets, n_dates))
    y[rng.random(y.shape) < gap] = np.nan
    y[1] = alpha[1] + betas[1] @ x.T + rng.normal(0.0, 0.01, n_dates)  # no gaps of its own
    y[2, : n_dates // 2] = np.nan  # listed late
    y[3, -25:] = np.nan  # delisted
    y[4] = np.nan  # never valid
    dates = pd.bdate_range("2020-01-01", periods=n_dates)
    assets = [f"A{i:02d}" for i in range(n_assets)]
    names = FACTORS[:k] if k <= 3 else [f"F{i}" for i in range(k)]
    returns = xr.DataArray(y.T, dims=("date", "asset"), coords={"date": dates, "asset": assets})
    factors = xr.DataArray(x, dims=("date", "factor"), coords={"date": dates, "factor": names})
    return returns, factors, betas


def _kernel(y, x, window, **kw):
    names = OUTPUTS + (STDERR_OUTPUTS if kw.get("stderr") else ())
    return dict(zip(names, rolling_ols(y, x, window, **kw), strict=True))


def _close(ours, ref, rtol=1e-9, atol=1e-12):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


# --- window sums ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n_t=st.integers(1, 60),
    window=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
def test_window_sums_equal_direct_sums(n_t, window, seed):
    v = np.random.default_rng(seed).normal(size=(3, n_t))
    ref = np.stack([v[:, max(0, t - window + 1) : t + 1].sum(axis=1) for t in range(n_t)], -1)
    np.testing.assert_allclose(window_sums(v, window), ref, rtol=1e-12, atol=1e-12)


def test_window_sums_error_does_not_grow_with_history():
    # 20 years of a series with a large level: re-anchoring keeps each sum exact-ish.
    v = 100.0 + np.random.default_rng(1).normal(size=5040)
    got = window_sums(v, 20)
    ref = np.array([v[max(0, t - 19) : t + 1].sum() for t in range(v.size)])
    assert np.max(np.abs(got - ref)) < 1e-11 * 2000


# --- "dates" windows vs statsmodels RollingOLS(missing="drop") -----------------------


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("add_intercept", [True, False])
@pytest.mark.parametrize(("window", "min_obs"), [(30, 20), (25, None)])
def test_dates_window_equals_statsmodels(add_intercept, window, min_obs):
    returns, factors, _ = _panel()
    x = factors.values.copy()
    x[70, 1] = np.nan  # a date with a missing factor is invalid for every asset
    y = returns.values.T
    res = _kernel(
        y,
        x,
        window,
        min_obs=min_obs,
        window_type="dates",
        add_intercept=add_intercept,
        stderr=True,
    )
    design = np.column_stack([np.ones(len(x)), x]) if add_intercept else x
    off = int(add_intercept)
    kw = {} if min_obs is None else {"min_nobs": min_obs}
    assert np.isnan(res["betas"][4]).all() and (res["n_obs"][4] == 0).all()
    for a in [a for a in range(y.shape[0]) if a != 4]:  # statsmodels refuses all-NaN data
        fit = RollingOLS(y[a], design, window=window, missing="drop", **kw).fit()
        params = fit.params
        # statsmodels reports inf/garbage standard errors with 0 residual dof; we give NaN.
        no_dof = (fit.nobs <= design.shape[1])[:, None]
        bse = np.where(no_dof, np.nan, fit.bse)
        tvalues = np.where(no_dof, np.nan, fit.tvalues)
        _close(res["betas"][a], params[:, off:])
        if add_intercept:
            _close(res["intercept"][a], params[:, 0])
            _close(res["intercept_stderr"][a], bse[:, 0])
            _close(res["intercept_tstat"][a], tvalues[:, 0], rtol=1e-8)
        else:
            _close(res["intercept"][a], np.where(np.isnan(params[:, 0]), np.nan, 0.0))
        _close(res["r2"][a], fit.rsquared)
        _close(res["betas_stderr"][a], bse[:, off:])
        _close(res["betas_tstat"][a], tvalues[:, off:], rtol=1e-8)
        fitted = np.where(np.isnan(params).any(1), np.nan, 0.0) + np.einsum(
            "tp,tp->t", np.nan_to_num(params), np.nan_to_num(design)
        )
        fitted[~np.isfinite(x).all(1)] = np.nan
        _close(res["prediction"][a], fitted)
        _close(res["residual"][a], y[a] - fitted)
        _close(res["alpha"][a], res["intercept"][a] + y[a] - fitted)
        defined = ~np.isnan(params[:, 0])
        np.testing.assert_array_equal(res["n_obs"][a][defined], fit.nobs[defined])


# --- "observations" windows vs a per-asset lstsq loop (the seed's ff5_analysis) ----------


def _seed_reference(y, x, window, min_obs):
    """Per asset, per window over its valid observations: lstsq with an intercept."""
    n_a, n_t = y.shape
    k = x.shape[1]
    ref = {n: np.full((n_a, n_t), np.nan) for n in OUTPUTS if n != "betas"}
    ref["betas"] = np.full((n_a, n_t, k), np.nan)
    for a in range(n_a):
        idx = np.flatnonzero(np.isfinite(y[a]) & np.isfinite(x).all(1))
        for j in range(idx.size):
            sel = idx[max(0, j - window + 1) : j + 1]
            if sel.size < min_obs:
                continue
            design = np.column_stack([np.ones(sel.size), x[sel]])
            coef = np.linalg.lstsq(design, y[a, sel], rcond=None)[0]
            fitted = design @ coef
            t = idx[j]
            resid = y[a, t] - fitted[-1]
            dev = y[a, sel] - y[a, sel].mean()
            ref["intercept"][a, t] = coef[0]
            ref["betas"][a, t] = coef[1:]
            ref["prediction"][a, t] = fitted[-1]
            ref["residual"][a, t] = resid
            ref["alpha"][a, t] = coef[0] + resid
            ref["r2"][a, t] = 1 - ((y[a, sel] - fitted) ** 2).sum() / (dev**2).sum()
            ref["n_obs"][a, t] = sel.size
    return ref


@pytest.mark.parametrize(("window", "min_obs"), [(20, 20), (30, 12)])
def test_observations_window_equals_lstsq_loop(window, min_obs):
    returns, factors, _ = _panel(n_dates=120, n_assets=8)
    x = factors.values.copy()
    x[40] = np.nan
    y = returns.values.T
    res = _kernel(y, x, window, min_obs=min_obs)
    ref = _seed_reference(y, x, window, min_obs)
    for name in OUTPUTS:
        if name == "n_obs":
            valid = ~np.isnan(ref["n_obs"])
            np.testing.assert_array_equal(res["n_obs"][valid], ref["n_obs"][valid])
            assert (res["n_obs"][np.isnan(y)] == 0).all()
        else:
            _close(res[name], ref[name], rtol=1e-9, atol=1e-12)


def test_twenty_year_history_matches_direct_solve():
    """Long history, factors with a large level: no loss of precision late in the sample."""
    returns, factors, _ = _panel(n_dates=5040, n_assets=5, gap=0.05, seed=3, x_mean=5.0)
    y, x = returns.values.T, factors.values
    for window_type in ("observations", "dates"):
        res = _kernel(y, x, 60, window_type=window_type, min_obs=50)
        for a in (0, 1, 3):
            for t in range(200, 5040, 487):
                lo = t - 59 if window_type == "dates" else None
                idx = np.flatnonzero(np.isfinite(y[a, : t + 1]))
                sel = idx[idx >= lo] if lo is not None else idx[-60:]
                if window_type == "observations" and (np.isnan(y[a, t]) or sel.size < 50):
                    assert np.isnan(res["betas"][a, t]).all()
                    continue
                design = np.column_stack([np.ones(sel.size), x[sel]])
                coef = np.linalg.lstsq(design, y[a, sel], rcond=None)[0]
                np.testing.assert_allclose(res["betas"][a, t], coef[1:], rtol=1e-8, atol=1e-9)
                np.testing.assert_allclose(res["intercept"][a, t], coef[0], atol=1e-8)


# --- NaN exactly where undefined -------------------------------------------------------


def test_nan_where_undefined():
    returns, factors, _ = _panel(n_dates=100, n_assets=6, gap=0.0)
    x = factors.values.copy()
    x[30:60, 0] = 0.002  # constant factor for 30 dates -> singular windows inside
    y = returns.values.T.copy()
    res = _kernel(y, x, 20, window_type="dates", min_obs=15)
    singular = np.zeros(100, bool)
    singular[30 + 19 : 60] = True  # windows lying entirely in the constant stretch
    assert np.isnan(res["betas"][:, singular]).all()
    assert np.isnan(res["r2"][:, singular]).all()
    assert np.isfinite(res["betas"][0, 60:]).all()
    assert np.isnan(res["betas"][:, :19]).all()  # before the window-th date
    assert (res["n_obs"][:, :19] == 0).all()  # no window ends there (as documented)
    assert (res["n_obs"][0, 19:] == 20).all()
    assert np.isnan(res["intercept"][4]).all()  # never-valid asset
    assert (res["n_obs"][4] == 0).all()
    assert np.isnan(res["betas"][2, :64]).all()  # listed at 50: 15 valid dates by date 64
    assert np.isfinite(res["betas"][2, 64:]).all()
    # Delisted: betas while >= min_obs valid dates remain; no residual on missing days.
    assert np.isfinite(res["betas"][3, 75:80]).all()  # delisted at 75: 15 valid up to 79
    assert np.isnan(res["betas"][3, 80:]).all()
    assert np.isnan(res["residual"][3, 75:]).all()
    assert np.isfinite(res["prediction"][3, 75:80]).all()
    # A factor that never varies is collinear with the intercept: NaN everywhere.
    x_const = x.copy()
    x_const[:, 2] = 0.001
    res_const = _kernel(y, x_const, 20, window_type="dates", min_obs=15, stderr=True)
    for name in ("intercept", "betas", "prediction", "residual", "alpha", "r2", "betas_stderr"):
        assert np.isnan(res_const[name]).all(), name
    # observations: window larger than the history -> all NaN
    res = _kernel(y, x, 99, window_type="observations")
    assert np.isnan(res["betas"][2]).all()
    assert np.isnan(res["alpha"][2]).all()


# --- planted truth ---------------------------------------------------------------------


def test_planted_betas_recovered_on_ff5_factors():
    ds = hx.simulate_market(n_dates=300, n_assets=60, seed=4)
    ff = hx.ff5_factors(ds)
    x = ff[["MKT", "SMB", "HML", "RMW", "CMA"]].to_dataarray("factor").transpose("date", ...)
    rng = np.random.default_rng(5)
    planted = xr.DataArray(
        rng.normal([1.0, 0.3, -0.2, 0.1, 0.2], 0.3, (60, 5)),
        dims=("asset", "factor"),
        coords={"asset": ds.asset, "factor": x.factor},
    )
    noise = rng.normal(0.0, 0.002, (300, 60))
    returns = (x * planted).sum("factor") + 0.0005 + noise
    returns = returns.where(ds.returns.notnull())  # the simulated listings and suspensions
    out = hx.rolling_regression(returns, ff, window=120)
    err = (out.betas - planted).where(out.n_obs == 120)
    assert float(abs(err).max()) < 0.08
    assert float(abs(err.mean(["date", "asset"])).max()) < 0.01
    assert float(abs(out.intercept - 0.0005).max()) < 0.002
    assert float(out.r2.min()) > 0.9


# --- labelled API ----------------------------------------------------------------------


def test_api_on_ff5_output_and_dataset_selection():
    ds = hx.simulate_market(n_dates=80, n_assets=20, seed=1)
    ff = hx.ff5_factors(ds)
    out = hx.rolling_regression(ds.returns, ff, window=20)
    assert list(out.factor.values) == ["MKT", "SMB", "HML", "RMW", "CMA"]
    assert out.betas.dims == ("date", "asset", "factor")
    assert out.intercept.dims == ("date", "asset")
    assert out.n_obs.dtype == np.int64
    assert out.attrs["window_type"] == "observations"
    # Equals the kernel on the stacked arrays.
    x = ff[["MKT", "SMB", "HML", "RMW", "CMA"]].to_dataarray("factor").transpose("date", ...)
    ref = _kernel(ds.returns.values.T, x.values, 20)
    np.testing.assert_array_equal(out.betas.transpose("asset", ...).values, ref["betas"])
    np.testing.assert_array_equal(out.alpha.values.T, ref["alpha"])
    # factor_names selection, DataArray input, merged Dataset input all agree.
    sub = hx.rolling_regression(ds.returns, ff, window=20, factor_names=["MKT", "SMB", "HML"])
    via_da = hx.rolling_regression(ds.returns, x.sel(factor=["MKT", "SMB", "HML"]), window=20)
    xr.testing.assert_identical(sub.drop_attrs(), via_da.drop_attrs())
    # A merged Dataset holds other series over date (here truth_regime): name the factors.
    merged = hx.ff5_factors(ds, merge=True)
    names = ["MKT", "SMB", "HML", "RMW", "CMA"]
    via_merged = hx.rolling_regression(merged.returns, merged, window=20, factor_names=names)
    xr.testing.assert_identical(via_merged, out)


def test_risk_free_is_subtracted_from_returns():
    returns, factors, _ = _panel(n_dates=60, n_assets=5)
    rf = xr.DataArray(np.full(60, 1e-4), dims="date", coords={"date": returns.date})
    a = hx.rolling_regression(returns, factors, window=20, risk_free=rf)
    b = hx.rolling_regression(returns - rf, factors, window=20)
    xr.testing.assert_allclose(a, b)
    c = hx.rolling_regression(returns, factors, window=20, risk_free=1e-4)
    xr.testing.assert_allclose(a, c)


@pytest.mark.parametrize("window_type", ["observations", "dates"])
def test_dask_irregular_chunks_equal_numpy_and_stay_lazy(window_type):
    returns, factors, _ = _panel(n_dates=90, n_assets=11)
    kw = dict(window=20, window_type=window_type, stderr=True, min_obs=15)
    ref = hx.rolling_regression(returns, factors, **kw)

    def boom(*args, **kwargs):
        raise AssertionError("graph building computed something")

    with dask.config.set(scheduler=boom):
        lazy = hx.rolling_regression(
            returns.chunk(asset=(2, 5, 1, 3)), factors.chunk(date=(40, 50)), **kw
        )
    assert all(isinstance(v.data, dask.array.Array) for v in lazy.data_vars.values())
    assert lazy.betas.chunks == ((90,), (2, 5, 1, 3), (3,))
    xr.testing.assert_allclose(lazy.compute(), ref, rtol=1e-12, atol=1e-15)


def test_chunked_date_is_refused():
    returns, factors, _ = _panel(n_dates=60, n_assets=5)
    with pytest.raises(ValidationError, match="date"):
        hx.rolling_regression(returns.chunk(date=30), factors, window=20)


def _bad_calls():
    returns, factors, _ = _panel(n_dates=60, n_assets=5)
    ds = factors.to_dataset("factor")
    shifted = factors.assign_coords(date=factors.date + np.timedelta64(1, "D"))
    rf_bad = xr.DataArray(np.zeros(59), dims="date", coords={"date": returns.date[:59]})
    rf_text = xr.DataArray(np.zeros(60).astype(str), dims="date", coords={"date": returns.date})
    ret_inf, fac_inf = returns.copy(), factors.copy()
    ret_inf[3, 1], fac_inf[5, 0] = np.inf, -np.inf
    return [
        ("returns", dict(returns=ret_inf, factors=factors)),
        ("factors", dict(returns=returns, factors=fac_inf)),
        ("factors", dict(returns=returns, factors=shifted)),
        ("factors", dict(returns=returns, factors=factors.isel(date=slice(0, 50)))),
        ("returns", dict(returns=returns.to_dataset(name="r"), factors=factors)),
        ("returns", dict(returns=returns.rename(asset="ticker"), factors=factors)),
        ("date", dict(returns=returns.isel(date=slice(None, None, -1)), factors=factors)),
        ("factors", dict(returns=returns, factors=factors.rename(factor="f"))),
        ("factors", dict(returns=returns, factors=ds.expand_dims(asset=["A"]))),
        ("factor_names", dict(returns=returns, factors=ds, factor_names=["MKT", "XYZ"])),
        ("factor_names", dict(returns=returns, factors=factors, factor_names=["XYZ"])),
        ("factor_names", dict(returns=returns, factors=ds, factor_names=[])),
        ("window", dict(returns=returns, factors=factors, window=3)),
        ("window_type", dict(returns=returns, factors=factors, window_type="rows")),
        ("min_obs", dict(returns=returns, factors=factors, window=20, min_obs=2)),
        ("min_obs", dict(returns=returns, factors=factors, window=20, min_obs=21)),
        ("risk_free", dict(returns=returns, factors=factors, risk_free=rf_bad)),
        ("risk_free", dict(returns=returns, factors=factors, risk_free=[0.0])),
        ("risk_free", dict(returns=returns, factors=factors, risk_free="0.01")),
        ("risk_free", dict(returns=returns, factors=factors, risk_free=np.nan)),
        ("risk_free", dict(returns=returns, factors=factors, risk_free=rf_text)),
        ("factor_names", dict(returns=returns, factors=ds, factor_names=["MKT", "MKT"])),
        ("factor_names", dict(returns=returns, factors=factors, factor_names="MKT")),
        ("min_obs", dict(returns=returns, factors=factors, window=20, min_obs=5.5)),
        ("min_obs", dict(returns=returns, factors=factors, window=20, min_obs=np.float64(10))),
        ("add_intercept", dict(returns=returns, factors=factors, add_intercept="no")),
        ("stderr", dict(returns=returns, factors=factors, stderr="no")),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_input_raises_validation_error(case):
    name, kwargs = _bad_calls()[case]
    kwargs.setdefault("window", 20)
    with pytest.raises(ValidationError) as info:
        hx.rolling_regression(**kwargs)
    assert info.value.variable == name


def test_infinite_dask_returns_are_refused_when_computed():
    returns, factors, _ = _panel(n_dates=60, n_assets=5)
    returns = returns.copy()
    returns[7, 2] = -np.inf
    lazy = hx.rolling_regression(returns.chunk(asset=2), factors, window=20)  # builds, lazily
    with pytest.raises(ValidationError, match="returns"):
        lazy.compute()


@settings(max_examples=15, deadline=None)
@given(
    n_dates=st.integers(8, 70),
    window=st.integers(8, 30),
    slack=st.integers(0, 10),
    gap=st.sampled_from([0.0, 0.1, 0.4]),
    seed=st.integers(0, 2**16),
)
def test_observations_property_random_panels(n_dates, window, slack, gap, seed):
    """Random sizes, windows and gap densities: kernel equals the lstsq loop."""
    returns, factors, _ = _panel(n_dates=n_dates, n_assets=5, k=2, gap=gap, seed=seed)
    y, x = returns.values.T, factors.values
    min_obs = max(8, window - slack)  # well-conditioned: >= 5 residual dof
    res = _kernel(y, x, window, min_obs=min_obs)
    ref = _seed_reference(y, x, window, min_obs)
    for name in ("intercept", "betas", "alpha", "r2"):
        _close(res[name], ref[name], rtol=1e-7, atol=1e-10)
