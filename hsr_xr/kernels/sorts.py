"""Batched Fama-French style portfolio sorts over the asset axis.

Pure NumPy, vectorized over a leading date axis: per-date breakpoints from
sorted cross-sections, bucket codes by comparison with the breakpoints, and
value-weighted bucket returns from masked dot products per bucket. No Python loop over dates or
assets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLOCK_CELLS = 2**17  # date-asset cells per vectorized step of double_sort


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
    ordered = np.where(mask, values, np.nan)
    ordered.sort(axis=-1)  # NaN sorts last
    n = ordered.shape[-1] - np.count_nonzero(np.isnan(ordered), axis=-1)
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
    ndarray of int8, shape (B..., N)
    """
    codes = (values > bps[..., 0:1]).view(np.int8)
    for k in range(1, bps.shape[-1]):  # loop over the few breakpoints only
        codes += values > bps[..., k : k + 1]
    ok = valid & ~np.isnan(values) & ~np.isnan(bps).any(axis=-1, keepdims=True)
    return np.where(ok, codes, np.int8(-1))


def bucket_sums(values: np.ndarray, codes: np.ndarray, n_buckets: int) -> np.ndarray:
    """Sums of several quantities per bucket, for a few buckets, batched over dates.

    For a handful of buckets one masked dot product per bucket is several times
    faster than a scatter-add (``segments.segment_sum``'s bincount) over the
    replicated (date, sort, asset) codes; the loop runs over buckets only.

    Parameters
    ----------
    values : ndarray, shape (T, V, N)
        Finite quantities to sum (V of them, e.g. w*r, w, 1).
    codes : ndarray of int, shape (T, K, N)
        Bucket per asset for each of K sorts, ``-1`` = in no bucket.
    n_buckets : int

    Returns
    -------
    ndarray, shape (T, K, n_buckets, V)
    """
    T, K, N = codes.shape
    out = np.empty((T, K, n_buckets, values.shape[1]))
    member = np.empty((T, N))
    for k in range(K):
        for b in range(n_buckets):
            np.equal(codes[:, k, :], b, out=member, casting="unsafe")
            out[:, k, b, :] = np.matmul(values, member[:, :, None])[..., 0]
    return out


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
    block: int | None = None,
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
    characteristics : ndarray, shape (T, K, N)
        Characteristic sort variables at the sort date of each row.
    held : ndarray of bool, shape (T, N)
        Assets that may be held on the row's date (universe); MKT uses these too.
    sortable : ndarray of bool, shape (T, N)
        Assets eligible for the sort on the row's sort date.
    breakpoint_mask : ndarray of bool, shape (T, N)
        Assets whose values set the breakpoints (within ``sortable``).
    size_probs, char_probs : sequence of float
        Breakpoint quantiles: 2 size groups and 3 characteristic groups by default.
    block : int, optional
        Dates processed per vectorized step (default: about 2**17 date-asset cells).
        Blocks keep the temporaries small and cache-resident (2-3x faster at
        N=5000 than one step over 2520 dates, and memory stays bounded); results
        do not depend on it.

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
    T = returns.shape[0]
    if block is None:
        block = max(1, BLOCK_CELLS // max(returns.shape[-1], 1))
    if T > block:
        args = (returns, weights, size, characteristics, held, sortable, breakpoint_mask)
        parts = [
            double_sort(
                *(a[i : i + block] for a in args[:4]),
                held=args[4][i : i + block],
                sortable=args[5][i : i + block],
                breakpoint_mask=args[6][i : i + block],
                size_probs=size_probs,
                char_probs=char_probs,
                block=block,
            )
            for i in range(0, T, block)
        ]
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts, strict=True))
    n_size = len(size_probs) + 1
    n_char = len(char_probs) + 1
    ok_hold = held & np.isfinite(returns) & np.isfinite(weights) & (weights > 0)
    ok_sort = sortable & np.isfinite(size) & (size > 0)
    bp_mask = ok_sort & breakpoint_mask

    size_bp = breakpoints(size, bp_mask, size_probs)
    size_code = bucket_codes(size, size_bp, ok_sort & ok_hold)

    chars = np.asarray(characteristics)
    char_bp = breakpoints(chars, bp_mask[:, None, :], char_probs)
    # size_code >= 0 already implies held and sortable
    char_code = bucket_codes(chars, char_bp, size_code[:, None, :] >= 0)
    codes = np.where(char_code >= 0, size_code[:, None, :] * np.int8(n_char) + char_code, -1)

    wr = np.where(ok_hold, weights * returns, 0.0)
    w = np.where(ok_hold, weights, 0.0)
    sums = bucket_sums(np.stack([wr, w, ok_hold.astype(float)], axis=1), codes, n_size * n_char)
    count = np.rint(sums[..., 2]).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        port = np.where(count > 0, sums[..., 0] / sums[..., 1], np.nan)
        market = np.where(ok_hold.any(axis=-1), wr.sum(axis=-1) / w.sum(axis=-1), np.nan)
    return port, count, market
