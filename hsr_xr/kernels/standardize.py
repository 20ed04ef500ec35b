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

#: Status codes returned by :func:`standardize` per cross-section.
STATUS_OK = 0
STATUS_TOO_FEW = 1
STATUS_ZERO_STD = 2

#: A std at or below ``ZERO_STD_RTOL * max|x|`` over the cross-section counts as zero.
ZERO_STD_RTOL = 1e-12

STD_KINDS = ("cap", "equal")


def row_quantiles(x: np.ndarray, q: np.ndarray | list[float] | float) -> np.ndarray:
    """Equal-weighted NaN-skipping quantiles of each row, linear interpolation.

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
    n = np.count_nonzero(~np.isnan(x), axis=-1)[..., None]  # (B..., 1)
    # numpy's "linear" virtual index: n*q + (1 - q) - 1 == (n - 1) * q
    virtual = n * qs + (1.0 + qs * -1.0) - 1.0  # (B..., Q)
    prev = np.floor(virtual)
    gamma = virtual - prev
    last = np.maximum(n - 1, 0)
    prev_i = np.clip(prev, 0, last).astype(np.intp)
    next_i = np.clip(prev + 1, 0, last).astype(np.intp)
    a = np.take_along_axis(srt, prev_i, axis=-1)
    b = np.take_along_axis(srt, next_i, axis=-1)
    diff = b - a
    out = np.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)
    out = np.where(n > 0, out, np.nan)
    return out if np.ndim(q) else out[..., 0]


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


def _moments(
    x: np.ndarray, ok: np.ndarray, wn: np.ndarray, n: np.ndarray, std: str
) -> tuple[np.ndarray, np.ndarray]:
    """Cap-weighted mean and the chosen std over the ``ok`` assets, shape (B..., 1)."""
    x0 = np.where(ok, x, 0.0)
    m = np.sum(x0 * wn, axis=-1, keepdims=True)
    if std == "cap":
        dev = np.where(ok, x0 - m, 0.0)
        var = np.sum(wn * dev * dev, axis=-1, keepdims=True)
    else:  # equal-weighted std about the equal-weighted mean
        with np.errstate(invalid="ignore", divide="ignore"):
            me = x0.sum(axis=-1, keepdims=True) / n
            dev = np.where(ok, x0 - me, 0.0)
            var = np.sum(dev * dev, axis=-1, keepdims=True) / n
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
    a value and a valid weight; both are population stds. A std that is zero
    (at most ``ZERO_STD_RTOL * max|x|``) gives an all-NaN row (status 2).
    Assets with a value but no valid weight are still clipped and standardized
    with the statistics of the others.

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
    x = np.asarray(x, dtype=float)
    ok, wn = _weights(x, weights)
    n = np.count_nonzero(ok, axis=-1)[..., None]
    valid = (n >= max(int(min_valid), 1)) & np.isfinite(wn[..., :1])
    xc = quantile_clip(x, lower, upper)
    with np.errstate(invalid="ignore"):
        m, s = _moments(xc, ok, wn, n, std)
        if n_std is not None:
            xc = np.clip(xc, m - n_std * s, m + n_std * s)
            m, s = _moments(xc, ok, wn, n, std)
        scale = np.max(np.where(ok, np.abs(xc), 0.0), axis=-1, keepdims=True)
        zero = valid & ~(s > ZERO_STD_RTOL * scale)
        good = valid & ~zero
        z = np.where(good, (xc - m) / np.where(good, s, 1.0), np.nan)
    status = np.where(valid, np.where(zero, STATUS_ZERO_STD, STATUS_OK), STATUS_TOO_FEW)
    return z, status[..., 0].astype(np.int8)
