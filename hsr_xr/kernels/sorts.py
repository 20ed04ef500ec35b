"""Batched Fama-French style portfolio sorts over the asset axis.

Pure NumPy, vectorized over a leading date axis: per-date breakpoints from
sorted cross-sections, bucket codes by comparison with the breakpoints, and
value-weighted bucket returns from segment sums. No Python loop over dates or
assets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .segments import segment_sum


def breakpoints(values: np.ndarray, mask: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Per-row quantiles of ``values`` over the entries where ``mask`` is True.

    Linear interpolation between order statistics (numpy/pandas "linear"):
    ``q = v[lo] + (v[hi] - v[lo]) * frac`` with ``pos = p * (n - 1)``.

    Parameters
    ----------
    values : ndarray, shape (B..., N)
        Cross-sections; NaN entries are ignored.
    mask : ndarray of bool, shape (B..., N)
        Entries that define the breakpoints (e.g. the NYSE universe).
    probs : sequence of float in [0, 1]
        Quantile levels.

    Returns
    -------
    ndarray, shape (B..., len(probs))
        NaN for rows with no valid entry.
    """
    x = np.where(mask & ~np.isnan(values), values, np.nan)
    ordered = np.sort(x, axis=-1)  # NaN sorts last
    n = np.sum(~np.isnan(x), axis=-1)
    p = np.asarray(probs, dtype=float)
    pos = p * np.maximum(n - 1, 0)[..., None]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[..., None])
    frac = pos - lo
    v_lo = np.take_along_axis(ordered, lo, axis=-1)
    v_hi = np.take_along_axis(ordered, hi, axis=-1)
    out = v_lo + (v_hi - v_lo) * frac
    return np.where((n > 0)[..., None], out, np.nan)


def bucket_codes(values: np.ndarray, bps: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Bucket index = number of breakpoints strictly below the value; -1 if not ``valid``.

    Buckets are right-closed: with breakpoints (q30, q70), ``x <= q30`` is 0,
    ``q30 < x <= q70`` is 1 and ``x > q70`` is 2.

    Parameters
    ----------
    values : ndarray, shape (B..., N)
    bps : ndarray, shape (B..., K)
        Breakpoints per row (NaN rows give -1 everywhere).
    valid : ndarray of bool, shape (B..., N)

    Returns
    -------
    ndarray of int64, shape (B..., N)
    """
    codes = np.zeros(values.shape, dtype=np.int64)
    for k in range(bps.shape[-1]):  # loop over the few breakpoints only
        codes += values > bps[..., k : k + 1]
    ok = valid & ~np.isnan(values) & ~np.isnan(bps).any(axis=-1, keepdims=True)
    return np.where(ok, codes, -1)


def double_sort(
    returns: np.ndarray,
    weights: np.ndarray,
    size: np.ndarray,
    characteristics: np.ndarray,
    *,
    held: np.ndarray,
    sortable: np.ndarray,
    breakpoint_mask: np.ndarray,
    size_probs: Sequence[float] = (0.5,),
    char_probs: Sequence[float] = (0.3, 0.7),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent size x characteristic sorts and value-weighted bucket returns.

    Parameters
    ----------
    returns : ndarray, shape (T, N)
        Return of each asset over the holding date (fraction).
    weights : ndarray, shape (T, N)
        Value weights (caps) for the holding date; <= 0 or NaN excludes the asset.
    size : ndarray, shape (T, N)
        Size sort variable (cap) at the sort date of each row.
    characteristics : ndarray, shape (T, N, K)
        Characteristic sort variables at the sort date of each row.
    held : ndarray of bool, shape (T, N)
        Assets that may be held on the row's date (universe); MKT uses these too.
    sortable : ndarray of bool, shape (T, N)
        Assets eligible for the sort on the row's sort date.
    breakpoint_mask : ndarray of bool, shape (T, N)
        Assets whose values set the breakpoints (within ``sortable``).
    size_probs, char_probs : sequence of float
        Breakpoint quantiles: 2 size groups and 3 characteristic groups by default.

    Returns
    -------
    port_returns : ndarray, shape (T, K, S * C)
        Value-weighted return per (sort, portfolio), portfolio index
        ``size_group * C + char_group``; NaN where the bucket is empty.
    port_count : ndarray of int64, shape (T, K, S * C)
        Number of assets in each bucket.
    market : ndarray, shape (T,)
        Value-weighted return of all held assets with a return and a weight.
    """
    n_size = len(size_probs) + 1
    n_char = len(char_probs) + 1
    n_port = n_size * n_char
    ok_hold = held & np.isfinite(returns) & np.isfinite(weights) & (weights > 0)
    ok_sort = sortable & np.isfinite(size) & (size > 0)
    bp_mask = ok_sort & breakpoint_mask

    size_bp = breakpoints(size, bp_mask, size_probs)
    size_code = bucket_codes(size, size_bp, ok_sort)

    chars = np.moveaxis(characteristics, -1, 1)  # (T, K, N)
    char_bp = breakpoints(chars, bp_mask[:, None, :], char_probs)
    char_code = bucket_codes(chars, char_bp, ok_sort[:, None, :])

    member = ok_hold[:, None, :] & (size_code[:, None, :] >= 0) & (char_code >= 0)
    codes = np.where(member, size_code[:, None, :] * n_char + char_code, -1)

    wr = np.where(ok_hold, weights * returns, 0.0)
    w = np.where(ok_hold, weights, 0.0)
    one = ok_hold.astype(float)
    stacked = np.stack([wr, w, one], axis=-1)[:, None]  # (T, 1, N, 3)
    stacked = np.broadcast_to(stacked, (*codes.shape, 3))
    sums = segment_sum(stacked, codes, n_port, trailing=True)  # (T, K, n_port, 3)
    count = np.rint(sums[..., 2]).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        port = np.where(count > 0, sums[..., 0] / sums[..., 1], np.nan)
        w_tot = w.sum(axis=-1)
        market = np.where(ok_hold.any(axis=-1), wr.sum(axis=-1) / w_tot, np.nan)
    return port, count, market
