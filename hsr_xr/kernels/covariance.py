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

# Largest growth factor lam**-n allowed inside one cumulative-sum block (e**300).
_MAX_LOG_GROWTH = 300.0


def decay(halflife: float) -> float:
    """EWMA decay per date, ``0.5 ** (1 / halflife)``; ``inf`` gives 1 (equal weights)."""
    return 1.0 if np.isinf(halflife) else float(0.5 ** (1.0 / halflife))


def ewma_scan(
    x: np.ndarray, lam: float, *, axis: int = 0, carry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially decayed running sum ``y_t = lam * y_{t-1} + x_t`` along ``axis``.

    Vectorized as a scaled cumulative sum, ``y_t = lam**t (y_{-1} lam + sum_s lam**-s x_s)``,
    in sub-blocks short enough that ``lam**-n`` stays far from overflow; the result
    is as accurate as the recursion (errors made early are damped by the same decay).

    Parameters
    ----------
    x : ndarray
        Terms; the scan runs along ``axis`` and every other axis is a batch axis.
    lam : float
        Decay in (0, 1]; 1 is a plain cumulative sum.
    carry : ndarray, optional
        ``y_{-1}``, shape of ``x`` without ``axis`` (default zeros).

    Returns
    -------
    y : ndarray, shape of ``x``
    last : ndarray, the final ``y`` (the carry for the next block)
    """
    xt = np.moveaxis(np.asarray(x, dtype=float), axis, 0)
    n = xt.shape[0]
    out = np.empty(xt.shape)
    state = np.zeros(xt.shape[1:]) if carry is None else np.asarray(carry, dtype=float)
    step = n if lam >= 1.0 else max(1, int(_MAX_LOG_GROWTH / -np.log(lam)))
    bshape = (-1,) + (1,) * (xt.ndim - 1)
    for a in range(0, n, step):
        b = min(a + step, n)
        e = np.arange(b - a, dtype=float)
        grow = (lam**-e).reshape(bshape)
        shrink = (lam**e).reshape(bshape)
        c = np.cumsum(xt[a:b] * grow, axis=0)
        c *= shrink
        c += state * (lam * shrink)
        out[a:b] = c
        state = out[b - 1].copy()
    return np.moveaxis(out, 0, axis), state


def bartlett(lags: int) -> np.ndarray:
    """Newey–West Bartlett weights ``1 - l / (lags + 1)`` for ``l = 1..lags``."""
    return 1.0 - np.arange(1, lags + 1) / (lags + 1.0)


def _lagged(z: np.ndarray, lag: int, axis: int) -> np.ndarray:
    """``z`` shifted by ``lag`` along ``axis`` (``z_{t-lag}``), zero-filled at the start."""
    if lag == 0:
        return z
    out = np.zeros_like(z)
    src = [slice(None)] * z.ndim
    dst = [slice(None)] * z.ndim
    src[axis] = slice(0, z.shape[axis] - lag)
    dst[axis] = slice(lag, None)
    out[tuple(dst)] = z[tuple(src)]
    return out


def ewma_nw_variance(
    x: np.ndarray, halflife: float, *, lags: int = 0, min_periods: int = 1, axis: int = -1
) -> tuple[np.ndarray, np.ndarray]:
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

    Returns
    -------
    var : ndarray, shape of ``x`` (squared units of ``x``)
    n_obs : ndarray of int, observations up to and including each date
    """
    x = np.asarray(x, dtype=float)
    m = ~np.isnan(x)
    z = np.where(m, x, 0.0)
    mf = m.astype(float)
    lam = decay(halflife)
    var = None
    g0 = None
    weights = bartlett(lags)
    for lag in range(lags + 1):
        num, _ = ewma_scan(z * _lagged(z, lag, axis), lam, axis=axis)
        den, _ = ewma_scan(mf * _lagged(mf, lag, axis), lam, axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = num / den
        if lag == 0:
            g0 = g
            var = g.copy()
        else:
            var += 2.0 * weights[lag - 1] * np.where(den > 0, g, 0.0)
    if lags:
        var = np.where(var > 0, var, g0)
    n_obs = np.cumsum(m, axis=axis)
    var = np.where(n_obs >= max(min_periods, 1), var, np.nan)
    return var, n_obs


def _cross_block(
    z: np.ndarray, m: np.ndarray, a: int, b: int, lam: float, lags: int, state: list | None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Newey–West EWMA cross-moment matrices for rows ``a:b`` (one date block).

    Returns ``C (b-a, K, K)``, the plain lag-0 matrix ``G0`` and the carried state.
    """
    weights = bartlett(lags)
    state = state or [None] * (2 * (lags + 1))
    new_state = []
    za, ma = z[a:b], m[a:b]
    C = G0 = None
    for lag in range(lags + 1):
        lo = a - lag
        if lo >= 0:
            zl, ml = z[lo : b - lag], m[lo : b - lag]
        else:
            zl = np.concatenate([np.zeros((-lo, z.shape[1])), z[: b - lag]])
            ml = np.concatenate([np.zeros((-lo, z.shape[1])), m[: b - lag]])
        num, s_num = ewma_scan(za[:, :, None] * zl[:, None, :], lam, carry=state[2 * lag])
        den, s_den = ewma_scan(ma[:, :, None] * ml[:, None, :], lam, carry=state[2 * lag + 1])
        new_state += [s_num, s_den]
        with np.errstate(invalid="ignore", divide="ignore"):
            g = num / den
        if lag == 0:
            G0 = g
            C = g.copy()
        else:
            g = np.where(den > 0, g, 0.0)
            C += weights[lag - 1] * (g + g.transpose(0, 2, 1))
    return C, G0, new_state


def ewma_covariance(
    f: np.ndarray,
    *,
    vol_halflife: float,
    corr_halflife: float,
    vol_lags: int = 0,
    corr_lags: int = 0,
    min_periods: int = 1,
    block: int = 128,
) -> np.ndarray:
    """EWMA factor covariance with separate volatility and correlation half-lives.

    ``F_t[i, j] = rho_t[i, j] * sigma_t[i] * sigma_t[j]``: ``sigma`` from
    :func:`ewma_nw_variance` (``vol_halflife``, ``vol_lags``); ``rho`` from the
    pairwise Newey–West EWMA cross moments ``C = G0 + sum_l w_l (G_l + G_l')``
    (``corr_halflife``, ``corr_lags``, ``G_l[i, j]`` pairing ``f_i,s`` with
    ``f_j,s-l``), ``rho = C / sqrt(diag C diag C')`` clipped to [-1, 1]. With equal
    half-lives, no lags and no missing data this is exactly the EWMA covariance.

    A factor with fewer than ``min_periods`` observations has NaN rows/columns; a
    pair of valid factors observed together fewer than ``min_periods`` times gets
    correlation 0. The result is symmetric but not yet PSD-clipped
    (see :func:`clip_psd`).

    Parameters
    ----------
    f : ndarray (T, K)
        Factor returns, NaN = not observed.

    Returns
    -------
    ndarray (T, K, K), squared return units per date.
    """
    f = np.asarray(f, dtype=float)
    T, K = f.shape
    m = (~np.isnan(f)).astype(float)
    z = np.where(m > 0, f, 0.0)
    var, _ = ewma_nw_variance(f, vol_halflife, lags=vol_lags, min_periods=min_periods, axis=0)
    sd = np.sqrt(var)
    lam = decay(corr_halflife)
    out = np.empty((T, K, K))
    state = None
    pair_carry = None
    eye = np.eye(K, dtype=bool)
    for a in range(0, T, block):
        b = min(a + block, T)
        C, G0, state = _cross_block(z, m, a, b, lam, corr_lags, state)
        pairs, pair_carry = ewma_scan(m[a:b, :, None] * m[a:b, None, :], 1.0, carry=pair_carry)
        d2 = np.diagonal(C, axis1=1, axis2=2)
        d2 = np.where(d2 > 0, d2, np.diagonal(G0, axis1=1, axis2=2))
        d = np.sqrt(d2)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = C / (d[:, :, None] * d[:, None, :])
        rho = np.clip(rho, -1.0, 1.0)
        rho = np.where((pairs >= max(min_periods, 1)) & np.isfinite(rho), rho, 0.0)
        rho[:, eye] = 1.0
        out[a:b] = rho * sd[a:b, :, None] * sd[a:b, None, :]
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


def clip_psd(F: np.ndarray, *, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrize each ``F_t`` and clip its negative eigenvalues at 0.

    Dates whose matrix (restricted to its valid factors) passes a Cholesky test are
    only symmetrized; the others are rebuilt as ``U diag(max(w, 0)) U'``. Rows and
    columns of factors without a forecast stay NaN.

    Returns
    -------
    F : ndarray (T, K, K)
    clipped : ndarray of bool (T,), whether a date's eigenvalues were clipped
    """
    F = 0.5 * (F + np.swapaxes(F, -1, -2))
    valid = _valid_factors(F)
    G = _fill_invalid(F, valid)
    eye = np.eye(F.shape[-1])
    G_test = G + np.where(valid, 0.0, 1.0)[:, :, None] * eye
    clipped = np.zeros(F.shape[0], dtype=bool)
    for a in range(0, F.shape[0], block):
        b = min(a + block, F.shape[0])
        try:
            np.linalg.cholesky(G_test[a:b])
            continue
        except np.linalg.LinAlgError:
            pass
        w, U = np.linalg.eigh(G[a:b])
        neg = (w < 0).any(axis=1)
        if neg.any():
            w = np.maximum(w[neg], 0.0)
            R = (U[neg] * w[:, None, :]) @ np.swapaxes(U[neg], -1, -2)
            G[a:b][neg] = 0.5 * (R + np.swapaxes(R, -1, -2))
            clipped[a:b] = neg
    return _restore_invalid(G, valid), clipped


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
    is decomposed and adjusted with its own eigenvectors. ``stride=1`` simulates on
    every date. ``g`` is floored at 0, so the result is PSD. Invalid (NaN) factors
    are left out of the decomposition and stay NaN.

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
        F, _ = clip_psd(F)
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
