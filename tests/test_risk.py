"""Risk model: kernels vs plain references, presets, guarantees, Dask, laziness, validation."""

from __future__ import annotations

import os
from unittest import mock

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import hsr_xr as hx
from hsr_xr.errors import ValidationError
from hsr_xr.kernels import covariance as kcov
from hsr_xr.kernels import specific as kspec
from hsr_xr.risk import resolve_options

# ------------------------------------------------------------------ helpers / references


def _ref_moment(x, y, lam, t, lag=0):
    """Explicit-weights EWMA of x_s y_{s-lag} over s <= t where both are observed."""
    s = np.arange(lag, t + 1)
    a, b = x[s], y[s - lag]
    ok = ~np.isnan(a) & ~np.isnan(b)
    w = lam ** (t - s[ok])
    if not ok.any():
        return np.nan
    return np.sum(w * a[ok] * b[ok]) / np.sum(w)


def _ref_nw(x, y, lam, t, lags):
    """Direct Newey–West formula G0 + sum_l (1 - l/(L+1)) (G_l(x,y) + G_l(y,x))."""
    out = _ref_moment(x, y, lam, t)
    for lag in range(1, lags + 1):
        w = 1 - lag / (lags + 1)
        g1 = _ref_moment(x, y, lam, t, lag)
        g2 = _ref_moment(y, x, lam, t, lag)
        out += w * ((0.0 if np.isnan(g1) else g1) + (0.0 if np.isnan(g2) else g2))
    return out


def _ref_cov(f, t, hl_vol, hl_corr, lags_vol=0, lags_corr=0):
    """O(T^2) reference for ewma_covariance at date t (all factors valid)."""
    K = f.shape[1]
    lv, lc = 0.5 ** (1 / hl_vol), 0.5 ** (1 / hl_corr)
    var = np.array([_ref_nw(f[:, i], f[:, i], lv, t, lags_vol) for i in range(K)])
    g0 = np.array([_ref_moment(f[:, i], f[:, i], lv, t) for i in range(K)])
    var = np.where(var > 0, var, g0)
    C = np.array(
        [[_ref_nw(f[:, i], f[:, j], lc, t, lags_corr) for j in range(K)] for i in range(K)]
    )
    d = np.sqrt(np.diag(C))
    rho = np.clip(C / np.outer(d, d), -1, 1)
    np.fill_diagonal(rho, 1.0)
    return rho * np.outer(np.sqrt(var), np.sqrt(var))


def _panel(T=160, K=5, seed=0, missing=True):
    rng = np.random.default_rng(seed)
    L = np.tril(rng.normal(size=(K, K))) + 2 * np.eye(K)
    f = rng.standard_normal((T, K)) @ L.T * 0.01
    if missing:
        f[:30, 3] = np.nan  # late start (an industry born later)
        f[70:90, 4] = np.nan  # an industry with no members for a while
        f[rng.random((T, K)) < 0.03] = np.nan
    return f


@pytest.fixture(scope="module")
def market():
    ds = hx.simulate_market(n_dates=260, n_assets=300, n_industries=6, seed=3, regimes=False)
    return ds.assign(
        factor_returns=ds.truth_factor_returns,
        specific_returns=ds.truth_specific_returns,
        loadings=ds.truth_exposures,
    )


# ------------------------------------------------------------------ EWMA primitives


@settings(max_examples=25, deadline=None)
@given(
    hl=st.floats(0.3, 500),
    n=st.integers(1, 60),
    seed=st.integers(0, 10_000),
)
def test_ewma_scan_equals_recursion(hl, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    carry = rng.normal(size=3)
    lam = kcov.decay(hl)
    ref = np.empty_like(x)
    state = carry.copy()
    for t in range(n):
        state = lam * state + x[t]
        ref[t] = state
    for form in ("1", "0"):  # the compiled recursion (with Numba), then the blocked scan
        with mock.patch.dict(os.environ, {"HSR_XR_NUMBA": form}):
            y, last = kcov.ewma_scan(x, lam, carry=carry)
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(last, ref[-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, axis", [((40, 3, 4), 0), ((3, 40), 1), ((2, 40, 3), 1)])
def test_ewma_scan_any_axis_and_layout(shape, axis, kernel_passes, compiled_calls):
    """Contiguous batches, a strided 2-D view and a strided 3-D view scan alike."""
    x = np.random.default_rng(2).normal(size=shape)
    lam = kcov.decay(7.0)
    y, last = kcov.ewma_scan(x, lam, axis=axis)
    xm = np.moveaxis(x, axis, 0)
    ref = np.empty(xm.shape)
    state = np.zeros(ref.shape[1:])
    for t in range(len(ref)):
        state = lam * state + xm[t]
        ref[t] = state
    np.testing.assert_allclose(np.moveaxis(y, axis, 0), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last, ref[-1], rtol=1e-12, atol=1e-12)
    # the compiled recursion runs where the rows are one view (not the strided 3-D case)
    one_view = kernel_passes == "compiled" and shape != (2, 40, 3)
    assert compiled_calls.get("_scan_rows", 0) == int(one_view)


def test_ewma_scan_long_series_is_stable():
    # many sub-blocks (lam**-n would overflow in one cumulative sum)
    x = np.random.default_rng(1).normal(size=(5000, 2))
    lam = kcov.decay(2.0)
    y, _ = kcov.ewma_scan(x, lam)
    state = np.zeros(2)
    for t in range(5000):
        state = lam * state + x[t]
    np.testing.assert_allclose(y[-1], state, rtol=1e-12)


def test_ewma_mean_matches_pandas():
    x = _panel()[:, 4]
    got = kcov.ewma_mean(x, 17.0)
    ref = pd.Series(x).ewm(halflife=17.0, adjust=True, ignore_na=False).mean().to_numpy().copy()
    ref[: np.argmax(~np.isnan(x))] = np.nan
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("missing", [False, True])
def test_ewma_covariance_equals_explicit_weights(missing):
    f = _panel(missing=missing)
    F = kcov.ewma_covariance(f, vol_halflife=25, corr_halflife=25, min_periods=1)
    scale = np.nanmax(np.abs(F))
    lam = 0.5 ** (1 / 25)
    for t in (0, 29, 31, 80, 159):
        for i in range(f.shape[1]):
            for j in range(f.shape[1]):
                ref = _ref_moment(f[:, i], f[:, j], lam, t)
                if missing and np.isnan(ref):
                    continue
                if not missing:
                    assert abs(F[t, i, j] - ref) <= 1e-12 * scale
    if not missing:
        return
    # pairwise definition: rho from pair moments, sigma from own observations
    for t in (40, 85, 159):
        ref = _ref_cov(f, t, 25, 25)
        np.testing.assert_allclose(F[t], ref, rtol=1e-12, atol=1e-12 * scale)


def test_ewma_covariance_separate_halflives_and_min_periods():
    f = _panel(missing=True)
    F = kcov.ewma_covariance(f, vol_halflife=10, corr_halflife=60, min_periods=20)
    for t in (60, 120, 159):
        np.testing.assert_allclose(F[t], _ref_cov(f, t, 10, 60), rtol=1e-12, atol=1e-16)
    # factor 3 starts at row 30 -> NaN row/column until it has 20 observations
    n3 = np.cumsum(~np.isnan(f[:, 3]))
    assert np.isnan(F[n3 < 20][:, 3, :]).all() and np.isnan(F[n3 < 20][:, :, 3]).all()
    n012 = np.cumsum(~np.isnan(f[:, :3]), axis=0).min(axis=1)
    sel = (n3 < 20) & (n012 >= 20)
    assert sel.any() and np.isfinite(F[sel][:, :3, :3]).all()


def test_missing_factor_does_not_poison_others():
    f = _panel(missing=False)
    g = f.copy()
    g[50:120, 2] = np.nan
    Ff = kcov.ewma_covariance(f, vol_halflife=30, corr_halflife=90)
    Fg = kcov.ewma_covariance(g, vol_halflife=30, corr_halflife=90)
    keep = [0, 1, 3, 4]
    np.testing.assert_allclose(Fg[:, keep][:, :, keep], Ff[:, keep][:, :, keep], rtol=1e-12)
    assert np.isfinite(Fg[60:]).all()


@pytest.mark.parametrize("lags", [(1, 1), (5, 2)])
def test_newey_west_equals_direct_formula(lags):
    f = _panel(T=120, missing=True)
    lv, lc = lags
    F = kcov.ewma_covariance(f, vol_halflife=30, corr_halflife=50, vol_lags=lv, corr_lags=lc)
    for t in (45, 88, 119):
        ref = _ref_cov(f, t, 30, 50, lv, lc)
        np.testing.assert_allclose(F[t], ref, rtol=1e-11, atol=1e-17)
    var, _ = kcov.ewma_nw_variance(f[:, 0], 30, lags=lv, axis=0)
    lam = 0.5 ** (1 / 30)
    assert var[100] == pytest.approx(_ref_nw(f[:, 0], f[:, 0], lam, 100, lv), rel=1e-12)


# ------------------------------------------------------------------ eigen, PSD, VRA, regime


def test_eigen_adjust_reproduces_definition():
    rng = np.random.default_rng(5)
    K, M, h, a = 4, 7, 30, 1.3
    A = rng.normal(size=(3, K, K))
    F = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(K)
    got, v = kcov.eigen_adjust(F, sims=M, window=h, scale=a, stride=1, seed=11)
    z = np.random.default_rng(11).standard_normal((M, K, h))
    for t in range(3):
        D, U = np.linalg.eigh(F[t])
        ratios = np.empty((M, K))
        for m in range(M):
            r = U @ (np.sqrt(D)[:, None] * z[m])  # simulated factor returns, K x h
            Fm = r @ r.T / h
            Dm, Um = np.linalg.eigh(Fm)
            ratios[m] = np.diag(Um.T @ F[t] @ Um) / Dm
        vk = np.sqrt(ratios.mean(axis=0))
        g = a * (vk - 1) + 1
        ref = U @ np.diag(g**2 * D) @ U.T
        np.testing.assert_allclose(v[t], vk, rtol=1e-10)
        np.testing.assert_allclose(got[t], ref, rtol=1e-10, atol=1e-12)


def test_eigen_adjust_stride_holds_bias_as_of():
    F = kcov.ewma_covariance(_panel(T=80, missing=False), vol_halflife=20, corr_halflife=20)
    _, v = kcov.eigen_adjust(F, sims=5, window=20, stride=10, block=16)
    _, v1 = kcov.eigen_adjust(F, sims=5, window=20, stride=1, block=16)
    for s in range(0, 80, 10):
        np.testing.assert_allclose(v[s : s + 10], np.broadcast_to(v1[s], v[s : s + 10].shape))


def test_clip_psd():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 6, 6))
    S = A + A.transpose(0, 2, 1)  # indefinite
    P = A @ A.transpose(0, 2, 1)
    S[1] = P[1]
    out, clipped = kcov.clip_psd(S.copy(), block=2)
    assert clipped.tolist() == [True, False, True, True, True]
    np.testing.assert_allclose(out[1], P[1])
    for t in range(5):
        w, U = np.linalg.eigh(S[t])
        np.testing.assert_allclose(out[t], U @ np.diag(np.maximum(w, 0)) @ U.T, atol=1e-12)
        assert np.linalg.eigvalsh(out[t]).min() > -1e-12


def test_vra_lambda_reference():
    f = _panel(missing=True)
    F = kcov.ewma_covariance(f, vol_halflife=20, corr_halflife=40, min_periods=10)
    lam = kcov.vra_lambda(f, F, 15.0)
    sd = np.sqrt(np.diagonal(F, axis1=1, axis2=2))
    b2 = np.full(len(f), np.nan)
    for t in range(1, len(f)):
        z = f[t] / sd[t - 1]
        if np.isfinite(z).any():
            b2[t] = np.nanmean(z**2)
    ref = pd.Series(b2).ewm(halflife=15.0).mean().fillna(1.0).to_numpy()
    np.testing.assert_allclose(lam, np.sqrt(ref), rtol=1e-12)


def test_regime_multiplier_reference():
    p = _panel()[:, 0]
    p[:5] = np.nan
    got = kcov.regime_multiplier(p, short_halflife=21, long_halflife=42)
    p2 = pd.Series(p**2)
    ratio = p2.ewm(halflife=21).mean() / p2.ewm(halflife=42).mean()
    ref = np.sqrt(ratio.clip(1e-4, 1e4).fillna(1.0)).to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12)


# ------------------------------------------------------------------ specific kernels


def test_row_quantile_matches_numpy():
    x = np.random.default_rng(0).normal(size=(6, 50))
    x[x > 1.2] = np.nan
    x[3] = np.nan
    for q in (0.0, 0.5, 0.995, 1.0):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            ref = np.nanquantile(x, q, axis=1)
        np.testing.assert_allclose(kspec.row_quantile(x, q), ref, equal_nan=True)


def test_bayesian_shrink_vs_groupby():
    rng = np.random.default_rng(4)
    T, N = 3, 97
    cap = np.exp(rng.normal(size=(T, N)))
    cap[0, :5] = np.nan
    sig = rng.uniform(0.01, 0.05, size=(T, N))
    sig[1, 10:14] = np.nan
    got = kspec.bayesian_shrink(sig**2, cap, q=0.1)
    for t in range(T):
        df = pd.DataFrame({"cap": cap[t], "sig": sig[t]}).dropna()
        df["dec"] = (df["cap"].rank(method="first").astype(int) - 1) * 10 // len(df)
        g = df.groupby("dec")
        sbar = g.apply(lambda d: np.average(d.sig, weights=d.cap), include_groups=False)
        df["sbar"] = df["dec"].map(sbar)
        disp = (df.sig - df.sbar).pow(2).groupby(df.dec).mean().pow(0.5)
        df["disp"] = df["dec"].map(disp)
        a = 0.1 * (df.sig - df.sbar).abs()
        v = a / (df.disp + a)
        ref = pd.Series(sig[t] ** 2)
        ref[df.index] = (v * df.sbar + (1 - v) * df.sig) ** 2
        np.testing.assert_allclose(got[t], ref.to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("unknown_in_fit", [True, False])
def test_structural_blend_vs_lstsq(unknown_in_fit):
    """Reference: weighted lstsq on [1, X, dummies] with the constraint sum_j W_j b_j = 0
    eliminated by substitution (b_last = -sum_j<last W_j b_j / W_last)."""
    rng = np.random.default_rng(8)
    T, N, S, n_ind = 2, 80, 2, 4
    X = rng.normal(size=(T, N, S))
    ind = rng.integers(-1, n_ind - 1, size=(T, N))  # the last industry starts empty
    hist = rng.choice([30.0, 120.0, 252.0], size=(T, N))
    if not unknown_in_fit:  # every fitted asset has an industry: b0 needs the constraint
        ind[(hist >= 180) & (ind < 0)] = 0
    ind[:, :2] = n_ind - 1  # two young members of the last industry, not in the fit
    hist[:, :2] = 30.0
    sig = np.exp(-4 + 0.3 * X[..., 0] + 0.1 * ind + 0.1 * rng.normal(size=(T, N)))
    var = sig**2
    var[0, 2:6] = np.nan
    w = rng.uniform(1, 3, size=(T, N))
    got = kspec.structural_blend(var, hist, X, ind, w, n_industries=n_ind, min_fit=5)
    for t in range(T):
        fit = (hist[t] >= 180) & np.isfinite(var[t])
        inds = np.unique(ind[t][fit & (ind[t] >= 0)])  # industries with fitted assets
        W = np.array([w[t][fit & (ind[t] == j)].sum() for j in inds])
        D = (ind[t][:, None] == inds).astype(float)
        D_free = D[:, :-1] - np.outer(D[:, -1], W[:-1] / W[-1])
        Z = np.column_stack([np.ones(N), X[t], D_free])
        sw = np.sqrt(w[t][fit])
        c = np.linalg.lstsq(Z[fit] * sw[:, None], np.log(sig[t][fit]) * sw, rcond=None)[0]
        base = np.exp(Z @ c)  # industry -1 and the empty industry: b0 + X b
        e0 = np.sum(w[t][fit] * sig[t][fit] / base[fit]) / np.sum(w[t][fit])
        gam = np.clip((hist[t] - 60) / 120, 0, 1)
        s_ts = np.sqrt(var[t])
        ref = np.where(np.isfinite(s_ts), gam * s_ts + (1 - gam) * e0 * base, e0 * base) ** 2
        np.testing.assert_allclose(got[t], ref, rtol=1e-9)


def test_structural_level_of_unknown_and_empty_industries():
    """Equal specific vols and zero loadings: every asset's structural forecast is that
    common level, whether its industry is known, unknown (-1) or has no fitted asset."""
    T, N, n_ind = 1, 60, 5
    ind = np.arange(N) % 4
    ind[-2:] = [4, -1]  # young assets: a new industry and an unknown one
    hist = np.full((T, N), 252.0)
    hist[:, -3:] = 10.0
    var = np.full((T, N), 0.02**2)
    var[:, -3:] = np.nan
    got = kspec.structural_blend(
        var, hist, np.zeros((T, N, 1)), ind[None], np.ones((T, N)), n_industries=n_ind
    )
    np.testing.assert_allclose(got, 0.02**2, rtol=1e-10)


def test_seed_specific_vs_pandas_loop(market):
    ds = market
    out = hx.risk_model(ds, "seed", merge=False, specific_min_periods=1)
    e = ds.specific_returns.to_pandas()
    m = out.regime_multiplier.to_pandas()
    sq = e**2
    sq = sq.clip(upper=sq.quantile(0.995, axis=1), axis=0)
    sv = sq.ewm(halflife=42).mean()  # weight-normalized, NaN skipped
    sv = sv.where(sv.notna() | e.isna(), sv.median(axis=1), axis=0)
    med = sv.median(axis=1)
    sv = (0.95 * sv).add(0.05 * med, axis=0).mul(m**2, axis=0)
    np.testing.assert_allclose(out.specific_var.values, sv.to_numpy(), rtol=1e-10, equal_nan=True)


# ------------------------------------------------------------------ labelled API


@pytest.mark.parametrize("preset", ["seed", "use4s", "use4l", None])
def test_presets_guarantees(market, preset):
    out = hx.risk_model(market, preset, merge=False)
    F = out.factor_cov.values
    mp = {"seed": 21, None: 21}.get(preset, 63)
    after = F[mp:]
    assert np.isfinite(after).all(), "no NaN after the warm-up"
    np.testing.assert_array_equal(after, after.transpose(0, 2, 1))
    w = np.linalg.eigvalsh(after)
    assert (w >= -1e-13 * w.max(axis=1, keepdims=True)).all(), "PSD"
    sv = out.specific_var.values
    assert (sv[np.isfinite(sv)] > 0).all()
    # USE4: short-history assets get the structural forecast once it can be fitted
    # (enough assets with >= 180 observations)
    warm = mp if preset in ("seed", None) else 181
    listed = market.specific_returns.notnull().values
    if preset is None:  # no fill: each asset needs its own min_periods observations
        listed &= np.cumsum(listed, axis=0) >= 21
    assert np.isfinite(sv[warm:][listed[warm:]]).all()
    assert out.factor_cov.dims == ("date", "factor", "factor2")
    assert list(out.factor2.values) == list(market.factor.values)
    for name in ("regime_multiplier", "vra_lambda", "specific_vra_lambda"):
        assert out[name].dims == ("date",) and np.isfinite(out[name]).all()


def test_use4_outputs_and_merge(market):
    out = hx.risk_model(market, "use4s")
    assert {"factor_cov", "specific_var", "returns"} <= set(out.data_vars)
    assert not np.allclose(out.vra_lambda.values[100:], 1.0)
    assert not np.allclose(out.specific_vra_lambda.values[100:], 1.0)
    seed = hx.risk_model(market, "seed", merge=False)
    assert not np.allclose(seed.regime_multiplier.values[50:], 1.0)
    np.testing.assert_array_equal(seed.vra_lambda.values, 1.0)


def test_horizon_scales_linearly(market):
    a = hx.risk_model(market, "seed", merge=False)
    b = hx.risk_model(market, "seed", merge=False, horizon=21)
    np.testing.assert_allclose(b.factor_cov.values, 21 * a.factor_cov.values, rtol=1e-12)
    np.testing.assert_allclose(b.specific_var.values, 21 * a.specific_var.values, rtol=1e-12)


def test_regime_proxy_user_series(market):
    proxy = market.factor_returns.sel(factor="size", drop=True)
    a = hx.risk_model(market, "seed", merge=False, regime_proxy=proxy)
    ref = kcov.regime_multiplier(proxy.values)
    np.testing.assert_allclose(a.regime_multiplier.values, ref, rtol=1e-12)


def test_constant_covariance_vols_converge():
    ds = hx.simulate_market(n_dates=1500, n_assets=150, n_industries=4, seed=7, regimes=False)
    ds = ds.assign(
        factor_returns=ds.truth_factor_returns, specific_returns=ds.truth_specific_returns
    )
    out = hx.risk_model(
        ds, None, merge=False, vol_halflife=np.inf, corr_halflife=np.inf, specific_halflife=np.inf
    )
    vol = np.sqrt(np.diagonal(out.factor_cov.values[-1]))
    true = np.sqrt(np.diagonal(ds.truth_factor_cov.values[-1]))
    np.testing.assert_array_less(np.abs(vol / true - 1), 0.10)
    # USE4 short-horizon preset: typical error within 10% too
    use4 = hx.risk_model(ds, "use4s", merge=False, structural=False, bayesian_q=None)
    v4 = np.sqrt(np.diagonal(use4.factor_cov.values[600:], axis1=1, axis2=2))
    assert np.median(np.abs(v4 / true - 1)) < 0.10


@pytest.mark.parametrize("preset", ["seed", "use4s"])
def test_specific_vols_track_planted(market, preset):
    out = hx.risk_model(market, preset, merge=False)
    sv = out.specific_var.isel(date=-1)
    tv = market.truth_specific_var.isel(date=-1)
    ok = np.isfinite(sv.values) & np.isfinite(tv.values)
    corr = np.corrcoef(np.sqrt(sv.values[ok]), np.sqrt(tv.values[ok]))[0, 1]
    assert corr >= 0.9


def _irregular(ds):
    return ds.chunk({"date": (50, 70, 140), "asset": (100, 37, 163)}).assign(
        specific_returns=ds.specific_returns.chunk({"date": -1, "asset": (100, 37, 163)}),
        industry=ds.industry.chunk({"asset": (120, 180)}),
    )


@pytest.mark.parametrize("preset", ["seed", "use4s"])
def test_dask_equals_numpy(market, preset):
    ref = hx.risk_model(market, preset, merge=False, eigen_stride=5)
    lazy = hx.risk_model(_irregular(market), preset, merge=False, eigen_stride=5)
    assert isinstance(lazy.specific_var.data, da.Array)
    assert isinstance(lazy.factor_cov.data, da.Array)
    got = lazy.compute()
    for name in ref.data_vars:
        np.testing.assert_allclose(got[name].values, ref[name].values, rtol=1e-10, equal_nan=True)


def test_graph_building_is_lazy(market):
    def boom(*args, **kwargs):
        raise AssertionError("computed while building the graph")

    dsk = _irregular(market)
    with dask.config.set(scheduler=boom):
        out = hx.risk_model(dsk, "use4s")
        out = hx.risk_model(out, "seed", merge=False)
    assert isinstance(out.specific_var.data, da.Array)


def test_validation_errors(market):
    with pytest.raises(ValidationError, match="preset"):
        hx.risk_model(market, "use5")
    with pytest.raises(ValidationError, match="vol_half_life"):
        hx.risk_model(market, "seed", vol_half_life=3)
    with pytest.raises(ValidationError, match="corr_halflife"):
        hx.risk_model(market, "seed", corr_halflife=-1)
    with pytest.raises(ValidationError, match="corr_lags"):
        hx.risk_model(market, "seed", corr_lags=1.5)
    with pytest.raises(ValidationError, match="loadings"):
        hx.risk_model(market.drop_vars("loadings"), "use4s")
    with pytest.raises(ValidationError, match="market_cap"):
        hx.risk_model(market.drop_vars("market_cap"), "use4s")
    with pytest.raises(ValidationError, match="factor_returns"):
        hx.risk_model(market.drop_vars("factor_returns"), "seed")
    bad = market.assign(factor_returns=market.factor_returns.rename(factor="f"))
    with pytest.raises(ValidationError, match="factor_returns"):
        hx.risk_model(bad, "seed")
    with pytest.raises(ValidationError, match="specific_returns"):
        hx.risk_model(market.chunk({"date": 100}), "seed")
    with pytest.raises(ValidationError, match="date"):
        hx.risk_model(market.isel(date=slice(None, None, -1)), "seed")
    proxy = market.factor_returns.isel(factor=0, date=slice(1, None), drop=True)
    with pytest.raises(ValidationError, match="regime_proxy"):
        hx.risk_model(market, "seed", regime_proxy=proxy)


BAD_OPTIONS = [
    {"eigen": "no"},  # truthy string, not a switch
    {"regime": 1},
    {"eigen_scale": -0.5},
    {"eigen_seed": "x"},
    {"specific_floor": float("nan")},
    {"specific_floor": -1e-12},
    {"horizon": float("inf")},
    {"bayesian_q": float("inf")},
    {"vol_halflife": float("nan")},
    {"vol_lags": True},  # bools are not counts
    {"min_periods": 5.5},
    {"specific_clip": 1.5},
    {"specific_shrink": "0.1"},
    {"regime_halflives": 5},
    {"regime_halflives": (21.0, -1.0)},
]


@pytest.mark.parametrize(
    "override", BAD_OPTIONS, ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r}"
)
def test_bad_option_values(override):
    name = next(iter(override))
    with pytest.raises(ValidationError, match=name) as info:
        resolve_options("seed", override)
    assert info.value.variable == name


def test_numpy_option_values_accepted():
    opts = resolve_options(
        "use4s",
        {
            "vol_halflife": np.float32(30.0),
            "vol_lags": np.int64(2),
            "eigen": np.bool_(False),
            "regime_halflives": pd.Series([10.0, 20.0]),
            "specific_floor": 0.0,  # no floor
        },
    )
    assert opts["vol_halflife"] == 30.0 and opts["vol_lags"] == 2 and not opts["eigen"]


def test_renamed_variables(market):
    ds = market.rename({"factor_returns": "fr", "specific_returns": "sr"})
    a = hx.risk_model(ds, "seed", factor_returns="fr", specific_returns="sr", merge=False)
    b = hx.risk_model(market, "seed", merge=False)
    xr.testing.assert_allclose(a, b)


def test_pipeline_portfolio_forecast_matches_realized():
    """simulate -> loadings -> regression -> risk: cap-weighted portfolio vol is unbiased."""
    ds = hx.simulate_market(n_dates=400, n_assets=400, n_industries=6, seed=11, regimes=False)
    ds = hx.factor_regression(hx.compute_loadings(ds))
    ds = hx.risk_model(ds, "seed")
    X = hx.exposures(ds, fill_exposures=0.0).values  # (date, asset, factor)
    cap = ds.market_cap.fillna(0.0).values
    w = cap / cap.sum(axis=1, keepdims=True)
    F = ds.factor_cov.values
    S = np.nan_to_num(ds.specific_var.values)
    b = np.einsum("tn,tnk->tk", w, np.nan_to_num(X))
    var = np.einsum("tk,tkl,tl->t", b, F, b) + np.einsum("tn,tn->t", w**2, S)
    r = np.nansum(w * ds.returns.values, axis=1)
    # forecast at t applies to t + 1
    z = r[101:] / np.sqrt(var[100:-1])
    assert 0.8 < np.std(z) < 1.2


def test_one_date_under_dask_equals_numpy():
    # Dask cannot shift a one-date array (the specific VRA pairs each date with the previous)
    mk = hx.simulate_market(n_dates=30, n_assets=40, n_industries=4, seed=5)
    reg = hx.factor_regression(hx.compute_loadings(mk, min_valid=5))
    one = reg[["factor_returns", "specific_returns", "loadings", "industry", "market_cap"]]
    one = one.isel(date=slice(0, 1)).load()
    ref = hx.risk_model(one, "use4s", merge=False)
    lazy = hx.risk_model(one.chunk(), "use4s", merge=False).compute()
    xr.testing.assert_allclose(lazy, ref, rtol=1e-12)


@pytest.mark.parametrize("preset", ["seed", "use4s"])
def test_numpy_specific_returns_with_dask_factor_returns_compute_the_same_twice(preset):
    # a NumPy buffer scaled in place inside a Dask graph was scaled again by every compute
    mk = hx.simulate_market(n_dates=80, n_assets=100, n_industries=5, seed=1)
    mk = hx.factor_regression(hx.compute_loadings(mk, min_valid=5))
    kw = dict(preset=preset, horizon=21, eigen=False, merge=False)
    ref = hx.risk_model(mk, **kw).specific_var.values
    out = hx.risk_model(mk.assign(factor_returns=mk.factor_returns.chunk()), **kw)
    for _ in range(2):
        np.testing.assert_allclose(out.specific_var.values, ref, rtol=1e-12)
