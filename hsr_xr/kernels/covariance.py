"""Factor covariance kernels: EWMA, Newey–West, eigenfactor and volatility-regime adjustments.

Pure NumPy on stacked arrays. ``f`` is a ``(T, K)`` panel of factor returns
(date × factor, NaN = not observed). The forecast at row ``t`` uses rows
``0..t`` and applies to the return of row ``t + 1``.

EWMA convention (weight-normalized from the first observation): with
``lam = 0.5 ** (1 / halflife)``, the EWMA of a series ``x`` at ``t`` is

    sum_{s<=t, x_s observed} lam**(t-s) x_s / sum_{s<=t, x_s observed} lam**(t-s)

so there is no start-at-zero bias (a seed defect). Cross moments of two
factors use only the dates where both are observed (pairwise), so a factor with
missing returns never poisons the others. Means are taken as zero, as is usual
for daily risk models.
"""

from __future__ import annotations

import numpy as np

from . import jit
from .quantiles import select_quantiles


def decay(halflife: float) -> float:
    """EWMA decay per date, ``0.5 ** (1 / halflife)``; ``inf`` gives 1 (equal weights)."""
    return 1.0 if np.isinf(halflife) else float(0.5 ** (1.0 / halflife))


@jit.compiled
def _scan_rows(y, lam):
    """``y[t] += lam * y[t - 1]`` for t = 1.. in place, y (n, M): the recursion itself."""
    for t in range(1, y.shape[0]):
        for m in range(y.shape[1]):
            y[t, m] += lam * y[t - 1, m]


def ewma_scan(
    x: np.ndarray,
    lam: float,
    *,
    axis: int = 0,
    carry: np.ndarray | None = None,
    overwrite: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially decayed running sum ``y_t = lam * y_{t-1} + x_t`` along ``axis``.

    Two-level blocked scan with blocks of ``B ~ sqrt(n)`` dates: (1) the recursion
    runs inside every block at once (``B`` array steps, each over all blocks), (2) the
    block-end states are carried across blocks (one step per block), (3) each block
    adds its carried-in state times ``lam**(i+1)`` (``B`` array steps). About
    ``3 sqrt(n)`` array operations on strided views, no ``lam**-n`` growth, as
    accurate as the recursion, and several times faster than ``np.cumsum`` along a
    leading axis (NumPy's accumulate does not vectorize across the batch). With
    Numba (:mod:`.jit`) the recursion runs as one compiled pass instead.

    Parameters
    ----------
    x : ndarray
        Terms; the scan runs along ``axis`` and every other axis is a batch axis.
    lam : float
        Decay in [0, 1]; 1 is a plain cumulative sum.
    carry : ndarray, optional
        ``y_{-1}``, shape of ``x`` without ``axis`` (default zeros).
    overwrite : bool
        Reuse ``x`` (float64) as the output buffer.

    Returns
    -------
    y : ndarray, shape of ``x``
    last : ndarray, the final ``y`` (the carry for the next block)
    """
    x = np.asarray(x, dtype=float)
    axis = axis % max(x.ndim, 1)
    out = x if overwrite else x.copy()
    y = np.moveaxis(out, axis, 0)  # a view: the scan writes into ``out``
    n = y.shape[0]
    if n == 0:
        last = np.zeros(y.shape[1:]) if carry is None else np.asarray(carry, dtype=float)
        return out, last
    if carry is not None:
        y[0] += lam * np.asarray(carry, dtype=float)
    if jit.enabled() and (y.ndim <= 2 or y.flags.c_contiguous):  # rows reshape as a view
        _scan_rows(y.reshape(n, -1), lam)
        return out, y[-1].copy()
    B = max(1, int(np.sqrt(n)))
    for i in range(1, min(B, n)):  # (1) offset i of every block
        cur = y[i::B]
        cur += lam * y[i - 1 :: B][: len(cur)]
    ends = y[B - 1 :: B]  # last rows of the complete blocks
    lam_b = lam**B
    for k in range(1, len(ends)):  # (2) carry across blocks
        ends[k] += lam_b * ends[k - 1]
    for i in range(B - 1):  # (3) carried-in state of blocks 1..
        cur = y[B + i :: B]
        if len(cur):
            cur += lam ** (i + 1) * ends[: len(cur)]
    return out, y[-1].copy()


def bartlett(lags: int) -> np.ndarray:
    """Newey–West Bartlett weights ``1 - l / (lags + 1)`` for ``l = 1..lags``."""
    return 1.0 - np.arange(1, lags + 1) / (lags + 1.0)


def _lagged(z: np.ndarray, lag: int, axis: int) -> np.ndarray:
    """``z`` shifted by ``lag`` along ``axis`` (``z_{t-lag}``), zero-filled at the start."""
    if lag == 0:
        return z
    out = np.zeros_like(z)
    if lag >= z.shape[axis]:  # no pair that far apart: all zero
        return out
    src = [slice(None)] * z.ndim
    dst = [slice(None)] * z.ndim
    src[axis] = slice(0, z.shape[axis] - lag)
    dst[axis] = slice(lag, None)
    out[tuple(dst)] = z[tuple(src)]
    return out


def _mask_few(var: np.ndarray, miss: np.ndarray, need: int, *, block: int = 128) -> None:
    """Set ``var`` (date first) to NaN before ``need`` observations, in place.

    Counts are scanned in blocks of dates (carried between blocks), each block only
    over the series still short of ``need``; the scan stops when none is left. Counts
    never fall, so a series is short on its first ``r`` dates: those are set at the end.
    """
    T = var.shape[0]
    cols = np.arange(int(np.prod(var.shape[1:])))  # flat batch index of the series still short
    carry = np.zeros(len(cols))
    short_dates = np.zeros(len(cols), dtype=np.intp)
    for a in range(0, T, block):
        b = min(a + block, T)
        obs = ~miss[a:b].reshape(b - a, -1)[:, cols]
        cnt, carry = ewma_scan(obs, 1.0, carry=carry, overwrite=False)
        short_dates[cols] += np.add.reduce(cnt < need, axis=0, dtype=np.intp)
        short = carry < need
        cols, carry = cols[short], carry[short]
        if not len(cols):
            break
    R = int(short_dates.max(initial=0))
    rows = np.arange(R).reshape((R,) + (1,) * (var.ndim - 1))
    np.copyto(var[:R], np.nan, where=rows < short_dates.reshape(var.shape[1:]))


def valid_counts(nan: np.ndarray) -> np.ndarray:
    """Values per row (last axis) from the NaN mask ``nan (..., N)``."""
    nan = np.ascontiguousarray(nan, dtype=bool)
    return nan.shape[-1] - np.add.reduce(nan.view(np.uint8), axis=-1, dtype=np.intp)


def counted_quantile(x: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row of ``x (..., N)`` holding ``n`` values (NaN skipped).

    ``np.nanquantile`` ("linear") values by one padded partition
    (:func:`hsr_xr.kernels.quantiles.select_quantiles`); NaN for an empty row.
    """
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    flat = x.reshape(-1, x.shape[-1])
    return select_quantiles(flat, np.reshape(n, -1), [q])[:, 0].reshape(x.shape[:-1])


def ewma_nw_variance(
    x: np.ndarray,
    halflife: float,
    *,
    lags: int = 0,
    min_periods: int = 1,
    axis: int = -1,
    counts: bool = True,
    bound: np.ndarray | None = None,
    bound_quantile: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Weight-normalized EWMA variance with a Newey–West correction, along ``axis``.

    ``var_t = G0_t + sum_{l=1..lags} 2 (1 - l/(lags+1)) G_l,t`` with
    ``G_l,t = sum_s lam**(t-s) x_s x_{s-l} / sum_s lam**(t-s)`` over the dates ``s <= t``
    where both ``x_s`` and ``x_{s-l}`` are observed (``G_l = 0`` without such a pair).
    Where the corrected value is not positive the plain EWMA ``G0`` is used.

    Parameters
    ----------
    x : ndarray (..., T, ...)
        Returns with NaN for missing; every axis but ``axis`` is a batch axis.
    halflife : float
        EWMA half-life in dates.
    lags : int
        Newey–West lags (0 = plain EWMA).
    min_periods : int
        Observations of ``x`` (up to and including t) needed; NaN before.
    counts : bool
        Also return the observation counts (else ``None``, which is cheaper).
    bound : ndarray (T,), optional
        Per-date bound on ``|x|``: ``x`` is clipped to ``[-bound, bound]`` first
        (NaN stays NaN; without lags only the squares are formed, ``min(x**2, bound**2)``).
    bound_quantile : float, optional
        Instead of ``bound``: ``sqrt`` of each date's ``bound_quantile`` quantile of
        ``x**2`` over the batch axes (NaN skipped; no bound on a date without values).

    Returns
    -------
    var : ndarray, shape of ``x`` (squared units of ``x``)
    n_obs : ndarray (float counts) or None, observations up to and including each date
    """
    # date first and C-contiguous: for the usual (asset, date) view of a (date, asset)
    # array this is a free view; an (asset, date)-ordered block (as Dask hands over)
    # is transposed once, which keeps the scan's row steps contiguous (4x faster)
    x = np.ascontiguousarray(np.moveaxis(np.asarray(x, dtype=float), axis, 0))
    miss = np.isnan(x)
    mf = np.subtract(1.0, miss.view(np.uint8))  # 1.0 where observed
    sq = None
    if bound_quantile is not None:  # the squares serve the quantile and the EWMA
        sq = np.multiply(x, x)
        T = x.shape[0]
        b2 = counted_quantile(sq.reshape(T, -1), valid_counts(miss.reshape(T, -1)), bound_quantile)
        bound = np.sqrt(np.maximum(b2, 0.0))
        bound[np.isnan(bound)] = np.inf
    if bound is not None:
        bound = np.asarray(bound, dtype=float).reshape((-1,) + (1,) * (x.ndim - 1))
    z = None
    if lags:
        z = np.where(miss, 0.0, x if bound is None else np.clip(x, -bound, bound))
    lam = decay(halflife)
    need = max(min_periods, 1)
    n_obs = ewma_scan(mf, 1.0)[0] if counts else None
    var = g0 = None
    weights = bartlett(lags)
    for lag in range(lags + 1):
        if lags:
            x2 = z * _lagged(z, lag, 0)
            w = mf * _lagged(mf, lag, 0)
        else:  # x**2 with 0 where missing; mf is not needed again: reuse it
            x2 = np.multiply(x, x) if sq is None else sq
            if bound is not None:  # |x| clipped at bound <=> x**2 capped at bound**2
                np.minimum(x2, bound * bound, out=x2)
            np.copyto(x2, 0.0, where=miss)
            w = mf
        num, _ = ewma_scan(x2, lam, overwrite=True)
        den, _ = ewma_scan(w, lam, overwrite=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.divide(num, den, out=num)
        if lag == 0:
            g0 = g
            var = g.copy() if lags else g
        else:
            g[den <= 0] = 0.0
            var += 2.0 * weights[lag - 1] * g
    if lags:
        var = np.where(var > 0, var, g0)
    if n_obs is not None:
        var[n_obs < need] = np.nan
    elif need > 1:
        _mask_few(var, miss, need)
    return np.moveaxis(var, 0, axis), None if n_obs is None else np.moveaxis(n_obs, 0, axis)


def _mask_groups(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct observation patterns of the columns of ``m (T, K)``: ``(T, G)`` floats, codes (K,).

    Pairwise EWMA weight sums depend only on the two columns' patterns, so they are
    computed on the (usually tiny) G x G pattern pairs instead of K x K.
    """
    seen: dict[bytes, int] = {}
    packed = np.packbits(m, axis=0).T  # (K, ceil(T/8)) bytes per column
    codes = np.array([seen.setdefault(col.tobytes(), len(seen)) for col in packed], dtype=np.int64)
    first = np.unique(codes, return_index=True)[1]
    return m[:, first].astype(float), codes


def ewma_covariance(
    f: np.ndarray,
    *,
    vol_halflife: float,
    corr_halflife: float,
    vol_lags: int = 0,
    corr_lags: int = 0,
    min_periods: int = 1,
    block: int = 32,
) -> np.ndarray:
    """EWMA factor covariance with separate volatility and correlation half-lives.

    ``F_t[i, j] = rho_t[i, j] * sigma_t[i] * sigma_t[j]``: ``sigma`` from
    :func:`ewma_nw_variance` (``vol_halflife``, ``vol_lags``); ``rho`` from the
    pairwise Newey–West EWMA cross moments ``C = G0 + sum_l w_l (G_l + G_l')``
    (``corr_halflife``, ``corr_lags``, ``G_l[i, j]`` pairing ``f_i,s`` with
    ``f_j,s-l`` over the dates where both are observed, each lag normalized by its
    own weight sum), ``rho = C / sqrt(diag C diag C')`` clipped to [-1, 1]. With
    equal half-lives, no lags and no missing data this is exactly the EWMA covariance.

    A factor with fewer than ``min_periods`` observations has NaN rows/columns; a
    pair of valid factors observed together fewer than ``min_periods`` times gets
    correlation 0. The result is exactly symmetric but not yet PSD-clipped
    (see :func:`clip_psd`).

    The K x K cross moments are formed and scanned (:func:`ewma_scan`, state
    carried between blocks) in blocks of ``block`` dates, and every block is
    normalized with batched array operations that stay in cache. The pairwise
    weight sums depend only on the columns' observation patterns and are scanned,
    vectorized, on the (few) distinct pattern pairs. Without lags, the factors of
    the most common pattern share one weight sum, which cancels in ``rho``: that
    block is a weighted Gram correlation (|rho| <= 1 up to rounding, so it is
    scaled in one pass without the clip); the other rows and columns are
    normalized and clipped pair by pair.

    Parameters
    ----------
    f : ndarray (T, K)
        Factor returns, NaN = not observed.
    block : int
        Dates per block (the block's K x K matrices stay in cache).

    Returns
    -------
    ndarray (T, K, K), squared return units per date.
    """
    f = np.asarray(f, dtype=float)
    T, K = f.shape
    L = int(corr_lags)
    m = ~np.isnan(f)
    z = np.where(m, f, 0.0)
    var, _ = ewma_nw_variance(
        f, vol_halflife, lags=vol_lags, min_periods=min_periods, axis=0, counts=False
    )
    sd = np.sqrt(var)
    mg, code = _mask_groups(m)
    single = mg.shape[1] == 1
    lam = decay(corr_halflife)
    mp = max(min_periods, 1)
    # inverse pairwise weight sums per lag (L+1, T, G, G); 0 where a lag has no pair
    inv_w = np.empty((L + 1, T, mg.shape[1], mg.shape[1]))
    for lag in range(L + 1):
        den, _ = ewma_scan(mg[:, :, None] * _lagged(mg, lag, 0)[:, None, :], lam, overwrite=True)
        with np.errstate(divide="ignore"):
            inv_w[lag] = np.where(den > 0, 1.0 / den, 0.0)
    # pairs observed together fewer than min_periods times get correlation 0
    few = np.cumsum(mg[:, :, None] * mg[:, None, :], axis=0) < mp  # (T, G, G)
    inv_w[:, few] = 0.0
    G = mg.shape[1]
    inv_w = inv_w.reshape(L + 1, T, G * G)
    pair = code[:, None] * G + code[None, :]  # (K, K) index into the G x G pattern pairs
    pair_diag = pair[np.arange(K), np.arange(K)]
    minor = np.flatnonzero(code != np.bincount(code).argmax())  # outside the main pattern
    weights = bartlett(L)
    zl = np.stack([_lagged(z, lag, 0) for lag in range(L + 1)])  # (L+1, T, K): z_{t-lag}
    carry = np.zeros((L + 1, K, K))
    buf = np.empty((L + 1, min(block, T), K, K)) if L else None
    out = np.empty((T, K, K))
    diag = np.arange(K)
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in range(0, T, block):
            b = min(a + block, T)
            C = out[a:b]
            # raw moments sum_s lam**(t-s) z_s z_{s-lag}' of the block (scanned in place)
            g = C[None] if L == 0 else buf[:, : b - a]
            if L:
                np.multiply(z[a:b, :, None], zl[:, a:b, None, :], out=g)
            else:  # the same products; einsum's outer product loop is faster
                np.einsum("ti,tj->tij", z[a:b], z[a:b], out=C)
            _, carry = ewma_scan(g, lam, axis=1, carry=carry, overwrite=True)
            if L:
                # inverse pairwise weight sums, (L+1, n, K, K) or broadcastable
                iw = inv_w[:, a:b, :1, None] if single else np.take(inv_w[:, a:b], pair, axis=-1)
                g *= iw
                nw = np.tensordot(weights, g[1:], axes=1)
                nw += np.swapaxes(nw, 1, 2).copy()  # exactly symmetric
                np.add(g[0], nw, out=C)
                d2 = C[:, diag, diag]
                d2 = np.where(d2 > 0, d2, g[0][:, diag, diag])
                inv = np.where(d2 > 0, 1.0 / np.sqrt(d2), 0.0)
                C *= inv[:, :, None] * inv[:, None, :]
                np.clip(C, -1.0, 1.0, out=C)
                C[:, diag, diag] = 1.0
                C *= sd[a:b, :, None] * sd[a:b, None, :]
                continue
            # No lags. Pairs of the most common observation pattern share one weight
            # sum, which cancels: F_ij = num_ij c_i c_j, c = sd / sqrt(diag num), a
            # weighted Gram matrix (|rho| <= 1 up to rounding). Rows and columns of
            # the other factors are normalized pair by pair and clipped.
            s = sd[a:b]
            dnum = C[:, diag, diag]
            rows = None
            if len(minor):
                w0 = inv_w[0, a:b]
                inv = dnum * np.take(w0, pair_diag, axis=-1)
                inv = np.where(inv > 0, 1.0 / np.sqrt(inv), 0.0)
                rows = C[:, minor, :] * np.take(w0, pair[minor], axis=-1)
                rows *= inv[:, minor, None] * inv[:, None, :]
                np.clip(rows, -1.0, 1.0, out=rows)
                rows *= s[:, minor, None] * s[:, None, :]
            c = s * np.where(dnum > 0, 1.0 / np.sqrt(dnum), 0.0)
            C *= np.einsum("ti,tj->tij", c, c)
            if rows is not None:
                C[:, minor, :] = rows
                C[:, :, minor] = np.swapaxes(rows, 1, 2)
            C[:, diag, diag] = s * s
    return out


def _valid_factors(F: np.ndarray) -> np.ndarray:
    """(T, K) mask of factors with a finite variance forecast."""
    return np.isfinite(np.diagonal(F, axis1=-2, axis2=-1))


def _fill_invalid(F: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid rows/columns by zeros so that the matrix can be decomposed."""
    keep = valid[:, :, None] & valid[:, None, :]
    return np.where(keep, F, 0.0)


def _restore_invalid(F: np.ndarray, valid: np.ndarray) -> np.ndarray:
    keep = valid[:, :, None] & valid[:, None, :]
    return np.where(keep, F, np.nan)


def _not_pd(G: np.ndarray, lo: int, hi: int, leaf: int = 8) -> list[np.ndarray]:
    """Indices in ``lo:hi`` of the matrices of ``G`` that fail Cholesky: the batch, then leaves."""
    try:
        np.linalg.cholesky(G[lo:hi])
        return []
    except np.linalg.LinAlgError:
        if hi - lo <= leaf:
            return [np.arange(lo, hi)]
        return [b for c in range(lo, hi, leaf) for b in _not_pd(G, c, min(c + leaf, hi), leaf)]


def _cholesky_fails(G: np.ndarray) -> np.ndarray:
    """Indices of the matrices of ``G (n, K, K)`` (finite, K >= 1) that may fail a
    Cholesky test: one batched ``np.linalg.cholesky``, then leaves of 8 retested
    (a failing leaf is returned whole; the eigenvalue clip then finds the culprits)."""
    if G.shape[-1] == 0:
        return np.zeros(0, dtype=np.intp)
    bad = _not_pd(G, 0, len(G))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.intp)


def shared_history(f: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Dates where every valid factor has the same observation history so far.

    On such a date the pairwise EWMA moments of :func:`ewma_covariance` (without
    correlation lags) share one weight sum, so the correlation is that of a
    weighted Gram matrix: PSD by construction (up to rounding).

    Parameters
    ----------
    f : ndarray (T, K)
        Factor returns, NaN = not observed.
    valid : ndarray of bool (T, K)
        Factors with a forecast on each date.

    Returns
    -------
    ndarray of bool (T,)
    """
    mg, code = _mask_groups(~np.isnan(f))
    G = mg.shape[1]
    # differ[t, g, h]: patterns g and h differ on some date <= t
    differ = np.cumsum(mg[:, :, None] != mg[:, None, :], axis=0) > 0
    # vg[t, g]: pattern g has a valid factor on date t
    order = np.argsort(code, kind="stable")
    starts = np.searchsorted(code[order], np.arange(G))
    vg = np.logical_or.reduceat(np.asarray(valid, dtype=bool)[:, order], starts, axis=1)
    return ~(differ & vg[:, :, None] & vg[:, None, :]).any(axis=(1, 2))


def clip_psd(
    F: np.ndarray, *, block: int = 64, skip: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clip the negative eigenvalues of each symmetric ``F_t`` at 0, in place.

    Dates whose matrix (restricted to its valid factors) passes a Cholesky test
    (batched over ``block`` dates) are left as they are; the others become
    ``U diag(max(w, 0)) U'`` (formed as ``F`` minus its negative eigenpairs,
    symmetrized). Rows and columns of factors without a forecast stay NaN.

    Parameters
    ----------
    F : ndarray (T, K, K)
        Symmetric matrices; overwritten with the result.
    skip : ndarray of bool (T,), optional
        Dates known to be PSD by construction (e.g. from :func:`shared_history`):
        left as they are, untested.

    Returns
    -------
    F : ndarray (T, K, K), the same array
    clipped : ndarray of bool (T,), whether a date's eigenvalues were clipped
    """
    T, K = F.shape[:2]
    eye = np.eye(K)
    clipped = np.zeros(T, dtype=bool)
    valid_all = _valid_factors(F)
    todo = np.arange(T) if skip is None else np.flatnonzero(~np.asarray(skip, dtype=bool))
    for a in range(0, len(todo), block):
        dates = todo[a : a + block]
        # a run of consecutive dates is sliced (a view), not gathered
        run = dates[-1] - dates[0] + 1 == len(dates)
        sel = slice(dates[0], dates[-1] + 1) if run else dates
        valid = valid_all[sel]
        full = bool(valid.all())
        G = F[sel] if full else _fill_invalid(F[sel], valid)
        test = G if full else G + (~valid)[:, :, None] * eye
        bad = _cholesky_fails(test)
        if not len(bad):
            continue
        A = G[bad]
        w, U = np.linalg.eigh(A)
        neg = (w < 0).any(axis=1)
        if not neg.any():
            continue
        if not neg.all():
            bad, A, w, U = bad[neg], A[neg], w[neg], U[neg]
        # U diag(max(w, 0)) U' = A - U_ diag(w_) U_' over the (few, ascending-first)
        # negative eigenpairs
        k = int((w < 0).sum(axis=1).max())
        Un = U[:, :, :k]
        R = A - (Un * np.minimum(w[:, None, :k], 0.0)) @ np.swapaxes(Un, -1, -2)
        R = 0.5 * (R + np.swapaxes(R, -1, -2))
        F[dates[bad]] = R if full else _restore_invalid(R, valid[bad])
        clipped[dates[bad]] = True
    return F, clipped


def eigen_bias(D: np.ndarray, Z: np.ndarray, *, floor: float = 1e-12) -> np.ndarray:
    """Simulated eigenfactor volatility bias ``v(k)`` for eigenvalue spectra ``D``.

    For each simulation ``m`` with unit-variance draw Gram matrix ``Z_m = z_m z_m' / h``,
    the simulated covariance in the eigenbasis of ``F = U diag(D) U'`` is
    ``S_m = diag(sqrt D) Z_m diag(sqrt D)`` (equivalent to simulating ``r = U b`` with
    ``b ~ N(0, diag D)`` and rotating back). With ``S_m = V_m diag(D_m) V_m'`` the
    true variance of simulated eigenfactor ``k`` is ``(V_m' diag(D) V_m)_kk`` and
    ``v(k)**2 = mean_m (V_m' diag(D) V_m)_kk / D_m(k)``. Vectorized over
    simulations and dates.

    Parameters
    ----------
    D : ndarray (B, K)
        Eigenvalues of each date's covariance, ascending.
    Z : ndarray (M, K, K)
        Gram matrices of the standard-normal draws.
    floor : float
        Relative size below which an eigenvalue is treated as absent (bias 1).

    Returns
    -------
    ndarray (B, K): ``v(k)`` per date, matching the ascending order of ``D``.
    """
    D = np.asarray(D, dtype=float)
    Dp = np.maximum(D, 0.0)
    s = np.sqrt(Dp)
    S = s[:, None, :, None] * Z[None] * s[:, None, None, :]  # (B, M, K, K)
    Dm, V = np.linalg.eigh(S)
    true = np.einsum("bmjk,bj->bmk", V * V, Dp)
    scale = Dp.max(axis=1, keepdims=True)
    tiny = floor * scale
    present = Dp > tiny
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(Dm > tiny[:, None], true / Dm, 1.0)
    # Eigenvalues below the floor (invalid factors, clipped directions) occupy the
    # lowest positions in both spectra; give them bias 1.
    n_absent = (~present).sum(axis=1)
    pos = np.arange(D.shape[1])[None, :]
    v2 = ratio.mean(axis=1)
    v2 = np.where(pos >= n_absent[:, None], v2, 1.0)
    return np.sqrt(v2)


def eigen_draws(n_factors: int, *, sims: int, window: int, seed: int) -> np.ndarray:
    """Gram matrices ``z z' / window`` of ``sims`` standard-normal (K, window) draws."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((sims, n_factors, window))
    return z @ np.swapaxes(z, -1, -2) / window


def eigen_adjust(
    F: np.ndarray,
    *,
    sims: int = 100,
    window: int = 252,
    scale: float = 1.2,
    stride: int = 21,
    seed: int = 0,
    block: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenfactor risk adjustment (USE4): ``F~ = U diag(g**2 D) U'``, ``g = scale (v - 1) + 1``.

    ``v`` is the Monte-Carlo bias of :func:`eigen_bias` from ``sims`` simulated
    histories of ``window`` dates (fixed ``seed``, the same draws for every date).
    The bias is simulated on every ``stride``-th date that has a forecast and held
    (as of that date, so no look-ahead) until the next simulation date; every date
    is decomposed and adjusted with its own eigenvectors, the held ``v`` applied by
    position in ascending eigenvalue order (so when a factor becomes valid between
    simulation dates, the positions shift until the next one). ``stride=1`` simulates
    on every date. ``g`` is floored at 0, so the result is PSD. Invalid (NaN) factors
    are left out of the decomposition and stay NaN.

    Cost: one K x K eigendecomposition per date plus ``sims`` per simulation date.
    Measured at K=73 (benchmarks/bench_risk.py, shared 2-core machine): 5.5-10 s
    for T=2520 with the defaults (M=100, stride 21), i.e. 40-70 ms per simulation date
    and ~0.5 ms per date for the decomposition; ``stride=1`` costs 35-70 ms per date.

    Parameters
    ----------
    F : ndarray (T, K, K)
        Symmetric covariance forecasts.

    Returns
    -------
    F_adj : ndarray (T, K, K)
    v : ndarray (T, K), bias per eigenfactor (ascending eigenvalue order), NaN before the
        first date with a forecast.
    """
    T, K = F.shape[:2]
    F = 0.5 * (F + np.swapaxes(F, -1, -2))
    valid = _valid_factors(F)
    G = _fill_invalid(F, valid)
    has = valid.any(axis=1)
    Z = eigen_draws(K, sims=sims, window=window, seed=seed)
    out = np.empty_like(G)
    v_all = np.full((T, K), np.nan)
    sim_dates = np.flatnonzero(has)[::stride]
    v_current = None
    chunk = max(1, 1024 // max(sims, 1))
    for a in range(0, T, block):
        b = min(a + block, T)
        w, U = np.linalg.eigh(G[a:b])
        todo = sim_dates[(sim_dates >= a) & (sim_dates < b)]
        v_sim = np.empty((len(todo), K))
        for c in range(0, len(todo), chunk):
            v_sim[c : c + chunk] = eigen_bias(w[todo[c : c + chunk] - a], Z)
        v_block = np.full((b - a, K), np.nan)
        if len(todo):
            v_block[todo - a] = v_sim
        if v_current is not None:
            v_block[0] = np.where(np.isnan(v_block[0]), v_current, v_block[0])
        # hold the last simulated bias forward (as-of fill)
        idx = np.where(~np.isnan(v_block[:, 0]), np.arange(b - a), 0)
        idx = np.maximum.accumulate(idx)
        v_block = v_block[idx]
        v_current = v_block[-1]
        v_all[a:b] = np.where(has[a:b, None], v_block, np.nan)
        g = scale * (np.nan_to_num(v_block, nan=1.0) - 1.0) + 1.0
        g = np.maximum(g, 0.0)
        lam = np.maximum(w, 0.0) * g * g
        out[a:b] = (U * lam[:, None, :]) @ np.swapaxes(U, -1, -2)
    return _restore_invalid(out, valid), v_all


def ewma_mean(x: np.ndarray, halflife: float, *, axis: int = 0) -> np.ndarray:
    """Weight-normalized EWMA of ``x`` along ``axis``.

    NaN entries are skipped; NaN before the first value.
    """
    x = np.asarray(x, dtype=float)
    m = ~np.isnan(x)
    lam = decay(halflife)
    num, _ = ewma_scan(np.where(m, x, 0.0), lam, axis=axis)
    den, _ = ewma_scan(m.astype(float), lam, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bias_squared(
    r: np.ndarray, var_prev: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Cross-sectional bias statistic ``B_t**2 = sum_n w_n (r_n,t / sigma_n,t-1)**2 / sum_n w_n``.

    Reduces the last axis. ``var_prev`` holds the variance forecasts stamped at
    ``t - 1`` (already shifted by the caller). Entries with a missing return,
    forecast or weight are left out; NaN where nothing is left. Default: equal weights.
    """
    r = np.asarray(r, dtype=float)
    weights = np.ones_like(r) if weights is None else np.asarray(weights, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z2 = r**2 / var_prev
    ok = np.isfinite(z2) & np.isfinite(weights) & (weights > 0) & (var_prev > 0)
    w = np.where(ok, weights, 0.0)
    tot = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w * np.where(ok, z2, 0.0)).sum(axis=-1) / tot, np.nan)


def lambda_from_bias(b2: np.ndarray, halflife: float) -> np.ndarray:
    """VRA multiplier ``lambda_t = sqrt(EWMA_halflife(B**2)_t)`` along the last axis.

    Weight-normalized EWMA over the dates with a ``B``; 1 before the first one.
    """
    lam2 = ewma_mean(b2, halflife, axis=-1)
    return np.sqrt(np.where(np.isnan(lam2), 1.0, lam2))


def vra_lambda(f: np.ndarray, F: np.ndarray, halflife: float) -> np.ndarray:
    """USE4 factor volatility regime adjustment ``lambda_t`` (F is scaled by ``lambda**2``).

    ``B_t**2 = mean_k (f_k,t / sigma_k,t-1)**2`` over the factors observed at ``t`` that
    have a forecast stamped at ``t-1``; ``lambda_t**2`` is the EWMA (``halflife``) of
    ``B**2`` up to and including ``t``; 1 before the first ``B``.

    Parameters
    ----------
    f : ndarray (T, K)
        Factor returns.
    F : ndarray (T, K, K)
        Forecasts before the adjustment (row ``t`` forecasts ``f[t + 1]``).

    Returns
    -------
    ndarray (T,)
    """
    var = np.diagonal(F, axis1=1, axis2=2)
    var_prev = np.concatenate([np.full((1, f.shape[1]), np.nan), var[:-1]])
    return lambda_from_bias(bias_squared(f, var_prev), halflife)


def regime_multiplier(
    proxy: np.ndarray, *, short_halflife: float = 21, long_halflife: float = 42
) -> np.ndarray:
    """Seed volatility-regime multiplier.

    ``m_t = sqrt(clip(EWMA_short(p**2)_t / EWMA_long(p**2)_t, 1e-4, 1e4))``.

    ``p`` is the proxy series (T,); weight-normalized EWMAs; 1 before the first
    observation of the proxy (or where both EWMAs are 0).
    """
    p2 = np.asarray(proxy, dtype=float) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ewma_mean(p2, short_halflife) / ewma_mean(p2, long_halflife)
    ratio = np.where(np.isfinite(ratio), np.clip(ratio, 1e-4, 1e4), 1.0)
    return np.sqrt(ratio)


def factor_risk(
    f: np.ndarray,
    proxy: np.ndarray | None = None,
    *,
    vol_halflife: float,
    corr_halflife: float,
    vol_lags: int = 0,
    corr_lags: int = 0,
    min_periods: int = 1,
    eigen: bool = False,
    eigen_sims: int = 100,
    eigen_window: int = 252,
    eigen_scale: float = 1.2,
    eigen_stride: int = 21,
    eigen_seed: int = 0,
    vra_halflife: float | None = None,
    regime_halflives: tuple[float, float] | None = None,
    horizon: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole factor side: EWMA/Newey–West, eigen adjustment or PSD clip, VRA, regime.

    Parameters
    ----------
    f : ndarray (T, K)
        Factor returns (NaN = not observed).
    proxy : ndarray (T,), optional
        Regime proxy series (required when ``regime_halflives`` is given).
    regime_halflives : (short, long), optional
        Seed regime multiplier; ``F`` is scaled by its square.

    Returns
    -------
    F : ndarray (T, K, K), symmetric PSD, ``horizon`` × daily squared return units
    regime : ndarray (T,), regime multiplier (1 when off)
    vra : ndarray (T,), VRA ``lambda`` (1 when off)
    """
    F = ewma_covariance(
        f,
        vol_halflife=vol_halflife,
        corr_halflife=corr_halflife,
        vol_lags=vol_lags,
        corr_lags=corr_lags,
        min_periods=min_periods,
    )
    if eigen:
        F, _ = eigen_adjust(
            F,
            sims=eigen_sims,
            window=eigen_window,
            scale=eigen_scale,
            stride=eigen_stride,
            seed=eigen_seed,
        )
        F = 0.5 * (F + np.swapaxes(F, -1, -2))
    else:
        # without correlation lags, dates whose valid factors share one history are PSD
        skip = shared_history(f, _valid_factors(F)) if corr_lags == 0 else None
        F, _ = clip_psd(F, skip=skip)
    T = F.shape[0]
    vra = np.ones(T)
    if vra_halflife is not None:
        vra = vra_lambda(f, F, vra_halflife)
    regime = np.ones(T)
    if regime_halflives is not None:
        regime = regime_multiplier(
            proxy, short_halflife=regime_halflives[0], long_halflife=regime_halflives[1]
        )
    F *= (horizon * (vra * regime) ** 2)[:, None, None]
    return F, regime, vra
