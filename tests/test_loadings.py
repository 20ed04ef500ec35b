"""Loadings: cross-sectional winsorize/standardize and descriptor -> style aggregation.

Every result is checked against a plain per-date, per-descriptor reference written
here with NumPy/pandas one row at a time.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hsr_xr as hx
from hsr_xr.kernels import standardize as K
from hsr_xr.loadings import ZeroStdWarning, style_mapping

TOL = 1e-10


# ----------------------------------------------------------------------------- reference


def ref_row(x, w, *, lower=0.001, upper=0.999, n_std=3.0, std="cap", min_valid=25):
    """Plain one-cross-section reference. Returns (z, info) with the clip bounds."""
    x = np.array(x, dtype=float)
    w = np.array(w, dtype=float)
    nan = np.full_like(x, np.nan)
    has = ~np.isnan(x)
    wok = has & np.isfinite(w) & (w >= 0)
    if wok.sum() < min_valid or w[wok].sum() <= 0:
        return nan, None
    lo = np.nanquantile(x[has], lower) if lower is not None else -np.inf
    hi = np.nanquantile(x[has], upper) if upper is not None else np.inf
    x = np.clip(x, lo, hi)
    scale = np.nanmax(np.abs(x))  # a std at most 1e-12 * scale counts as zero
    ww = w[wok] / w[wok].sum()

    def stats(v):
        xv = v[wok]
        m = float(np.sum(ww * xv))
        s = float(np.sqrt(np.sum(ww * (xv - m) ** 2))) if std == "cap" else float(np.std(xv))
        return m, s

    m1, s1 = stats(x)
    if n_std is not None:
        x = np.clip(x, m1 - n_std * s1, m1 + n_std * s1)
    m2, s2 = stats(x)
    if not s2 > K.ZERO_STD_RTOL * scale:
        return nan, "zero"
    info = dict(lo=lo, hi=hi, m1=m1, s1=s1, m2=m2, s2=s2)
    return (x - m2) / s2, info


def ref_stack(x, w, **kw):
    """Apply ref_row to every row of x (B..., N) with weights broadcast."""
    w = np.broadcast_to(w, x.shape)
    out = np.empty_like(x, dtype=float)
    for idx in np.ndindex(x.shape[:-1]):
        out[idx] = ref_row(x[idx], w[idx], **kw)[0]
    return out


def ref_loadings(ds, mapping, *, ortho=False, fill=False, **kw):
    """Per-date pandas reference of compute_loadings. Returns (loadings, cov_cap, cov_n)."""
    descs = list(ds.descriptor.values)
    styles = list(mapping)
    T, N = ds.sizes["date"], ds.sizes["asset"]
    L = np.full((T, N, len(styles)), np.nan)
    cov_cap = np.full((T, len(styles)), np.nan)
    cov_n = np.full((T, len(styles)), np.nan)
    codes = ds.industry.values if "industry" in ds else None
    for t in range(T):
        cap = ds.market_cap.values[t]
        z = pd.DataFrame(
            {d: ref_row(ds.descriptors.values[t, :, k], cap, **kw)[0] for k, d in enumerate(descs)}
        )
        cols = {}
        status = {}
        for s, members in mapping.items():
            wts = pd.Series(members)
            sub = z[list(wts.index)]
            num = (sub * wts).sum(axis=1, skipna=True)
            den = sub.notna().mul(wts).sum(axis=1)
            raw = (num / den).where(den > 0).to_numpy()
            cols[s], status[s] = ref_row(raw, cap, **kw)
        if ortho:
            y, xs = cols["nonlinear_size"], cols["size"]
            ok = ~np.isnan(y) & ~np.isnan(xs) & np.isfinite(cap)
            A = np.column_stack([np.ones(ok.sum()), xs[ok]])
            sw = np.sqrt(cap[ok])
            coef = np.linalg.lstsq(A * sw[:, None], y[ok] * sw, rcond=None)[0]
            resid = y - coef[0] - coef[1] * xs
            cols["nonlinear_size"], status["nonlinear_size"] = ref_row(resid, cap, **kw)
        listed = np.isfinite(cap) & (cap > 0)
        for j, s in enumerate(styles):
            v = cols[s]
            have = ~np.isnan(v) & listed
            cov_cap[t, j] = cap[have].sum() / cap[listed].sum()
            cov_n[t, j] = have.sum() / listed.sum()
            if fill and status[s] is not None and status[s] != "zero":
                frame = pd.DataFrame({"v": v, "c": cap, "g": codes})
                frame = frame[frame.v.notna() & frame.c.notna() & (frame.g >= 0)]
                means = frame.groupby("g").apply(
                    lambda f: np.sum(f.v * f.c) / np.sum(f.c), include_groups=False
                )
                for i in range(N):
                    if np.isnan(v[i]) and listed[i]:
                        v[i] = means.get(codes[i], 0.0)
            L[t, :, j] = v
    return L, cov_cap, cov_n


# ----------------------------------------------------------------------------- data


DESCS = [
    "beta",
    "value_bp",
    "value_sp",
    "size",
    "nonlinear_size",
    "momentum_rs",
    "momentum_short",
]


def make_panel(T=14, N=60, seed=0, with_industry=True):
    """Small panel with NaNs, ties, heavy tails, a zero-variance and an all-NaN date."""
    rng = np.random.default_rng(seed)
    D = len(DESCS)
    x = rng.standard_t(1.5, size=(T, N, D))  # heavy tails
    x[..., 1] = np.round(x[..., 1])  # ties
    x[rng.random(x.shape) < 0.15] = np.nan
    x[2, :, 2] = 1.7  # zero variance date for value_sp
    x[3] = np.nan  # all-NaN date
    x[4, 20:, :] = np.nan  # too few valid assets on date 4 (20 < 25)
    x[5, :, 5] = np.where(np.arange(N) % 2 == 0, 0.0, 1.0)  # two-point distribution
    cap = np.exp(rng.normal(20, 1.5, size=(T, N)))
    cap[rng.random(cap.shape) < 0.05] = np.nan  # value without a cap
    cap[:, -3:] = np.nan  # never listed
    ds = xr.Dataset(
        {
            "descriptors": (("date", "asset", "descriptor"), x),
            "market_cap": (("date", "asset"), cap),
        },
        coords={
            "date": pd.bdate_range("2020-01-01", periods=T),
            "asset": [f"A{i:03d}" for i in range(N)],
            "descriptor": DESCS,
        },
    )
    if with_industry:
        codes = rng.integers(-1, 4, size=N)
        codes[codes == 3] = 2  # industry 3 is empty -> fills with 0 only via -1
        ds["industry"] = ("asset", codes)
        ds["industry"].attrs["industry_names"] = ["a", "b", "c", "d"]
    return ds


SEED_MAP = {  # the seed rule on DESCS, in the seed's style order
    "beta": {"beta": 1.0},
    "momentum": {"momentum_rs": 1.0, "momentum_short": 1.0},
    "size": {"size": 1.0},
    "nonlinear_size": {"nonlinear_size": 1.0},
    "value": {"value_bp": 1.0, "value_sp": 1.0},
}


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroStdWarning)
        return fn(*a, **kw)


# ----------------------------------------------------------------------------- kernels


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        float,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9),
        elements=st.one_of(st.just(np.nan), st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0])),
    ),
    q=st.lists(st.floats(0, 1), min_size=1, max_size=3),
)
def test_row_quantiles_match_nanquantile(x, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        expected = np.moveaxis(np.nanquantile(x, q, axis=-1), 0, -1)
    got = K.row_quantiles(x, q)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9, equal_nan=True)


def test_quantile_clip_rows_and_nan():
    rng = np.random.default_rng(1)
    x = rng.standard_t(2, size=(3, 4, 50))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[1, 2] = np.nan
    got = K.quantile_clip(x, 0.05, 0.9)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        if np.isnan(row).all():
            assert np.isnan(got[idx]).all()
            continue
        lo, hi = np.nanquantile(row, [0.05, 0.9])
        np.testing.assert_allclose(got[idx], np.clip(row, lo, hi), rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(got), np.isnan(x))
    np.testing.assert_array_equal(
        K.quantile_clip(x, None, 0.9), np.clip(x, None, K.row_quantiles(x, [0.9]))
    )


def test_weighted_mean_std_reference():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 40))
    x[rng.random(x.shape) < 0.2] = np.nan
    w = rng.random((5, 40))
    w[0, :3] = -1.0  # excluded
    w[1, 3:6] = np.nan  # excluded
    for b in range(5):
        ok = ~np.isnan(x[b]) & np.isfinite(w[b]) & (w[b] >= 0)
        m = np.average(x[b][ok], weights=w[b][ok])
        s = np.sqrt(np.average((x[b][ok] - m) ** 2, weights=w[b][ok]))
        assert abs(K.weighted_mean(x, w)[b] - m) < TOL
        assert abs(K.weighted_std(x, w)[b] - s) < TOL


@pytest.mark.parametrize("std", ["cap", "equal"])
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"lower": 0.05, "upper": 0.9, "n_std": 2.0},
        {"lower": None, "upper": None, "n_std": None},
    ],
)
def test_kernel_matches_reference(std, opts):
    ds = make_panel()
    x = ds.descriptors.transpose("date", "descriptor", "asset").values
    w = ds.market_cap.values[:, None, :]
    kw = dict(std=std, min_valid=25, **opts)
    z, status = K.standardize(x, w, **kw)
    expected = ref_stack(x, w, **kw)
    np.testing.assert_allclose(z, expected, rtol=0, atol=TOL, equal_nan=True)
    assert np.array_equal(np.isnan(z), np.isnan(expected))
    assert status[3].tolist() == [K.STATUS_TOO_FEW] * len(DESCS)  # all-NaN date
    assert status[4].tolist() == [K.STATUS_TOO_FEW] * len(DESCS)  # 20 < min_valid
    assert status[2, 2] == K.STATUS_ZERO_STD
    assert (status == K.STATUS_OK).sum() == status.size - 2 * len(DESCS) - 1


@pytest.mark.parametrize("std", ["cap", "equal"])
def test_properties_on_valid_dates(std):
    """Cap-weighted mean 0, chosen std 1, and both clip bounds hold on every valid row."""
    ds = make_panel(seed=3)
    x = ds.descriptors.transpose("date", "descriptor", "asset").values
    caps = ds.market_cap.values
    z, status = K.standardize(x, caps[:, None, :], std=std)
    n_valid = 0
    for t, d in np.ndindex(status.shape):
        if status[t, d] != K.STATUS_OK:
            assert np.isnan(z[t, d]).all()
            continue
        n_valid += 1
        row, w = z[t, d], caps[t]
        ok = ~np.isnan(row) & np.isfinite(w)
        assert abs(np.average(row[ok], weights=w[ok])) < TOL
        s = np.sqrt(np.average(row[ok] ** 2, weights=w[ok])) if std == "cap" else np.std(row[ok])
        assert abs(s - 1) < TOL
        _, info = ref_row(x[t, d], w, std=std)
        back = row * info["s2"] + info["m2"]  # the clipped values
        lo = max(info["lo"], info["m1"] - 3 * info["s1"])
        hi = min(info["hi"], info["m1"] + 3 * info["s1"])
        scale = 1e-12 * max(1.0, abs(lo), abs(hi))
        assert np.nanmin(back) >= lo - scale and np.nanmax(back) <= hi + scale
    assert n_valid > 50


def test_combine_orthogonalize_coverage_fill_kernels():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(3, 4, 30))
    z[rng.random(z.shape) < 0.3] = np.nan
    m = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    got = K.combine(z, m)
    for b in range(3):
        frame = pd.DataFrame(z[b].T)
        num0 = frame[0].fillna(0) + 2 * frame[1].fillna(0)
        den0 = frame[0].notna() + 2 * frame[1].notna()
        np.testing.assert_allclose(got[b, 0], (num0 / den0).where(den0 > 0), atol=TOL)
        np.testing.assert_allclose(got[b, 1], frame[2], atol=TOL)
    y, x, w = rng.normal(size=(2, 30)), rng.normal(size=(2, 30)), rng.random((2, 30))
    y[0, 3] = np.nan
    r = K.orthogonalize(y, x, w)
    ok = ~np.isnan(y[0])
    assert abs(np.average(r[0][ok], weights=w[0][ok])) < TOL
    assert abs(np.average(r[0][ok] * x[0][ok], weights=w[0][ok])) < TOL
    assert np.isnan(r[0, 3])
    cs, ns = K.coverage(y, w)
    assert abs(cs[0] - 1 + w[0, 3] / w[0].sum()) < TOL and abs(ns[0] - 29 / 30) < TOL
    codes = np.array([0, 0, 1, -1, 2] * 6)
    y[1, [0, 3, 4]] = np.nan
    f = K.industry_fill(y, w, codes, 3)
    for b in range(2):
        for i in range(30):
            if not np.isnan(y[b, i]):
                assert f[b, i] == y[b, i]
                continue
            peers = (codes == codes[i]) & ~np.isnan(y[b])
            exp = np.average(y[b][peers], weights=w[b][peers]) if codes[i] >= 0 else 0.0
            assert abs(f[b, i] - exp) < TOL
    only = K.industry_fill(y, w, codes, 3, eligible=np.arange(30) != 0)
    assert np.isnan(only[1, 0]) and not np.isnan(only[1, 4])


# ----------------------------------------------------------------------------- standardize API


def test_standardize_dataarray_any_dim_order():
    ds = make_panel()
    da = ds.descriptors.transpose("descriptor", "asset", "date")
    z = quiet(hx.standardize, da, ds.market_cap, std="equal")
    assert z.dims == da.dims
    x = ds.descriptors.transpose("date", "descriptor", "asset").values
    expected = ref_stack(x, ds.market_cap.values[:, None, :], std="equal")
    np.testing.assert_allclose(
        z.transpose("date", "descriptor", "asset").values, expected, atol=TOL, equal_nan=True
    )


def test_standardize_one_warning_per_series():
    ds = make_panel()
    da = ds.descriptors.copy()
    da[:, :, 0] = da[:, :, 0].where(~da.date.isin(da.date[5:8]), 2.0)  # 3 zero-std dates
    with pytest.warns(ZeroStdWarning) as rec:
        hx.standardize(da, ds.market_cap)
    msgs = [str(r.message) for r in rec if r.category is ZeroStdWarning]
    assert len(msgs) == 2
    assert any("descriptor=beta" in m and "3 date" in m for m in msgs)
    assert any("descriptor=value_sp" in m and "1 date" in m for m in msgs)


def test_standardize_bad_input():
    ds = make_panel()
    with pytest.raises(hx.ValidationError, match="weights"):
        hx.standardize(ds.descriptors, ds.market_cap.isel(asset=slice(1, None)))
    shifted = ds.market_cap.assign_coords(asset=np.roll(ds.asset.values, 1))
    with pytest.raises(hx.ValidationError, match="weights"):
        hx.standardize(ds.descriptors, shifted)
    with pytest.raises(hx.ValidationError, match="weights"):
        hx.standardize(ds.descriptors, ds.market_cap.rename(asset="ticker"))
    with pytest.raises(hx.ValidationError, match="std"):
        hx.standardize(ds.descriptors, ds.market_cap, std="robust")
    with pytest.raises(hx.ValidationError, match="asset"):
        hx.standardize(ds.descriptors.chunk(asset=20), ds.market_cap)


# ----------------------------------------------------------------------------- compute_loadings


@pytest.mark.parametrize("std", ["cap", "equal"])
def test_compute_loadings_matches_reference(std):
    ds = make_panel().drop_vars("industry")
    out = quiet(hx.compute_loadings, ds, std=std, coverage=True)
    assert out.loadings.dims == ("date", "asset", "style")
    assert list(out.style.values) == list(SEED_MAP)
    L, cc, cn = ref_loadings(ds, SEED_MAP, std=std)
    np.testing.assert_allclose(out.loadings.values, L, atol=TOL, equal_nan=True)
    np.testing.assert_allclose(out.loadings_coverage_cap.values, cc, atol=TOL, equal_nan=True)
    np.testing.assert_allclose(out.loadings_coverage_assets.values, cn, atol=TOL, equal_nan=True)
    assert np.isnan(out.loadings.values[3]).all() and np.isnan(out.loadings.values[4]).all()
    assert "descriptors" in out and "market_cap" in out


def test_explicit_weighted_mapping_and_options():
    ds = make_panel()
    mapping = {
        "value": {"value_bp": 2.0, "value_sp": 1.0},
        "momentum": ["momentum_rs"],
        "size": ["size"],
        "nonlinear_size": ["nonlinear_size"],
    }
    out = quiet(
        hx.compute_loadings,
        ds,
        styles=mapping,
        orthogonalize=True,
        fill_missing=True,
        coverage=True,
        lower=0.01,
        upper=0.98,
        min_valid=20,
        merge=False,
    )
    resolved = style_mapping(DESCS, mapping)
    L, cc, cn = ref_loadings(
        ds, resolved, ortho=True, fill=True, lower=0.01, upper=0.98, min_valid=20
    )
    np.testing.assert_allclose(out.loadings.values, L, atol=TOL, equal_nan=True)
    np.testing.assert_allclose(out.loadings_coverage_cap.values, cc, atol=TOL, equal_nan=True)
    np.testing.assert_allclose(out.loadings_coverage_assets.values, cn, atol=TOL, equal_nan=True)
    assert set(out.data_vars) == {"loadings", "loadings_coverage_cap", "loadings_coverage_assets"}
    dated = ds.assign(industry=ds.industry.expand_dims(date=ds.date).transpose("date", "asset"))
    dated.industry.attrs = ds.industry.attrs
    same = quiet(
        hx.compute_loadings,
        dated,
        styles=mapping,
        orthogonalize=True,
        fill_missing=True,
        lower=0.01,
        upper=0.98,
        min_valid=20,
    )
    np.testing.assert_allclose(same.loadings.values, L, atol=TOL, equal_nan=True)
    # orthogonalized nonlinear size is cap-weighted uncorrelated with size on each date
    caps = ds.market_cap.values
    for t in range(ds.sizes["date"]):
        nl, sz = out.loadings.values[t, :, 3], out.loadings.values[t, :, 2]
        ok = ~np.isnan(nl) & ~np.isnan(sz) & np.isfinite(caps[t])
        if ok.sum() > 25:
            c = np.average(nl[ok] * sz[ok], weights=caps[t][ok])
            c -= np.average(nl[ok], weights=caps[t][ok]) * np.average(sz[ok], weights=caps[t][ok])
            assert abs(c) < 0.05  # residual is re-winsorized, so only approximately zero


def test_default_style_mapping_seed_rule():
    names = [
        "beta",
        "size",
        "size_alt",
        "nonlinear_size",
        "value_bp",
        "valueish",
        "earnings_yield_ttm",
    ]
    got = style_mapping(names)
    assert got == {
        "beta": {"beta": 1.0},
        "size": {"size": 1.0},
        "nonlinear_size": {"nonlinear_size": 1.0},
        "earnings_yield": {"earnings_yield_ttm": 1.0},
        "value": {"value_bp": 1.0},
    }
    with pytest.raises(hx.ValidationError, match="styles"):
        style_mapping(names, ["leverage"])
    with pytest.raises(hx.ValidationError, match="styles"):
        style_mapping(names, {"value": ["value_xx"]})


def test_zero_std_warns_once_per_descriptor():
    ds = make_panel()
    with pytest.warns(ZeroStdWarning) as rec:
        hx.compute_loadings(ds)
    msgs = [str(r.message) for r in rec if r.category is ZeroStdWarning]
    assert msgs == [
        "descriptor 'value_sp': zero cross-sectional std on 1 date(s) "
        "(counted per Dask block when chunked); its values are NaN there"
    ]


def test_dask_irregular_chunks_equal_numpy_and_lazy():
    ds = make_panel()
    kw = dict(coverage=True, orthogonalize=True, fill_missing=True, std="equal")
    expected = quiet(hx.compute_loadings, ds, **kw)
    chunked = ds.chunk({"date": (3, 1, 6, 4)})

    def boom(*args, **kwargs):
        raise AssertionError("graph building computed something")

    with dask.config.set(scheduler=boom):
        lazy = hx.compute_loadings(chunked, **kw)
        lazy_z = hx.standardize(chunked.descriptors, chunked.market_cap)
    assert isinstance(lazy.loadings.data, dsa.Array)
    assert lazy.loadings.chunksizes["date"] == (3, 1, 6, 4)
    got = quiet(lazy.compute)
    xr.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(
        quiet(lazy_z.compute).values,
        quiet(hx.standardize, ds.descriptors, ds.market_cap).values,
        atol=TOL,
        equal_nan=True,
    )


def test_compute_loadings_refuses_merging_other_styles_onto_a_style_dim():
    ds = hx.simulate_market(n_dates=23, n_assets=200, seed=2)  # truth_exposures(.., style)
    styles = {"value": {"value_bp": 2, "value_sp": 1}}
    with pytest.raises(hx.ValidationError, match="style"):
        hx.compute_loadings(ds, styles=styles)
    with pytest.raises(hx.ValidationError, match="drop_dims"):  # was a raw AlignmentError
        hx.compute_loadings(ds.drop_vars("style"), styles=styles)
    out = hx.compute_loadings(ds.drop_dims("style"), styles=styles)
    assert list(out.style.values) == ["value"]


def test_compute_loadings_bad_input():
    ds = make_panel()
    with pytest.raises(hx.ValidationError, match="market_cap"):
        hx.compute_loadings(ds.drop_vars("market_cap"))
    with pytest.raises(hx.ValidationError, match="descriptors"):
        hx.compute_loadings(ds.assign(descriptors=ds.descriptors.isel(descriptor=0)))
    neg = ds.market_cap.copy()
    neg[0, 0] = -5.0
    with pytest.raises(hx.ValidationError, match="market_cap"):
        hx.compute_loadings(ds.assign(market_cap=neg))
    with pytest.raises(hx.ValidationError, match="mcap"):
        hx.compute_loadings(ds, market_cap="mcap")
    with pytest.raises(hx.ValidationError, match="industry"):
        hx.compute_loadings(ds.drop_vars("industry"), fill_missing=True)
    with pytest.raises(hx.ValidationError, match="descriptors"):
        hx.compute_loadings(ds.chunk(descriptor=2))
    with pytest.raises(hx.ValidationError, match="styles"):
        hx.compute_loadings(ds, styles={"value": ["value_bp"]}, orthogonalize=True)
    with pytest.raises(hx.ValidationError, match="date"):
        hx.compute_loadings(ds.isel(date=[1, 0, 2]))
    with pytest.raises(hx.ValidationError, match="style"):
        hx.compute_loadings(ds.assign_coords(style=["a", "b"]), styles=["value"])


def test_negative_caps_lazy_on_dask():
    ds = make_panel().drop_vars("industry")
    neg = ds.market_cap.copy()
    neg[5, 0] = -1.0
    lazy = hx.compute_loadings(ds.assign(market_cap=neg).chunk(date=4))  # builds fine
    with pytest.raises(hx.ValidationError, match="market_cap"):
        quiet(lazy.compute)


def test_on_simulated_market_tracks_truth():
    ds = hx.simulate_market(n_dates=20, n_assets=400, n_industries=8, seed=1)
    out = quiet(hx.compute_loadings, ds, coverage=True)
    assert list(out.style.values) == list(ds.style.values)
    corr = xr.corr(out.loadings, ds.truth_exposures, dim="asset").mean("date")
    assert float(corr.min()) > 0.7, corr.to_pandas()
    assert float(out.loadings_coverage_cap.min()) > 0.8
    ortho = quiet(hx.compute_loadings, ds, orthogonalize=True).loadings
    nl, sz = ortho.sel(style="nonlinear_size"), ortho.sel(style="size")
    assert (
        float(xr.corr(nl, ds.truth_exposures.sel(style="nonlinear_size"), dim="asset").mean()) > 0.5
    )
    w = ds.market_cap.where(nl.notnull() & sz.notnull())
    cov = (w * nl * sz).sum("asset") / w.sum("asset")
    assert float(abs(cov).max()) < 0.05  # cap-weighted, re-winsorized: nearly orthogonal
