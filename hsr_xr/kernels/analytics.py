"""Risk-analytics kernels: asset and portfolio variance, pure factor portfolios, bias statistics.

Pure NumPy on stacked arrays with leading batch axes (usually dates). The
exposure matrix is never built densely: an asset's exposures are
``[1, loadings..., onehot(industry code)]`` in the canonical factor order
(country, styles, industries), so every product with the factor covariance
``F`` splits into a dense (1+P)×(1+P) block, a gathered cross block and a
gathered industry diagonal.

Shapes: ``N`` assets, ``P`` styles, ``J`` industries, ``K = 1 + P + J``
factors, ``M`` portfolios, ``B...`` batch axes (broadcast between inputs).
Industry code ``-1`` means unknown (no industry exposure).
"""

from __future__ import annotations

import numpy as np

from .segments import SortedSegments, segment_sum, static_codes


def _lead(a: np.ndarray, core: int) -> tuple[int, ...]:
    return a.shape[: a.ndim - core]


def _broadcast_batch(*pairs: tuple[np.ndarray, int]) -> list[np.ndarray]:
    """Broadcast the leading (batch) axes of ``(array, n_core_axes)`` pairs to one shape."""
    batch = np.broadcast_shapes(*(_lead(a, c) for a, c in pairs))
    return [np.broadcast_to(a, batch + a.shape[a.ndim - c :]) for a, c in pairs]


def asset_factor_variance(loadings: np.ndarray, codes: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Factor variance ``x_n F x_nᵀ`` of every asset, batched.

    Parameters
    ----------
    loadings : ndarray (B..., N, P)
        Style exposures; NaN propagates to that asset's result.
    codes : ndarray of int (B..., N)
        Industry codes, ``-1`` = none.
    cov : ndarray (B..., K, K)
        Factor covariance in the order country, styles, industries.

    Returns
    -------
    ndarray (B..., N)
    """
    loadings, codes, cov = _broadcast_batch((loadings, 2), (codes, 1), (cov, 2))
    q = loadings.shape[-1] + 1
    z = np.concatenate([np.ones((*loadings.shape[:-1], 1)), loadings], axis=-1)
    out = np.einsum("...np,...np->...n", z @ cov[..., :q, :q], z)
    if cov.shape[-1] > q:
        has = codes >= 0
        c = np.where(has, codes, 0).astype(np.intp)
        cross = np.take_along_axis(np.swapaxes(cov[..., :q, q:], -1, -2), c[..., None], axis=-2)
        diag = np.take_along_axis(np.diagonal(cov[..., q:, q:], axis1=-2, axis2=-1), c, axis=-1)
        out = out + np.where(has, 2.0 * np.einsum("...np,...np->...n", z, cross) + diag, 0.0)
    return out


def portfolio_exposures(
    weights: np.ndarray, loadings: np.ndarray, codes: np.ndarray, n_industries: int
) -> np.ndarray:
    """Portfolio factor exposures ``Xᵀw``, batched.

    Parameters
    ----------
    weights : ndarray (B..., M, N)
        Holdings; NaN = not held (0).
    loadings : ndarray (B..., N, P)
    codes : ndarray of int (B..., N)
    n_industries : int

    Returns
    -------
    ndarray (B..., M, K)
        NaN for a portfolio that holds an asset with a NaN loading.
    """
    weights, loadings, codes = _broadcast_batch((weights, 2), (loadings, 2), (codes, 1))
    return _exposures(np.nan_to_num(weights, nan=0.0), loadings, codes, n_industries)


def _exposures(w: np.ndarray, loadings: np.ndarray, codes: np.ndarray, n_industries: int):
    """:func:`portfolio_exposures` for NaN-free weights with broadcast batch axes."""
    bad_asset = np.isnan(loadings).any(axis=-1)
    bad = ((w != 0) & bad_asset[..., None, :]).any(axis=-1)
    country = w.sum(axis=-1, keepdims=True)
    style = w @ np.where(np.isnan(loadings), 0.0, loadings)
    parts = [country, style]
    if n_industries:
        parts.append(_industry_sums(w, codes, n_industries))
    h = np.concatenate(parts, axis=-1)
    return np.where(bad[..., None], np.nan, h)


def _industry_sums(w: np.ndarray, codes: np.ndarray, n_industries: int) -> np.ndarray:
    """Sum ``w`` (B..., M, N) over assets by industry code (B..., N) -> (B..., M, J).

    When every date has the same codes (the usual ``industry(asset)``) a
    :class:`~.segments.SortedSegments` plan sums with ``np.add.reduceat``; the
    general per-date case uses :func:`segment_sum`. ``w`` has no NaN.
    """
    shared = static_codes(codes)
    if shared is None:
        return segment_sum(w, codes[..., None, :], n_industries)
    return SortedSegments(shared, n_industries).sum(w)


def portfolio_risk(
    weights: np.ndarray,
    loadings: np.ndarray,
    codes: np.ndarray,
    cov: np.ndarray,
    specific_var: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Factor/specific variance and x-σ-ρ decomposition of portfolios, batched.

    Parameters
    ----------
    weights : ndarray (B..., M, N)
        Holdings; NaN = not held.
    loadings : ndarray (B..., N, P)
    codes : ndarray of int (B..., N)
    cov : ndarray (B..., K, K)
    specific_var : ndarray (B..., N)

    Returns
    -------
    exposures : (B..., M, K)
        ``h = Xᵀw``.
    factor_var : (B..., M)
        ``hᵀFh``; NaN if the portfolio is exposed to a factor pair whose
        covariance is NaN (a factor without a forecast yet) or if all of F is
        NaN. Factors it has no exposure to do not matter.
    specific_var : (B..., M)
        ``Σ w² d``; NaN if a held asset has NaN specific variance.
    contribution : (B..., M, K)
        ``h_k σ_k ρ_k = h_k (Fh)_k / sqrt(hᵀFh)``; sums to the factor risk.
    correlation : (B..., M, K)
        ``ρ_k = (Fh)_k / (σ_k sqrt(hᵀFh))``, correlation of factor k with the
        portfolio's factor return.
    """
    weights, loadings, codes, cov, spec = _broadcast_batch(
        (weights, 2), (loadings, 2), (codes, 1), (cov, 2), (specific_var, 1)
    )
    n_ind = cov.shape[-1] - 1 - loadings.shape[-1]
    w = np.nan_to_num(weights, nan=0.0)
    h = _exposures(w, loadings, codes, n_ind)
    # a factor without a forecast (NaN row/column of F, e.g. during its warm-up) only
    # makes the portfolios exposed to it NaN: zero exposure means a zero term. A date
    # without any forecast (all of F NaN) is NaN for every portfolio.
    unknown = np.isnan(cov)
    exposed = (h != 0).astype(float)
    blind = ((exposed @ unknown.astype(float)) * exposed).sum(axis=-1) > 0
    blind |= unknown.all(axis=(-2, -1))[..., None]
    fh = h @ np.where(unknown, 0.0, cov)  # F symmetric: (Fh)_k = Σ_l h_l F_lk
    fh[blind] = np.nan
    fvar = np.einsum("...k,...k->...", h, fh)
    missing = np.isnan(spec)
    svar = np.einsum("...mn,...n->...m", w * w, np.where(missing, 0.0, spec))
    svar[((w != 0) & missing[..., None, :]).any(axis=-1)] = np.nan
    sigma = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        fvol = np.sqrt(fvar)[..., None]
        contribution = h * fh / fvol
        correlation = fh / (sigma * fvol)
    return h, fvar, svar, contribution, correlation


def pure_factor_weights(
    loadings: np.ndarray, codes: np.ndarray, reg_weight: np.ndarray, n_industries: int
) -> np.ndarray:
    """Style factor-mimicking (pure factor) portfolios of a weighted regression, batched.

    Row ``k`` of ``(XᵀVX)⁺XᵀV`` for the system ``X = [industry dummies, styles]``
    (the industries span the country factor), so portfolio ``k`` has unit
    exposure to style ``k``, zero to the other styles and zero to every
    industry — hence zero net weight. Assets with a NaN loading, NaN/zero
    weight or unknown industry get weight 0. Empty industries are decoupled;
    a batch with a singular system falls back to the pseudo-inverse.

    Parameters
    ----------
    loadings : ndarray (B..., N, P)
    codes : ndarray of int (B..., N)
    reg_weight : ndarray (B..., N)
        Regression weights (e.g. sqrt cap).
    n_industries : int

    Returns
    -------
    ndarray (B..., P, N)
    """
    loadings, codes, reg_weight = _broadcast_batch((loadings, 2), (codes, 1), (reg_weight, 1))
    j, p = n_industries, loadings.shape[-1]
    ok = ~np.isnan(loadings).any(axis=-1) & (codes >= 0) & np.isfinite(reg_weight)
    v = np.where(ok, reg_weight, 0.0)
    s = np.where(ok[..., None], loadings, 0.0)
    c = np.where(ok, codes, 0).astype(np.intp)
    vs = v[..., None] * s
    g = np.zeros((*v.shape[:-1], j + p, j + p))
    idx = np.arange(j)
    ind_weight = segment_sum(v, c, j)
    # an empty industry's row and column are zero: a unit diagonal decouples it
    g[..., idx, idx] = np.where(ind_weight > 0, ind_weight, 1.0)
    g_jp = segment_sum(vs, c, j, trailing=True)
    g[..., :j, j:] = g_jp
    g[..., j:, :j] = np.swapaxes(g_jp, -1, -2)
    g[..., j:, j:] = np.swapaxes(s, -1, -2) @ vs
    try:  # rows J.. of G^-1 = (G^-1 E_styles)ᵀ, G symmetric
        unit = np.broadcast_to(np.eye(j + p)[:, j:], (*g.shape[:-1], p))
        rows = np.swapaxes(np.linalg.solve(g, unit), -1, -2)  # (B..., P, J+P)
    except np.linalg.LinAlgError:  # a singular date: minimum-norm solution for all
        rows = np.linalg.pinv(g, hermitian=True)[..., j:, :]
    style_part = rows[..., j:] @ np.swapaxes(s, -1, -2)  # (B..., P, N)
    ind_part = np.take_along_axis(rows[..., :j], c[..., None, :], axis=-1) if j else 0.0
    return v[..., None, :] * (style_part + ind_part)


def rolling_std(
    x: np.ndarray,
    skip: np.ndarray | None = None,
    *,
    window: int,
    min_periods: int,
    ddof: int = 1,
) -> np.ndarray:
    """Trailing rolling standard deviation along the last axis, NaN skipped.

    Value at ``t`` uses ``x[t-window+1 : t+1]``; NaN where fewer than
    ``min_periods`` finite values (or not more than ``ddof``). ``skip`` (bool,
    broadcastable to ``x``) marks rows that are not observations at all (dates
    without market data): each one in a window lowers its ``min_periods`` by one.
    """
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0)
    # centre on the overall mean for stable sums of squares
    count = valid.sum(axis=-1, keepdims=True)
    mu = x0.sum(axis=-1, keepdims=True) / np.maximum(count, 1)  # 0 for a row without values
    xc = np.where(valid, x0 - mu, 0.0)
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    c0 = np.pad(np.cumsum(valid, axis=-1, dtype=float), pad)
    c1 = np.pad(np.cumsum(xc, axis=-1), pad)
    c2 = np.pad(np.cumsum(xc * xc, axis=-1), pad)
    t = np.arange(1, x.shape[-1] + 1)
    lo = np.maximum(t - window, 0)
    n = c0[..., t] - c0[..., lo]
    s1 = c1[..., t] - c1[..., lo]
    s2 = c2[..., t] - c2[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / n) / (n - ddof)
    need = np.full(n.shape, float(max(min_periods, 1)))
    if skip is not None:
        c_skip = np.pad(np.cumsum(np.broadcast_to(skip, x.shape), axis=-1, dtype=float), pad)
        need = np.maximum(need - (c_skip[..., t] - c_skip[..., lo]), 1.0)
    ok = (n >= need) & (n > ddof)
    return np.where(ok, np.sqrt(np.maximum(var, 0.0)), np.nan)


def bias_summary(
    b: np.ndarray, skip: np.ndarray | None = None, *, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bias statistics of standardized outcomes along the last axis.

    Parameters
    ----------
    b : ndarray (B..., T)
        Standardized outcomes ``r_t / σ̂_{t-1}``; NaN = no observation.
    skip : ndarray of bool (B..., T), optional
        Rows without market data (not observations; see :func:`rolling_std`).
    window : int
        Rolling window length (observations).
    min_periods : int
        Finite observations a window needs, less one per ``skip`` row in it.

    Returns
    -------
    bias : (B...,)
        ``std(b)`` (ddof 1) over all finite outcomes.
    n_obs : (B...,)
        Number of finite outcomes ``T``; the 95% band is ``1 ± sqrt(2/T)``.
    rolling : (B..., T)
        Rolling bias statistic.
    mrad : (B...,)
        Mean over windows of ``|B_window − 1|``.
    inside : (B...,)
        Fraction of windows with ``|B_window − 1| <= sqrt(2/window)``.
    """
    valid = np.isfinite(b)
    n_obs = valid.sum(axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, b, 0.0).sum(axis=-1) / n_obs
        dev = np.where(valid, b - mean[..., None], 0.0)
        bias = np.sqrt((dev * dev).sum(axis=-1) / (n_obs - 1))
    bias = np.where(n_obs > 1, bias, np.nan)
    rolling = rolling_std(b, skip, window=window, min_periods=min_periods)
    have = np.isfinite(rolling)
    n_win = have.sum(axis=-1)
    absdev = np.abs(np.where(have, rolling, 1.0) - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mrad = np.where(n_win > 0, absdev.sum(axis=-1) / n_win, np.nan)
        inside_n = (have & (absdev <= np.sqrt(2.0 / window))).sum(axis=-1)
        inside = np.where(n_win > 0, inside_n / n_win, np.nan)
    return bias, n_obs, rolling, mrad, inside
