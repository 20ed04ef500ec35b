"""Shared row-quantile kernels (hsr_xr.kernels.quantiles) vs np.nanquantile and a plain loop."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hsr_xr.kernels import quantiles as Q
from hsr_xr.kernels import sorts, specific, standardize

SPECIAL = [np.nan, np.nan, np.inf, -np.inf, 0.0, 1.0, 1.0, -2.5]
FINITE_TIES = [np.nan, np.nan, 0.0, 1.0, 1.0, -2.5, 3.0]

rows = st.tuples(st.integers(1, 5), st.integers(1, 25))
levels = st.lists(
    st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.995, 1.0]), st.floats(0.0, 1.0)),
    min_size=1,
    max_size=4,
)


def panels(specials):
    elements = st.one_of(st.sampled_from(specials), st.floats(-1e3, 1e3))
    return rows.flatmap(lambda s: arrays(np.float64, s, elements=elements)).map(_with_empty_row)


def _with_empty_row(x):
    if x.shape[0] > 2:
        x[-1] = np.nan  # an all-NaN row
    return x


def nanquantile(x, qs):
    """numpy reference, (R, Q); array levels (numpy's scalar-q path treats +-inf ends apart)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.moveaxis(np.nanquantile(x, np.asarray(qs, dtype=float), axis=-1), 0, -1)


def pandas_loop(x, qs):
    """Plain per-row reference of pandas' groupby quantile: v[lo] + (v[hi] - v[lo]) frac."""
    out = np.full((x.shape[0], len(qs)), np.nan)
    for r, row in enumerate(x):
        v = sorted(float(a) for a in row if not math.isnan(a))
        if not v:
            continue
        for j, q in enumerate(qs):
            pos = q * (len(v) - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, len(v) - 1)
            out[r, j] = v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return out


def counts(x):
    return np.count_nonzero(~np.isnan(x), axis=-1)


def strategies(x, qs, formula):
    """Every strategy's (R, Q) result on the same rows."""
    n = counts(x)
    x_before = x.copy()
    got = {
        "sorted": Q.sorted_quantiles(np.sort(x, axis=-1), n, qs, formula),
        "select": Q.select_quantiles(x, n, qs, formula),
        "band": np.stack([Q.band_quantile(x, q, formula=formula) for q in qs], axis=-1),
    }
    np.testing.assert_array_equal(x, x_before)  # inputs are not modified
    if formula == "numpy":
        got["row_quantiles"] = Q.row_quantiles(x, qs)
    return got


@settings(max_examples=150, deadline=None)
@given(panels(SPECIAL), levels)
def test_numpy_formula_equals_nanquantile(x, qs):
    want = nanquantile(x, qs)
    for name, got in strategies(x, qs, "numpy").items():
        # bit for bit, including NaN and +-inf where numpy gives them
        np.testing.assert_array_equal(got, want, err_msg=name)


@settings(max_examples=150, deadline=None)
@given(panels(FINITE_TIES), levels)
def test_pandas_formula_close_to_nanquantile_and_equal_to_loop(x, qs):
    want = nanquantile(x, qs)
    loop = pandas_loop(x, qs)
    for name, got in strategies(x, qs, "pandas").items():
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(got, loop, err_msg=name)


@settings(max_examples=100, deadline=None)
@given(panels(SPECIAL), levels)
def test_pandas_formula_with_infinities_equals_loop(x, qs):
    loop = pandas_loop(x, qs)
    for name, got in strategies(x, qs, "pandas").items():
        np.testing.assert_array_equal(got, loop, err_msg=name)


@settings(max_examples=50, deadline=None)
@given(panels(FINITE_TIES), st.floats(0.0, 1.0))
def test_band_square_and_overwrite(x, q):
    want = nanquantile(x * x, [q])[:, 0]
    np.testing.assert_array_equal(Q.band_quantile(x, q, square=True), want)
    buf = x.copy()
    np.testing.assert_array_equal(
        Q.band_quantile(buf, q, overwrite=True), nanquantile(x, [q])[:, 0]
    )


def test_band_narrow_and_wide_paths():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 300))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[5] = np.nan
    for q in (0.0, 0.01, 0.5, 0.995, 1.0):  # narrow bands (partitions) and the full sort
        np.testing.assert_array_equal(Q.band_quantile(x, q), nanquantile(x, [q])[:, 0])


def test_select_many_levels_any_order_and_batch_shapes():
    rng = np.random.default_rng(2)
    x = rng.standard_t(3, size=(30, 200))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0] = np.nan
    x[1, 1:] = np.nan  # a single value
    qs = [0.9, 0.1, 0.5, 0.5, 0.0, 1.0]
    np.testing.assert_array_equal(Q.select_quantiles(x, counts(x), qs), nanquantile(x, qs))
    cube = x.reshape(5, 6, 200)
    np.testing.assert_array_equal(
        Q.sorted_quantiles(np.sort(cube, axis=-1), counts(cube), qs),
        nanquantile(x, qs).reshape(5, 6, len(qs)),
    )


def test_select_in_row_blocks_equals_one_block(monkeypatch):
    """Row blocks (each padded for its own counts) give the whole-batch values."""
    rng = np.random.default_rng(5)
    x = rng.standard_t(3, size=(37, 120))
    x[rng.random(x.shape) < rng.random((37, 1))] = np.nan  # counts from ~120 down to 0
    x[4] = np.nan
    qs = [0.7, 0.3, 0.995]
    whole = Q.select_quantiles(x, counts(x), qs)
    monkeypatch.setattr(Q, "SELECT_BLOCK_CELLS", 5 * 120)  # blocks of 5 rows, the last of 2
    np.testing.assert_array_equal(Q.select_quantiles(x, counts(x), qs), whole)
    np.testing.assert_array_equal(whole, nanquantile(x, qs))


def test_callers_use_the_shared_kernels():
    assert standardize.row_quantiles is Q.row_quantiles
    assert specific.row_quantile is Q.band_quantile
    rng = np.random.default_rng(3)
    v = rng.normal(size=(4, 50))
    mask = rng.random(v.shape) < 0.7
    np.testing.assert_array_equal(
        sorts.breakpoints(v, mask, (0.3, 0.7)),
        pandas_loop(np.where(mask, v, np.nan), [0.3, 0.7]),
    )


def test_bad_levels_and_formula():
    with pytest.raises(ValueError, match="quantile levels"):
        Q.row_quantiles(np.zeros((2, 3)), [0.5, 1.5])
    with pytest.raises(ValueError, match="formula"):
        Q.sorted_quantiles(np.zeros((2, 3)), np.array([3, 3]), [0.5], "midpoint")
