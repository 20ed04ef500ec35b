"""Batched constrained weighted least squares for the daily factor regression.

Model per date t (one row of the batch), over the assets n of the fit set:

    r_n = f_country + sum_s X_ns f_s + f_industry(n) + u_n,
    subject to sum_k c_k f_industry_k = 0,

with c_k industry k's share of market cap in the fit set. The country factor
is free. The normal equations are assembled from integer industry codes with
segment sums (no dummy matrices): X'WX = [[P, Q], [Q', D]] with P the
(1 + S) x (1 + S) country/style block, Q the (1 + S) x J cross block and D the
diagonal industry block. The industries are profiled out under the constraint,

    f_ind = H (b_ind - Q' g),   H = D^-1 - (D^-1 c)(D^-1 c)' / (c' D^-1 c),

so g = (f_country, f_styles) solves the (1 + S) x (1 + S) Schur complement
G g = b_g - Q H b_ind with G = P - Q H Q' (positive definite when the model is
identified). The constraint then holds by construction. G is scaled to unit
diagonal and factorized by Cholesky for all dates at once; a date whose
factorization fails, or whose scaled 1-norm condition number exceeds
``max_cond``, gets NaN and a status flag without affecting the other dates.
Industries with no member on a date are dropped from that date's system
(NaN return). The constrained inverse Psi (Cov = sigma^2 Psi) has blocks
G^-1, -G^-1 Q H and H + H Q' G^-1 Q H, which gives the standard errors.

When every date shares the same industry codes (``industry(asset)``), the
assets are put in the order of a :class:`~.segments.SortedSegments` plan once so
that industry sums are a single ``np.add.reduceat``; date-varying codes use
:func:`~.segments.segment_sum`.

Everything here is NumPy over a leading date axis; nothing loops over dates or
assets in Python. With Numba (:mod:`.jit`) and classical standard errors, the
passes over the loadings (missing count, the sums of the normal equations, the
fitted values) are three compiled loops instead; their NumPy forms stay the
fallback.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from . import jit
from .quantiles import row_quantiles
from .segments import SortedSegments, segment_sum, static_codes

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
#: A weighted sum of squares (centered returns, residuals) at most this times
#: sum w y^2 is rounding noise: R^2 (no variation to explain) and the standard
#: errors (no residual to estimate the error variance from) are then NaN.
ZERO_SS_RTOL = 1e-24
#: Date-asset cells per vectorized step of :func:`regress` (32 dates at N=3000).
BLOCK_CELLS = 96_000


class InfiniteLoadingsError(ValueError):
    """Raised by :func:`regress` for +-inf loadings (NaN is the missing value)."""


class RegressionResult(NamedTuple):
    """Outputs of :func:`regress`; T dates, N assets, K = 1 + S + J factors."""

    factor_returns: np.ndarray  # (T, K) country, styles, industries
    specific_returns: np.ndarray  # (T, N)
    std_errors: np.ndarray  # (T, K)
    t_stats: np.ndarray  # (T, K)
    n_assets: np.ndarray  # (T,) int64, size of the fit set
    r2: np.ndarray  # (T,) weighted centered R^2
    vef: np.ndarray  # (T,) weighted uncentered variance explained (seed)
    cond: np.ndarray  # (T,) 1-norm condition number of the scaled Schur complement G
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


def _normal_matrix(seg: np.ndarray, mss: np.ndarray) -> np.ndarray:
    """Full K x K matrix X^T diag(v) X (country, styles, industries) from segment sums.

    ``seg`` (T, 1 + S, J): industry sums of v and of v * x_s (v = 0 outside the
    fit set, whose assets all have an industry); ``mss`` (T, S, S) = sum_n v x x^T.
    """
    t, s1, j = seg.shape
    s = s1 - 1
    k = 1 + s + j
    m = np.zeros((t, k, k))
    tot = seg.sum(axis=-1)  # (T, 1 + S): sum v, sum v x
    m[:, 0, : 1 + s] = m[:, : 1 + s, 0] = tot
    m[:, 1 : 1 + s, 1 : 1 + s] = mss
    m[:, 0, 1 + s :] = m[:, 1 + s :, 0] = seg[:, 0]
    m[:, 1 : 1 + s, 1 + s :] = seg[:, 1:]
    m[:, 1 + s :, 1 : 1 + s] = np.swapaxes(seg[:, 1:], 1, 2)
    ind = np.arange(1 + s, k)
    m[:, ind, ind] = seg[:, 0]
    return m


def _industry_sums(
    values: np.ndarray, plan: SortedSegments | None, codes: np.ndarray, n_segments: int
) -> np.ndarray:
    """Sums of ``values`` (T, N, P) by industry -> (T, P, J).

    With a plan (codes shared by every date) ``values`` is in the plan's asset
    order; otherwise ``codes`` (T, N) go through :func:`segment_sum`.
    """
    if plan is not None:
        return np.swapaxes(plan.sum_sorted(values, axis=1), 1, 2)
    return np.swapaxes(segment_sum(values, codes, n_segments, trailing=True), 1, 2)


@jit.compiled
def _count_missing(x, out):
    """out[t, n] = number of NaN in x[t, n, :]; returns the number of +-inf in ``x``."""
    t_len, n_len, s_len = x.shape
    n_inf = 0
    for t in range(t_len):
        for n in range(n_len):
            c = 0
            for k in range(s_len):
                v = x[t, n, k]
                if np.isnan(v):
                    c += 1
                elif np.isinf(v):
                    n_inf += 1
            out[t, n] = c
    return n_inf


@jit.compiled
def _cube_sums(x, fill, fit, cap, w, wy, codes, seg, qx, pxx, bx):
    """The sums over assets of the normal equations, in one pass over ``x``.

    seg (T, 4, J): industry sums of fit, cap, w*y, w; qx (T, S, J): industry sums
    of w*x; pxx (T, S, S): sum w x x'; bx (T, S): sum w*y*x (missing x = ``fill``).
    Outputs start at zero. Per date, the sums build up in small contiguous arrays.
    """
    t_len, n_len, s_len = x.shape
    j_len = seg.shape[2]
    xs = np.empty(s_len)
    p = np.empty((s_len, s_len))
    q = np.empty((j_len, s_len))
    b = np.empty(s_len)
    for t in range(t_len):
        p[:] = 0.0
        q[:] = 0.0
        b[:] = 0.0
        for n in range(n_len):
            if not fit[t, n]:
                continue
            c = codes[t, n]
            wt = w[t, n]
            wyt = wy[t, n]
            seg[t, 0, c] += 1.0
            seg[t, 1, c] += cap[t, n]
            seg[t, 2, c] += wyt
            seg[t, 3, c] += wt
            for k in range(s_len):
                v = x[t, n, k]
                xs[k] = fill if np.isnan(v) else v
            for k in range(s_len):
                a = wt * xs[k]
                q[c, k] += a
                b[k] += wyt * xs[k]
                for m in range(s_len):
                    p[k, m] += a * xs[m]
        for k in range(s_len):
            bx[t, k] = b[k]
            for m in range(s_len):
                pxx[t, k, m] = p[k, m]
            for c in range(j_len):
                qx[t, k, c] = q[c, k]


@jit.compiled
def _fitted_values(x, fill, f, codes, out):
    """out[t, n] = f_country + sum_s x[t, n, s] f_s + f_industry(n), NaN without an industry.

    ``f`` (T, 1 + S + J) in factor order; missing x = ``fill``.
    """
    t_len, n_len, s_len = x.shape
    for t in range(t_len):
        for n in range(n_len):
            c = codes[t, n]
            if c < 0:
                out[t, n] = np.nan
                continue
            acc = f[t, 0] + f[t, 1 + s_len + c]
            for k in range(s_len):
                v = x[t, n, k]
                acc += (fill if np.isnan(v) else v) * f[t, 1 + k]
            out[t, n] = acc


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
    block: int | None = None,
    threads: int = 1,
) -> RegressionResult:
    """Constrained WLS factor regression for a stack of dates.

    ``cap``, ``codes``, ``universe`` and ``specific_var`` may have any shape that
    broadcasts to (T, N) (e.g. (1, N) for codes shared by every date), ``loadings``
    any shape that broadcasts to (T, N, S).

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
        Dates whose unit-diagonal-scaled Schur complement G (see module
        docstring) has a larger 1-norm condition number
        are flagged singular.
    block : int, optional
        Dates per vectorized step (default: about ``BLOCK_CELLS`` date-asset
        cells). Dates are independent, so results do not depend on it (up to
        rounding with date-varying codes: a block whose dates share their codes
        sums industries in another order); blocks keep the (dates, assets,
        styles) temporaries cache-sized instead of page-faulting full-size
        copies (about 15% faster at N=3000).
    threads : int
        Date blocks solved concurrently (the passes release the GIL).

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
    r = np.asarray(returns)
    t, n = r.shape
    step = max(1, int(block) if block else BLOCK_CELLS // max(n, 1))
    options = dict(
        n_industries=n_industries,
        weights=weights,
        winsorize=winsorize,
        residuals=residuals,
        fill_exposures=fill_exposures,
        std_errors=std_errors,
        min_dof=min_dof,
        max_cond=max_cond,
    )

    # every input as a (T, N[, S]) view (free for broadcast shapes), then sliced by dates;
    # codes shared by every date stay one (1, N) row
    x = np.asarray(loadings)
    codes = np.asarray(codes).astype(np.int64, copy=False)
    n_industries = operator.index(n_industries)
    if (codes >= n_industries).any():  # the compiled passes index by code, unchecked
        raise ValueError(f"industry codes must be below n_industries={n_industries}")
    shared = codes.ndim < 2 or codes.shape[0] == 1
    codes = codes.reshape(1, n) if shared else np.broadcast_to(codes, (t, n))
    inputs = [
        r,
        np.broadcast_to(np.asarray(cap), (t, n)),
        codes,
        np.broadcast_to(x, (t, n, x.shape[-1])),
        *(None if a is None else np.broadcast_to(a, (t, n)) for a in (universe, specific_var)),
    ]

    def dates(a, i: int):
        return a if a is None or (a is codes and shared) else a[i : i + step]

    parts = jit.map_blocks(  # one (empty) block when there are no dates
        lambda i: _regress_block(*(dates(a, i) for a in inputs), **options),
        range(0, max(t, 1), step),
        threads,
    )
    if len(parts) == 1:
        return parts[0]
    return RegressionResult(*(np.concatenate(field) for field in zip(*parts, strict=True)))


def _regress_block(
    returns: np.ndarray,
    cap: np.ndarray,
    codes: np.ndarray,
    loadings: np.ndarray,
    universe: np.ndarray | None,
    specific_var: np.ndarray | None,
    *,
    n_industries: int,
    weights: str,
    winsorize: float | None,
    residuals: str,
    fill_exposures: float | None,
    std_errors: str,
    min_dof: int,
    max_cond: float,
) -> RegressionResult:
    """:func:`regress` on one block of dates: (t, N[, S]) arrays, codes (t, N) or (1, N)."""
    r = np.asarray(returns, dtype=float)
    t, n = r.shape
    x = np.asarray(loadings, dtype=float)
    s = x.shape[-1]
    j = int(n_industries)
    k = 1 + s + j
    codes = np.asarray(codes)  # int64 (see regress)
    fill = 0.0 if fill_exposures is None else float(fill_exposures)
    # compiled single passes over the loadings cube (the robust meat needs the filled cube)
    compiled = jit.enabled() and std_errors == "classical"
    shared = None if compiled else static_codes(codes)
    plan = None if shared is None else SortedSegments(shared, j)
    codes = np.broadcast_to(codes, (t, n))  # shared codes arrive as one (1, N) row
    cap = np.asarray(cap, dtype=float)
    if plan is not None:  # work in industry order; undone on the specific returns
        order = plan.order
        r, cap, codes = r[:, order], cap[:, order], codes[:, order]
        universe = None if universe is None else universe[:, order]
        specific_var = None if specific_var is None else specific_var[:, order]
        xf = np.take(x, order, axis=1)  # (T, N, S) reordered copy
    elif not compiled:
        xf = np.array(x, dtype=float)  # (T, N, S) copy, filled below
    if compiled:
        xf = np.broadcast_to(x, (t, n, s))  # read as is; missing values read as ``fill``
        n_missing = np.empty((t, n), dtype=np.intp)
        infinite = _count_missing(xf, n_missing) > 0
    else:
        infinite = bool(np.isinf(xf).any())
        missing = np.isnan(xf)
        n_missing = np.einsum("tns->tn", missing.view(np.uint8), dtype=np.intp)  # fast count
        np.copyto(xf, fill, where=missing)
        del missing
    if infinite:
        raise InfiniteLoadingsError("loadings hold +-inf: set them to NaN (missing)")
    # fill_exposures fills *some* missing styles; an asset with no loading at all has
    # no exposures and stays out of the fit (its specific return is NaN)
    has_x = (n_missing < s) | (s == 0) if fill_exposures is not None else n_missing == 0
    has_exposure = has_x & (codes >= 0)
    fit = has_exposure & ~np.isnan(r) & np.isfinite(cap) & (cap > 0)
    if universe is not None:
        fit &= universe.astype(bool)

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

    # industry sums of [count, cap, w*y, w] and of w*x_1..w*x_S, sum w x x', sum w y x
    seg = np.zeros((t, 4, j))
    q = np.zeros((t, 1 + s, j))  # [country, styles] x industries block of X'WX
    p_mat = np.empty((t, 1 + s, 1 + s))
    if compiled:
        wy_x = np.empty((t, s))
        _cube_sums(xf, fill, fit, cap, w, w * y, codes, seg, q[:, 1:], p_mat[:, 1:, 1:], wy_x)
    else:  # contiguous per-asset arrays; then (w*y) . x and (w*x) . x by batched matmul
        per_asset = np.empty((t, n, 4))
        per_asset[..., 0] = fit
        per_asset[..., 1] = np.where(fit, cap, 0.0)
        np.multiply(w, y, out=per_asset[..., 2])
        per_asset[..., 3] = w
        wx = np.multiply(xf, w[..., None])  # (T, N, S)
        seg[:] = _industry_sums(per_asset, plan, codes, j)
        q[:, 1:] = _industry_sums(wx, plan, codes, j)
        np.matmul(np.swapaxes(wx, 1, 2), xf, out=p_mat[:, 1:, 1:])
        del wx
        wy_x = (np.ascontiguousarray(per_asset[..., 2])[:, None, :] @ xf)[:, 0]  # (T, S)
    q[:, 0] = seg[:, 3]
    count, capsum, seg_wy = seg[:, 0], seg[:, 1], seg[:, 2]
    d = q[:, 0]  # industry diagonal: sum of weights per industry
    tot = q.sum(axis=-1)  # (T, 1 + S): sum w, sum w x (every fit asset has an industry)
    p_mat[:, 0], p_mat[:, :, 0] = tot, tot
    b_g = np.concatenate([seg_wy.sum(axis=-1)[:, None], wy_x], axis=-1)

    # degenerate dates
    n_fit = fit.sum(axis=-1)
    present = count > 0
    n_present = present.sum(axis=-1)
    n_params = 1 + s + np.maximum(n_present - 1, 0)
    too_few = (n_fit < n_params + int(min_dof)) | (n_present == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        second = np.diagonal(p_mat, axis1=1, axis2=2)[:, 1:] / tot[:, :1]
        variance = second - (tot[:, 1:] / tot[:, :1]) ** 2
    constant = ~too_few & (variance <= CONSTANT_RTOL * second).any(axis=-1)
    bad = too_few | constant

    # profile out the industries under the constraint share . f_ind = 0:
    # f_ind = H (b_ind - Q^T g),  H = D^-1 - (D^-1 c)(D^-1 c)^T / (c^T D^-1 c),
    # and g = (country, styles) solves the Schur complement G g = b_g - Q H b_ind.
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(present, capsum / capsum.sum(axis=-1, keepdims=True), 0.0)
        dinv = np.where(present, 1.0 / np.where(present, d, 1.0), 0.0)
    dc = dinv * share
    sc = np.sum(share * dc, axis=-1)
    sc = np.where(sc > 0, sc, 1.0)[:, None]
    qd = q * dinv[:, None, :]
    qdc = np.einsum("tkj,tj->tk", q, dc)
    G = p_mat - qd @ np.swapaxes(q, 1, 2) + qdc[:, :, None] * qdc[:, None, :] / sc[:, :, None]
    rhs = b_g - np.einsum("tkj,tj->tk", qd, seg_wy) + qdc * (dc * seg_wy).sum(-1)[:, None] / sc
    k1 = 1 + s
    G[bad] = np.eye(k1)
    rhs[bad | ~np.isfinite(rhs).all(axis=-1)] = 0.0

    # unit-diagonal scaling, guarded Cholesky, inverse of the small (1 + S) system
    diag = np.diagonal(G, axis1=1, axis2=2)
    ok_diag = (diag > 0).all(axis=-1) & np.isfinite(G).all(axis=(1, 2))
    dd = 1.0 / np.sqrt(np.where(ok_diag[:, None], diag, 1.0))
    Gs = np.where(ok_diag[:, None, None], G * dd[:, :, None] * dd[:, None, :], np.eye(k1))
    L, ok_chol = _safe_cholesky(Gs)
    ok = ok_diag & ok_chol
    Linv = np.linalg.inv(np.where(ok[:, None, None], L, np.eye(k1)))
    Gs_inv = np.swapaxes(Linv, 1, 2) @ Linv
    cond = np.abs(Gs).sum(axis=1).max(axis=-1) * np.abs(Gs_inv).sum(axis=1).max(axis=-1)
    singular = ~bad & (~ok | ~(cond <= max_cond))
    cond = np.where(bad, np.nan, np.where(ok, cond, np.inf))
    failed = bad | singular

    Ginv = Gs_inv * dd[:, :, None] * dd[:, None, :]
    g = np.einsum("tkl,tl->tk", Ginv, rhs)
    v = seg_wy - np.einsum("tkj,tk->tj", q, g)
    h = dinv * v - dc * (dc * v).sum(axis=-1, keepdims=True) / sc
    # a date's only industry is fixed at 0 by the constraint (h is 0 up to rounding)
    pinned = present & (n_present == 1)[:, None]
    f = np.concatenate([g, np.where(pinned, 0.0, np.where(present, h, np.nan))], axis=-1)
    f[failed] = np.nan

    # fitted values and residuals
    if compiled:
        fitted = np.empty((t, n))
        _fitted_values(xf, fill, f, codes, fitted)
    else:
        f_ind = f[:, 1 + s :]
        ind_part = np.take_along_axis(f_ind, np.clip(codes, 0, None), axis=1) if j else 0.0
        fitted = (xf @ f[:, 1 : 1 + s, None])[..., 0]
        fitted += f[:, :1] + np.where(codes >= 0, ind_part, np.nan)
    np.copyto(fitted, np.nan, where=~has_exposure)
    base = r if residuals == "raw" else r_win
    specific = base - fitted
    if plan is not None:
        specific[:, plan.order] = specific.copy()
    u = y - fitted  # fit-set residuals (fitted is finite there), 0 elsewhere
    np.copyto(u, 0.0, where=~fit)

    # diagnostics (w is 0 outside the fit set)
    sw = w.sum(axis=-1)
    ssr = np.einsum("tn,tn,tn->t", w, u, u)
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = np.einsum("tn,tn->t", w, y) / sw
        dev = y - ybar[:, None]
        sst_c = np.einsum("tn,tn,tn->t", w, dev, dev)
        sst_u = np.einsum("tn,tn,tn->t", w, y, y)
        r2 = np.where(sst_c > ZERO_SS_RTOL * sst_u, 1.0 - ssr / sst_c, np.nan)
        vef = 1.0 - ssr / sst_u
        no_residual = ~(ssr > ZERO_SS_RTOL * sst_u)
        dof = np.where(n_fit > n_params, n_fit - n_params, np.nan)  # none left: NaN errors
        hq = (
            dinv[:, :, None] * np.swapaxes(q, 1, 2)
            - dc[:, :, None] * qdc[:, None, :] / sc[:, :, None]
        )  # H Q^T, (T, J, 1 + S)
        if std_errors == "classical":
            var = (
                np.concatenate(
                    [
                        np.diagonal(Ginv, axis1=1, axis2=2),
                        dinv - dc * dc / sc + ((hq @ Ginv) * hq).sum(axis=-1),
                    ],
                    axis=-1,
                )
                * (ssr / dof)[:, None]
            )
        else:
            # sandwich Psi B Psi with Psi the constrained inverse, B = X' diag(w^2 u^2) X
            psi = np.empty((t, k, k))
            gh = -Ginv @ np.swapaxes(hq, 1, 2)
            psi[:, :k1, :k1] = Ginv
            psi[:, :k1, k1:] = gh
            psi[:, k1:, :k1] = np.swapaxes(gh, 1, 2)
            psi[:, k1:, k1:] = (
                hq @ Ginv @ np.swapaxes(hq, 1, 2) - dc[:, :, None] * dc[:, None, :] / sc[:, :, None]
            )
            ind = np.arange(k1, k)
            psi[:, ind, ind] += dinv
            w2u2 = w * w * u * u
            vx = np.empty((t, n, 1 + s))
            vx[..., 0] = w2u2
            np.multiply(xf, w2u2[..., None], out=vx[..., 1:])
            meat = _normal_matrix(
                _industry_sums(vx, plan, codes, j), np.swapaxes(vx[..., 1:], 1, 2) @ xf
            )
            var = ((psi @ meat) * psi).sum(axis=-1) * (n_fit / dof)[:, None]
        se = np.sqrt(var)
        se = np.where(np.isnan(f) | no_residual[:, None], np.nan, se)
        se[:, 1 + s :][pinned & ~failed[:, None]] = 0.0  # no sampling error: t-stat NaN
        tstat = f / se
    r2 = np.where(failed, np.nan, r2)
    vef = np.where(failed, np.nan, vef)
    status = np.select(
        [too_few, constant, singular],
        [STATUS_TOO_FEW_ASSETS, STATUS_CONSTANT_STYLE, STATUS_SINGULAR],
        STATUS_OK,
    ).astype(np.int8)
    return RegressionResult(f, specific, se, tstat, n_fit.astype(np.int64), r2, vef, cond, status)
