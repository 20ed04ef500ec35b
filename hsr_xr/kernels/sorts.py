"""Batched Fama-French style portfolio sorts over the asset axis.

Vectorized over a leading date axis and processed in cache-sized blocks of dates
with reused buffers: per-date breakpoints from a partial selection (size) and one
sort of the stacked characteristic cross-sections, bucket assignment by
comparison with the breakpoints, and value-weighted bucket sums in one compiled
pass (optional Numba) or a few ``np.bincount`` scatter-adds over (date,
bucket-combination) keys. No Python loop over dates or assets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import jit
from .jit import compiled
from .quantiles import interpolate, quantile_ranks, select_quantiles, sorted_quantiles

COMBOS = 4096  # most bucket-digit combinations per scatter-add key (7**3 = 343 by default)
#: Breakpoint rounding: as pandas' groupby quantile, so that bucket membership
#: (``x <= q``) at a breakpoint equal to a data value matches it exactly.
FORMULA = "pandas"
BLOCK_CELLS = 60_000  # date-asset cells per vectorized step of double_sort (12 dates at N=5000)


def _count_not_nan(ordered: np.ndarray) -> np.ndarray:
    """Non-NaN entries per row of rows sorted with NaN last (first NaN position)."""
    nan = np.isnan(ordered)
    return np.where(nan[..., -1], np.argmax(nan, axis=-1), ordered.shape[-1])


def breakpoints(values: np.ndarray, mask: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Per-row quantiles of ``values`` over the entries where ``mask`` is True.

    Linear interpolation between order statistics (numpy/pandas "linear"),
    rounded as pandas' groupby quantile:
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
    return sorted_quantiles(ordered, _count_not_nan(ordered), probs, FORMULA)


def _count_above(
    out: np.ndarray, values: np.ndarray, bps: np.ndarray, scratch: np.ndarray
) -> np.ndarray:
    """Number of breakpoints strictly below each value (0 for NaN), into integer ``out``."""
    if out.dtype.itemsize == 1:  # compare straight into a bool view of the bytes
        np.greater(values, bps[..., 0:1], out=out.view(bool))
    else:
        np.greater(values, bps[..., 0:1], out=scratch)
        np.copyto(out, scratch)
    for k in range(1, bps.shape[-1]):  # loop over the few breakpoints only
        np.greater(values, bps[..., k : k + 1], out=scratch)
        out += scratch
    return out


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


@compiled
def _combo_bins(r, w, size, chars, ok, members, size_bp, char_bp, char_bad, binned):
    """Compiled form of a block's bucket digits and (date, combination) scatter-adds.

    Fills ``binned`` (3, b, D**K + 1) with the sums of (w*r, w, 1) per date and
    combination of the K sorts' digits, exactly as the ``np.bincount`` form
    :meth:`_BucketSums._bincount` (same bins, same order of addition): a held
    (``ok``) asset goes to bin ``1 + sum_e digit_e * D**e``, where a sort's
    digit is 0 (not in its buckets) or ``1 + size_group * C + char_group``; an
    asset is in a sort's buckets if it is in ``members`` and its characteristic
    is not NaN on a row whose breakpoints (``char_bad``) are valid. Groups count
    the breakpoints strictly below the value (:func:`_count_above`). Bin 0 (assets
    not held) is left at 0 and is dropped by the caller.
    """
    b, N = w.shape
    K = chars.shape[1]
    C = char_bp.shape[-1] + 1
    D = size_bp.shape[1] * C + C + 1  # digits per sort: S * C + 1
    binned[:] = 0.0
    base = np.empty(N, np.int64)  # 1 + size_group * C
    combo, digit = np.empty(N, np.int64), np.empty(N, np.int64)
    # simple loops over the assets (no branches: they vectorize), then the scatter-adds
    for t in range(b):
        base[:] = 1
        for q in range(size_bp.shape[1]):
            bp = size_bp[t, q]
            for a in range(N):
                base[a] += C * np.int64(size[t, a] > bp)
        combo[:] = 0
        for k in range(K - 1, -1, -1):  # Horner: sort 0 is the lowest base-D place
            digit[:] = base
            for q in range(C - 1):
                bp = char_bp[t, k, q]
                for a in range(N):
                    digit[a] += np.int64(chars[t, k, a] > bp)
            in_sort = np.int64(not char_bad[t, k])
            for a in range(N):
                x = chars[t, k, a]
                member = np.int64(members[t, a]) * np.int64(x == x) * in_sort
                combo[a] = combo[a] * D + digit[a] * member
        for a in range(N):
            if ok[t, a]:
                wa = w[t, a]
                binned[0, t, 1 + combo[a]] += wa * r[t, a]
                binned[1, t, 1 + combo[a]] += wa
                binned[2, t, 1 + combo[a]] += 1.0


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
    joint: bool = False,
    block: int | None = None,
    threads: int = 1,
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
        Characteristic sort variables at the sort date of each row (K >= 1).
    held : ndarray of bool, shape (T, N)
        Assets that may be held on the row's date (universe); MKT uses these too.
    sortable : ndarray of bool, shape (T, N)
        Assets eligible for the sort on the row's sort date.
    breakpoint_mask : ndarray of bool, shape (T, N)
        Assets whose values set the breakpoints (within ``sortable``).
    size_probs, char_probs : sequence of float
        Breakpoint quantiles: 2 size groups and 3 characteristic groups by default.
    joint : bool
        Instead of one size x characteristic sort per characteristic, one joint
        size x characteristic_1 x ... x characteristic_K sort (e.g. Fama-French's
        2x2x2x2): an asset needs every characteristic to be in a bucket. Needs
        ``(S * C + 1) ** K <= COMBOS``.
    block : int, optional
        Dates processed per vectorized step (default: about 60,000 date-asset cells).
        Blocks keep the temporaries in small reused buffers (fast, and memory
        stays bounded); results do not depend on it.
    threads : int
        Threads over date ranges (1: none).

    Returns
    -------
    port_returns : ndarray, shape (T, K, S * C), or (T, 1, S * C**K) if ``joint``
        Value-weighted return per (sort, portfolio), portfolio index
        ``size_group * C + char_group``; joint: the C-order index of
        ``(size_group, char_group_1, ..., char_group_K)``. NaN where the bucket
        is empty.
    port_count : ndarray of int64, same shape
        Number of assets in each bucket.
    market : ndarray, shape (T,)
        Value-weighted return of all held assets with a return and a weight.

    Notes
    -----
    Per block of dates: the size breakpoints come from a padded partial selection
    (:func:`.quantiles.select_quantiles`), the characteristic breakpoints from one
    in-place sort of a (dates, K, N) buffer (non-breakpoint entries NaN). The bucket
    pass then assigns each asset its bucket per sort and adds its (w*r, w, 1) to
    that bucket: (:class:`_BucketSums`) digits and scatter-adds over (date, bucket
    combination) keys: one compiled loop when Numba is enabled, else
    ``np.bincount``; the two forms give identical numbers. With ``threads`` > 1, contiguous
    date ranges run on a thread pool (the sorts and the compiled pass release the
    GIL); results do not depend on ``threads``.
    """
    if isinstance(characteristics, np.ndarray):
        chars = [characteristics[:, k, :] for k in range(characteristics.shape[1])]
    else:
        chars = [np.asarray(c) for c in characteristics]
    if not len(size_probs) or not len(char_probs):
        raise ValueError("size_probs and char_probs need at least one breakpoint level each")
    # native float64 (no copy when already so): what the compiled pass is built for
    returns, weights, size = (np.asarray(a, dtype=float) for a in (returns, weights, size))
    T, N = returns.shape
    K, S, C = len(chars), len(size_probs) + 1, len(char_probs) + 1
    if joint and (S * C + 1) ** K > COMBOS:
        raise ValueError(
            f"a joint sort of {K} characteristics needs {S * C + 1}**{K} <= {COMBOS} bins"
        )
    if block is None:
        block = BLOCK_CELLS // max(N, 1)
    block = max(1, min(block, T))
    # w*r, w, count per (date, sort, portfolio) (joint: one sort of S * C**K), and
    # w*r, w over every held asset; each date range writes only its own dates
    sums = np.empty((3, T, 1, S * C**K) if joint else (3, T, K, S * C))
    market_sums = np.empty((2, T))
    compiled_pass = jit.enabled()
    char_qs = np.asarray(char_probs, dtype=float)
    row_start = (np.arange(block * K) * N).reshape(block, K, 1)  # flat offset of each row
    count_dtype = np.uint16 if N < 2**16 else np.int64  # fast narrow row counts

    def sort_dates(lo: int, hi: int) -> None:
        """Dates lo..hi-1, block by block, with buffers of their own (one per thread)."""
        tail = N  # columns at the end of the sorted rows that hold every row's NaN block
        # reused block buffers (small enough to stay in cache)
        f_b, size_b = np.empty((block, N)), np.empty((block, N))
        ordered = np.empty((block, K, N))
        held_ok, sort_ok, tmp = (np.empty((block, N), dtype=bool) for _ in range(3))
        buckets = _BucketSums(block, N, K, S, C, joint, compiled_pass)
        for i in range(lo, hi, block):
            j = min(i + block, hi)
            b = j - i
            r, w, sz = returns[i:j], weights[i:j], size[i:j]
            f = f_b[:b]
            xs = [c[i:j] for c in chars]
            ok, oks, t = held_ok[:b], sort_ok[:b], tmp[:b]
            # holdings: 0 < w < inf, r finite, in the universe
            np.greater(w, 0.0, out=ok)
            np.less(w, np.inf, out=t)
            ok &= t
            np.isfinite(r, out=t)
            ok &= t
            ok &= held[i:j]
            # sortable: 0 < size < inf; breakpoints from sortable & breakpoint_mask entries:
            # x + (-0.0 there, NaN elsewhere) is x there exactly and NaN elsewhere
            np.greater(sz, 0.0, out=oks)
            np.less(sz, np.inf, out=t)
            oks &= t
            oks &= sortable[i:j]
            np.logical_and(oks, breakpoint_mask[i:j], out=t)
            np.logical_not(t, out=t)
            f.fill(-0.0)
            np.copyto(f, np.nan, where=t)
            # size: one quantile level by default, so partial selection beats a sort
            n_size = N - t.view(np.uint8).sum(axis=-1, dtype=count_dtype).astype(np.int64)
            size_bp = select_quantiles(np.add(sz, f, out=size_b[:b]), n_size, size_probs, FORMULA)
            od = ordered[:b]
            for k, x in enumerate(xs):
                np.add(x, f, out=od[:, k])
            od.sort(axis=-1)  # NaN last; one sort for every characteristic
            # values per row = start of its NaN block, looked for in the last `tail`
            # columns (sized from the previous block) unless some row starts earlier
            nan = np.isnan(od[:, :, N - tail :])
            if tail < N and nan[:, :, 0].any():
                tail = N
                nan = np.isnan(od)
            n = np.where(nan[:, :, -1], N - tail + np.argmax(nan, axis=-1), N)
            tail = min(N, 2 * (N - int(n.min())) + 64)
            # the quantiles' order statistics, gathered by flat index (as sorted_quantiles)
            prev, nxt, gamma = quantile_ranks(n, char_qs)
            start, flat_od = row_start[:b], od.reshape(-1)
            char_bp = interpolate(flat_od[start + prev], flat_od[start + nxt], gamma, n, FORMULA)
            # bucket members: held and sortable, on rows without a NaN size breakpoint
            oks &= ok
            size_bad = np.isnan(size_bp).any(axis=-1)
            if size_bad.any():
                oks[size_bad] = False
            buckets(r, w, sz, xs, ok, oks, size_bp, char_bp, t, sums[:, i:j], market_sums[:, i:j])

    # contiguous date ranges, one per thread (sums per date do not depend on the split)
    per_thread = max(1, -(-T // max(1, threads)))
    jit.map_blocks(
        lambda lo: sort_dates(lo, min(lo + per_thread, T)), range(0, T, per_thread), threads
    )
    count = np.rint(sums[2]).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        port = np.where(count > 0, sums[0] / sums[1], np.nan)
        market = np.where(market_sums[1] > 0, market_sums[0] / market_sums[1], np.nan)
    return port, count, market


class _BucketSums:
    """The bucket pass of :func:`double_sort`: bucket digits and scatter-adds per block.

    Each asset gets one digit per sort, 0 (in no bucket) or ``1 + size_group * C +
    char_group``; the digits of a few sorts form one key per (date, combination),
    and (w*r, w, 1) are added per key: by three ``np.bincount`` scatter-adds, or by
    one compiled loop (:func:`_combo_bins`, same bins and order of addition, so the
    two forms agree exactly). Assets that are not held go to a bin of their own that
    is dropped, so NaN products w*r never reach a sum. A sort's bucket sums add the
    combinations over the other sorts' digits in a fixed order (results do not
    depend on the block size); joint buckets are single combinations; MKT adds all
    combinations. Buffers are reused from block to block.
    """

    def __init__(
        self, block: int, N: int, K: int, S: int, C: int, joint: bool, compiled_pass: bool
    ) -> None:
        D = S * C + 1  # digits per sort
        # the digits of up to `per_key` sorts form one key (at most COMBOS combinations)
        per_key = K if joint else max(1, int(np.log(COMBOS) / np.log(D)))
        self.groups = [list(range(g, min(g + per_key, K))) for g in range(0, K, per_key)]
        # bins 1.. of a group, reshaped to one axis per digit (the e-th sort's digit is
        # the e-th lowest place, i.e. axis -1 - e), give a sort's digit sums by summing
        # the other digit axes
        self.others = [
            [tuple(2 + a for a in range(len(g)) if a != len(g) - 1 - e) for e in range(len(g))]
            for g in self.groups
        ]
        # joint bucket (s, c_1..c_K) = bin 1 + sum_e (1 + s C + c_e) D**e
        grid = np.indices((S,) + (C,) * K).reshape(K + 1, -1)
        self.joint_bins = 1 + sum((1 + grid[0] * C + grid[1 + e]) * D**e for e in range(K))
        self.D, self.C, self.block, self.joint = D, C, block, joint
        self.binned = np.empty((3, block, D ** max(len(g) for g in self.groups) + 1))
        self.compiled_pass = compiled_pass
        if compiled_pass:  # the characteristics of a block, stacked for the compiled loop
            self.chars = np.empty((block, K, N))
            return
        self.wr = np.empty((block, N))
        small = np.uint8 if D < 256 else np.uint16  # digit width
        self.base, self.digit = np.empty((block, N), dtype=small), np.empty((block, N), small)
        self.combo = np.empty((block, N), dtype=np.uint16)
        self.row_key = np.arange(min(block * (D**per_key + 1), 2**16), dtype=np.uint16)
        self.key = np.empty((block, N), dtype=np.intp)

    def __call__(self, r, w, size, xs, ok, members, size_bp, char_bp, t, sums, market) -> None:
        """Write the bucket sums of one block of b dates into ``sums`` (3, b, K, S*C)
        (joint: (3, b, 1, S*C**K)) and the market sums into ``market`` (2, b).

        ``xs`` are the K characteristic arrays (b, N), ``ok`` the held assets,
        ``members`` the held and sortable ones (rows with valid size breakpoints),
        ``size_bp`` (b, S-1) and ``char_bp`` (b, K, C-1) the breakpoints, ``t`` a
        (b, N) bool scratch array.
        """
        b = w.shape[0]
        char_bad = np.isnan(char_bp).any(axis=-1)  # (b, K)
        if self.compiled_pass:
            chars = self.chars[:b]
            for k, x in enumerate(xs):
                np.copyto(chars[:, k], x)
        else:
            wr = np.multiply(w, r, out=self.wr[:b])
            base = self.base[:b]  # 1 + size_group * C (size group = breakpoints below)
            _count_above(base, size, size_bp, t)
            base *= self.C
            base += 1
            any_bad = char_bad.any(axis=0).tolist()
        for sorts, axes in zip(self.groups, self.others, strict=True):
            M = self.D ** len(sorts)
            binned = self.binned[:, :b, : M + 1]
            if self.compiled_pass:
                k0, k1 = sorts[0], sorts[-1] + 1
                _combo_bins(
                    r,
                    w,
                    size,
                    chars[:, k0:k1],
                    ok,
                    members,
                    size_bp,
                    char_bp[:, k0:k1],
                    char_bad[:, k0:k1],
                    binned,
                )
            else:
                self._bincount(
                    binned, sorts, xs, ok, members, char_bp, char_bad, any_bad, base, wr, w, t
                )
            # bin 0 (assets not held, w*r possibly NaN) stays out of every sum
            if sorts[0] == 0:  # every held asset is in one bin of each group
                market[:] = binned[:2, :, 1:].sum(axis=-1)
            if self.joint:
                sums[:, :, 0] = binned[:, :, self.joint_bins]
                continue
            per_digit = binned[..., 1:].reshape(3, b, *(self.D,) * len(sorts))
            for e, k in enumerate(sorts):
                digit_sums = per_digit.sum(axis=axes[e]) if axes[e] else per_digit
                sums[:, :, k] = digit_sums[..., 1:]  # digit 0: in no bucket

    def _bincount(
        self, binned, sorts, xs, ok, members, char_bp, char_bad, any_bad, base, wr, w, t
    ) -> None:
        """NumPy form of :func:`_combo_bins` for the sorts of one key."""
        b = w.shape[0]
        D, M = self.D, self.D ** len(sorts)
        combo, digit, key = self.combo[:b], self.digit[:b], self.key[:b]
        # the e-th sort of a key is its e-th lowest base-D place (Horner, top first)
        for e, k in reversed(list(enumerate(sorts))):
            _count_above(digit, xs[k], char_bp[:, k], t)
            digit += base
            np.equal(xs[k], xs[k], out=t)  # characteristic not NaN
            t &= members
            if any_bad[k]:
                t[char_bad[:, k]] = False
            digit *= t
            if e == len(sorts) - 1:
                np.copyto(combo, digit)
            else:
                combo *= np.uint16(D)
                combo += digit
        # one scatter-add per quantity over (date, combo) keys of the block
        # key = date * (M + 1) + [held] + combo: bin 0 of each date collects the
        # assets not held (NaN returns) and is dropped
        combo += ok
        if self.block * (M + 1) <= 2**16:  # the whole key fits the uint16 combo
            combo += self.row_key[: b * (M + 1) : M + 1, None]
            np.copyto(key, combo)
        else:
            np.add(combo, (np.arange(b) * (M + 1))[:, None], out=key)
        flat = key.reshape(-1)
        for q, weight in enumerate((wr.reshape(-1), w.reshape(-1), None)):
            binned[q] = np.bincount(flat, weight, b * (M + 1)).reshape(b, M + 1)
