"""Batched Fama-French style portfolio sorts over the asset axis.

Pure NumPy, vectorized over a leading date axis and processed in cache-sized
blocks of dates with reused buffers: per-date breakpoints from one sort of the
stacked size and characteristic cross-sections, bucket membership by comparison
with the breakpoints, and value-weighted bucket sums from one batched matrix
product per block (characteristic one-hot indicators times size-masked
quantities). No Python loop over dates or assets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLOCK_CELLS = 40_000  # date-asset cells per vectorized step of double_sort (8 dates at N=5000)


def _count_not_nan(ordered: np.ndarray) -> np.ndarray:
    """Non-NaN entries per row of rows sorted with NaN last (first NaN position)."""
    nan = np.isnan(ordered)
    return np.where(nan[..., -1], np.argmax(nan, axis=-1), ordered.shape[-1])


def _sorted_quantiles(ordered: np.ndarray, n: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Linear-interpolation quantiles of rows sorted with NaN last, ``n`` non-NaN each.

    ``ordered`` is C-contiguous (rows are read through flat indices).
    """
    p = np.asarray(probs, dtype=float)
    top = np.maximum(n - 1, 0)[..., None]
    pos = p * top
    lo = pos.astype(np.int64)  # floor, pos >= 0
    flat = ordered.reshape(-1)
    start = (np.arange(n.size) * ordered.shape[-1]).reshape(top.shape)
    v_lo = flat[start + lo]
    v_hi = flat[start + np.minimum(lo + 1, top)]
    with np.errstate(invalid="ignore"):
        out = v_lo + (v_hi - v_lo) * (pos - lo)
    out[n == 0] = np.nan
    return out


def _select_quantiles(values: np.ndarray, n: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """:func:`_sorted_quantiles` of unsorted rows by partial selection instead of a sort.

    ``np.partition`` needs one ``kth`` for every row while the wanted rank
    ``lo = floor(p * (n - 1))`` varies with each row's count ``n``. So each row gets
    ``kth - lo`` extra ``-inf`` (and ``+inf`` for the rest of a few padding columns)
    in front: ``kth`` then lands on its rank-``lo`` entry, and the next order
    statistic is the minimum to its right. Successive levels continue on the part
    right of the previous ``kth``. Same values as a full sort, about twice as fast
    for one level.

    Parameters
    ----------
    values : ndarray, shape (R, N)
        NaN where not valid (anywhere in the row).
    n : ndarray of int, shape (R,)
        Valid entries per row.
    probs : sequence of float in [0, 1]

    Returns
    -------
    ndarray, shape (R, len(probs)); NaN rows where ``n == 0``.
    """
    probs = np.asarray(probs, dtype=float)
    order = np.argsort(probs, kind="stable")
    top = np.maximum(n - 1, 0)
    live = n > 0
    out = np.empty((values.shape[0], len(probs)))
    cur, done = values, np.zeros(len(n), dtype=np.int64)  # cur's valid ranks start at done
    for j in order:  # loop over the few levels only
        pos = probs[j] * top
        lo = np.floor(pos).astype(np.int64)
        rank = np.where(live, lo - done, 0)
        kth = int(rank.max(initial=0))
        off = np.where(live, kth - rank, 0)
        pad = int(off.max(initial=0))
        buf = np.empty((len(n), pad + cur.shape[1]))
        buf[:, :pad] = np.where(np.arange(pad) < off[:, None], -np.inf, np.inf)
        buf[:, pad:] = cur
        buf.partition(kth, axis=-1)
        v_lo = buf[:, kth]
        if buf.shape[1] > kth + 1:
            v_next = np.fmin.reduce(buf[:, kth + 1 :], axis=-1)  # NaN-ignoring minimum
            v_hi = np.where(lo + 1 <= top, v_next, v_lo)
        else:
            v_hi = v_lo
        with np.errstate(invalid="ignore"):
            out[:, j] = np.where(live, v_lo + (v_hi - v_lo) * (pos - lo), np.nan)
        cur, done = buf[:, kth:], lo
    return out


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
    return _sorted_quantiles(ordered, _count_not_nan(ordered), probs)


def _codes_into(
    out: np.ndarray, values: np.ndarray, bps: np.ndarray, scratch: np.ndarray
) -> np.ndarray:
    """:func:`bucket_codes` with every entry valid, written into int8 ``out``."""
    np.greater(values, bps[..., 0:1], out=out.view(bool))
    for k in range(1, bps.shape[-1]):  # loop over the few breakpoints only
        np.greater(values, bps[..., k : k + 1], out=scratch)
        out += scratch
    np.isnan(values, out=scratch)
    out -= scratch
    bad = np.isnan(bps).any(axis=-1)
    if bad.any():
        out[bad] = -1
    return out


def _clean_breakpoints(bps: np.ndarray) -> tuple[np.ndarray, bool]:
    """Rows with a NaN breakpoint become all-NaN; also whether every row is non-decreasing."""
    bad = np.isnan(bps).any(axis=-1, keepdims=True)
    if bad.any():
        bps = np.where(bad, np.nan, bps)
    return bps, not (bps[..., 1:] < bps[..., :-1]).any()


def _group_into(
    out: np.ndarray,
    values: np.ndarray,
    bps: np.ndarray,
    group: int,
    monotone: bool,
    scratch: np.ndarray,
    scratch2: np.ndarray,
    code: np.ndarray,
) -> None:
    """Indicator of ``bucket_codes(values, bps) == group`` written into ``out`` (any dtype).

    ``bps`` rows are all-NaN or NaN-free (see :func:`_clean_breakpoints`). With
    non-decreasing rows, group g is ``bps[g-1] < x <= bps[g]`` (one or two
    comparisons, False for NaN); otherwise the codes are counted explicitly.
    """
    last = bps.shape[-1]
    if not monotone:
        _codes_into(code, values, bps, scratch)
        np.equal(code, group, out=scratch)
    elif group == 0:
        np.less_equal(values, bps[..., 0:1], out=scratch)
    elif group == last:
        np.greater(values, bps[..., last - 1 : last], out=scratch)
    else:
        np.greater(values, bps[..., group - 1 : group], out=scratch)
        np.less_equal(values, bps[..., group : group + 1], out=scratch2)
        scratch &= scratch2
    np.copyto(out, scratch)  # bool ufuncs then one cast: faster than casting outputs


def bucket_codes(values: np.ndarray, bps: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Bucket index = number of breakpoints strictly below the value; -1 if not ``valid``.

    Buckets are right-closed: with breakpoints (q30, q70), ``x <= q30`` is 0,
    ``q30 < x <= q70`` is 1 and ``x > q70`` is 2. NaN values and rows with a NaN
    breakpoint are -1.

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
    values = np.asarray(values)
    codes = np.empty(values.shape, dtype=np.int8)
    _codes_into(codes, values, bps, np.empty(values.shape, dtype=bool))
    codes[~np.broadcast_to(valid, values.shape)] = -1
    return codes


def double_sort(
    returns: np.ndarray,
    weights: np.ndarray,
    size: np.ndarray,
    characteristics: np.ndarray | Sequence[np.ndarray],
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
    characteristics : ndarray, shape (T, K, N), or sequence of K arrays of shape (T, N)
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
        Dates processed per vectorized step (default: about 40,000 date-asset cells).
        Blocks keep the temporaries in reused, cache-sized buffers (several times
        faster at N=5000 than one step over 2520 dates, and memory stays
        bounded); results do not depend on it.

    Returns
    -------
    port_returns : ndarray, shape (T, K, S * C)
        Value-weighted return per (sort, portfolio), portfolio index
        ``size_group * C + char_group``; NaN where the bucket is empty.
    port_count : ndarray of int64, shape (T, K, S * C)
        Number of assets in each bucket.
    market : ndarray, shape (T,)
        Value-weighted return of all held assets with a return and a weight.

    Notes
    -----
    Per block, the breakpoints come from one in-place sort of a (dates, 1 + K,
    N) buffer holding size and the K characteristics (non-breakpoint entries
    NaN). The bucket sums are one batched product ``H @ V.T`` per block: ``H``
    is the one-hot characteristic group of each sort (K * C rows of 0/1), ``V``
    the w*r and w of the held, sortable assets masked per size group (2 * S
    rows), so entry (k, c, s) sums size group s and group c of sort k. Counts
    come from ``H`` times one plane holding ``base**s`` for size group s
    (``base`` a power of two above N), an exact integer sum decoded by digits.
    """
    if isinstance(characteristics, np.ndarray):
        chars = [characteristics[:, k, :] for k in range(characteristics.shape[1])]
    else:
        chars = [np.asarray(c) for c in characteristics]
    T, N = returns.shape
    K, S, C = len(chars), len(size_probs) + 1, len(char_probs) + 1
    if block is None:
        block = BLOCK_CELLS // max(N, 1)
    block = max(1, min(block, T))
    # counts ride in one float64 plane per few size groups: the sum of base**g over
    # the members of group g is exact (integers below 2**53) and decodes digit by digit
    base = 1 << max(int(N).bit_length(), 1)
    per_plane = max(1, 52 // base.bit_length())
    n_planes = -(-S // per_plane)
    # per-date results, decoded after the loop
    sums = np.empty((T, K * C, 2 * S))
    packed_counts = np.empty((T, K * C, n_planes))
    wr_sum, w_sum = np.empty(T), np.empty(T)
    # reused block buffers (small enough to stay in cache)
    wr_b, w_b, f_b = (np.empty((block, N)) for _ in range(3))
    vals = np.empty((block, 2 * S, N))
    onehot = np.empty((block, K, C, N))
    packed = np.empty((block, n_planes, N))
    xs_b = np.empty((block, K, N))
    count_dtype = np.uint16 if N < 2**16 else np.int64  # fast narrow row counts
    size_b = np.empty((block, N))
    ordered = np.empty((block, K, N))
    nan_b = np.empty((block, K, N), dtype=bool)
    held_ok, sort_ok, member = (np.empty((block, N), dtype=bool) for _ in range(3))
    tmp, tmp2 = np.empty((block, K, N), dtype=bool), np.empty((block, K, N), dtype=bool)
    code = np.empty((block, K, N), dtype=np.int8)
    for i in range(0, T, block):
        j = min(i + block, T)
        b = j - i
        r, w, sz = returns[i:j], weights[i:j], size[i:j]
        wr, wt, f, xs = wr_b[:b], w_b[:b], f_b[:b], xs_b[:b]
        ok, oks, m, t = held_ok[:b], sort_ok[:b], member[:b], tmp[:b, 0]
        # holdings: 0 < w < inf, r finite, in the universe; w*r and w zero elsewhere
        # (boolean assignment instead of copyto(where=), which is several times slower)
        np.greater(w, 0.0, out=ok)
        np.less(w, np.inf, out=t)
        ok &= t
        np.isfinite(r, out=t)
        ok &= t
        ok &= held[i:j]
        np.logical_not(ok, out=t)
        np.multiply(w, r, out=wr)
        wr[t] = 0.0
        np.copyto(wt, w)
        wt[t] = 0.0
        np.sum(wr, axis=-1, out=wr_sum[i:j])
        np.sum(wt, axis=-1, out=w_sum[i:j])
        # sortable: 0 < size < inf; breakpoints from sortable & breakpoint_mask entries:
        # x + (-0.0 there, NaN elsewhere) is x there exactly and NaN elsewhere
        np.greater(sz, 0.0, out=oks)
        np.less(sz, np.inf, out=t)
        oks &= t
        oks &= sortable[i:j]
        np.logical_and(oks, breakpoint_mask[i:j], out=t)
        np.logical_not(t, out=t)
        f.fill(-0.0)
        f[t] = np.nan
        for k, c in enumerate(chars):
            np.copyto(xs[:, k], c[i:j])
        # size: one quantile level by default, so partial selection beats a sort
        n_size = N - t.view(np.uint8).sum(axis=-1, dtype=count_dtype).astype(np.int64)
        size_bp = _select_quantiles(np.add(sz, f, out=size_b[:b]), n_size, size_probs)
        size_bp, size_mono = _clean_breakpoints(size_bp)
        od = ordered[:b]
        np.add(xs, f[:, None], out=od)
        od.sort(axis=-1)  # NaN last; one sort for every characteristic
        nan = np.isnan(od, out=nan_b[:b])  # NaN block at the end of each row
        n = np.where(nan[:, :, -1], np.argmax(nan, axis=-1), N)
        char_bp, char_mono = _clean_breakpoints(_sorted_quantiles(od, n, char_probs))
        # size groups of the held, sortable assets: masked w*r and w, packed counts
        oks &= ok
        v, pk, h = vals[:b], packed[:b], onehot[:b]
        scr = (tmp[:b, 0], tmp2[:b, 0], code[:b, 0])
        pk[...] = 0.0
        for s in range(S):
            _group_into(m, sz, size_bp, s, size_mono, *scr)
            m &= oks
            np.copyto(f, m)  # bool -> 0.0/1.0 once; f64 products are faster
            np.multiply(wr, f, out=v[:, 2 * s])
            np.multiply(wt, f, out=v[:, 2 * s + 1])
            if s % per_plane:
                f *= float(base ** (s % per_plane))
            pk[:, s // per_plane] += f
        # characteristic groups: one-hot per sort (NaN characteristic -> no group)
        scr = (tmp[:b], tmp2[:b], code[:b])
        for c in range(C):
            _group_into(h[:, :, c], xs, char_bp, c, char_mono, *scr)
        h = h.reshape(b, K * C, N)
        np.matmul(h, v.transpose(0, 2, 1), out=sums[i:j])
        np.matmul(h, pk.transpose(0, 2, 1), out=packed_counts[i:j])  # exact integers
    sums = sums.reshape(T, K, C, S, 2).transpose(0, 1, 3, 2, 4).reshape(T, K, S * C, 2)
    packed_counts = packed_counts.reshape(T, K, C, n_planes).astype(np.int64)
    count = np.empty((T, K, S, C), dtype=np.int64)
    for s in range(S):
        count[:, :, s] = packed_counts[..., s // per_plane] // base ** (s % per_plane) % base
    count = count.reshape(T, K, S * C)
    with np.errstate(invalid="ignore", divide="ignore"):
        port = np.where(count > 0, sums[..., 0] / sums[..., 1], np.nan)
        market = np.where(w_sum > 0, wr_sum / w_sum, np.nan)
    return port, count, market
