"""Tests for hsr_xr.resample against plain per-period Python loops."""

from __future__ import annotations

import datetime as dt
import math

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
from hsr_xr.resample import period_freq

WEEKDAY = {"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}


def period_key(d: pd.Timestamp, freq: str):
    """Independent calendar key: a tuple that sorts chronologically."""
    if freq.startswith("W"):
        end = WEEKDAY[freq.split("-")[1]] if "-" in freq else 4
        last = d.date() + dt.timedelta(days=(end - d.weekday()) % 7)
        return (last.year, last.month, last.day)
    if freq == "M":
        return (d.year, d.month)
    if freq == "Q":
        return (d.year, (d.month - 1) // 3)
    return (d.year,)


def loop_reference(ds: xr.Dataset, freq: str, full: bool = False):
    """Per-period loop: compounded returns, first-date and last-valid characteristics."""
    dates = ds.indexes["date"]
    keys = [period_key(d, freq) for d in dates]
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    ordered = sorted(groups)  # tuple order = chronological order
    r = ds.returns.values
    cap = ds.market_cap.values
    ret_out, first_out, last_out, labels, firsts = [], [], [], [], []
    for k in ordered:
        rows = groups[k]
        labels.append(dates[rows[-1]])
        firsts.append(dates[rows[0]])
        ret_row, last_row = [], []
        for j in range(r.shape[1]):
            vals = [r[i, j] for i in rows if not math.isnan(r[i, j])]
            ok = len(vals) == len(rows) if full else len(vals) > 0
            ret_row.append(math.prod(1.0 + v for v in vals) - 1.0 if ok else math.nan)
            caps = [cap[i, j] for i in rows if not math.isnan(cap[i, j])]
            last_row.append(caps[-1] if caps else math.nan)
        ret_out.append(ret_row)
        first_out.append(cap[rows[0]])
        last_out.append(last_row)
    return (
        np.array(ret_out),
        np.array(first_out),
        np.array(last_out),
        pd.DatetimeIndex(labels),
        pd.DatetimeIndex(firsts),
    )


def make_daily(start="2009-01-01", end="2011-03-31", N=6, seed=0, drop=0.1):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    dates = dates[rng.random(len(dates)) > drop]  # holidays / gaps
    T = len(dates)
    ret = rng.normal(0.0005, 0.02, (T, N))
    ret[rng.random((T, N)) < 0.1] = np.nan
    ret[:40, 0] = np.nan  # a long gap: whole periods without a return
    cap = np.exp(rng.normal(5, 1, (T, N)))
    cap[rng.random((T, N)) < 0.1] = np.nan
    return xr.Dataset(
        {"returns": (("date", "asset"), ret), "market_cap": (("date", "asset"), cap)},
        coords={"date": dates, "asset": np.array([f"A{i}" for i in range(N)], dtype=object)},
    )


@pytest.mark.parametrize("freq", ["W", "W-WED", "M", "Q", "A"])
def test_matches_loop_reference_across_year_and_decade(freq):
    ds = make_daily()
    ref_ret, ref_first, ref_last, labels, firsts = loop_reference(ds, freq)
    out = hx.resample(ds, freq)
    np.testing.assert_array_equal(out.indexes["date"], labels)
    np.testing.assert_array_equal(out.first_date.values, firsts.values)
    np.testing.assert_array_equal(np.isnan(out.returns.values), np.isnan(ref_ret))
    np.testing.assert_allclose(out.returns.values, ref_ret, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(out.market_cap.values, ref_first)  # as-of at first date
    last = hx.resample(ds, freq, characteristics="last")
    np.testing.assert_array_equal(last.market_cap.values, ref_last)
    np.testing.assert_array_equal(last.returns.values, out.returns.values)
    assert out.indexes["date"].is_monotonic_increasing
    assert int(out.n_dates.sum()) == ds.sizes["date"]


def test_no_string_ordering_across_boundaries():
    """Week 10 after week 2, month 10 after month 2, 2009 -> 2010 handled in order."""
    ds = make_daily(drop=0.0)
    monthly = hx.resample(ds, "M")
    months = [(d.year, d.month) for d in monthly.indexes["date"]]
    assert months == sorted(set((d.year, d.month) for d in ds.indexes["date"]))
    # the seed's CONCAT(year, month) string key would order these wrongly
    seed_keys = [f"{y}{m}" for y, m in months]
    assert sorted(seed_keys) != seed_keys
    assert months.index((2009, 10)) > months.index((2009, 2))
    assert months.index((2010, 1)) == months.index((2009, 12)) + 1
    weekly = hx.resample(ds, "W")
    assert weekly.indexes["date"].is_monotonic_increasing
    # a week spanning new year is one calendar week, labelled by its last date
    wk = weekly.sel(date="2010-01-01")
    assert pd.Timestamp(wk.first_date.values) == pd.Timestamp("2009-12-28")
    days = ds.sel(date=slice("2009-12-28", "2010-01-01")).returns
    want = (1 + days.fillna(0)).prod("date") - 1
    want = want.where(days.notnull().any("date"))
    np.testing.assert_allclose(wk.returns.values, want.values, rtol=1e-13)


def test_labels_first_and_require_full():
    ds = make_daily(start="2020-01-01", end="2020-06-30")
    out = hx.resample(ds, "M", label="first")
    np.testing.assert_array_equal(out.indexes["date"], out.first_date.values)
    assert (out.last_date > out.first_date).all()
    full = hx.resample(ds, "M", require_full=True)
    ref_full = loop_reference(ds, "M", full=True)[0]
    np.testing.assert_array_equal(np.isnan(full.returns.values), np.isnan(ref_full))
    np.testing.assert_allclose(full.returns.values, ref_full, rtol=1e-13)
    assert np.isnan(full.returns.values).sum() > np.isnan(out.returns.values).sum()


def test_other_dims_prices_and_static_variables():
    ds = make_daily(start="2020-01-01", end="2020-03-31", drop=0.0)
    rng = np.random.default_rng(1)
    T, N = ds.sizes["date"], ds.sizes["asset"]
    desc = rng.normal(size=(N, T, 3))
    close = np.exp(rng.normal(size=(T, N)))
    close[-1, 1] = np.nan
    ds = ds.assign(
        descriptors=(("asset", "date", "descriptor"), desc),
        close=(("date", "asset"), close),
        listed=(("date", "asset"), rng.random((T, N)) < 0.5),
        industry=("asset", np.arange(N)),
    ).assign_coords(descriptor=["a", "b", "c"])
    ds.industry.attrs["industry_names"] = [f"i{k}" for k in range(N)]
    out = hx.resample(ds, "W")
    assert out.descriptors.dims == ("asset", "date", "descriptor")
    starts = np.searchsorted(ds.indexes["date"], out.first_date.values)
    np.testing.assert_array_equal(out.descriptors.values, desc[:, starts])
    ends = np.searchsorted(ds.indexes["date"], out.last_date.values)
    np.testing.assert_array_equal(out["close"].values[:-1, 0], close[ends[:-1], 0])
    assert out["close"].values[-1, 1] == close[-2, 1]  # last valid close in the period
    # a non-float variable has no missing values: "last" is the period's last date
    last = hx.resample(ds, "W", characteristics="last")
    np.testing.assert_array_equal(last.listed.values, ds.listed.values[ends])
    np.testing.assert_array_equal(out.listed.values, ds.listed.values[starts])
    xr.testing.assert_identical(out.industry, ds.industry)


def test_daily_is_identity_with_period_coords():
    ds = make_daily(start="2020-01-01", end="2020-02-28")
    out = hx.resample(ds, "D")
    xr.testing.assert_identical(
        out.drop_vars(["first_date", "last_date", "n_dates", "complete"]).drop_attrs(), ds
    )
    assert (out.n_dates == 1).all() and out.complete.all()


@pytest.mark.parametrize("freq", ["W", "M"])
def test_dask_irregular_chunks_equal_numpy_and_lazy(freq):
    ds = make_daily(start="2019-11-01", end="2020-04-30")
    T = ds.sizes["date"]
    chunks = (3, 17, 1, 40, T - 61)  # edges cut weeks and months
    want = hx.resample(ds, freq)
    want_last = hx.resample(ds, freq, characteristics="last", require_full=True)

    def boom(*args, **kwargs):
        raise AssertionError("graph building computed something")

    chunked = ds.chunk(date=chunks)
    with dask.config.set(scheduler=boom):
        lazy = hx.resample(chunked, freq)
        lazy_last = hx.resample(chunked, freq, characteristics="last", require_full=True)
    assert isinstance(lazy.returns.data, da.Array)
    assert sum(lazy.returns.chunks[0]) == want.sizes["date"]
    xr.testing.assert_identical(lazy.compute(), want)
    xr.testing.assert_identical(lazy_last.compute(), want_last)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    freq=st.sampled_from(["W", "W-MON", "M", "Q"]),
    drop=st.floats(0.0, 0.7),
    chunk=st.integers(1, 30),
)
def test_property_random_calendars(seed, freq, drop, chunk):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-01-01") + pd.Timedelta(days=int(rng.integers(0, 400)))
    ds = make_daily(start=start, end=start + pd.Timedelta(days=200), N=3, seed=seed, drop=drop)
    ref_ret, ref_first, _, labels, _ = loop_reference(ds, freq)
    out = hx.resample(ds.chunk(date=chunk), freq).compute()
    np.testing.assert_array_equal(out.indexes["date"], labels)
    np.testing.assert_allclose(out.returns.values, ref_ret, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(out.market_cap.values, ref_first)


def test_resampled_panel_feeds_ff5():
    ds = hx.simulate_market(n_dates=130, n_assets=200, n_industries=5, seed=3)
    monthly = hx.resample(
        ds[["returns", "market_cap", "book_to_price", "profitability", "investment"]], "M"
    )
    ff = hx.ff5_factors(monthly)
    assert ff.sizes["date"] == monthly.sizes["date"] == 7  # 2015-01-02 .. 2015-07-02
    assert np.isfinite(ff.MKT.values).all()
    # monthly MKT = cap-weighted (caps at the month's start) compounded returns
    w = monthly.market_cap.where(monthly.returns.notnull())
    mkt = (w * monthly.returns).sum("asset") / w.sum("asset")
    np.testing.assert_allclose(ff.MKT.values, mkt.values, rtol=1e-12)


def test_bad_input_raises_validation_error():
    ds = make_daily(start="2020-01-01", end="2020-02-28")
    with pytest.raises(ValidationError, match="freq"):
        hx.resample(ds, "H")
    with pytest.raises(ValidationError, match="anchor"):
        hx.resample(ds, "W", anchor="FRIDAY")
    with pytest.raises(ValidationError, match="label"):
        hx.resample(ds, "W", label="middle")
    with pytest.raises(ValidationError, match="characteristics"):
        hx.resample(ds, "W", characteristics="mean")
    with pytest.raises(ValidationError, match="ret"):
        hx.resample(ds, "W", returns="ret")
    with pytest.raises(ValidationError, match="date"):
        hx.resample(ds.isel(date=slice(None, None, -1)), "W")
    with pytest.raises(ValidationError, match="date"):
        hx.resample(ds.assign_coords(date=np.arange(ds.sizes["date"])), "W")
    with pytest.raises(ValidationError, match="date"):
        hx.resample(ds.rename(date="time"), "W")
    with pytest.raises(ValidationError, match="market_cap"):
        hx.resample(ds.assign(market_cap=-ds.market_cap), "W")
    with pytest.raises(ValidationError, match="ds"):
        hx.resample(ds.returns, "W")


def test_model_returns_are_compounded_and_forecasts_refused():
    ds = hx.simulate_market(n_dates=60, n_assets=120, n_industries=6, seed=2)
    ds = hx.factor_regression(ds.assign(loadings=ds.truth_exposures))
    with pytest.raises(hx.ValidationError, match="truth_factor_cov"):
        hx.resample(ds, "W")
    weekly = hx.resample(ds.drop_vars(["truth_factor_cov", "truth_specific_var"]), "W")
    first, last = weekly.first_date.values[1], weekly.last_date.values[1]
    for name in ("factor_returns", "specific_returns", "truth_factor_returns", "returns"):
        daily = ds[name].sel(date=slice(first, last))
        expected = (1 + daily).prod("date", min_count=1) - 1
        np.testing.assert_allclose(weekly[name].isel(date=1).values, expected.values, rtol=1e-12)
    only = hx.resample(ds[["returns", "market_cap"]], "W", returns="returns")
    assert set(only.data_vars) == {"returns", "market_cap"}


def test_float32_returns_empty_panel_and_nat_end_of_period():
    ds = make_daily(start="2020-01-01", end="2020-03-31")
    T, N = ds.sizes["date"], ds.sizes["asset"]
    # float32 returns compound in float32, on NumPy and on Dask alike
    ds32 = ds.assign(returns=ds.returns.astype(np.float32))
    want = hx.resample(ds32, "M").returns
    assert want.dtype == np.float32
    lazy = hx.resample(ds32.chunk(date=7), "M").returns
    assert lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.values, want.values)
    ref = loop_reference(ds32, "M")[0]
    np.testing.assert_allclose(want.values, ref, rtol=1e-6)
    # no dates: no periods, NumPy and Dask
    empty = ds.isel(date=slice(0, 0))
    for panel in (empty, empty.chunk(date=1)):
        out = hx.resample(panel, "W")
        assert out.sizes["date"] == 0
        assert out.returns.shape == (0, N)
    # a datetime level (e.g. a report date) skips NaT like NaN: its last valid value
    stamp = pd.Timestamp("2021-01-01") + pd.to_timedelta(np.arange(T * N), "h").to_numpy()
    stamp = stamp.reshape(T, N)
    stamp[-1, 0] = np.datetime64("NaT")
    stamp[:, 1] = np.datetime64("NaT")
    out = hx.resample(ds.assign(report=(("date", "asset"), stamp)), "M", end_of_period=["report"])
    assert out.report.values[-1, 0] == stamp[-2, 0]
    assert np.isnat(out.report.values[:, 1]).all()
    assert out.report.values[0, 2] == stamp[out.n_dates.values[0] - 1, 2]


@pytest.mark.parametrize(
    ("start", "end", "freq", "first", "last"),
    [
        ("2024-01-03", "2024-03-27", "W", False, False),  # Wed .. Wed
        ("2024-01-08", "2024-03-29", "W", True, True),  # Mon .. Fri
        ("2024-01-05", "2024-03-28", "W-THU", True, True),  # Fri .. Thu
        ("2024-01-01", "2024-03-29", "M", True, True),
        ("2024-01-02", "2024-03-28", "M", False, False),
        ("2024-01-01", "2024-03-29", "Q", True, True),
        ("2024-01-01", "2024-03-28", "Q", False, False),  # one period, cut at its end
        ("2023-12-29", "2025-12-31", "A", False, True),
    ],
)
def test_complete_marks_periods_cut_by_the_panel(start, end, freq, first, last):
    ds = make_daily(start=start, end=end, drop=0.0)
    out = hx.resample(ds, freq)
    complete = out.complete.values
    # an independent check: the weekdays of each calendar period present in the panel
    dates = ds.indexes["date"]
    for i, (a, b) in enumerate(zip(out.first_date.values, out.last_date.values, strict=True)):
        period = pd.Timestamp(a).to_period(period_freq(freq))
        weekdays = pd.bdate_range(period.start_time, period.end_time.normalize())
        covered = weekdays[(weekdays >= dates[0]) & (weekdays <= dates[-1])]
        assert complete[i] == (len(covered) == len(weekdays)), (i, a, b)
    assert complete[0] == (first if len(complete) > 1 else first and last)
    assert complete[-1] == (last if len(complete) > 1 else first and last)
    assert complete[1:-1].all()


def test_ff5_summary_leaves_out_cut_periods():
    from hsr_xr import pipeline

    market = hx.simulate_market(n_dates=70, n_assets=120, n_industries=4, seed=3)
    assert pd.Timestamp(market.date.values[0]).weekday() != 0  # starts mid-week
    ff = pipeline.ff5_by_frequency(market, freqs=("W",))
    table = pipeline.ff5_summary(ff)
    kept = ff["W"]["MKT"].where(ff["W"].complete)
    assert table.loc[("W", "MKT"), "periods"] == int(kept.count()) < int(ff["W"]["MKT"].count())
    mean = float(kept.mean()) * 52 * 100
    np.testing.assert_allclose(table.loc[("W", "MKT"), "ann_mean_%"], mean, atol=0.006)


def test_complete_knows_the_holidays_it_is_given():
    ds = make_daily(start="2024-01-02", end="2024-12-31", drop=0.0)  # Jan 1 was a holiday
    assert not hx.resample(ds, "A").complete.values[0]
    for freq in ("M", "Q", "A"):
        out = hx.resample(ds, freq, holidays=["2024-01-01"])
        assert out.complete.values.all(), freq
    for none in ([], (), None):  # no holidays at all
        assert not hx.resample(ds, "A", holidays=none).complete.values[0]
    assert hx.resample(ds, "A", holidays={"2024-01-01"}).complete.values.all()
    for bad in (["not a date"], [20240101]):  # a number would be read as 1970
        with pytest.raises(hx.ValidationError, match="holidays"):
            hx.resample(ds, "M", holidays=bad)
