"""Specific (idiosyncratic) risk kernels.

Two layouts, both NumPy (the EWMA recursion itself may run compiled, see
:func:`hsr_xr.kernels.covariance.ewma_scan`):

* time-series kernels take ``(..., T)`` arrays (assets on the batch axes, date
  last) and run an EWMA along date per asset (asset-chunked under Dask);
* cross-sectional kernels take ``(T, N)`` arrays (date batch, asset last) and
  reduce over the cross-section of each date (date-chunked under Dask).

The forecast at date ``t`` uses specific returns up to and including ``t`` and
applies to the return of ``t + 1``.
"""

from __future__ import annotations

import numpy as np

from .covariance import counted_quantile, ewma_nw_variance, valid_counts
from .quantiles import band_quantile
from .segments import segment_sum

#: Public name of the band-partition quantile (used by :mod:`hsr_xr.risk`).
row_quantile = band_quantile

# ---------------------------------------------------------------- time series (date last)


def specific_ewma(
    e: np.ndarray,
    clip: np.ndarray | None = None,
    *,
    halflife: float,
    lags: int = 0,
    min_periods: int = 1,
    history_window: int | None = None,
    clip_q: float | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """EWMA (optionally Newey–West) specific variance per asset, along the last axis.

    Parameters
    ----------
    e : ndarray (..., T)
        Specific returns, NaN = not observed.
    clip : ndarray (T,), optional
        Per-date cap on squared returns (the seed's cross-sectional quantile clip);
        each ``e`` is shrunk in magnitude so that ``e**2 <= clip``.
    halflife, lags, min_periods
        See :func:`hsr_xr.kernels.covariance.ewma_nw_variance`.
    history_window : int, optional
        Also return the number of observed returns in the trailing ``history_window``
        dates (the structural model's history length).
    clip_q : float, optional
        Instead of ``clip``: cap at each date's ``clip_q`` quantile of ``e**2`` over the
        batch axes (all assets must be in this call), as ``squared_quantile`` gives it.

    Returns
    -------
    var : ndarray (..., T), squared return units, NaN before ``min_periods`` observations
    history : ndarray (..., T), only with ``history_window``
    """
    cap = None
    if clip is not None:
        cap = np.sqrt(np.maximum(np.asarray(clip, dtype=float), 0.0))
        cap[np.isnan(cap)] = np.inf
    var, n_obs = ewma_nw_variance(
        e,
        halflife,
        lags=lags,
        min_periods=min_periods,
        axis=-1,
        counts=history_window is not None,
        bound=cap,
        bound_quantile=clip_q,
    )
    if history_window is None:
        return var
    hist = n_obs.copy()
    if history_window < n_obs.shape[-1]:
        hist[..., history_window:] -= n_obs[..., :-history_window]
    return var, hist


# ---------------------------------------------------------------- cross-sectional (asset last)


def squared_quantile(e: np.ndarray, *, q: float) -> np.ndarray:
    """Quantile ``q`` of ``e**2`` over the last axis (NaN skipped); NaN for an empty row.

    Same values as ``band_quantile(e, q, square=True)`` (one padded partition).
    """
    x2 = np.multiply(e, e, dtype=float)
    return counted_quantile(x2, valid_counts(np.isnan(x2)), q)


def seed_fill_shrink(
    var: np.ndarray, present: np.ndarray, *, shrink: float, overwrite: bool = False
) -> np.ndarray:
    """The seed's cross-sectional finish: median fill, then shrink toward the median.

    Assets ``present`` on a date (specific return observed) but without a forecast
    get the date's cross-sectional median forecast; then
    ``var <- (1 - shrink) var + shrink median``.

    Parameters
    ----------
    var : ndarray (T, N)
    present : ndarray of bool (T, N)
    overwrite : bool
        Write the result into a float64 ``var`` itself.
    """
    var = np.asarray(var, dtype=float)
    fill = np.isnan(var)
    med = counted_quantile(var, valid_counts(fill), 0.5)[..., None]
    inplace = overwrite and var.flags.writeable
    out = var if inplace else np.empty_like(var)
    if shrink:
        np.multiply(var, 1.0 - shrink, out=out)
        out += shrink * med
        med = med * (1.0 - shrink) + shrink * med  # the value of a filled asset
    elif not inplace:
        np.copyto(out, var)
    fill &= present
    np.copyto(out, med, where=fill)
    return out


def _weighted_lstsq(
    y: np.ndarray, X: np.ndarray, codes: np.ndarray, n_ind: int, w: np.ndarray
) -> np.ndarray:
    """Batched weighted least squares of ``y`` on ``[1, X, industry dummies]``, with
    the industry effects summing to zero weighted by each industry's fit weight.

    ``y, w (T, N)``, ``X (T, N, S)``, ``codes (T, N)``; rows with ``w == 0`` are left out.
    The constraint ``sum_j W_j b_j = 0`` (``W_j`` = sum of ``w`` in industry ``j``)
    identifies the intercept, which the dummies span when every fitted asset has an
    industry: it is the weighted average industry's level, and an industry without
    fitted assets gets ``b_j = 0``. Normal equations are assembled with segment sums
    (no dummy matrix) and the bordered (KKT) system is solved with a pseudo-inverse
    (an empty industry's row and column are zero).

    Returns coefficients ``(T, 1 + S + n_ind)``.
    """
    T, _, S = X.shape
    P = 1 + S + n_ind
    A = np.zeros((T, P + 1, P + 1))  # normal equations bordered by the constraint row
    rhs = np.zeros((T, P + 1))  # the constraint's right-hand side is 0
    wX = w[..., None] * X
    A[:, 0, 0] = w.sum(axis=1)
    A[:, 0, 1 : 1 + S] = wX.sum(axis=1)
    A[:, 1 : 1 + S, 1 : 1 + S] = np.einsum("tns,tnu->tsu", wX, X)
    wi = segment_sum(w, codes, n_ind)
    A[:, 0, 1 + S : P] = wi
    A[:, 1 + S : P, 1 + S : P] = wi[:, :, None] * np.eye(n_ind)
    A[:, 1 : 1 + S, 1 + S : P] = np.swapaxes(segment_sum(wX, codes, n_ind, trailing=True), 1, 2)
    A[:, 1 + S : P, P] = wi  # the constraint row, on the scale of the normal equations
    iu = np.triu_indices(P + 1, 1)
    A[:, iu[1], iu[0]] = A[:, iu[0], iu[1]]
    wy = w * y
    rhs[:, 0] = wy.sum(axis=1)
    rhs[:, 1 : 1 + S] = np.einsum("tns,tn->ts", wX, y)
    rhs[:, 1 + S : P] = segment_sum(wy, codes, n_ind)
    return (np.linalg.pinv(A, hermitian=True) @ rhs[..., None])[..., :P, 0]


def structural_blend(
    var: np.ndarray,
    history: np.ndarray,
    loadings: np.ndarray,
    industry: np.ndarray,
    weights: np.ndarray,
    present: np.ndarray | None = None,
    *,
    n_industries: int,
    h_min: float = 60.0,
    h_span: float = 120.0,
    min_fit: int = 0,
) -> np.ndarray:
    """USE4 structural specific-risk model, blended by history length.

    Per date, ``ln sigma_TS`` of the assets with a full history weight
    (``gamma = clip((h - h_min) / h_span, 0, 1) == 1``) is regressed on
    ``[1, loadings, industry dummies]`` (weights ``weights``, e.g. sqrt cap);
    ``sigma_STR = E0 exp(X b)`` with ``E0`` the weighted mean of
    ``sigma_TS / exp(X b)`` over the fit (the log-bias correction). The output is
    ``sigma = gamma sigma_TS + (1 - gamma) sigma_STR``, returned as a variance.
    Missing loadings count as 0 (the standardized mean) in the prediction and
    leave the asset out of the fit. Industry effects are deviations from the
    fit-weighted average industry (``sum_j W_j b_j = 0``, ``W_j`` the fit weight of
    industry ``j``), so an asset with industry ``-1``, or in an industry without
    fitted assets, is predicted at the average industry's level.

    Parameters
    ----------
    var, history, weights : ndarray (T, N)
        Time-series variance forecast, history length, fit weights (NaN/<=0: no fit).
    present : ndarray of bool (T, N), optional
        Assets that may receive a purely structural forecast (e.g. specific return
        observed that date); default all. Assets with a time-series forecast always do.
    loadings : ndarray (T, N, S)
    industry : ndarray of int (T, N)
    min_fit : int
        Fewest fitting assets for a usable regression (default ``2 * (1 + S + n_ind)``);
        with fewer, ``sigma_STR`` is NaN on that date.

    Returns
    -------
    ndarray (T, N), variance; NaN where neither a time-series nor a structural value exists.
    """
    T, _, S = loadings.shape
    gamma = np.clip((history - h_min) / h_span, 0.0, 1.0)
    sig = np.sqrt(var)
    ok_x = np.isfinite(loadings).all(axis=-1)
    X = np.where(np.isfinite(loadings), loadings, 0.0)
    w = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    fit = (gamma >= 1.0) & np.isfinite(sig) & (sig > 0) & ok_x & (w > 0)
    wf = np.where(fit, w, 0.0)
    y = np.where(fit, np.log(np.where(fit, sig, 1.0)), 0.0)
    codes = np.where(industry >= 0, industry, -1).astype(np.int64)
    b = _weighted_lstsq(y, X, codes, n_industries, wf)
    ind_b = np.concatenate([b[:, 1 + S :], np.zeros((T, 1))], axis=1)  # code -1 -> 0
    pred = b[:, :1] + np.einsum("tns,ts->tn", X, b[:, 1 : 1 + S])
    pred += np.take_along_axis(ind_b, np.where(codes >= 0, codes, n_industries), axis=1)
    base = np.exp(pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        e0 = (wf * np.where(fit, sig, 0.0) / base).sum(axis=1) / wf.sum(axis=1)
    n_fit = fit.sum(axis=1)
    need = min_fit or 2 * (1 + S + n_industries)
    e0 = np.where(n_fit >= need, e0, np.nan)
    sig_str = e0[:, None] * base
    has_ts = np.isfinite(sig)
    if present is not None:
        sig_str = np.where(present | has_ts, sig_str, np.nan)
    out = np.where(has_ts, gamma * np.where(has_ts, sig, 0.0) + (1 - gamma) * sig_str, sig_str)
    out = np.where(has_ts & ~np.isfinite(out), sig, out)
    return out**2


def size_groups(cap: np.ndarray, valid: np.ndarray, n_groups: int = 10) -> np.ndarray:
    """Equal-count size groups (0 = smallest) per date among ``valid`` assets; -1 elsewhere."""
    ok = valid & np.isfinite(cap) & (cap > 0)
    key = np.where(ok, cap, np.inf)
    order = np.argsort(key, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(cap.shape[-1])[None, :], axis=-1)
    n = ok.sum(axis=-1, keepdims=True)
    grp = (rank * n_groups) // np.maximum(n, 1)
    return np.where(ok, grp, -1)


def bayesian_shrink(
    var: np.ndarray, cap: np.ndarray, *, q: float = 0.1, n_groups: int = 10
) -> np.ndarray:
    """USE4 Bayesian shrinkage of specific vols toward the cap-weighted size-group mean.

    Per date and size decile ``s``: ``sbar_s`` = cap-weighted mean of ``sigma``,
    ``D_s = sqrt(mean_s (sigma - sbar_s)**2)``, ``v = q |sigma - sbar| / (D_s + q |sigma - sbar|)``,
    ``sigma <- v sbar + (1 - v) sigma``. Assets without a cap are not shrunk.

    Parameters
    ----------
    var, cap : ndarray (T, N)

    Returns
    -------
    ndarray (T, N), variance.
    """
    sig = np.sqrt(var)
    grp = size_groups(cap, np.isfinite(sig), n_groups)
    w = np.where(grp >= 0, cap, np.nan)
    ws = segment_sum(w * sig, grp, n_groups)
    wt = segment_sum(w, grp, n_groups)
    cnt = segment_sum(np.where(grp >= 0, 1.0, np.nan), grp, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        sbar = ws / wt
    g = np.where(grp >= 0, grp, 0)
    sbar_a = np.take_along_axis(sbar, g, axis=1)
    dev = np.where(grp >= 0, sig - sbar_a, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        disp = np.sqrt(segment_sum(dev**2, grp, n_groups) / cnt)
    disp_a = np.take_along_axis(disp, g, axis=1)
    a = q * np.abs(dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(a > 0, a / (disp_a + a), 0.0)
    out = np.where(grp >= 0, v * sbar_a + (1 - v) * sig, sig)
    return out**2
