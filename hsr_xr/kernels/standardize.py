"""Batched cross-sectional winsorizing and standardizing over the last (asset) axis.

Every function works on a stack of cross-sections: ``x`` has shape (B..., N)
where the leading axes are any batch (dates, descriptors, styles) and the last
axis N is the assets. NaN means "no value" and is skipped; nothing loops over
the batch axes.

Conventions shared by all helpers here:

* Weights (market caps) are per asset, broadcastable to ``x``. A weight that
  is NaN, infinite or negative is excluded (the asset gets weight 0 in the
  weighted statistics). Weighted statistics are taken over assets that have
  both a value and a valid weight; weights are normalised to sum 1 over them.
* Standard deviations are population ones (``ddof=0``).
"""

from __future__ import annotations

import numpy as np

from .quantiles import row_quantiles, sorted_quantiles
from .segments import segment_sum

#: Status codes returned by :func:`standardize` per cross-section.
STATUS_OK = 0
STATUS_TOO_FEW = 1
STATUS_ZERO_STD = 2

#: A std at or below ``ZERO_STD_RTOL * max|x|`` (after the quantile clip) counts as zero.
ZERO_STD_RTOL = 1e-12

STD_KINDS = ("cap", "equal")


def quantile_clip(x: np.ndarray, lower: float | None, upper: float | None) -> np.ndarray:
    """Clip each row to its own equal-weighted quantiles along the last axis.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
        Values; NaN are skipped when computing the quantiles and stay NaN.
    lower, upper : float in [0, 1] or None
        Quantile levels of the clip bounds (linear interpolation, as
        ``np.nanquantile``). ``None`` leaves that side unclipped.

    Returns
    -------
    ndarray, shape (B..., N)
        Clipped copy. Rows without any value stay all NaN.
    """
    x = np.asarray(x, dtype=float)
    levels = [q for q in (lower, upper) if q is not None]
    if not levels:
        return x.copy()
    bounds = row_quantiles(x, levels)
    k = 0
    lo = hi = None
    if lower is not None:
        lo = bounds[..., k : k + 1]
        k += 1
    if upper is not None:
        hi = bounds[..., k : k + 1]
    return np.clip(x, lo, hi)


def _weights(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, normalised weights) of the assets with a value and a valid weight."""
    w = np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    ok = ~np.isnan(x) & np.isfinite(w) & (w >= 0)
    wv = np.where(ok, w, 0.0)
    tot = wv.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        wn = np.where(tot > 0, wv / tot, np.nan)
    return ok, wn


def weighted_mean(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted NaN-skipping mean along the last axis.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
    weights : ndarray, broadcastable to ``x``
        NaN, infinite or negative weights are excluded.

    Returns
    -------
    ndarray, shape (B...)
        NaN where no asset has both a value and a positive total weight.
    """
    x = np.asarray(x, dtype=float)
    ok, wn = _weights(x, weights)
    return np.sum(np.where(ok, x, 0.0) * wn, axis=-1)


def weighted_std(
    x: np.ndarray, weights: np.ndarray, *, mean: np.ndarray | None = None
) -> np.ndarray:
    """Weighted NaN-skipping population std along the last axis.

    ``sqrt(sum_i w_i (x_i - mean)^2)`` with weights normalised to sum 1 over
    the assets that have a value and a valid weight.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
    weights : ndarray, broadcastable to ``x``
        NaN, infinite or negative weights are excluded.
    mean : ndarray, shape (B...), optional
        Centre; defaults to the weighted mean.

    Returns
    -------
    ndarray, shape (B...)
    """
    x = np.asarray(x, dtype=float)
    ok, wn = _weights(x, weights)
    x0 = np.where(ok, x, 0.0)
    m = np.sum(x0 * wn, axis=-1) if mean is None else np.asarray(mean, dtype=float)
    dev = np.where(ok, x0 - m[..., None], 0.0)
    return np.sqrt(np.sum(wn * dev * dev, axis=-1))


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of ``a * b`` along the last axis without a full-size temporary."""
    if hasattr(np, "vecdot"):
        return np.vecdot(a, b)
    return np.einsum("...i,...i->...", a, b)  # numpy < 2


def _moments(
    x: np.ndarray,
    wv: np.ndarray,
    tot: np.ndarray,
    okf: np.ndarray | None,
    n: np.ndarray,
    buf: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and the chosen std, shape (B..., 1).

    ``x`` is finite everywhere; ``wv`` is 0 outside the weighted assets, so the
    filler values there do not count. ``okf`` (float mask of the weighted
    assets) selects the equal-weighted std; ``None`` the weighted one. ``buf``
    is scratch space of the shape of ``x``.
    """
    m = _rowdot(wv, x)[..., None] / tot
    if okf is None:
        np.subtract(x, m, out=buf)
        np.multiply(buf, buf, out=buf)
        var = _rowdot(wv, buf)[..., None] / tot
    else:  # equal-weighted std about the equal-weighted mean
        np.subtract(x, _rowdot(okf, x)[..., None] / n, out=buf)
        np.multiply(buf, buf, out=buf)
        var = _rowdot(okf, buf)[..., None] / n
    return m, np.sqrt(var)


def standardize(
    x: np.ndarray,
    weights: np.ndarray,
    *,
    lower: float | None = 0.001,
    upper: float | None = 0.999,
    n_std: float | None = 3.0,
    std: str = "cap",
    min_valid: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Winsorize and standardize a stack of cross-sections (seed default).

    Per row (one date and one descriptor), over the assets of the last axis:

    1. fewer than ``min_valid`` assets with both a value and a valid weight
       (or a zero total weight) -> the row is all NaN (status 1);
    2. clip to the equal-weighted ``lower``/``upper`` quantiles of all values;
    3. weights = the valid weights of the assets with a value, normalised to 1;
    4. clip to the weighted mean +- ``n_std`` times the chosen std;
    5. recompute mean and std and return ``z = (x - mean) / std``.

    The mean is always weighted. ``std="cap"`` (seed) uses the weighted std,
    ``std="equal"`` (Barra USE4) the equal-weighted std of the assets that have
    a value and a valid weight; both are population stds. A std that is zero,
    i.e. at most ``ZERO_STD_RTOL`` times the largest absolute value left after
    step 2, gives an all-NaN row (status 2). Assets with a value but no valid
    weight are still clipped and standardized with the statistics of the
    others. NaN is missing; +-inf are values (outliers that the quantile clip
    normally removes; a row where one survives gets a NaN std, i.e. status 2).

    Parameters
    ----------
    x : ndarray, shape (B..., N)
        Raw values, NaN = missing.
    weights : ndarray, broadcastable to (B..., N)
        Market caps (any positive scale).
    lower, upper : float or None
        Quantile levels of step 2; ``None`` skips that side.
    n_std : float or None
        Width of the step-4 clip in stds; ``None`` skips step 4.
    std : {"cap", "equal"}
        Which std is used in steps 4 and 5.
    min_valid : int
        Minimum number of assets with a value and a weight.

    Returns
    -------
    z : ndarray, shape (B..., N)
        Standardized values (z-scores), NaN where undefined.
    status : ndarray of int8, shape (B...)
        ``STATUS_OK``, ``STATUS_TOO_FEW`` or ``STATUS_ZERO_STD`` per row.
    """
    if std not in STD_KINDS:
        raise ValueError(f"std must be one of {STD_KINDS}, got {std!r}")
    x = np.ascontiguousarray(x, dtype=float)
    w = np.asarray(weights, dtype=float)
    w_ok = np.isfinite(w) & (w >= 0)
    w0 = np.where(w_ok, w, 0.0)
    has = ~np.isnan(x)
    ok = has & w_ok
    n = np.count_nonzero(ok, axis=-1)[..., None]
    wv = has * w0  # 0 outside the weighted assets
    tot = wv.sum(axis=-1, keepdims=True)
    valid = (n >= max(int(min_valid), 1)) & (tot > 0)
    okf = ok.astype(float) if std == "equal" else None

    # step 2: missing values become +inf, sort last and are clipped to the upper bound,
    # so that xc is finite everywhere and the weighted sums need no masking
    xc = np.fmin(x, np.inf)
    srt = np.sort(xc, axis=-1)
    n_has = np.count_nonzero(has, axis=-1)
    levels = np.array([0.0 if lower is None else lower, 1.0 if upper is None else upper])
    bounds = sorted_quantiles(srt, n_has, levels)
    lo = bounds[..., :1] if lower is not None else np.full_like(bounds[..., :1], -np.inf)
    hi = bounds[..., 1:]  # the row maximum when upper is None
    scale = np.maximum(np.abs(bounds[..., :1]), np.abs(hi))
    with np.errstate(invalid="ignore", divide="ignore"):
        np.clip(xc, lo, hi, out=xc)
        m, s = _moments(xc, wv, tot, okf, n, srt)
        if n_std is not None:
            # m lies inside [lo, hi], so the two clips compose into one clip
            lo = np.maximum(lo, m - n_std * s)
            hi = np.minimum(hi, m + n_std * s)
            np.clip(xc, lo, hi, out=xc)
            m, s = _moments(xc, wv, tot, okf, n, srt)
        zero = valid & ~(s > ZERO_STD_RTOL * scale)
        good = valid & ~zero
        inv = np.where(good, 1.0 / s, np.nan)
        np.clip(x, lo, hi, out=xc)  # from the raw values again: missing stays NaN
        np.subtract(xc, m, out=xc)
        np.multiply(xc, inv, out=xc)
    status = np.where(valid, np.where(zero, STATUS_ZERO_STD, STATUS_OK), STATUS_TOO_FEW)
    return xc, status[..., 0].astype(np.int8)


def combine(z: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """NaN-skipping weighted mean of descriptor z-scores per style.

    Parameters
    ----------
    z : ndarray, shape (B..., D, N)
        Descriptor z-scores, NaN = missing.
    mapping : ndarray, shape (D, S)
        Weight of descriptor d in style s (0 = not in the style; >= 0).

    Returns
    -------
    ndarray, shape (B..., S, N)
        ``sum_d m_ds z_d / sum_d m_ds`` over the descriptors with a value;
        NaN where a style has no descriptor value.
    """
    z = np.asarray(z, dtype=float)
    m = np.asarray(mapping, dtype=float)
    have = ~np.isnan(z)
    # einsum's own loops, not BLAS: a tiny (D, S) matrix against many rows, and no
    # BLAS thread pool fighting the Dask worker threads
    num = np.einsum("ds,...dn->...sn", m, np.where(have, z, 0.0))
    if np.isin(m, (0.0, 1.0)).all() and m.shape[0] < 256:  # counts fit in uint8
        den = np.einsum("ds,...dn->...sn", m.astype(np.uint8), have.view(np.uint8))
    else:
        den = np.einsum("ds,...dn->...sn", m, have.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def orthogonalize(y: np.ndarray, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Residual of a weighted cross-sectional regression of ``y`` on ``[1, x]``.

    Parameters
    ----------
    y, x : ndarray, shape (B..., N)
        Dependent and explanatory exposures (e.g. nonlinear size on size).
    weights : ndarray, broadcastable to (B..., N)
        Regression weights (caps); NaN, infinite or negative ones are excluded.

    Returns
    -------
    ndarray, shape (B..., N)
        ``y - a - b x`` fitted over the assets with ``y``, ``x`` and a valid
        weight; NaN where ``y`` or ``x`` is missing, and on rows where ``x``
        has zero weighted variance or no asset has a valid weight.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), y.shape)
    ok = ~np.isnan(y) & ~np.isnan(x) & np.isfinite(w) & (w >= 0)
    wv = np.where(ok, w, 0.0)
    tot = wv.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x0 = np.where(ok, x, 0.0)
        y0 = np.where(ok, y, 0.0)
        mx = _rowdot(wv, x0)[..., None] / tot
        my = _rowdot(wv, y0)[..., None] / tot
        dx = np.where(ok, x0 - mx, 0.0)
        sxx = _rowdot(wv * dx, dx)[..., None]
        sxy = _rowdot(wv * dx, y0 - my)[..., None]
        scale = _rowdot(wv, x0 * x0)[..., None]
        beta = np.where(sxx > ZERO_STD_RTOL**2 * scale, sxy / sxx, np.nan)
        return y - my - beta * (x - mx)


def coverage(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of cap and share of assets that have a value, per cross-section.

    The universe of a cross-section is the assets with a valid (finite,
    non-negative) weight.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
    weights : ndarray, broadcastable to (B..., N)

    Returns
    -------
    cap_share, asset_share : ndarray, shape (B...)
        NaN where the universe is empty (zero total weight / no asset).
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(weights, dtype=float)
    w_ok = np.isfinite(w) & (w >= 0)
    have = ~np.isnan(x) & w_ok
    wv = np.where(w_ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cap_share = np.sum(np.where(have, wv, 0.0), axis=-1) / np.broadcast_to(
            wv.sum(axis=-1), have.shape[:-1]
        )
        n_all = np.broadcast_to(np.count_nonzero(w_ok, axis=-1), have.shape[:-1])
        asset_share = np.count_nonzero(have, axis=-1) / np.where(n_all > 0, n_all, np.nan)
    return cap_share, asset_share


def industry_fill(
    x: np.ndarray,
    weights: np.ndarray,
    codes: np.ndarray,
    n_industries: int,
    *,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Fill missing values with the weighted mean of the asset's industry.

    Parameters
    ----------
    x : ndarray, shape (B..., N)
        Exposures, NaN = missing.
    weights : ndarray, broadcastable to (B..., N)
        Caps; NaN, infinite or negative ones are excluded from the means.
    codes : ndarray of int, broadcastable to (B..., N)
        Industry code per asset, ``-1`` = unknown.
    n_industries : int
        Number of industry codes.
    eligible : ndarray of bool, broadcastable to (B..., N), optional
        Which missing entries may be filled (default: all).

    Returns
    -------
    ndarray, shape (B..., N)
        ``x`` with eligible NaN replaced by the weighted mean of ``x`` over the
        assets of the same industry (same row); by 0 when the asset's industry
        is unknown or has no weighted value.
    """
    x = np.asarray(x, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    codes = np.broadcast_to(np.asarray(codes), x.shape)
    ok = ~np.isnan(x) & np.isfinite(w) & (w >= 0)
    wv = np.where(ok, w, 0.0)
    num = segment_sum(np.where(ok, x * wv, 0.0), codes, n_industries)
    den = segment_sum(wv, codes, n_industries)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(den > 0, num / den, 0.0)  # (B..., n_industries)
    means = np.concatenate([means, np.zeros((*means.shape[:-1], 1))], axis=-1)
    idx = np.where(codes >= 0, codes, n_industries).astype(np.intp)
    fill = np.take_along_axis(means, idx, axis=-1)
    todo = np.isnan(x)
    if eligible is not None:
        todo &= np.asarray(eligible, dtype=bool)
    return np.where(todo, fill, x)
