"""Tests for hsr_xr.ff5 and hsr_xr.kernels.sorts against an independent pandas groupby."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hsr_xr as hx
from hsr_xr.errors import ValidationError
from hsr_xr.ff5 import formation_index
from hsr_xr.kernels import jit
from hsr_xr.kernels.sorts import breakpoints, bucket_codes, double_sort

SORTS = ["book_to_price", "profitability", "investment"]
PORTS = ["SL", "SM", "SH", "BL", "BM", "BH"]


def make_panel(T=60, N=120, seed=0, start="2019-05-01"):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=T)
    shape = (T, N)
    ret = rng.normal(0.0005, 0.02, shape)
    cap = np.exp(rng.normal(6, 1.2, shape))
    chars = {s: rng.normal(size=shape) for s in SORTS}
    ret[rng.random(shape) < 0.05] = np.nan
    cap[rng.random(shape) < 0.03] = np.nan
    for s in SORTS:
        chars[s][rng.random(shape) < 0.08] = np.nan
    if T > 11:
        ret[7] = np.nan  # an all-NaN return date
        cap[11] = np.nan  # an all-NaN cap date
        # ties at an order statistic: a repeated value in one cross-section
        chars["profitability"][3, :20] = 0.25
    return xr.Dataset(
        {
            "returns": (("date", "asset"), ret),
            "market_cap": (("date", "asset"), cap),
            **{s: (("date", "asset"), v) for s, v in chars.items()},
        },
        coords={"date": dates, "asset": np.array([f"A{i:03d}" for i in range(N)], dtype=object)},
    )


# ---------------------------------------------------------------- pandas reference
def pandas_reference(ret, w, size, chars, held, sortable, bpu):
    """Independent pandas groupby implementation of the 2x3 sorts.

    All inputs are wide DataFrames (date x asset); ``chars`` maps sort -> frame.
    Returns (portfolio returns, counts) as DataFrames indexed by date with
    (sort, portfolio) columns, and MKT as a Series.
    """
    long = pd.DataFrame(
        {
            "ret": ret.stack(future_stack=True),
            "w": w.stack(future_stack=True),
            "sz": size.stack(future_stack=True),
            "held": held.stack(future_stack=True),
            "sortable": sortable.stack(future_stack=True),
            "bpu": bpu.stack(future_stack=True),
        }
    )
    long.index.names = ["date", "asset"]
    ok_hold = long.held & long.ret.notna() & long.w.notna() & (long.w > 0)
    ok_sort = long.sortable & long.sz.notna() & (long.sz > 0)
    dates = ret.index

    hold = long[ok_hold]
    mkt = (hold.w * hold.ret).groupby(level="date").sum() / hold.w.groupby(level="date").sum()
    mkt = mkt.reindex(dates)

    bp_rows = long[ok_sort & long.bpu]
    med = bp_rows["sz"].groupby(level="date").quantile(0.5).reindex(dates)
    small = long["sz"] <= med.reindex(long.index.get_level_values("date")).to_numpy()

    rets, counts = {}, {}
    for s in SORTS:
        x = chars[s].stack(future_stack=True)
        x.index.names = ["date", "asset"]
        rows = x[(ok_sort & long.bpu & x.notna()).to_numpy()]
        q = rows.groupby(level="date").quantile([0.3, 0.7]).unstack().reindex(dates)
        q30 = q[0.3].reindex(long.index.get_level_values("date")).to_numpy()
        q70 = q[0.7].reindex(long.index.get_level_values("date")).to_numpy()
        grp = np.where(x.to_numpy() <= q30, "L", np.where(x.to_numpy() > q70, "H", "M"))
        name = np.where(small, "S", "B").astype(object) + grp.astype(object)
        member = (
            ok_hold
            & ok_sort
            & x.notna()
            & ~np.isnan(q30)
            & ~np.isnan(med.reindex(long.index.get_level_values("date")).to_numpy())
        )
        frame = pd.DataFrame(
            {"wr": long.w * long.ret, "w": long.w, "port": name}, index=long.index
        )[member.to_numpy()]
        frame = frame.reset_index()
        g = frame.groupby(["date", "port"])
        r = (g.wr.sum() / g.w.sum()).unstack().reindex(index=dates, columns=PORTS)
        c = g.size().unstack().reindex(index=dates, columns=PORTS).fillna(0).astype(int)
        rets[s], counts[s] = r, c
    return pd.concat(rets, axis=1), pd.concat(counts, axis=1), mkt


def frames(ds, weight_lag=1, universe=None, bpu=None):
    df = {v: ds[v].to_pandas() for v in ["returns", "market_cap", *SORTS]}
    cap = df["market_cap"].shift(-1) if weight_lag == 0 else df["market_cap"]
    ones = pd.DataFrame(True, index=cap.index, columns=cap.columns)
    held = universe.to_pandas() if universe is not None else ones
    bp = bpu.to_pandas() if bpu is not None else ones
    return df, cap, held, bp


def check_against_reference(ff, ref_port, ref_count, ref_mkt):
    got = ff.portfolio_returns.values
    want = np.stack([ref_port[s].to_numpy() for s in SORTS], axis=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    cnt = np.stack([ref_count[s].to_numpy() for s in SORTS], axis=1)
    np.testing.assert_array_equal(ff.portfolio_count.values, cnt)
    np.testing.assert_allclose(ff.MKT.values, ref_mkt.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(ff.MKT.values), ref_mkt.isna().to_numpy())
    # factor definitions from the reference portfolios
    p = {s: ref_port[s] for s in SORTS}
    smb = np.mean(
        [
            p[s][["SL", "SM", "SH"]].mean(axis=1, skipna=False)
            - p[s][["BL", "BM", "BH"]].mean(axis=1, skipna=False)
            for s in SORTS
        ],
        axis=0,
    )
    hml = (p["book_to_price"].SH + p["book_to_price"].BH) / 2 - (
        p["book_to_price"].SL + p["book_to_price"].BL
    ) / 2
    rmw = (p["profitability"].SH + p["profitability"].BH) / 2 - (
        p["profitability"].SL + p["profitability"].BL
    ) / 2
    cma = (p["investment"].SL + p["investment"].BL) / 2 - (
        p["investment"].SH + p["investment"].BH
    ) / 2
    for name, want_f in [("SMB", smb), ("HML", hml), ("RMW", rmw), ("CMA", cma)]:
        np.testing.assert_allclose(ff[name].values, np.asarray(want_f), rtol=0, atol=1e-12)


@pytest.mark.parametrize("weight_lag", [1, 0])
def test_period_matches_pandas_reference(weight_lag, kernel_passes):
    ds = make_panel()
    rng = np.random.default_rng(5)
    universe = xr.DataArray(rng.random((60, 120)) > 0.1, dims=("date", "asset"), coords=ds.coords)
    bpu = xr.DataArray(rng.random(120) > 0.4, dims="asset", coords={"asset": ds.asset})
    bpu_full = bpu.broadcast_like(ds.returns)
    ff = hx.ff5_factors(ds, weight_lag=weight_lag, universe=universe, breakpoint_universe=bpu)
    df, cap, held, bp = frames(ds, weight_lag, universe, bpu_full)
    ref = pandas_reference(
        df["returns"], cap, cap, {s: df[s] for s in SORTS}, held, held, bp & held
    )
    check_against_reference(ff, *ref)
    assert (ff.portfolio_count.sum(("sort", "portfolio")) > 0).sum() > 40
    if weight_lag == 0:
        assert np.isnan(ff.MKT.values[-1])


def test_default_masks_match_reference_and_no_mask_is_all():
    ds = make_panel(seed=3)
    ff = hx.ff5_factors(ds)
    df, cap, held, bp = frames(ds)
    ref = pandas_reference(df["returns"], cap, cap, {s: df[s] for s in SORTS}, held, held, bp)
    check_against_reference(ff, *ref)
    # date ranges on threads give the same numbers
    xr.testing.assert_identical(hx.ff5_factors(ds, threads=3), hx.ff5_factors(ds, threads=1))


def test_weight_lag_zero_is_lag_one_on_next_cap():
    ds = make_panel(seed=1)
    a = hx.ff5_factors(ds, weight_lag=0)
    b = hx.ff5_factors(ds.assign(market_cap=ds.market_cap.shift(date=-1)), weight_lag=1)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def pandas_median_designs(df, cap, held, bp):
    """Independent pandas groupby reference of the 2x2 and 2x2x2x2 designs.

    Every breakpoint is a median over the breakpoint rows (sortable, positive cap,
    in ``bp``, characteristic present). Returns ({sort: 2x2 returns}, {sort: 2x2
    counts}, 2x2x2x2 returns, 2x2x2x2 counts), DataFrames by date.
    """
    dates = df["returns"].index

    def long(frame):
        out = frame.stack(future_stack=True)
        out.index.names = ["date", "asset"]
        return out

    ret, w, hold, bpu = long(df["returns"]), long(cap), long(held), long(bp)
    chars = {c: long(df[c]) for c in SORTS}
    ok_hold = hold & ret.notna() & w.notna() & (w > 0)
    ok_sort = hold & w.notna() & (w > 0)
    date_of = ret.index.get_level_values("date")

    def median(x, rows):
        return x[rows.to_numpy()].groupby(level="date").quantile(0.5).reindex(dates)

    med_size = median(w, ok_sort & bpu).reindex(date_of).to_numpy()
    small = np.where(w.to_numpy() <= med_size, "S", "B").astype(object)
    letter = {}
    for c, (lo, hi) in zip(SORTS, [("L", "H"), ("W", "R"), ("C", "A")], strict=True):
        x = chars[c]
        q = median(x, ok_sort & bpu & x.notna()).reindex(date_of).to_numpy()
        letter[c] = (np.where(x.to_numpy() <= q, lo, hi).astype(object), ~np.isnan(q) & x.notna())
    base = ok_hold & ok_sort & ~np.isnan(med_size)
    wr = w * ret

    def buckets(name, member):
        frame = pd.DataFrame({"wr": wr, "w": w, "port": name}, index=ret.index)[member.to_numpy()]
        g = frame.reset_index().groupby(["date", "port"])
        return (g.wr.sum() / g.w.sum()).unstack(), g.size().unstack()

    two, two_n = {}, {}
    for c, low in zip(SORTS, "LWC", strict=True):
        lab, ok = letter[c]
        lab = np.where(lab == low, "L", "H").astype(object)
        r, n = buckets(small + lab, base & ok)
        cols = ["SL", "SH", "BL", "BH"]
        two[c] = r.reindex(index=dates, columns=cols)
        two_n[c] = n.reindex(index=dates, columns=cols).fillna(0).astype(int)
    all_ok = base.copy()
    name = small.copy()
    for c in SORTS:
        all_ok &= letter[c][1]
        name = name + letter[c][0]
    r, n = buckets(name, all_ok)
    cols = list(hx.ff5.portfolio_names("2x2x2x2"))
    return (
        two,
        two_n,
        r.reindex(index=dates, columns=cols),
        n.reindex(index=dates, columns=cols).fillna(0).astype(int),
    )


def test_2x2_and_2x2x2x2_designs_match_pandas_reference(kernel_passes):
    ds = make_panel(T=40, N=150, seed=11)
    rng = np.random.default_rng(11)
    universe = xr.DataArray(rng.random((40, 150)) > 0.1, dims=("date", "asset"), coords=ds.coords)
    bpu = xr.DataArray(rng.random(150) > 0.3, dims="asset", coords={"asset": ds.asset})
    df, cap, held, bp = frames(ds, 1, universe, bpu.broadcast_like(ds.returns))
    two, two_n, joint, joint_n = pandas_median_designs(df, cap, held, bp)
    kw = dict(universe=universe, breakpoint_universe=bpu)

    ff2 = hx.ff5_factors(ds, design="2x2", **kw)
    assert list(ff2.portfolio.values) == ["SL", "SH", "BL", "BH"]
    want = np.stack([two[c].to_numpy() for c in SORTS], axis=1)
    np.testing.assert_array_equal(np.isnan(ff2.portfolio_returns.values), np.isnan(want))
    np.testing.assert_allclose(ff2.portfolio_returns.values, want, rtol=0, atol=1e-12)
    want_n = np.stack([two_n[c].to_numpy() for c in SORTS], axis=1)
    np.testing.assert_array_equal(ff2.portfolio_count.values, want_n)
    smb = np.mean(
        [(two[c].SL + two[c].SH) / 2 - (two[c].BL + two[c].BH) / 2 for c in SORTS], axis=0
    )
    hl = {c: (two[c].SH + two[c].BH) / 2 - (two[c].SL + two[c].BL) / 2 for c in SORTS}
    for f, want_f in [
        ("SMB", smb),
        ("HML", hl["book_to_price"]),
        ("RMW", hl["profitability"]),
        ("CMA", -hl["investment"]),
    ]:
        np.testing.assert_allclose(ff2[f].values, np.asarray(want_f), rtol=0, atol=1e-12)

    ff4 = hx.ff5_factors(ds, design="2x2x2x2", **kw)
    assert ff4.portfolio_returns.dims == ("date", "portfolio") and ff4.sizes["portfolio"] == 16
    assert ff4.portfolio.values[0] == "SLWC" and ff4.portfolio.values[-1] == "BHRA"
    got = ff4.portfolio_returns.values
    np.testing.assert_array_equal(np.isnan(got), joint.isna().to_numpy())
    np.testing.assert_allclose(got, joint.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ff4.portfolio_count.values, joint_n.to_numpy())
    assert (ff4.portfolio_count.values > 0).mean() > 0.9  # the reference is not vacuous
    names = list(joint.columns)
    for f, pos, long, short in [
        ("SMB", 0, "S", "B"),
        ("HML", 1, "H", "L"),
        ("RMW", 2, "R", "W"),
        ("CMA", 3, "C", "A"),
    ]:
        lo = joint[[q for q in names if q[pos] == long]].mean(axis=1, skipna=False)
        sh = joint[[q for q in names if q[pos] == short]].mean(axis=1, skipna=False)
        np.testing.assert_allclose(ff4[f].values, (lo - sh).to_numpy(), rtol=0, atol=1e-12)
    xr.testing.assert_allclose(ff4.MKT, hx.ff5_factors(ds, **kw).MKT, rtol=0, atol=1e-15)
    # an asset missing one characteristic is in no 2x2x2x2 bucket, but in the 2x2 sorts
    assert ff4.portfolio_count.sum("portfolio").max() < ff2.portfolio_count.sum("portfolio").max()

    with pytest.raises(hx.ValidationError, match="design"):
        hx.ff5_factors(ds, design="3x3")
    # merging a design into a Dataset that holds another design's portfolios is refused
    merged = hx.ff5_factors(ds, merge=True)
    for other in ("2x2", "2x2x2x2"):
        with pytest.raises(hx.ValidationError, match="portfolio"):
            hx.ff5_factors(merged, design=other, merge=True)
    again = hx.ff5_factors(merged, merge=True)  # the same design replaces its outputs
    xr.testing.assert_identical(again.portfolio_returns, merged.portfolio_returns)


def test_joint_design_on_dask_equals_numpy():
    ds = make_panel(T=50, N=80, seed=12)
    want = hx.ff5_factors(ds, design="2x2x2x2", rebalance="annual")
    got = hx.ff5_factors(ds.chunk(date=(9, 40, 1)), design="2x2x2x2", rebalance="annual")
    assert isinstance(got.portfolio_returns.data, da.Array)
    xr.testing.assert_allclose(got.compute(), want, rtol=0, atol=1e-15)


def formation_reference(dates):
    """Per-date loop: index of the first July date of each date's holding year."""
    out = []
    for d in dates:
        year = d.year if d.month >= 7 else d.year - 1
        cand = [i for i, e in enumerate(dates) if e.year == year and e.month == 7]
        out.append(cand[0] if cand else -1)
    return np.array(out)


def test_formation_index_against_loop():
    for start, periods, freq in [
        ("2018-03-01", 700, "B"),
        ("2019-07-01", 300, "B"),
        ("2015-01-31", 60, "ME"),
        ("2016-08-15", 60, "W-FRI"),
    ]:
        dates = pd.date_range(start, periods=periods, freq=freq)
        np.testing.assert_array_equal(formation_index(dates), formation_reference(dates))


@pytest.mark.parametrize("weight_lag,masks", [(1, False), (0, False), (1, True)])
def test_annual_matches_reference(weight_lag, masks, kernel_passes):
    ds = make_panel(T=320, N=80, seed=2, start="2019-03-01")
    kw, universe, bpu = {}, None, None
    if masks:  # a (date, asset) universe and an (asset,) breakpoint universe
        rng = np.random.default_rng(3)
        universe = xr.DataArray(
            rng.random((320, 80)) > 0.1, dims=("date", "asset"), coords=ds.coords
        )
        bpu = xr.DataArray(rng.random(80) > 0.4, dims="asset", coords={"asset": ds.asset})
        kw = dict(universe=universe, breakpoint_universe=bpu)
        bpu = bpu.broadcast_like(ds.returns)
    ff = hx.ff5_factors(ds, rebalance="annual", weight_lag=weight_lag, **kw)
    df, cap, held, bp = frames(ds, weight_lag, universe, bpu)
    form = formation_reference(ds.indexes["date"])
    keep = form >= 0

    def at_form(frame, fill):
        vals = frame.to_numpy()[np.maximum(form, 0)]
        vals = np.where(keep[:, None], vals, fill)
        return pd.DataFrame(vals, index=frame.index, columns=frame.columns)

    ref = pandas_reference(
        df["returns"],
        cap,
        at_form(cap, np.nan),
        {s: at_form(df[s], np.nan) for s in SORTS},
        held,
        at_form(held, False),
        at_form(bp, False),
    )
    check_against_reference(ff, *ref)
    first = int(np.flatnonzero(keep)[0])
    assert np.isnan(ff.HML.values[:first]).all()
    assert (ff.portfolio_count.values[:first] == 0).all()
    # holdings are fixed within a holding year (counts change only through returns/caps)
    assert np.isfinite(ff.HML.values[first:]).mean() > 0.9


def test_empty_bucket_gives_nan_and_zero_count(kernel_passes):
    ds = make_panel(T=4, N=10, seed=4)
    ds["returns"][:, :] = 0.01
    ds["market_cap"][:, :] = np.arange(1.0, 11.0)
    # date 0: only two assets have book_to_price -> some buckets empty
    bp = ds["book_to_price"].values
    bp[0, 2:] = np.nan
    # date 1: no asset has a characteristic at all
    ds["investment"][1, :] = np.nan
    # date 2: no returns; date 3: no caps
    ds["returns"][2, :] = np.nan
    ds["market_cap"][3, :] = np.nan
    ff = hx.ff5_factors(ds)
    cnt = ff.portfolio_count.sel(sort="book_to_price").isel(date=0).values
    assert cnt.sum() == 2 and (cnt == 0).any()
    ret = ff.portfolio_returns.sel(sort="book_to_price").isel(date=0).values
    np.testing.assert_array_equal(np.isnan(ret), cnt == 0)
    assert np.isnan(ff.HML.values[0]) and np.isnan(ff.SMB.values[0])
    assert (ff.portfolio_count.sel(sort="investment").isel(date=1) == 0).all()
    assert np.isnan(ff.CMA.values[1]) and np.isfinite(ff.HML.values[1])
    assert (ff.portfolio_count.isel(date=[2, 3]) == 0).all()
    assert np.isnan(ff.MKT.values[2:]).all()
    np.testing.assert_allclose(ff.MKT.values[:2], 0.01)


def test_breakpoints_kernel_matches_numpy_quantile():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3, 41))
    mask = rng.random(x.shape) > 0.3
    x[rng.random(x.shape) < 0.1] = np.nan
    mask[0, 0] = False  # empty row -> NaN
    got = breakpoints(x, mask, (0.3, 0.5, 0.7))
    for idx in np.ndindex(x.shape[:-1]):
        v = x[idx][mask[idx] & ~np.isnan(x[idx])]
        want = np.quantile(v, [0.3, 0.5, 0.7]) if v.size else np.full(3, np.nan)
        np.testing.assert_allclose(got[idx], want, rtol=0, atol=1e-14)
    codes = bucket_codes(x, got[..., [0, 2]], np.ones(x.shape, bool))
    assert (codes[np.isnan(x)] == -1).all() and (codes[0, 0] == -1).all()
    assert set(np.unique(codes)) <= {-1, 0, 1, 2}


@pytest.mark.parametrize("design", ["2x3", "2x2x2x2"])
def test_dask_irregular_chunks_equal_numpy_and_lazy(design):
    ds = make_panel(T=90, N=60, seed=6)
    rng = np.random.default_rng(8)
    masks = {  # an (asset,) universe and a (date, asset) breakpoint universe
        "universe": xr.DataArray(rng.random(60) > 0.1, dims="asset", coords={"asset": ds.asset}),
        "breakpoint_universe": xr.DataArray(
            rng.random((90, 60)) > 0.3, dims=("date", "asset"), coords=ds.coords
        ),
    }
    want = hx.ff5_factors(ds, weight_lag=0, design=design)
    want_a = hx.ff5_factors(ds, rebalance="annual", design=design, **masks)
    chunked = ds.chunk(date=(7, 30, 1, 52))
    masks["breakpoint_universe"] = masks["breakpoint_universe"].chunk(date=(40, 50))

    def boom(*args, **kwargs):
        raise AssertionError("graph building computed something")

    with dask.config.set(scheduler=boom):
        lazy = hx.ff5_factors(chunked, weight_lag=0, design=design)
        lazy_a = hx.ff5_factors(chunked, rebalance="annual", design=design, **masks)
    assert isinstance(lazy.HML.data, da.Array)
    assert isinstance(lazy.portfolio_returns.data, da.Array)
    # the same numbers to the last bit, whatever the date chunks
    xr.testing.assert_identical(lazy.compute(), want)
    xr.testing.assert_identical(lazy_a.compute(), want_a)
    assert np.isfinite(want_a.portfolio_returns.values).mean() > 0.3  # annual sorts happened


def test_risk_free_and_merge():
    ds = make_panel(T=20, N=40, seed=7)
    rf = xr.DataArray(np.full(20, 0.0001), dims="date", coords={"date": ds.date})
    base = hx.ff5_factors(ds)
    ex = hx.ff5_factors(ds.assign(rf=rf), risk_free="rf")
    np.testing.assert_allclose(ex.MKT.values, base.MKT.values - 0.0001)
    xr.testing.assert_identical(ex.HML, base.HML)
    np.testing.assert_allclose(hx.ff5_factors(ds, risk_free=0.0001).MKT, ex.MKT)
    merged = hx.ff5_factors(ds, merge=True)
    assert {"returns", "MKT", "portfolio_returns"} <= set(merged.data_vars)


def test_renamed_variables():
    ds = make_panel(T=15, N=30, seed=8)
    renamed = ds.rename(returns="r", market_cap="mcap", book_to_price="bm")
    a = hx.ff5_factors(renamed, returns="r", market_cap="mcap", book_to_price="bm")
    xr.testing.assert_identical(a, hx.ff5_factors(ds))


def test_bad_input_raises_validation_error():
    ds = make_panel(T=15, N=30, seed=9)
    with pytest.raises(ValidationError, match="investment"):
        hx.ff5_factors(ds.drop_vars("investment"))
    with pytest.raises(ValidationError, match="returns"):
        hx.ff5_factors(ds.assign(returns=ds.returns.rename(asset="ticker")))
    with pytest.raises(ValidationError, match="weight_lag"):
        hx.ff5_factors(ds, weight_lag=2)
    with pytest.raises(ValidationError, match="rebalance"):
        hx.ff5_factors(ds, rebalance="monthly")
    with pytest.raises(ValidationError, match="asset"):
        hx.ff5_factors(ds.chunk(asset=10))
    with pytest.raises(ValidationError, match="universe"):
        hx.ff5_factors(ds, universe=xr.ones_like(ds.returns))  # float, not bool
    with pytest.raises(ValidationError, match="universe"):
        hx.ff5_factors(ds, universe="nyse")
    shifted = (ds.returns.notnull()).assign_coords(date=ds.date.values + np.timedelta64(1, "D"))
    with pytest.raises(ValidationError, match="date"):
        hx.ff5_factors(ds, breakpoint_universe=shifted)
    with pytest.raises(ValidationError, match="risk_free"):
        hx.ff5_factors(ds, risk_free=ds.returns)
    with pytest.raises(ValidationError, match="market_cap"):
        hx.ff5_factors(ds.assign(market_cap=-ds.market_cap))
    with pytest.raises(ValidationError, match="date"):
        hx.ff5_factors(ds.isel(date=slice(None, None, -1)))
    for threads in (0, 1.5, "2"):
        with pytest.raises(ValidationError, match="threads"):
            hx.ff5_factors(ds, threads=threads)


# ---------------------------------------------------------------- planted premia
def exposure_spread(ds, ff_kwargs):
    """Long-short exposure of each FF factor to each planted style.

    Runs the same sorts with 'returns' replaced by a style's true exposure, so each
    factor's 'return' is its portfolio exposure spread to that style.
    """
    out = {}
    for style in ["size", "value", "earnings_yield", "growth"]:
        x = ds.truth_exposures.sel(style=style, drop=True).where(ds.returns.notnull())
        out[style] = hx.ff5_factors(ds.assign(returns=x), **ff_kwargs)
    return out


def check_premia(ds, ff, spreads, periods_per_year, positive, n_se=4.0):
    """Realized factor means match premia x exposure spreads (sign and magnitude).

    In the simulation small caps also have lower value/profitability and higher
    growth exposures, so SMB loads on those premia too; its expected sign comes
    from the planted truth, not from the size premium alone.
    """
    premia = ds.truth_premia.to_series()
    for fac in ["SMB", "HML", "RMW", "CMA"]:
        series = ff[fac].to_series().dropna()
        expected = sum(
            premia[s] / periods_per_year * float(spreads[s][fac].mean()) for s in spreads
        )
        se = series.std() / np.sqrt(len(series))
        assert abs(series.mean() - expected) < n_se * se, (fac, series.mean(), expected, se)
        if abs(expected) > 3 * se:  # a premium the sample can resolve: its sign comes back
            assert np.sign(series.mean()) == np.sign(expected), (fac, series.mean(), expected)
        if fac in positive:
            assert expected > 3 * se, (fac, expected, se)  # planted, resolvable, positive


STRONG = {"country": 0.06, "size": -2.0, "value": 1.0, "earnings_yield": 1.0, "growth": -1.0}


def test_planted_premia_recovered_daily_fast():
    ds = hx.simulate_market(n_dates=252, n_assets=600, n_industries=10, seed=1, premia=STRONG)
    ff = hx.ff5_factors(ds)
    check_premia(ds, ff, exposure_spread(ds, {}), 252, positive=("SMB", "HML", "RMW", "CMA"))
    # in the seed's look-ahead mode the sorts differ but the signs stay
    ff0 = hx.ff5_factors(ds, weight_lag=0)
    assert (ff0[["SMB", "HML", "RMW", "CMA"]].mean() > 0).to_array().all()


@pytest.mark.slow
@pytest.mark.parametrize("freq,per_year", [("W", 52), ("M", 12)])
def test_planted_premia_recovered_resampled_slow(freq, per_year):
    premia = {"country": 0.06, "size": -0.8, "value": 0.4, "earnings_yield": 0.4, "growth": -0.4}
    ds = hx.simulate_market(n_dates=1260, n_assets=1500, n_industries=10, seed=2, premia=premia)
    # daily (co)variance truths are refused by resample: they are not weekly/monthly ones
    ds = ds.drop_vars(["truth_factor_cov", "truth_specific_var"])
    rs = hx.resample(ds, freq, returns=["returns"])
    ff = hx.ff5_factors(rs)
    spreads = {}
    for style in ["size", "value", "earnings_yield", "growth"]:
        x = rs.truth_exposures.sel(style=style, drop=True).where(rs.returns.notnull())
        spreads[style] = hx.ff5_factors(rs.assign(returns=x))
    check_premia(rs, ff, spreads, per_year, positive=("HML", "RMW", "CMA"))
    ann = hx.ff5_factors(rs, rebalance="annual")
    assert (ann[["HML", "RMW", "CMA"]].mean() > 0).to_array().all()


def test_kernel_blocks_and_threads_do_not_change_results(kernel_passes, compiled_calls):
    rng = np.random.default_rng(11)
    T, N = 23, 50
    ret, cap = rng.normal(size=(T, N)), np.exp(rng.normal(size=(T, N)))
    ret[rng.random((T, N)) < 0.05] = np.nan
    chars = rng.normal(size=(T, 3, N))
    chars[rng.random(chars.shape) < 0.1] = np.nan
    chars[4, 1] = np.nan  # a date without profitability: NaN breakpoints for that sort
    chars[7, :, 3] = np.inf  # infinite characteristics are values (in the top bucket)
    mask = rng.random((T, N)) > 0.1
    kw = dict(held=mask, sortable=mask, breakpoint_mask=rng.random((T, N)) > 0.3)
    size = cap.copy()
    size[9] = np.nan  # a date without sizes: no sort, MKT still defined
    for design in ({}, {"char_probs": (0.5,), "joint": True}):
        whole = double_sort(ret, cap, size, chars, **kw, **design, block=T)
        assert whole[1][4, 0 if design else 1].sum() == 0 and whole[1][9].sum() == 0
        assert np.isfinite(whole[2][9])
        for block, threads in ((1, 1), (5, 1), (22, 1), (5, 3), (1, 4)):
            got = double_sort(ret, cap, size, chars, **kw, **design, block=block, threads=threads)
            for a, b in zip(whole, got, strict=True):
                np.testing.assert_array_equal(a, b)
    if kernel_passes == "compiled":
        assert compiled_calls["_combo_bins"] > 0
    else:
        assert "_combo_bins" not in compiled_calls
    # a joint sort needs its bucket combinations to fit one scatter-add key
    five = rng.normal(size=(T, 5, N))
    with pytest.raises(ValueError, match="joint sort of 5"):
        double_sort(ret, cap, cap, five, **kw, joint=True)
    with pytest.raises(ValueError, match="breakpoint level"):
        double_sort(ret, cap, cap, chars, **kw, char_probs=())


def test_compiled_and_numpy_bucket_passes_agree_exactly(monkeypatch, compiled_calls):
    """The compiled bucket pass fills the same bins in the same order as np.bincount."""
    if not jit.AVAILABLE:
        pytest.skip("Numba is not installed (the 'fast' extra)")
    rng = np.random.default_rng(12)
    T, N = 31, 300
    ret, cap = rng.normal(0, 0.02, (T, N)), np.exp(rng.normal(size=(T, N)))
    cap[rng.random((T, N)) < 0.03] = -1.0  # non-positive caps leave every sort and MKT
    chars = rng.normal(size=(T, 5, N)).round(1)  # ties at the breakpoints
    chars[rng.random(chars.shape) < 0.1] = np.nan
    held = rng.random((T, N)) > 0.05
    kw = dict(
        held=held, sortable=held, breakpoint_mask=np.broadcast_to(rng.random(N) > 0.5, (T, N))
    )
    cases = [  # (inputs, design): 2x3 on 4 sorts, two keys (7**5 > COMBOS), medians, joint
        ((ret, cap, cap, chars[:, :4]), {}),
        ((ret, cap, cap, chars), {}),
        ((ret, cap, cap, chars[:, :4]), {"char_probs": (0.5,)}),
        ((ret, cap, cap, chars[:, :4]), {"char_probs": (0.5,), "joint": True}),
        # big-endian, float32 and Fortran-ordered inputs, on threads
        ((ret.astype(">f8"), cap.astype(np.float32), np.asfortranarray(cap), chars[:, :3]),
         {"threads": 2}),
    ]  # fmt: skip
    for args, design in cases:
        out = {}
        for form in ("0", "1"):
            monkeypatch.setenv("HSR_XR_NUMBA", form)
            out[form] = double_sort(*args, **kw, **design)
        for a, b in zip(out["0"], out["1"], strict=True):
            np.testing.assert_array_equal(a, b)
        assert (out["1"][1] > 0).any()
    # one block per call at T=31, N=300, one key per call but two for the 5 sorts, and
    # one call per thread
    assert compiled_calls["_combo_bins"] == 1 + 2 + 1 + 1 + 2


def test_dask_tasks_sort_on_one_thread(monkeypatch):
    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs["threads"])
        return double_sort(*args, **kwargs)

    monkeypatch.setattr(hx.ff5, "double_sort", recording)
    ds = make_panel()
    hx.ff5_factors(ds.chunk(date=25), threads=4).compute()
    assert seen and set(seen) == {1}
    seen.clear()
    hx.ff5_factors(ds, threads=3)
    assert seen == [3]
