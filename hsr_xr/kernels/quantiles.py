"""NaN-skipping row quantiles with linear interpolation (``np.nanquantile`` "linear").

One definition, several ways to find the order statistics it needs. For a row
with ``n`` values (NaN skipped) and a level ``q``, numpy's "linear" method
takes the virtual index ``(n - 1) q``, the order statistics at its floor and
the next rank (:func:`quantile_ranks`), and interpolates between them
(:func:`interpolate`, numpy's two-sided formula by default, pandas' one-sided
one as an option). Rows without
any value give NaN; ``+-inf`` are values.

Strategies (all vectorized over the leading batch axes, the row is the last
axis; none loops over rows):

* :func:`sorted_quantiles`: rows already sorted with their values first (NaN
  last), e.g. after ``np.sort``; :func:`row_quantiles` sorts a copy first;
* :func:`select_quantiles`: one ``np.partition`` per level on rows padded with
  ``+-inf`` so that every row shares one ``kth`` (fast for one or two levels);
* :func:`band_quantile`: partitions only the band of ranks some row needs,
  then sorts that band (fast for one level on rows of similar counts, can
  work in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FORMULAS = ("numpy", "pandas")
#: Row-block size of :func:`select_quantiles`, in cells (768 rows of 1,000 values).
SELECT_BLOCK_CELLS = 768_000


def quantile_ranks(n: np.ndarray, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks and weight of the "linear" quantile per row and level.

    The virtual index is ``(n - 1) q`` (as numpy and pandas compute it).

    Parameters
    ----------
    n : ndarray of int, shape (B...)
        Number of values per row.
    qs : ndarray, shape (Q,)
        Levels in [0, 1].

    Returns
    -------
    prev, next : ndarray of intp, shape (B..., Q)
        Ranks (0-based, in ``0..max(n - 1, 0)``) of the two order statistics.
    gamma : ndarray, shape (B..., Q)
        Interpolation weight of ``next``.
    """
    last = np.maximum(np.asarray(n)[..., None] - 1, 0)
    virtual = qs * last
    prev = np.floor(virtual)
    return prev.astype(np.intp), np.minimum(prev + 1, last).astype(np.intp), virtual - prev


def interpolate(
    a: np.ndarray, b: np.ndarray, gamma: np.ndarray, n: np.ndarray, formula: str = "numpy"
) -> np.ndarray:
    """Linear interpolation ``a + (b - a) gamma``; NaN where ``n == 0``.

    ``a``, ``b``, ``gamma`` have shape (B..., Q) and ``n`` shape (B...).
    ``formula="numpy"`` uses numpy's two-sided form (``b - (b - a)(1 - gamma)``
    for ``gamma >= 0.5``), so results equal ``np.nanquantile`` to the last bit;
    ``"pandas"`` the one-sided form of pandas' groupby quantile. Both agree to
    rounding (~1e-16 relative); the last bit matters only where a quantile is
    compared with the data it came from (e.g. ``x <= q`` bucket membership).
    """
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {FORMULAS}, got {formula!r}")
    with np.errstate(invalid="ignore"):  # inf - inf
        diff = b - a
        if formula == "pandas":
            out = a + diff * gamma
        else:
            out = np.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)
    return np.where(np.asarray(n)[..., None] > 0, out, np.nan)


def sorted_quantiles(
    srt: np.ndarray, n: np.ndarray, qs: Sequence[float] | np.ndarray, formula: str = "numpy"
) -> np.ndarray:
    """Quantiles of rows sorted with their ``n`` values first (NaN, or anything, after).

    Parameters
    ----------
    srt : ndarray, shape (B..., N)
        Sorted rows (e.g. ``np.sort`` of rows with NaN, which sorts last).
    n : ndarray of int, shape (B...)
        Values per row.
    qs : sequence of float in [0, 1], length Q
    formula : {"numpy", "pandas"}
        See :func:`interpolate`.

    Returns
    -------
    ndarray, shape (B..., Q); NaN for rows with ``n == 0``.
    """
    prev, nxt, gamma = quantile_ranks(n, np.asarray(qs, dtype=float))
    a = np.take_along_axis(srt, prev, axis=-1)
    b = np.take_along_axis(srt, nxt, axis=-1)
    return interpolate(a, b, gamma, n, formula)


def row_quantiles(x: np.ndarray, q: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """Equal-weighted NaN-skipping quantiles of each row by a full sort.

    Same definition as ``np.nanquantile(x, q, axis=-1)`` (method "linear"),
    computed for the whole stack at once.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
        Values; NaN are skipped.
    q : float or sequence of float in [0, 1]
        Quantile levels.

    Returns
    -------
    ndarray, shape (B..., len(q)) (or (B...) for a scalar ``q``)
        NaN for rows without any value.
    """
    x = np.asarray(x, dtype=float)
    qs = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantile levels must lie in [0, 1], got {qs.tolist()}")
    srt = np.sort(x, axis=-1)  # NaN sort last
    n = np.count_nonzero(~np.isnan(x), axis=-1)
    out = sorted_quantiles(srt, n, qs)
    return out if np.ndim(q) else out[..., 0]


def select_quantiles(
    values: np.ndarray, n: np.ndarray, probs: Sequence[float], formula: str = "numpy"
) -> np.ndarray:
    """Quantiles of unsorted rows by partial selection with shared-``kth`` padding.

    ``np.partition`` needs one ``kth`` for every row while the wanted rank
    ``prev`` varies with each row's count ``n``. So a few padding columns go in
    front, ``kth - prev`` of them ``-inf`` in each row and the rest ``+inf``:
    ``kth`` then lands on the row's rank-``prev`` entry, and the next order
    statistic is the (NaN-ignoring) minimum to its right. Further levels (in
    increasing order) continue on the part from the previous ``kth`` on, padded
    again. Same values as a full sort; about twice as fast for one level.

    Parameters
    ----------
    values : ndarray, shape (R, N)
        NaN where not valid (anywhere in the row); not modified.
    n : ndarray of int, shape (R,)
        Valid entries per row.
    probs : sequence of float in [0, 1]
    formula : {"numpy", "pandas"}
        See :func:`interpolate`.

    Returns
    -------
    ndarray, shape (R, len(probs)); NaN rows where ``n == 0``.
    """
    probs = np.asarray(probs, dtype=float)
    order = np.argsort(probs, kind="stable")
    prev, nxt, gamma = quantile_ranks(n, probs)
    v_lo = np.empty((values.shape[0], len(probs)))
    v_hi = np.empty_like(v_lo)
    # blocks of rows: the padded buffers stay cache-sized and are recycled by the
    # allocator instead of page-faulting a fresh copy of the whole input (~1.5x faster)
    step = max(1, SELECT_BLOCK_CELLS // max(values.shape[-1], 1))
    for a in range(0, len(n), step):
        rows = slice(a, a + step)
        _select_rows(values[rows], n[rows], prev[rows], nxt[rows], order, v_lo[rows], v_hi[rows])
    return interpolate(v_lo, v_hi, gamma, n, formula)


def _select_rows(
    cur: np.ndarray,
    n: np.ndarray,
    prev: np.ndarray,
    nxt: np.ndarray,
    order: np.ndarray,
    v_lo: np.ndarray,
    v_hi: np.ndarray,
) -> None:
    """The order statistics of :func:`select_quantiles` for a block of rows, into
    ``v_lo`` / ``v_hi`` (R, Q)."""
    live = n > 0
    done = np.zeros(len(n), dtype=np.intp)  # cur's valid ranks start at done
    for j in order:  # loop over the few levels only
        lo = np.maximum(prev[:, j], done)  # levels in increasing order
        rank = np.where(live, lo - done, 0)
        kth = int(rank.max(initial=0))
        off = np.where(live, kth - rank, 0)
        pad = int(off.max(initial=0))
        buf = np.empty((len(n), pad + cur.shape[1]))
        buf[:, :pad] = np.where(np.arange(pad) < off[:, None], -np.inf, np.inf)
        buf[:, pad:] = cur
        buf.partition(kth, axis=-1)
        v_lo[:, j] = buf[:, kth]
        if buf.shape[1] > kth + 1:
            v_next = np.fmin.reduce(buf[:, kth + 1 :], axis=-1)  # NaN-ignoring minimum
            v_hi[:, j] = np.where(nxt[:, j] > lo, v_next, buf[:, kth])
        else:
            v_hi[:, j] = buf[:, kth]
        cur, done = buf[:, kth:], lo


def band_quantile(
    x: np.ndarray,
    q: float,
    *,
    square: bool = False,
    overwrite: bool = False,
    formula: str = "numpy",
) -> np.ndarray:
    """Quantile ``q`` of each row by ordering only the band of ranks that rows need.

    One partition at the band's start, one at its end, a sort of the band (NaN
    sort last); a full sort when the band is wide. Equals
    ``np.nanquantile(x, q, axis=-1)``.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
        Values; NaN are skipped.
    q : float in [0, 1]
    square : bool
        Give the quantile of ``x**2`` instead.
    overwrite : bool
        Reorder a float64 ``x`` in place instead of a copy.
    formula : {"numpy", "pandas"}
        See :func:`interpolate`.

    Returns
    -------
    ndarray, shape (B...); NaN for an empty row.
    """
    # a buffer of our own (the squares, a copy, or x itself), put in order in place
    if square:
        x = np.multiply(x, x, dtype=float)
    else:
        x = np.asarray(x, dtype=float) if overwrite else np.array(x, dtype=float)
    width = x.shape[-1]
    n = width - np.isnan(x).sum(axis=-1)
    has = n > 0
    prev, nxt, gamma = quantile_ranks(n, np.array([float(q)]))
    k0 = int(prev[has].min()) if has.any() else 0
    k1 = int(nxt[has].max()) if has.any() else 0
    band = k1 - k0 + 1
    if 2 * band > width:
        k0, s = 0, x
    else:
        if k0:
            x.partition(k0, axis=-1)
        s = x[..., k0:]
        if band < s.shape[-1]:
            s.partition(band - 1, axis=-1)
            s = s[..., :band]
    s.sort(axis=-1)
    last = s.shape[-1] - 1
    v_lo = np.take_along_axis(s, np.clip(prev - k0, 0, last), axis=-1)
    v_hi = np.take_along_axis(s, np.clip(nxt - k0, 0, last), axis=-1)
    return interpolate(v_lo, v_hi, gamma, n, formula)[..., 0]
