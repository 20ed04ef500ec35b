"""Foundation: registry validation, simulator, Zarr store, frame readers."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hsr_xr as hx
from hsr_xr.errors import IncompleteStoreError
from hsr_xr.store import MARKER, store_groups


@pytest.fixture(scope="module")
def small():
    return hx.simulate_market(n_dates=80, n_assets=150, n_industries=8, seed=3)


# --------------------------------------------------------------------- validation
def _raises(ds, match, required=("returns", "market_cap", "industry")):
    with pytest.raises(hx.ValidationError, match=match) as info:
        hx.validate(ds, required)
    assert isinstance(info.value, ValueError)
    assert "Fix:" in str(info.value)
    return info.value


def test_validate_accepts_simulated(small):
    out = hx.validate(small, ["returns", "market_cap", "industry", "descriptors"])
    assert out is not None


def test_missing_variable(small):
    err = _raises(small.drop_vars("market_cap"), "market_cap")
    assert err.variable == "market_cap"


def test_wrong_dims(small):
    bad = small.assign(returns=small.returns.rename(asset="ticker"))
    _raises(bad, "returns.*dims")


def test_non_monotonic_and_duplicate_dates(small):
    _raises(small.isel(date=[1, 0, 2]), "not increasing")
    _raises(small.isel(date=[0, 1, 1, 2]), "duplicate dates")


def test_duplicate_assets(small):
    _raises(small.isel(asset=[0, 1, 1]), "duplicate labels")


def test_non_positive_caps(small):
    cap = small.market_cap.copy()
    cap[3, 4] = -1.0
    _raises(small.assign(market_cap=cap), "market_cap.*zero, negative or infinite")
    cap[3, 4] = 0.0
    _raises(small.assign(market_cap=cap), "market_cap.*zero, negative or infinite")


def test_unknown_industry_codes(small):
    ind = small.industry.copy()
    ind[0] = 99
    _raises(small.assign(industry=ind), "industry.*codes outside")
    ind[0] = -1  # -1 is the documented "unknown"
    hx.validate(small.assign(industry=ind), ["industry"])


def test_lazy_value_checks_raise_at_compute(small):
    cap = small.market_cap.copy()
    cap[5, 5] = -3.0
    lazy = small.assign(market_cap=cap).chunk({"date": 20})
    out = hx.validate(lazy, ["market_cap"])  # graph only: must not raise yet
    with pytest.raises(hx.ValidationError, match="market_cap"):
        out.market_cap.compute()


def test_check_aligned_refuses_misaligned(small):
    a = small.returns
    b = small.market_cap.isel(asset=slice(1, None))
    with pytest.raises(hx.ValidationError, match="asset coordinate differs"):
        hx.schema.check_aligned({"returns": a, "weights": b}, ["date", "asset"])


def test_check_core_unchunked(small):
    with pytest.raises(hx.ValidationError, match="rechunk"):
        hx.schema.check_core_unchunked(small.returns.chunk({"asset": 50}), "asset", "returns")


# ---------------------------------------------------------------------- simulator
def test_simulator_deterministic(small):
    again = hx.simulate_market(n_dates=80, n_assets=150, n_industries=8, seed=3)
    assert again.identical(small)
    other = hx.simulate_market(n_dates=80, n_assets=150, n_industries=8, seed=4)
    assert not np.allclose(np.nan_to_num(other.returns), np.nan_to_num(small.returns))


def test_simulator_layout(small):
    assert small.returns.dims == ("date", "asset")
    assert list(small.factor.values[:1]) == ["country"]
    assert list(small.factor.values[1:13]) == list(small.style.values)
    assert list(small.factor.values[13:]) == small.industry.attrs["industry_names"]
    names = list(small.descriptor.values)
    assert "size" in names and "nonlinear_size" in names
    for style in small.style.values:
        if style not in ("size", "nonlinear_size"):
            n = sum(d.startswith(f"{style}_") for d in names)
            assert 2 <= n <= 4, style
    assert np.all(small.market_cap.values[np.isfinite(small.market_cap.values)] > 0)
    assert set(np.unique(small.industry.values)) == set(range(8))


def test_simulator_planted_statistics():
    T, N = 2520, 400
    ds = hx.simulate_market(
        n_dates=T, n_assets=N, n_industries=10, seed=11, regimes=False, suspension_frac=0.03
    )
    f = ds.truth_factor_returns
    true_vol = np.sqrt(ds.truth_factor_cov.isel(date=0).values.diagonal())
    realized = f.std("date").values
    assert np.all(np.abs(realized / true_vol - 1) < 0.10)
    assert abs(float(f.sel(factor="country").std()) - 0.01) < 0.001  # daily vol ~1%
    listed = ds.market_cap.notnull()
    missing = float((ds.returns.isnull() & listed).sum() / listed.sum())
    assert 0.02 < missing < 0.035  # suspensions as configured (runs overlap a little)
    first = listed.argmax("date")
    assert 0.06 < float((first > 0).mean()) < 0.14  # IPOs (ipo_frac=0.10)
    assert float((~listed.isel(date=-1)).mean()) > 0.04  # delistings
    # specific vol falls with size, Student-t tails
    sv = ds.truth_specific_var.isel(date=0)
    cap = ds.market_cap.isel(date=0)
    ok = sv.notnull() & cap.notnull()
    assert np.corrcoef(np.log(cap[ok]), np.log(sv[ok]))[0, 1] < -0.3
    z = (ds.truth_specific_returns / np.sqrt(ds.truth_specific_var)).values.ravel()
    z = z[np.isfinite(z)]
    kurt = np.mean(z**4) / np.mean(z**2) ** 2
    assert kurt > 4.0  # Student-t(5) has kurtosis 9; a normal has 3


def test_regimes_change_volatility():
    ds = hx.simulate_market(n_dates=1500, n_assets=50, n_industries=5, seed=2)
    regime = ds.truth_regime.values
    assert 0 < regime.mean() < 1
    c = ds.truth_factor_returns.sel(factor="country").values
    assert c[regime == 1].std() > 1.5 * c[regime == 0].std()


def test_splits_make_close_differ_from_adjusted(small):
    ratio = (small["close"] / small["adj_close"]).values
    ratio = ratio[np.isfinite(ratio)]
    assert set(np.round(np.unique(ratio), 12)) <= {1.0, 2.0, 3.0}
    big = hx.simulate_market(n_dates=120, n_assets=600, n_industries=8, seed=1)
    naive = big["close"] / big["close"].shift(date=1) - 1
    assert float(np.abs(naive - big.returns).max()) > 0.3  # a split day
    adj = big.adj_close / big.adj_close.shift(date=1) - 1
    both = adj.notnull() & big.returns.notnull()
    np.testing.assert_allclose(adj.values[both], big.returns.values[both], rtol=1e-9, atol=1e-14)


def test_premia_option_validates_names():
    kw = dict(n_dates=10, n_assets=40, n_industries=4)
    with pytest.raises(hx.ValidationError, match="not the country or a style"):
        hx.simulate_market(**kw, premia={"nope": 0.1})
    with pytest.raises(hx.ValidationError, match="banks"):  # industries take no premium
        hx.simulate_market(**kw, premia={"banks": 0.5})


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"styles": ["nonlinear_size", "value"]}, "styles"),  # was all-NaN returns
        ({"styles": ["country", "value"]}, "styles"),  # two factors called 'country'
        ({"styles": ["banks", "value"]}, "styles"),
        ({"start": None}, "start"),
        ({"start": "1600-01-03"}, "start"),  # was wrapped to 2184
        ({"start": "2262-04-01"}, "start"),  # would run past datetime64[ns]
        ({"start": "2015-01-02 00:00+05:00"}, "start"),  # was shifted to UTC
    ],
)
def test_simulator_refuses_bad_styles_and_starts(kw, name):
    with pytest.raises(hx.ValidationError) as info:
        hx.simulate_market(n_dates=30, n_assets=40, n_industries=4, **kw)
    assert info.value.variable == name


def test_readers_refuse_dimension_names_as_variables():
    frame = pd.DataFrame(np.ones((2, 2)), index=pd.bdate_range("2020-01-01", periods=2))
    with pytest.raises(hx.ValidationError, match="dimension name"):
        hx.from_wide_frames({"date": frame})
    long = pd.DataFrame({"date": ["2020-01-01"], "asset": ["a"], "descriptor": ["x"], "val": [1]})
    with pytest.raises(hx.ValidationError, match="dimension name"):
        hx.from_long_frame(long, cube="asset")


# -------------------------------------------------------------------------- store
def test_store_round_trip_identical(small, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fixed-width unicode / v3 spec warnings
        hx.to_store(small, tmp_path / "a.zarr")
        back = hx.open_store(tmp_path / "a.zarr")
    assert isinstance(back.returns.data, da.Array)  # lazy
    assert back.load().identical(small)


def test_store_chunked_by_date(tmp_path):
    ds = hx.simulate_market(n_dates=300, n_assets=2000, n_industries=8, seed=0)
    hx.to_store(ds, tmp_path / "c.zarr")
    back = hx.open_store(tmp_path / "c.zarr")
    chunks = back.descriptors.chunksizes
    assert len(chunks["date"]) > 1 and len(chunks["asset"]) == 1
    hx.to_store(ds, tmp_path / "d.zarr", chunks={"date": 100})
    assert hx.open_store(tmp_path / "d.zarr").returns.chunksizes["date"] == (100, 100, 100)


def test_store_refuses_existing_and_replaces_atomically(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    with pytest.raises(hx.ValidationError, match="exists"):
        hx.to_store(small, p)
    hx.to_store(small.isel(date=slice(0, 10)), p, mode="w")
    assert hx.open_store(p).sizes["date"] == 10


def test_open_is_lazy(small, tmp_path):
    hx.to_store(small, tmp_path / "a.zarr")

    def forbid(*args, **kwargs):
        raise AssertionError("computed")

    with dask.config.set(scheduler=forbid):
        ds = hx.open_store(tmp_path / "a.zarr")
        (ds.returns * 2).mean("asset")


def test_append_and_refusals(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small.isel(date=slice(0, 33)), p, chunks={"date": 10})
    hx.to_store(small.isel(date=slice(33, 61)), p, mode="append")
    hx.to_store(small.isel(date=slice(61, None)), p, mode="append")
    assert hx.open_store(p).load().identical(small)
    with pytest.raises(hx.ValidationError, match="overlap"):
        hx.to_store(small.isel(date=slice(70, None)), p, mode="append")
    later = small.isel(date=slice(0, 5)).assign_coords(
        date=small.date[-1].values + np.arange(1, 6) * np.timedelta64(1, "D")
    )
    with pytest.raises(hx.ValidationError, match="asset"):
        hx.to_store(later.isel(asset=slice(1, None)), p, mode="append")
    with pytest.raises(hx.ValidationError, match="variables differ"):
        hx.to_store(later.drop_vars("close"), p, mode="append")
    ind = later.industry.copy()
    ind[0] = (ind[0] + 1) % 8
    with pytest.raises(hx.ValidationError, match="industry"):
        hx.to_store(later.assign(industry=ind), p, mode="append")
    assert hx.open_store(p).load().identical(small)  # refusals changed nothing


def test_failed_write_leaves_no_valid_store(small, tmp_path):
    p = tmp_path / "bad.zarr"
    cap = small.market_cap.copy()
    cap[60, 3] = -1.0  # raises lazily inside the write
    with pytest.raises(hx.ValidationError):
        hx.to_store(small.assign(market_cap=cap).chunk({"date": 20}), p)
    assert not p.exists()
    assert not list(tmp_path.iterdir())  # temporary directory cleaned up
    hx.to_store(small, p)
    with pytest.raises(hx.ValidationError):
        hx.to_store(small.assign(market_cap=cap).chunk({"date": 20}), p, mode="w")
    assert hx.open_store(p).load().identical(small)  # the old store survives


def test_store_options_are_checked(small, tmp_path):
    with pytest.raises(hx.ValidationError, match="ds.*DataArray"):
        hx.to_store(small.returns, tmp_path / "a.zarr")
    with pytest.raises(hx.ValidationError, match="chunks"):
        hx.to_store(small, tmp_path / "b.zarr", chunks={"date": -5})
    hx.to_store(small, tmp_path / "c.zarr", chunks={"date": -1, "asset": None})
    with pytest.raises(hx.ValidationError, match="chunks"):
        hx.open_store(tmp_path / "c.zarr", chunks="x")
    for ok in ("auto", -1, {"date": "auto"}, {"date": (small.sizes["date"],)}):
        hx.open_store(tmp_path / "c.zarr", chunks=ok)  # what Dask takes is accepted
    back = hx.open_store(tmp_path / "c.zarr", chunks={"date": -1})
    assert back.returns.chunks[0] == (small.sizes["date"],)


@pytest.mark.parametrize("lazy", [False, True])
def test_append_stores_missing_text_as_a_fresh_write_does(lazy, tmp_path):
    """Missing strings are '' (read back as missing) in appended dates too, not 'nan'."""
    ds = xr.Dataset(
        {"exchange": (("date", "asset"), np.array([["NYSE", None]] * 4, dtype=object))},
        coords={"date": pd.bdate_range("2020-01-01", periods=4), "asset": ["A", "B"],
                "tag": ("date", np.array(["x", None, "y", None], dtype=object))},
    )  # fmt: skip
    if lazy:  # missing as None in a Dask object array, as NaN in a StringDType one
        ds = ds.chunk(date=1)
        none = xr.where(ds.exchange == "NYSE", ds.exchange, None).astype(object)
        ds = ds.assign(
            exchange=none,
            board=ds.exchange.copy(
                data=np.array([["x", None]] * 4, dtype=np.dtypes.StringDType(na_object=None))
            ),
        )
    p = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)  # Dask object arrays
        hx.to_store(ds.isel(date=slice(0, 2)), p)
        hx.to_store(ds.isel(date=slice(2, 4)), p, mode="append")
    back = hx.open_store(p).load()
    assert back.exchange.isnull().values.tolist() == [[False, True]] * 4
    assert back.tag.isnull().values.tolist() == [False, True, False, True]
    if lazy:
        assert back.board.isnull().values.tolist() == [[False, True]] * 4
    assert "tag" in back.coords


def test_failed_append_rolls_back(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small.isel(date=slice(0, 40)), p, chunks={"date": 16})
    tail = small.isel(date=slice(40, None))
    cap = tail.market_cap.copy()
    cap[-1, 0] = -5.0
    with pytest.raises(hx.ValidationError):
        hx.to_store(tail.assign(market_cap=cap).chunk({"date": 7}), p, mode="append")
    assert hx.open_store(p).load().identical(small.isel(date=slice(0, 40)))


def test_interrupted_write_is_refused(small, tmp_path):
    import zarr

    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    zarr.open_group(str(p), mode="r+").attrs[MARKER] = False  # as if killed mid-append
    with pytest.raises(IncompleteStoreError, match="did not complete"):
        hx.open_store(p)


def test_update_adds_variables_and_groups(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    extra = (small.returns * 2).rename("double")
    hx.to_store(extra.to_dataset(), p, mode="update")
    back = hx.open_store(p)
    xr.testing.assert_identical(back.double.load(), extra)
    weekly = small.returns.isel(date=slice(4, None, 5)).to_dataset(name="weekly")
    hx.to_store(weekly, p, group="weekly")
    xr.testing.assert_identical(hx.open_store(p, group="weekly").load(), weekly)
    assert hx.store.store_groups(p) == ["weekly"]
    with pytest.raises(hx.ValidationError, match="no store"):
        hx.open_store(tmp_path / "missing.zarr")


# ------------------------------------------------------------------------ readers
def test_from_long_frame_matches_pivot(small):
    sub = small.isel(date=slice(0, 6), asset=slice(0, 20))
    long = sub.descriptors.to_dataframe().reset_index()
    cap = sub.market_cap.to_dataframe().reset_index().assign(descriptor="market_cap")
    cap = cap.rename(columns={"market_cap": "descriptors"})
    df = pd.concat([long, cap]).dropna(subset=["descriptors"])
    df = df.rename(columns={"asset": "instrument", "descriptors": "val"}).sample(
        frac=1, random_state=0
    )
    ds = hx.from_long_frame(df, asset="instrument")
    assert set(ds.data_vars) == {"market_cap", "descriptors"}
    xr.testing.assert_allclose(
        ds.market_cap, sub.market_cap.reindex_like(ds.market_cap), rtol=0, atol=0
    )
    ref = sub.descriptors.reindex(descriptor=ds.descriptor.values, asset=ds.asset.values)
    np.testing.assert_array_equal(ds.descriptors.values, ref.values)
    with pytest.raises(hx.ValidationError, match="duplicate"):
        hx.from_long_frame(pd.concat([df, df.iloc[:1]]), asset="instrument")
    with pytest.raises(hx.ValidationError, match="column missing"):
        hx.from_long_frame(df)
    no_date = df.assign(date=df["date"].where(np.arange(len(df)) != 3))  # one NaT date
    with pytest.raises(hx.ValidationError, match="date.*1 missing"):
        hx.from_long_frame(no_date, asset="instrument")
    text = df.assign(val=df["val"].astype(object).where(np.arange(len(df)) != 3, "n/a"))
    with pytest.raises(hx.ValidationError, match="val.*not numbers"):
        hx.from_long_frame(text, asset="instrument")
    # a missing asset or name used to be written into another (date, asset) cell
    for col in ("instrument", "descriptor"):
        gap = df.assign(**{col: df[col].astype(object).where(np.arange(len(df)) != 3, None)})
        with pytest.raises(hx.ValidationError, match=f"{col}.*1 missing"):
            hx.from_long_frame(gap, asset="instrument")


def test_from_wide_frames(small):
    r = small.returns.to_pandas()
    c = small.market_cap.to_pandas()
    ds = hx.from_wide_frames({"returns": r, "market_cap": c})
    np.testing.assert_array_equal(ds.returns.values, small.returns.values)
    with pytest.raises(hx.ValidationError, match="market_cap.*asset labels differ"):
        hx.from_wide_frames({"returns": r, "market_cap": c.iloc[:, 1:]})
    inner = hx.from_wide_frames({"returns": r, "market_cap": c.iloc[:, 1:]}, join="inner")
    assert inner.sizes["asset"] == r.shape[1] - 1
    with pytest.raises(hx.ValidationError, match="not increasing"):
        hx.from_wide_frames({"returns": r.iloc[::-1]})
    # a zone would be converted to UTC, moving dates across days and months
    with pytest.raises(hx.ValidationError, match="returns.*timezone-aware"):
        hx.from_wide_frames({"returns": r.tz_localize("Asia/Tokyo")})


def test_dates_beyond_nanoseconds_are_refused_not_wrapped(tmp_path):
    dates = pd.bdate_range("2020-01-01", periods=3)
    delist = np.array(["9999-12-31", "2021-01-01"], dtype="datetime64[us]")
    ds = xr.Dataset(
        {"delist": ("asset", delist), "returns": (("date", "asset"), np.zeros((3, 2)))},
        coords={"date": dates, "asset": ["A", "B"]},
    )
    with pytest.raises(hx.ValidationError, match="delist.*9999-12-31.*NaT"):
        hx.to_store(ds, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()
    with pytest.raises(hx.ValidationError, match="delist.*9999-12-31"):  # lazily on Dask
        hx.to_store(ds.chunk(), tmp_path / "b.zarr")
    assert not (tmp_path / "b.zarr").exists()  # a fresh store appears whole or not at all
    # microsecond dates inside the range are stored, as nanoseconds
    ok = ds.assign(delist=("asset", np.array(["2030-06-30", "NaT"], dtype="datetime64[us]")))
    hx.to_store(ok, tmp_path / "c.zarr")
    back = hx.open_store(tmp_path / "c.zarr").delist.values
    np.testing.assert_array_equal(back, ok.delist.values.astype("datetime64[ns]"))
    # on Dask too; converting the variable used to put back the fixed-width '<U1' asset
    # labels (an unstable Zarr dtype, an error in this suite) that it carried as a coord
    hx.to_store(ok.chunk(), tmp_path / "d.zarr")
    back = hx.open_store(tmp_path / "d.zarr")
    np.testing.assert_array_equal(back.delist.values, ok.delist.values.astype("datetime64[ns]"))
    assert back.asset.values.tolist() == ["A", "B"]
    long = pd.DataFrame(
        {"date": np.array(["2020-01-02", "3000-01-01"], dtype="datetime64[s]"),
         "asset": ["A", "A"], "descriptor": ["returns"] * 2, "val": [0.01, 0.02]}
    )  # fmt: skip
    with pytest.raises(hx.ValidationError, match="date.*3000-01-01"):
        hx.from_long_frame(long)


def test_update_stores_the_new_attrs_of_replaced_variables(small, tmp_path):
    p = tmp_path / "a.zarr"
    ds = small[["returns"]].assign_attrs(source="v1")
    ds["returns"].attrs = {"units": "fraction", "kept": 1}
    hx.to_store(ds, p)
    new = ds.copy()
    new["returns"] = (ds.returns * 100).assign_attrs(units="percent")
    new.attrs = {"source": "v2"}
    hx.to_store(new, p, mode="update")
    back = hx.open_store(p)
    assert back.returns.attrs == {"units": "percent", "kept": 1}  # merged into the stored
    assert back.attrs["source"] == "v2"
    np.testing.assert_array_equal(back.returns.values, new.returns.values)


def test_update_with_dask_chunks_unlike_the_store(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    new = (small.returns * 2).rename("r2").to_dataset().chunk({"date": 7, "asset": 64})
    hx.to_store(new, p, mode="update")
    replaced = (small.returns * 3).to_dataset().chunk({"date": 9, "asset": 50})
    hx.to_store(replaced, p, mode="update")
    back = hx.open_store(p).load()
    xr.testing.assert_identical(back.r2, new.r2.load())
    xr.testing.assert_identical(back.returns, replaced.returns.load())


def test_failed_update_of_new_variables_leaves_the_store_readable(small, tmp_path):
    p = tmp_path / "a.zarr"
    hx.to_store(small, p)

    def fail_on_third_block(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise OSError("simulated disk failure")
        return block

    data = dask.array.from_array(small.returns.values, chunks=(20, -1))
    lazy = xr.Dataset(
        {"extra": (("date", "asset"), data.map_blocks(fail_on_third_block, dtype=float))},
        coords={"date": small.date, "asset": small.asset},
    )
    with pytest.raises(OSError, match="simulated"):
        hx.to_store(lazy, p, mode="update", chunks={"date": 20})
    back = hx.open_store(p)  # readable: nothing stored was touched
    assert "extra" not in back
    assert back.load().identical(small)


def test_attrs_that_zarr_cannot_store_are_named(small, tmp_path):
    bad = small.copy()
    bad["returns"].attrs["when"] = np.datetime64("2020-01-01")
    with pytest.raises(hx.ValidationError, match=r"returns.attrs\['when'\]"):
        hx.to_store(bad, tmp_path / "a.zarr")
    ok = small.copy()
    ok.attrs["weights"] = np.arange(3)  # NumPy values are stored as JSON lists
    hx.to_store(ok, tmp_path / "b.zarr")
    assert hx.open_store(tmp_path / "b.zarr").attrs["weights"] == [0, 1, 2]


# ------------------------------------------------------- store edge cases (groups, rollbacks)
@pytest.fixture
def panel():
    return hx.simulate_market(n_dates=30, n_assets=40, seed=0)[
        ["returns", "market_cap", "industry"]
    ]


def test_group_names_never_clobber_variables_or_groups(panel, tmp_path):
    p = tmp_path / "s.zarr"
    hx.to_store(panel, p)
    for name in ("returns", "date", "returns/sub"):  # a stored array, the date index, below one
        with pytest.raises(hx.ValidationError, match="stored variable"):
            hx.to_store(panel, p, group=name, mode="w")
    hx.to_store(panel, p, group="g")
    with pytest.raises(hx.ValidationError, match="already exists"):
        hx.to_store(panel.isel(date=slice(0, 5)), p, group="g")  # "w-" refuses it
    assert hx.open_store(p, group="g").sizes["date"] == 30
    hx.to_store(panel, p, group="model")
    with pytest.raises(hx.ValidationError, match="group"):  # a variable named like a group
        hx.to_store(xr.Dataset({"model": panel.returns * 1}), p, mode="update")
    assert store_groups(p) == ["g", "model"]
    assert hx.open_store(p).load().identical(panel)
    # a directory that is not a store is never replaced, and a file is not a store
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(hx.ValidationError, match="not a Zarr store"):
        hx.to_store(panel, other, mode="w")
    assert (other / "keep.txt").exists()
    for fn in (store_groups, hx.open_store):
        with pytest.raises(hx.ValidationError, match="not a Zarr store"):
            fn(other)
    hx.to_store(panel, tmp_path / "whole.zarr", chunks={"date": -1})  # Dask's "whole dim"
    assert hx.open_store(tmp_path / "whole.zarr").returns.chunks[0] == (30,)


def test_append_keeps_attrs_and_rolls_back_date_coordinates(panel, tmp_path):
    p = tmp_path / "s.zarr"
    ds = panel.assign_coords(month=("date", panel.indexes["date"].month.to_numpy()))
    ds.attrs = {"title": "kept"}
    hx.to_store(ds.isel(date=slice(0, 17)), p, chunks={"date": 5})
    tail = ds.isel(date=slice(17, None))
    cap = tail.market_cap.copy()
    cap[-1, 0] = -1.0  # raises lazily, after some chunks were written
    with pytest.raises(hx.ValidationError):
        failing = tail.assign(market_cap=cap).chunk(date=4).assign_attrs(note="failed")
        hx.to_store(failing, p, mode="append")
    back = hx.open_store(p).load()  # every date array truncated back, month included
    assert back.attrs == {"title": "kept"}  # and the attrs
    assert back.identical(ds.isel(date=slice(0, 17)))
    tail.attrs = {"note": "new"}
    hx.to_store(tail, p, mode="append")
    full = hx.open_store(p)
    assert full.attrs == {"title": "kept", "note": "new"}
    assert full.load().drop_attrs().identical(ds.drop_attrs())
    hx.to_store(panel[["industry"]], tmp_path / "static.zarr")
    with pytest.raises(hx.ValidationError, match="no 'date' dim"):
        hx.to_store(panel[["returns"]], tmp_path / "static.zarr", mode="append")
    hx.to_store(tail.isel(date=slice(0, 0)), p, mode="append")  # nothing to append
    assert hx.open_store(p).sizes["date"] == 30
    # dates in another unit are stored as the store's nanoseconds, never as NaT
    q = tmp_path / "units.zarr"
    hx.to_store(panel.isel(date=slice(0, 10)), q)
    secs = panel.isel(date=slice(10, None))
    secs = secs.assign_coords(date=secs.indexes["date"].as_unit("s"))
    hx.to_store(secs, q, mode="append")
    np.testing.assert_array_equal(hx.open_store(q).date.values, panel.date.values)


def test_update_refuses_truncation_keeps_date_chunks_and_cleans_up(panel, tmp_path):
    p = tmp_path / "s.zarr"
    ds = panel.assign(regime=("date", np.arange(30, dtype=np.int8)))
    hx.to_store(ds.isel(date=slice(0, 10)), p, chunks={"date": 5})
    for values in (np.linspace(0, 1, 10), np.full(10, 300)):  # float, and int64 of 300
        with pytest.raises(hx.ValidationError, match="regime"):
            hx.to_store(
                xr.Dataset({"regime": ("date", values)}, coords={"date": ds.date[:10]}),
                p,
                mode="update",
            )
    hx.to_store(panel.isel(date=slice(0, 3)), p, group="model")
    with pytest.raises(hx.ValidationError, match="model"):  # a new dim named like a group
        w = xr.Dataset({"w": ("model", np.ones(3))}, coords={"model": list("abc")})
        hx.to_store(w, p, mode="update")
    assert store_groups(p) == ["model"]

    # a failed addition on a new dim leaves neither the variable nor the new coordinate
    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise RuntimeError("poisoned chunk")
        return block

    w = xr.DataArray(da.ones(4, chunks=1).map_blocks(boom, dtype=float), dims="k")
    with pytest.raises(RuntimeError, match="poisoned"):
        hx.to_store(xr.Dataset({"w": w}, coords={"k": list("abcd")}), p, mode="update")
    assert "k" not in hx.open_store(p).variables
    # an added variable takes the stored date chunk, so later appends still work
    extra = xr.Dataset(
        {"foo": (("date", "asset"), np.ones((10, 40)))}, coords=ds.isel(date=slice(0, 10)).coords
    )
    hx.to_store(extra, p, mode="update", chunks={"date": 7})
    more = ds.isel(date=slice(10, None)).assign(foo=(("date", "asset"), np.ones((20, 40))))
    hx.to_store(more, p, mode="append")  # 20 dates: four stored chunks' worth
    assert hx.open_store(p).sizes["date"] == 30


def test_empty_panel_and_consolidated_groups(panel, tmp_path):
    p = tmp_path / "e.zarr"
    hx.to_store(panel.isel(date=slice(0, 0)), p)
    assert hx.open_store(p).sizes["date"] == 0
    hx.to_store(panel, p, mode="append")  # onto an empty store
    assert hx.open_store(p).load().identical(panel)
    assert hx.open_store(p).returns.chunks[0] == (30,)  # not one chunk per date
    q = tmp_path / "c.zarr"
    hx.to_store(panel, q, consolidated=True)
    hx.to_store(panel, q, group="g")  # no flag: the consolidated root is kept up to date
    hx.to_store(panel.isel(date=slice(0, 5)), q, group="h")
    assert store_groups(q) == ["g", "h"]
    assert hx.open_store(q, group="h").sizes["date"] == 5
    hx.to_store(panel.isel(date=slice(0, 10)), q, group="g", mode="w")
    assert hx.open_store(q, group="g").load().identical(panel.isel(date=slice(0, 10)))


def test_nested_groups_root_aliases_and_a_failed_final_rename(panel, tmp_path, monkeypatch):
    p = tmp_path / "s.zarr"
    hx.to_store(panel, p)
    hx.to_store(panel.isel(date=slice(0, 4)), p, group="a/b")
    assert store_groups(p) == ["a/b"]  # the bare parent "a" is no Dataset group
    hx.to_store(panel.isel(date=slice(0, 6)), p, group="/", mode="w")  # "/" is the root
    assert hx.open_store(p).sizes["date"] == 6
    # the final rename of a replacing write fails: the previous store is put back
    real = type(p).rename

    def failing_rename(self, target):
        if ".tmp-" in self.name:
            raise OSError("disk gone")
        return real(self, target)

    monkeypatch.setattr(type(p), "rename", failing_rename)
    with pytest.raises(OSError, match="disk gone"):
        hx.to_store(panel, p, mode="w")
    monkeypatch.undo()
    assert hx.open_store(p).sizes["date"] == 6
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.zarr"]


def test_create_never_replaces_a_store_that_appeared_meanwhile(panel, tmp_path, monkeypatch):
    import hsr_xr.store as store

    p = tmp_path / "s.zarr"
    real = store._write

    def rival_finishes_first(ds, path, **kwargs):
        real(ds, path, **kwargs)
        if not p.exists():  # another process's store lands while ours is being written
            real(panel.isel(date=slice(0, 3)), p, **{**kwargs, "mode": "w-"})
            store._set_marker(p, None, True, False)

    monkeypatch.setattr(store, "_write", rival_finishes_first)
    with pytest.raises(hx.ValidationError, match="someone else"):
        hx.to_store(panel, p)
    monkeypatch.undo()
    assert hx.open_store(p).sizes["date"] == 3  # the rival's store is intact
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.zarr"]


def _fail_in_chunk(var: xr.DataArray, index: int, chunk: int) -> xr.DataArray:
    """``var`` chunked over date whose ``index``-th chunk raises when computed."""
    x = var.chunk({"date": chunk})

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == index:
            raise RuntimeError("boom")
        return block

    return x.copy(data=x.data.map_blocks(boom, dtype=x.dtype))


def test_a_marker_in_the_input_attrs_never_marks_a_failed_write_complete(small, tmp_path):
    # a Dataset read with plain xr.open_zarr carries the store's attrs, marker included
    p = tmp_path / "a.zarr"
    hx.to_store(small, p, chunks={"date": 10})
    raw = xr.open_zarr(p, zarr_format=3, consolidated=False)
    assert raw.attrs[MARKER] is True
    with pytest.raises(RuntimeError, match="boom"):
        hx.to_store(raw.assign(returns=_fail_in_chunk(raw.returns, 2, 10)), p, group="g")
    with pytest.raises(IncompleteStoreError):
        hx.open_store(p, group="g")
    assert store_groups(p) == ["g"]  # still listed, so `hsr-xr info` reports it
    # a failed update that replaces a variable leaves the stored one as it was
    payload = raw[["returns"]].assign(returns=_fail_in_chunk(raw.returns * 0, 2, 10))
    with pytest.raises(RuntimeError, match="boom"):
        failing = payload.assign(extra=raw.market_cap * 2).assign_attrs(title="new", more=1)
        hx.to_store(failing, p, mode="update")
    back = hx.open_store(p).load()
    xr.testing.assert_identical(back, small)  # values, coordinates and attrs
    assert sorted(n.name for n in (p).iterdir() if n.is_dir()) == sorted(
        [*small.variables, "g"]
    )  # no staged or added array is left behind


def test_append_keeps_stored_attrs_and_refuses_other_industry_names(panel, tmp_path):
    p = tmp_path / "s.zarr"
    ds = panel.assign_attrs(seed=7)
    hx.to_store(ds.isel(date=slice(0, 15)), p, chunks={"date": 5})
    tail = ds.isel(date=slice(15, None))
    other = tail.industry.copy()  # the same codes, naming other industries
    other.attrs["industry_names"] = list(panel.industry.attrs["industry_names"])[::-1]
    with pytest.raises(hx.ValidationError, match="industry_names"):
        hx.to_store(tail.assign(industry=other), p, mode="append")
    # chunked over asset unlike the store, and with a conflicting group attr
    tail = tail.assign_attrs(seed=99, note="new").chunk({"asset": 3, "date": 4})
    hx.to_store(tail, p, mode="append")
    back = hx.open_store(p)
    assert back.attrs["seed"] == 7 and back.attrs["note"] == "new"
    np.testing.assert_array_equal(back.returns.values, panel.returns.values)


def test_readers_refuse_numeric_dates_and_keep_registry_dtypes(tmp_path):
    # pandas reads 20200102 as nanoseconds since 1970: refused, never a 1970 date
    long = pd.DataFrame(
        {"date": [20200102, 20200103], "asset": ["A", "A"], "descriptor": "x", "val": [1.0, 2.0]}
    )
    with pytest.raises(hx.ValidationError, match="date.*numbers"):
        hx.from_long_frame(long)
    wide = pd.DataFrame([[0.01, 0.02]], index=[20200102], columns=["A", "B"])
    with pytest.raises(hx.ValidationError, match="returns.*numbers"):
        hx.from_wide_frames({"returns": wide})
    # registry codes and flags come back in their own dtype (missing: -1 / False)
    rows = pd.DataFrame(
        {
            "date": ["2020-01-02"] * 4,
            "asset": ["A", "B", "A", "B"],
            "descriptor": ["industry", "industry", "estimation_universe", "estimation_universe"],
            "val": [3.0, np.nan, 1.0, np.nan],
        }
    )
    ds = hx.from_long_frame(rows)
    np.testing.assert_array_equal(ds.industry.values, [[3, -1]])
    np.testing.assert_array_equal(ds.estimation_universe.values, [[True, False]])
    codes = pd.DataFrame([[0.5, 1.0]], index=pd.to_datetime(["2020-01-02"]), columns=["A", "B"])
    with pytest.raises(hx.ValidationError, match="industry.*integer"):
        hx.from_wide_frames({"industry": codes})
    for frames, variable in (({}, "frames"), ({"returns": wide.astype(str)}, "returns")):
        with pytest.raises(hx.ValidationError) as info:
            hx.from_wide_frames(frames)
        assert info.value.variable == variable
    with pytest.raises(hx.ValidationError, match="join"):
        hx.from_wide_frames({"returns": codes}, join="left")
    # an outer join keeps them too: a cell no frame has is unknown / not in the universe
    later = pd.DataFrame([[0.01, 0.02]], index=pd.to_datetime(["2020-01-03"]), columns=["A", "B"])
    flags = codes.astype(bool)
    joined = hx.from_wide_frames(
        {"returns": later, "industry": codes.round(), "estimation_universe": flags}, join="outer"
    )
    np.testing.assert_array_equal(joined.industry.values, [[0, 1], [-1, -1]])
    np.testing.assert_array_equal(joined.estimation_universe.values, [[True, True], [False, False]])
    # categorical asset labels (accepted by every step) can be stored
    small = hx.simulate_market(n_dates=5, n_assets=4, seed=0)[["returns"]]
    cat = small.assign_coords(asset=pd.CategoricalIndex(small.asset.values))
    hx.to_store(cat, tmp_path / "c.zarr")
    back = hx.open_store(tmp_path / "c.zarr").load()
    assert [str(a) for a in back.asset.values] == [str(a) for a in small.asset.values]
    np.testing.assert_array_equal(back.returns.values, small.returns.values)


def test_update_that_fails_during_the_swap_leaves_the_stored_arrays(small, tmp_path, monkeypatch):
    from pathlib import Path

    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    rename, seen = Path.rename, []

    def flaky(self, target):  # the second staged array cannot be moved into place
        if ".staged-" in self.name:
            seen.append(self.name)
            if len(seen) == 2:
                raise OSError("disk hiccup")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", flaky)
    with pytest.raises(OSError, match="hiccup"):
        hx.to_store(small[["returns", "market_cap"]] * 2, p, mode="update")
    monkeypatch.setattr(Path, "rename", rename)
    assert len(seen) == 2
    xr.testing.assert_identical(hx.open_store(p).load(), small)
    assert sorted(n.name for n in p.iterdir() if n.is_dir()) == sorted(small.variables)


def test_update_keeps_non_index_coordinates_and_replaces_strings(tmp_path):
    dates = pd.bdate_range("2020-01-01", periods=6)
    ds = xr.Dataset(
        {
            "returns": (("date", "asset"), np.zeros((6, 2))),
            "z": (("date", "factor"), np.ones((6, 3))),
            "label": ("asset", np.array(["p", "q"], dtype=object)),
        },
        coords={"date": dates, "asset": ["a", "b"], "factor": ["f1", "f2", "f3"],
                "fname": ("factor", np.array(["F1", "F2", "F3"], dtype=object))},
    )  # fmt: skip
    for consolidated in (False, True):
        p = tmp_path / f"c{consolidated}.zarr"
        hx.to_store(ds, p, consolidated=consolidated)
        hx.to_store(ds[["z"]] * 2, p, mode="update")
        back = hx.open_store(p).load()
        assert "fname" in back.coords and "fname" not in back.data_vars
        np.testing.assert_array_equal(back.z.values, 2.0)
    stored = back.label.dtype  # strings read back as StringDType; object and str replace them
    for new, expect in (
        (np.array(["P", None], dtype=object), ["P", ""]),  # missing: '' as in a fresh write
        (np.array(["x", "y"]).astype(stored), ["x", "y"]),
    ):
        hx.to_store(xr.Dataset({"label": ("asset", new)}, coords={"asset": ["a", "b"]}), p,
                    mode="update")  # fmt: skip
        assert [str(v) for v in hx.open_store(p).label.values] == expect
    with pytest.raises(hx.ValidationError, match="label"):  # numbers never become text
        hx.to_store(xr.Dataset({"label": ("asset", [1.5, 2.5])}, coords={"asset": ["a", "b"]}),
                    p, mode="update")  # fmt: skip


def test_update_whose_swap_cannot_be_undone_leaves_the_store_refused(small, tmp_path, monkeypatch):
    from pathlib import Path

    p = tmp_path / "a.zarr"
    hx.to_store(small, p)
    rename, calls = Path.rename, []

    def broken(self, target):  # the first rename works, then the disk refuses every rename
        calls.append(self.name)
        if len(calls) > 1:
            raise OSError("rename refused")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", broken)
    with pytest.raises(OSError, match="refused"):
        hx.to_store(small[["returns"]] * 2, p, mode="update")
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(IncompleteStoreError):  # "returns" is missing: never read as complete
        hx.open_store(p)
