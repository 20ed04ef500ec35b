"""Batched constrained weighted least squares for the daily factor regression.

Model per date t (one row of the batch), over the assets n of the fit set:

    r_n = f_country + sum_s X_ns f_s + f_industry(n) + u_n,
    subject to sum_k c_k f_industry_k = 0,

with c_k industry k's share of market cap in the fit set. The country factor
is free. The normal equations are assembled from integer industry codes with
segment sums (no dummy matrices). The constraint is eliminated by expressing
the largest-cap industry through the others (f_ref = -sum_{k != ref} c_k/c_ref
f_k), which leaves a symmetric positive definite reduced system of size
K - 1 = S + J. Industries with no member on a date are decoupled (unit
diagonal, zero right-hand side) and reported as NaN. The reduced system is
scaled to unit diagonal and solved for all dates at once by Cholesky; a date
whose factorization fails, or whose scaled condition number exceeds
``max_cond``, is flagged and gets NaN, without affecting the other dates.

Everything here is pure NumPy over a leading date axis; nothing loops over
dates or assets.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .segments import segment_sum
from .standardize import row_quantiles

#: ``regression_status`` codes (one per date).
STATUS_OK = 0
STATUS_TOO_FEW_ASSETS = 1
STATUS_CONSTANT_STYLE = 2
STATUS_SINGULAR = 3
STATUS_MEANINGS: dict[int, str] = {
    STATUS_OK: "ok",
    STATUS_TOO_FEW_ASSETS: "too_few_assets",
    STATUS_CONSTANT_STYLE: "constant_style",
    STATUS_SINGULAR: "singular_system",
}

WEIGHT_KINDS = ("sqrt_cap", "cap", "equal")
SE_KINDS = ("classical", "robust")

#: A style whose weighted fit-set variance is at most this times its weighted
#: second moment (std below ~1e-7 of its level) counts as constant.
CONSTANT_RTOL = 1e-14


class RegressionResult(NamedTuple):
    """Outputs of :func:`regress`; T dates, N assets, K = 1 + S + J factors."""

    factor_returns: np.ndarray  # (T, K) country, styles, industries
    specific_returns: np.ndarray  # (T, N)
    std_errors: np.ndarray  # (T, K)
    t_stats: np.ndarray  # (T, K)
    n_assets: np.ndarray  # (T,) int64, size of the fit set
    r2: np.ndarray  # (T,) weighted centered R^2
    vef: np.ndarray  # (T,) weighted uncentered variance explained (seed)
    cond: np.ndarray  # (T,) 1-norm condition number of the scaled reduced system
    status: np.ndarray  # (T,) int8, see STATUS_MEANINGS


def regression_weights(
    cap: np.ndarray,
    fit: np.ndarray,
    kind: str = "sqrt_cap",
    specific_var: np.ndarray | None = None,
) -> np.ndarray:
    """Regression weights on the fit set, normalised to mean 1 per date; 0 elsewhere.

    Parameters
    ----------
    cap : ndarray, shape (T, N)
        Market caps (positive on the fit set).
    fit : ndarray of bool, shape (T, N)
        Fit set.
    kind : {"sqrt_cap", "cap", "equal"}
        Base weight.
    specific_var : ndarray, shape (T, N), optional
        Previous date's specific-variance forecast; the base weight is divided
        by it. Fit-set assets without a positive finite value use that date's
        median over the fit set; a date without any value keeps the base weights.

    Returns
    -------
    ndarray, shape (T, N)
    """
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"weights must be one of {WEIGHT_KINDS}, got {kind!r}")
    capf = np.where(fit, cap, 0.0)
    if kind == "sqrt_cap":
        w = np.sqrt(capf)
    elif kind == "cap":
        w = capf
    else:
        w = fit.astype(float)
    if specific_var is not None:
        sv = np.where(fit & np.isfinite(specific_var) & (specific_var > 0), specific_var, np.nan)
        med = row_quantiles(sv, 0.5)[..., None]
        sv = np.where(np.isnan(sv), med, sv)
        w = np.where(np.isnan(sv), w, w / np.where(np.isnan(sv), 1.0, sv))
    n = fit.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = w.sum(axis=-1, keepdims=True) / n
        return np.where(fit & (mean > 0), w / mean, 0.0)


def _normal_matrix(
    v: np.ndarray, xz: np.ndarray, seg_v: np.ndarray, seg_vx: np.ndarray
) -> np.ndarray:
    """Full K x K matrix X^T diag(v) X from segment sums (country, styles, industries).

    ``v`` (T, N) weights (0 outside the fit set), ``xz`` (T, N, S) style exposures
    (0 outside the fit set), ``seg_v`` (T, J) = segment sums of v, ``seg_vx``
    (T, J, S) = segment sums of v * x.
    """
    t, _, s = xz.shape
    j = seg_v.shape[-1]
    k = 1 + s + j
    m = np.zeros((t, k, k))
    vx = xz * v[..., None]
    m[:, 0, 0] = v.sum(axis=-1)
    m[:, 0, 1 : 1 + s] = m[:, 1 : 1 + s, 0] = vx.sum(axis=1)
    m[:, 1 : 1 + s, 1 : 1 + s] = np.einsum("tns,tnu->tsu", vx, xz, optimize=True)
    m[:, 0, 1 + s :] = m[:, 1 + s :, 0] = seg_v
    m[:, 1 + s :, 1 : 1 + s] = seg_vx
    m[:, 1 : 1 + s, 1 + s :] = np.swapaxes(seg_vx, 1, 2)
    ind = np.arange(1 + s, k)
    m[:, ind, ind] = seg_v
    return m


def _reduce(m: np.ndarray, ref: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Z^T M Z for the constraint elimination f = Z g (f_ref = a . g, f_k = g_k otherwise).

    With D = I - e_ref e_ref^T: Z^T M Z = D M D + (D m) a^T + a (D m)^T + M_rr a a^T,
    where m is column ``ref`` of M. Row and column ``ref`` of the result are zero.
    """
    rows = np.arange(m.shape[0])
    col = m[rows, :, ref].copy()  # (T, K)
    mrr = col[rows, ref]
    col[rows, ref] = 0.0
    out = m.copy()
    out[rows, ref, :] = 0.0
    out[rows, :, ref] = 0.0
    out += col[:, :, None] * a[:, None, :] + a[:, :, None] * col[:, None, :]
    out += mrr[:, None, None] * a[:, :, None] * a[:, None, :]
    return out


def _safe_cholesky(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Cholesky that isolates failing matrices by bisection.

    Returns (L, ok): L is NaN where the factorization failed (ok False).
    """
    try:
        return np.linalg.cholesky(a), np.ones(len(a), dtype=bool)
    except np.linalg.LinAlgError:
        if len(a) == 1:
            return np.full_like(a, np.nan), np.zeros(1, dtype=bool)
    half = len(a) // 2
    l1, ok1 = _safe_cholesky(a[:half])
    l2, ok2 = _safe_cholesky(a[half:])
    return np.concatenate([l1, l2]), np.concatenate([ok1, ok2])


def regress(
    returns: np.ndarray,
    cap: np.ndarray,
    codes: np.ndarray,
    loadings: np.ndarray,
    universe: np.ndarray | None = None,
    specific_var: np.ndarray | None = None,
    *,
    n_industries: int,
    weights: str = "sqrt_cap",
    winsorize: float | None = 0.01,
    residuals: str = "raw",
    fill_exposures: float | None = 0.0,
    std_errors: str = "classical",
    min_dof: int = 10,
    max_cond: float = 1e12,
) -> RegressionResult:
    """Constrained WLS factor regression for a stack of dates.

    Parameters
    ----------
    returns : ndarray, shape (T, N)
        Simple returns; NaN = no return.
    cap : ndarray, shape (T, N)
        Market cap known before the return; NaN or <= 0 = unknown.
    codes : ndarray of int, shape (T, N) or (1, N)
        Industry codes 0..n_industries-1, -1 = unknown.
    loadings : ndarray, shape (T, N, S)
        Style exposures; NaN = unknown.
    universe : ndarray of bool, shape (T, N), optional
        Estimation universe; narrows the fit set.
    specific_var : ndarray, shape (T, N), optional
        Previous date's specific-variance forecast, aligned to the regression
        date. When given, weights are divided by it (see
        :func:`regression_weights`).
    n_industries : int
        J, the number of industry codes.
    weights : {"sqrt_cap", "cap", "equal"}
        Base regression weight, normalised to mean 1 over the fit set.
    winsorize : float or None
        Fit returns are clipped to the date's ``winsorize`` / ``1 - winsorize``
        equal-weighted quantiles over the fit set; None disables.
    residuals : {"raw", "winsorized"}
        Which returns the specific returns are measured against.
    fill_exposures : float or None
        Value used for a missing style loading; None leaves the asset out of the
        fit and gives it a NaN specific return.
    std_errors : {"classical", "robust"}
        Classical WLS standard errors, or heteroskedasticity-robust HC1.
    min_dof : int
        Fit-set size must be at least the number of free parameters plus this.
    max_cond : float
        Dates whose scaled reduced system has a larger 1-norm condition number
        are flagged singular.

    Returns
    -------
    RegressionResult
        Fit set = assets with a return, a positive cap, an industry code, all
        loadings (after filling) and, if given, in ``universe``. Specific returns
        are given for every asset with a return, an industry and loadings.
    """
    if residuals not in ("raw", "winsorized"):
        raise ValueError(f"residuals must be 'raw' or 'winsorized', got {residuals!r}")
    if std_errors not in SE_KINDS:
        raise ValueError(f"std_errors must be one of {SE_KINDS}, got {std_errors!r}")
    r = np.asarray(returns, dtype=float)
    t, n = r.shape
    cap = np.asarray(cap, dtype=float)
    codes = np.broadcast_to(np.asarray(codes), (t, n)).astype(np.int64)
    x = np.asarray(loadings, dtype=float)
    s = x.shape[-1]
    j = int(n_industries)
    k = 1 + s + j
    if fill_exposures is not None:
        x = np.where(np.isnan(x), float(fill_exposures), x)
    has_x = ~np.isnan(x).any(axis=-1)
    has_exposure = has_x & (codes >= 0)
    fit = has_exposure & ~np.isnan(r) & np.isfinite(cap) & (cap > 0)
    if universe is not None:
        fit &= np.asarray(universe, dtype=bool)

    # winsorize the returns with the fit set's quantiles
    r_fit = np.where(fit, r, np.nan)
    if winsorize is not None:
        bounds = row_quantiles(r_fit, [winsorize, 1.0 - winsorize])
        lo, hi = bounds[:, :1], bounds[:, 1:]
        r_win = np.clip(r, lo, hi)
        r_fit = np.clip(r_fit, lo, hi)
    else:
        r_win = r
    y = np.where(fit, r_fit, 0.0)

    w = regression_weights(cap, fit, weights, specific_var)
    xz = np.where(fit[..., None], x, 0.0)

    # industry blocks by segment sums: [count, cap, w, w*y, w*x_1..w*x_S]
    stacked = np.concatenate(
        [
            fit[..., None].astype(float),
            np.where(fit, cap, 0.0)[..., None],
            w[..., None],
            (w * y)[..., None],
            xz * w[..., None],
        ],
        axis=-1,
    )
    seg = segment_sum(stacked, codes, j, trailing=True)  # (T, J, 4 + S)
    count, capsum, seg_w, seg_wy, seg_wx = (
        seg[..., 0],
        seg[..., 1],
        seg[..., 2],
        seg[..., 3],
        seg[..., 4:],
    )
    m = _normal_matrix(w, xz, seg_w, seg_wx)
    b = np.concatenate(
        [(w * y).sum(axis=-1)[:, None], np.einsum("tn,tns->ts", w * y, xz), seg_wy], axis=-1
    )

    # degenerate dates
    n_fit = fit.sum(axis=-1)
    present = count > 0
    n_present = present.sum(axis=-1)
    n_params = 1 + s + np.maximum(n_present - 1, 0)
    too_few = (n_fit < n_params + int(min_dof)) | (n_present == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sw = m[:, 0, 0][:, None]
        second = np.diagonal(m, axis1=1, axis2=2)[:, 1 : 1 + s] / sw
        variance = second - (m[:, 0, 1 : 1 + s] / sw) ** 2
    constant = ~too_few & (variance <= CONSTANT_RTOL * second).any(axis=-1)
    bad = too_few | constant

    # constraint elimination: f_ref = sum_k a_k f_k over present industries k != ref
    with np.errstate(invalid="ignore", divide="ignore"):
        share = capsum / capsum.sum(axis=-1, keepdims=True)
    share = np.where(present, share, 0.0)
    ref_ind = np.argmax(share, axis=-1)
    ref = 1 + s + ref_ind
    rows = np.arange(t)
    a = np.zeros((t, k))
    with np.errstate(invalid="ignore", divide="ignore"):
        a[:, 1 + s :] = -share / share[rows, ref_ind][:, None]
    a[rows, ref] = 0.0
    a[bad] = 0.0
    pad = np.zeros((t, k), dtype=bool)
    pad[:, 1 + s :] = ~present
    pad[rows, ref] = True

    A = _reduce(m, ref, a)
    g = b.copy()
    g[rows, ref] = 0.0
    g += a * b[rows, ref][:, None]
    eye = np.eye(k, dtype=bool)
    A = np.where(pad[:, :, None] & eye, 1.0, A)
    A[bad] = np.eye(k)
    g[bad | ~np.isfinite(g).all(axis=-1)] = 0.0
    g = np.where(pad, 0.0, g)

    # unit-diagonal scaling, guarded Cholesky, inverse
    diag = np.diagonal(A, axis1=1, axis2=2)
    ok_diag = (diag > 0).all(axis=-1) & np.isfinite(A).all(axis=(1, 2))
    d = 1.0 / np.sqrt(np.where(ok_diag[:, None], diag, 1.0))
    As = np.where(ok_diag[:, None, None], A * d[:, :, None] * d[:, None, :], np.eye(k))
    L, ok_chol = _safe_cholesky(As)
    ok = ok_diag & ok_chol
    L = np.where(ok[:, None, None], L, np.eye(k))
    Linv = np.linalg.inv(L)
    Ainv_s = np.swapaxes(Linv, 1, 2) @ Linv
    cond = np.abs(As).sum(axis=1).max(axis=-1) * np.abs(Ainv_s).sum(axis=1).max(axis=-1)
    singular = ~bad & (~ok | ~(cond <= max_cond))
    cond = np.where(bad, np.nan, np.where(ok, cond, np.inf))
    failed = bad | singular

    Ainv = Ainv_s * d[:, :, None] * d[:, None, :]
    Ainv = np.where(pad[:, :, None] | pad[:, None, :], 0.0, Ainv)
    gamma = np.einsum("tkl,tl->tk", Ainv, g)
    f = gamma.copy()
    f[rows, ref] = np.einsum("tk,tk->t", a, gamma)
    f[:, 1 + s :] = np.where(present, f[:, 1 + s :], np.nan)
    f[failed] = np.nan

    # fitted values and residuals
    f_ind = f[:, 1 + s :]
    ind_part = np.take_along_axis(f_ind, np.clip(codes, 0, None), axis=1) if j else 0.0
    ind_part = np.where(codes >= 0, ind_part, np.nan)
    fitted = f[:, :1] + np.einsum("tns,ts->tn", x, f[:, 1 : 1 + s]) + ind_part
    fitted = np.where(has_exposure, fitted, np.nan)
    base = r if residuals == "raw" else r_win
    specific = base - fitted
    u = np.where(fit, y - np.where(fit, fitted, 0.0), 0.0)

    # diagnostics
    sw = w.sum(axis=-1)
    ssr = (w * u * u).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = (w * y).sum(axis=-1) / sw
        sst_c = (w * (y - ybar[:, None]) ** 2 * fit).sum(axis=-1)
        sst_u = (w * y * y).sum(axis=-1)
        r2 = 1.0 - ssr / sst_c
        vef = 1.0 - ssr / sst_u
        dof = n_fit - n_params
        if std_errors == "classical":
            cov = Ainv * (ssr / dof)[:, None, None]
        else:
            v = w * w * u * u
            seg_v = segment_sum(
                np.concatenate([v[..., None], xz * v[..., None]], axis=-1), codes, j, trailing=True
            )
            meat = _reduce(_normal_matrix(v, xz, seg_v[..., 0], seg_v[..., 1:]), ref, a)
            cov = Ainv @ meat @ Ainv * (n_fit / dof)[:, None, None]
        var = np.diagonal(cov, axis1=1, axis2=2).copy()
        var[rows, ref] = np.einsum("tk,tkl,tl->t", a, cov, a)
        se = np.sqrt(var)
        se = np.where(np.isnan(f), np.nan, se)
        tstat = f / se
    r2 = np.where(failed, np.nan, r2)
    vef = np.where(failed, np.nan, vef)
    status = np.select(
        [too_few, constant, singular],
        [STATUS_TOO_FEW_ASSETS, STATUS_CONSTANT_STYLE, STATUS_SINGULAR],
        STATUS_OK,
    ).astype(np.int8)
    return RegressionResult(f, specific, se, tstat, n_fit.astype(np.int64), r2, vef, cond, status)
