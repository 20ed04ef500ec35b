"""The embedded simulated equity market: data for users, tests and benchmarks.

:func:`simulate_market` plants a known factor model and returns the observable
panel (returns, caps, industries, raw descriptors, FF5 characteristics,
prices) together with the ground truth (``truth_*`` variables) so that every
later step can be checked for recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError
from .exposures import factor_names
from .kernels.standardize import orthogonalize, standardize
from .schema import NS_DATE_RANGE, SEED_STYLES, is_flag, is_integer, is_number

# Descriptor suffixes per style (the seed's naming: "<style>_<suffix>"); "size" and
# "nonlinear_size" are single descriptors with exactly the style's name.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "beta": ("hbeta", "dbeta", "sbeta", "rbeta"),
    "volatility": ("dsd", "hilo", "cmra", "hsigma"),
    "momentum": ("rs", "strev", "indmom", "hmom"),
    "trading_activity": ("annual", "quarter", "5y", "month"),
    "growth": ("payo", "vcap", "agro", "egro"),
    "earnings_yield": ("trailing_12m", "cetop", "etop", "etopf"),
    "value": ("bp", "sp", "cfp", "ebitdap"),
    "earnings_variability": ("vern", "vsales", "vcfs", "etopf_std"),
    "leverage": ("mlev", "blev", "dtoa", "dte"),
    "dividend_yield": ("dtop", "dpibs", "dyf", "dyt"),
}
# Default number of descriptors per composite style (2-4, as in the seed).
_DEFAULT_COUNTS = (2, 3, 2, 3, 4, 3, 3, 3, 3, 2)

_INDUSTRIES = (
    "banks", "software", "pharma", "semiconductors", "oil_gas", "retail", "insurance",
    "biotech", "utilities", "real_estate", "media", "telecom", "autos", "chemicals",
    "machinery", "aerospace", "food_beverage", "metals_mining", "transport", "construction",
    "hotels_leisure", "household", "capital_markets", "hardware", "healthcare_equipment",
    "apparel", "paper_forest", "electrical_equipment", "tobacco", "airlines",
)  # fmt: skip

# Annualized planted factor-return means. Chosen so that the FF5 factors built from
# the characteristics show the textbook signs: SMB > 0 (size premium < 0),
# HML > 0 (value), RMW > 0 (earnings_yield), CMA > 0 (growth premium < 0).
DEFAULT_PREMIA: dict[str, float] = {
    "country": 0.06,
    "size": -0.03,
    "value": 0.04,
    "earnings_yield": 0.03,
    "growth": -0.03,
    "momentum": 0.04,
}

_STYLE_VOL = 0.0045  # daily vol of a style factor return in the calm regime
_IND_VOL = (0.004, 0.009)  # range of daily industry factor vols
_SPEC_VOL = 0.015  # median daily specific vol (calm regime)
_T_DOF = 5  # Student-t degrees of freedom of specific returns


def _ar1(eps: np.ndarray, phi: np.ndarray, x0: np.ndarray, block: int = 128) -> np.ndarray:
    """AR(1) paths x_t = phi x_{t-1} + eps_t with x_0 = x0, along axis 0, in blocks, in place.

    Within a block the recursion is a scaled cumulative sum, so only T/block
    iterations run in Python; ``block`` keeps phi**-block well conditioned.
    """
    out = eps  # in place: each block reads its innovations before overwriting them
    out[0] = x0
    prev = x0
    for a in range(1, eps.shape[0], block):
        b = min(a + block, eps.shape[0])
        pw = phi ** np.arange(b - a).reshape(-1, *([1] * (eps.ndim - 1)))
        out[a:b] = pw * (phi * prev + np.cumsum(eps[a:b] / pw, axis=0))
        prev = out[b - 1]
    return out


def _sparse_positions(rng: np.random.Generator, size: int, frac: float) -> np.ndarray:
    """About ``frac * size`` random flat positions (cheaper than a dense mask)."""
    return rng.integers(0, size, rng.binomial(size, frac))


def _cap_standardize(x: np.ndarray, w: np.ndarray, block: int = 256) -> np.ndarray:
    """Seed-style standardization of (T, N, S) exposures over assets with cap weights (T, N).

    Runs over blocks of dates so that the kernel's temporaries stay small.
    """
    out = np.empty_like(x)
    for a in range(0, x.shape[0], block):
        z, _ = standardize(
            np.moveaxis(x[a : a + block], -1, 1),
            w[a : a + block, None, :],
            lower=None,
            upper=None,
            n_std=3.0,
            min_valid=1,
        )
        out[a : a + block] = np.moveaxis(z, 1, -1)
    return out


def _correlation(k: int, rng: np.random.Generator, strength: float = 0.35) -> np.ndarray:
    """A random correlation matrix with a low-rank common structure."""
    b = rng.normal(0.0, strength, size=(k, 3))
    cov = b @ b.T + np.eye(k)
    d = np.sqrt(np.diag(cov))
    return cov / np.outer(d, d)


def _regimes(n_dates: int, rng: np.random.Generator, p_enter: float, p_leave: float) -> np.ndarray:
    """Two-state Markov chain (0 calm, 1 turbulent) over dates."""
    u = rng.random(n_dates)
    state = np.zeros(n_dates, dtype=np.int8)
    for t in range(1, n_dates):
        prev = state[t - 1]
        state[t] = (u[t] < p_enter) if prev == 0 else (u[t] >= p_leave)
    return state


def _descriptor_table(styles: Sequence[str], per_style: int | None) -> list[tuple[str, str, int]]:
    """(descriptor name, style, transform id) for every descriptor."""
    table = []
    composite = [s for s in styles if s not in ("size", "nonlinear_size")]
    for i, style in enumerate(styles):
        if style in ("size", "nonlinear_size"):
            table.append((style, style, -1))
            continue
        suffixes = _SUFFIXES.get(style, tuple(f"d{j}" for j in range(4)))
        n = per_style or _DEFAULT_COUNTS[composite.index(style) % len(_DEFAULT_COUNTS)]
        table.extend((f"{style}_{suf}", style, (i + j) % 4) for j, suf in enumerate(suffixes[:n]))
    return table


def _check_args(args: dict[str, Any]) -> None:
    """Raise a :class:`ValidationError` naming the first bad :func:`simulate_market` argument."""
    rules: list[tuple[str, bool, str]] = [
        ("n_dates", is_integer(args["n_dates"]) and args["n_dates"] >= 1, "an integer >= 1"),
        ("n_assets", is_integer(args["n_assets"]) and args["n_assets"] >= 2, "an integer >= 2"),
        ("n_industries", is_integer(args["n_industries"]) and args["n_industries"] >= 1,
         "an integer >= 1"),
        ("seed", is_integer(args["seed"]) and args["seed"] >= 0, "an integer >= 0"),
        ("descriptors_per_style", args["descriptors_per_style"] is None
         or (is_integer(args["descriptors_per_style"]) and 1 <= args["descriptors_per_style"] <= 4),
         "None or an integer in 1..4"),
        ("regimes", is_flag(args["regimes"]), "True or False"),
        ("turbulent_scale", is_number(args["turbulent_scale"], finite=True)
         and args["turbulent_scale"] > 0, "a finite number > 0"),
        ("market_vol", is_number(args["market_vol"], finite=True) and args["market_vol"] >= 0,
         "a finite vol >= 0"),
    ]  # fmt: skip
    for name in ("ipo_frac", "delist_frac", "suspension_frac", "descriptor_missing", "split_frac"):
        rules.append((name, is_number(args[name]) and 0 <= args[name] <= 1, "a fraction in [0, 1]"))
    styles = args["styles"]
    styles = [] if isinstance(styles, str) or not isinstance(styles, Iterable) else list(styles)
    rules.append(
        (
            "styles",
            len(styles) > 0
            and all(isinstance(x, str) for x in styles)
            and len(set(styles)) == len(styles),
            "a non-empty list of distinct style names",
        )
    )
    premia = args["premia"]
    rules.append(
        (
            "premia",
            premia is None
            or (
                isinstance(premia, Mapping)
                and all(is_number(v, finite=True) for v in premia.values())
            ),
            "None or a mapping factor -> finite annualized mean return",
        )
    )
    for name, ok, what in rules:
        if not ok:
            raise ValidationError(name, f"must be {what}, got {args[name]!r}", f"pass {what}")
    if "nonlinear_size" in styles and "size" not in styles:
        raise ValidationError(
            "styles", "'nonlinear_size' is built from 'size', which is missing", "add 'size'"
        )
    try:
        start = pd.Timestamp(args["start"])
    except (ValueError, TypeError) as err:
        raise ValidationError(
            "start", f"{args['start']!r} is not a date", "pass e.g. '2015-01-02'"
        ) from err
    if start is pd.NaT or start.tzinfo is not None:
        raise ValidationError(
            "start", f"got {args['start']!r}", "pass a date without a time zone, e.g. '2015-01-02'"
        )
    lo, hi = NS_DATE_RANGE
    # business days run about 1.4 calendar days each
    end = start + pd.Timedelta(days=int(args["n_dates"] * 1.4) + 7)
    if not lo <= np.datetime64(start.date()) or not np.datetime64(end.date()) <= hi:
        raise ValidationError(
            "start",
            f"{args['n_dates']} business days from {start.date()} leave the dates a "
            f"datetime64[ns] holds ({lo} .. {hi})",
            "pick a start (and length) inside that range",
        )


def simulate_market(
    n_dates: int = 252,
    n_assets: int = 3000,
    n_industries: int = 30,
    seed: int = 0,
    *,
    start: str = "2015-01-02",
    styles: Sequence[str] = SEED_STYLES,
    descriptors_per_style: int | None = None,
    regimes: bool = True,
    turbulent_scale: float = 2.0,
    market_vol: float = 0.01,
    premia: Mapping[str, float] | None = None,
    ipo_frac: float = 0.10,
    delist_frac: float = 0.08,
    suspension_frac: float = 0.02,
    descriptor_missing: float = 0.02,
    split_frac: float = 0.03,
) -> xr.Dataset:
    """Simulate a daily equity market with a planted factor model.

    Parameters
    ----------
    n_dates, n_assets, n_industries : int
        Panel size (business days from ``start``; industries of skewed sizes).
    seed : int
        Everything is deterministic given the seed.
    styles : sequence of str
        Style factor names (default: the seed's 12 styles).
    descriptors_per_style : int, optional
        Raw descriptors per composite style (1-4); default mixes 2-4 as in the seed.
        ``size`` and ``nonlinear_size`` always have one descriptor of that exact name.
    regimes : bool
        Calm/turbulent volatility regimes (factor vol x ``turbulent_scale``, specific
        vol x ``sqrt(turbulent_scale)``); ``False`` keeps the true covariance constant.
    market_vol : float
        Calm-regime daily vol of the country factor (fraction).
    premia : mapping factor -> annualized mean return, optional
        Planted factor-return means of the country and the styles (default
        :data:`DEFAULT_PREMIA`); industry returns are planted relative to the
        country, summing to 0 by cap, so they take no premium.
    ipo_frac, delist_frac : float
        Fractions of assets listed late / delisted early.
    suspension_frac : float
        Fraction of listed asset-dates with a missing return (runs of 1-5 days).
    descriptor_missing : float
        Fraction of listed asset-dates with a missing descriptor value.
    split_frac : float
        Fraction of assets with one 2:1 or 3:1 split (``close`` jumps, ``adj_close`` not).

    Returns
    -------
    Dataset
        Observables: ``returns``, ``market_cap`` (known before the date's return),
        ``industry`` (asset; names in ``attrs['industry_names']``), ``descriptors``,
        ``book_to_price``, ``profitability``, ``investment``, ``close``, ``adj_close``.
        Ground truth: ``truth_factor_returns(date, factor)``,
        ``truth_exposures(date, asset, style)``, ``truth_factor_cov(date, factor, factor2)``
        (covariance of that date's factor returns), ``truth_specific_var(date, asset)``,
        ``truth_specific_returns(date, asset)``, ``truth_premia(factor)`` (annualized).

    Notes
    -----
    Returns follow ``r = f_country + X_style f_style + f_industry + u`` with Student-t
    (5 dof) specific returns whose vol falls with size. True industry returns satisfy
    the cap-weighted zero-sum constraint under the initial cap shares, so the country
    factor is the cap-weighted market's common move. Style exposures are slowly
    mean-reverting AR(1) paths (half-life ~6 months), standardized as Barra loadings
    are: cap-weighted mean 0 and std 1, clipped at 3 std. The true size exposure is
    the standardized log cap path (up to the size factors' own contribution to it)
    and the ``size`` descriptor is log market cap; the ``nonlinear_size`` descriptor
    is the cube of standardized log cap, and its true exposure is the
    cube of size orthogonalized to size (USE4's order: orthogonalize, then
    standardize). ``compute_loadings`` winsorizes the heavy-tailed cube as a
    descriptor before any orthogonalization, so its ``nonlinear_size`` loading tracks
    this truth only loosely (cross-sectional correlation about 0.7-0.85, lower with
    ``orthogonalize=True`` than without). ``book_to_price``, ``profitability`` and
    ``investment`` are noisy transforms of the value, earnings_yield and growth
    exposures, so their long-short FF5 factors inherit those factors' premia.
    """
    _check_args(locals())
    rng = np.random.default_rng(seed)
    T, N, S, I = n_dates, n_assets, len(styles), n_industries
    styles = list(styles)
    dates = pd.bdate_range(start, periods=T)
    assets = np.array([f"A{n:05d}" for n in range(N)], dtype=object)
    ind_names = [_INDUSTRIES[k] if k < len(_INDUSTRIES) else f"industry_{k}" for k in range(I)]
    factors = factor_names(styles, ind_names)
    if len(set(factors)) != len(factors):
        clash = sorted(set(styles) & ({"country"} | set(ind_names)))
        raise ValidationError(
            "styles", f"{clash} also name the country or an industry", "rename those styles"
        )
    K = len(factors)

    # --- assets: industries, listing window, initial caps -------------------------
    p_ind = 1.0 / np.arange(1, I + 1) ** 0.9
    industry = rng.choice(I, size=N, p=p_ind / p_ind.sum())
    industry[: min(I, N)] = np.arange(min(I, N))  # every industry has a member
    rng.shuffle(industry)
    first = np.where(rng.random(N) < ipo_frac, rng.integers(1, max(2, int(0.9 * T)), N), 0)
    last = np.where(
        rng.random(N) < delist_frac, first + 20 + rng.integers(0, max(1, T), N), T
    ).clip(max=T)
    t_idx = np.arange(T)[:, None]
    listed = (t_idx >= first) & (t_idx < last)
    log_cap0 = rng.normal(21.0, 1.6, N)
    size0 = (log_cap0 - log_cap0.mean()) / log_cap0.std()

    # --- true style exposures: correlated, persistent AR(1) -----------------------
    style_corr = _correlation(S, rng, 0.3)
    chol_s = np.linalg.cholesky(style_corr)
    phi = np.full(S, 0.5 ** (1 / 126))
    x0 = rng.standard_normal((N, S)) @ chol_s.T
    X = rng.standard_normal((T, N, S))
    for a in range(0, T, 256):  # correlate the innovations, in place, a block at a time
        X[a : a + 256] = X[a : a + 256] @ (chol_s.T * np.sqrt(1 - phi**2))
    X = _ar1(X, phi, x0)  # stationary: unit variance per style
    # size and nonlinear_size are functions of the cap path, set once returns exist
    X[..., [styles.index(s) for s in ("size", "nonlinear_size") if s in styles]] = 0.0

    # --- true factor returns: regimes, correlation, constraint, premia -------------
    vols = np.concatenate(
        [
            [market_vol],
            np.full(S, _STYLE_VOL) * rng.uniform(0.8, 1.3, S),
            rng.uniform(*_IND_VOL, I),
        ]
    )
    corr = _correlation(K, rng, 0.3)
    if "beta" in styles:  # beta factor co-moves with the market
        j = 1 + styles.index("beta")
        corr[0, j] = corr[j, 0] = 0.5
        w, v = np.linalg.eigh(corr)
        corr = (v * w.clip(1e-3)) @ v.T
        d = np.sqrt(np.diag(corr))
        corr /= np.outer(d, d)
    base_cov = corr * np.outer(vols, vols)
    share0 = np.bincount(industry, weights=np.exp(log_cap0), minlength=I)
    share0 /= share0.sum()
    A = np.eye(K)  # projects industry returns onto the cap-weighted zero-sum constraint
    A[1 + S :, 1 + S :] -= share0[None, :]
    base_cov = A @ base_cov @ A.T
    state = _regimes(T, rng, p_enter=0.01, p_leave=0.05) if regimes else np.zeros(T, dtype=np.int8)
    fscale = np.where(state == 1, turbulent_scale, 1.0)
    sscale = np.sqrt(fscale)
    w, v = np.linalg.eigh(base_cov)
    root = v * np.sqrt(w.clip(0))
    if premia is None:  # the defaults of the factors this market has
        prem = {k: v for k, v in DEFAULT_PREMIA.items() if k in factors}
    else:
        prem = dict(premia)
        unknown = sorted(set(prem) - set(factors[: 1 + S]))
        if unknown:
            raise ValidationError(
                "premia",
                f"names factors that are not the country or a style {unknown} (industry "
                "returns are planted relative to the country, summing to 0 by cap)",
                f"use names among {factors[: 1 + S]}",
            )
    premia_vec = np.array([prem.get(f, 0.0) for f in factors])
    f = premia_vec / 252 + fscale[:, None] * (rng.standard_normal((T, K)) @ root.T)
    true_cov = fscale[:, None, None] ** 2 * base_cov

    # --- specific returns: fat tails, vol falls with size --------------------------
    spec_vol = (_SPEC_VOL * np.exp(-0.3 * size0 + rng.normal(0, 0.15, N))).clip(0.004, 0.06)
    t_draw = rng.standard_t(_T_DOF, size=(T, N)) / np.sqrt(_T_DOF / (_T_DOF - 2))
    u = t_draw * spec_vol * sscale[:, None]
    spec_var = (spec_vol**2) * (sscale[:, None] ** 2)
    del t_draw

    r = f[:, :1] + np.einsum("tns,ts->tn", X, f[:, 1 : 1 + S]) + f[:, 1 + S :][:, industry] + u
    # True exposures follow the Barra convention: cap-weighted mean 0, cap-weighted
    # std 1, clipped at 3 std, with caps from the cap path these returns imply
    # (before the size factors' own small contribution to it).
    path = log_cap0 + np.cumsum(np.log1p(np.maximum(r, -0.9)), axis=0)
    path = np.vstack([log_cap0[None], path[:-1]])
    w = np.where(listed, np.exp(path - path.max()), np.nan)
    X = _cap_standardize(X, w)
    if "size" in styles:
        sz = _cap_standardize(path[..., None], w)[..., 0]
        X[..., styles.index("size")] = sz
        if "nonlinear_size" in styles:  # cube of size, orthogonal to size (cap-weighted)
            resid = orthogonalize(sz**3, sz, w)
            X[..., styles.index("nonlinear_size")] = _cap_standardize(resid[..., None], w)[..., 0]
    r = f[:, :1] + np.einsum("tns,ts->tn", X, f[:, 1 : 1 + S]) + f[:, 1 + S :][:, industry] + u
    r = np.maximum(r, -0.9)
    X[~listed] = np.nan  # true exposures exist while the asset is listed

    # --- missing returns: not listed, and short suspensions ------------------------
    suspended = np.zeros((T, N), dtype=bool)
    n_events = round(float(suspension_frac * listed.sum()) / 3.0)
    if n_events:
        ts, ns = rng.integers(0, T, n_events), rng.integers(0, N, n_events)
        lens = rng.integers(1, 6, n_events)
        k = np.arange(5)
        tt = ts[:, None] + k
        ok = (k < lens[:, None]) & (tt < T)
        suspended[tt[ok], np.broadcast_to(ns[:, None], tt.shape)[ok]] = True
    observed = listed & ~suspended
    returns = np.where(observed, r, np.nan)

    # --- caps evolve with returns; known before the date's return -------------------
    growth_ = np.log1p(np.nan_to_num(returns))
    log_cap = log_cap0 + np.vstack([np.zeros((1, N)), np.cumsum(growth_, axis=0)[:-1]])
    market_cap = np.where(listed, np.exp(log_cap), np.nan)

    # --- raw descriptors: noisy, heavy-tailed, differently scaled transforms --------
    table = _descriptor_table(styles, descriptors_per_style)
    desc = np.empty((len(table), T, N))  # descriptor-major: each one written contiguously
    log_size = np.log(market_cap)
    exposure = {}  # contiguous (T, N) true exposure per style, made once
    noise, y = np.empty((T, N), dtype=np.float32), np.empty((T, N))  # reused buffers
    for j, (_, style, kind) in enumerate(table):
        out = desc[j]
        if kind == -1:
            if style == "size":
                out[:] = log_size
            else:  # cube of the standardized log cap (Barra's nonlinear size)
                out[:] = _cap_standardize(log_size[..., None], market_cap)[..., 0] ** 3
            continue
        if style not in exposure:
            exposure[style] = np.ascontiguousarray(X[..., styles.index(style)])
        rng.standard_normal(dtype=np.float32, out=noise)
        noise.flat[_sparse_positions(rng, T * N, 0.005)] *= 8.0  # outliers
        np.multiply(noise, 0.25, out=y, dtype=float)
        y += 0.9 * exposure[style]
        y += 0.4 * rng.standard_normal(N)  # persistent per-asset measurement error
        scale, offset = rng.uniform(0.2, 5.0), rng.normal(0, 2.0)
        if kind == 0:
            np.multiply(y, scale, out=out)
            out += offset
        elif kind == 1:
            np.exp(np.multiply(y, 0.6, out=y), out=y)
            np.multiply(y, scale, out=out)
        elif kind == 2:
            np.sinh(np.multiply(y, 0.8, out=y), out=y)
            np.multiply(y, scale, out=out)
            out += offset
        else:
            np.multiply(y, np.sqrt(np.sqrt(np.abs(y))), out=out)  # y |y|^0.25
            out *= scale
            out -= offset
        out[:, rng.random(N) < 0.03] = np.nan  # assets never covered by this descriptor
        out.flat[_sparse_positions(rng, T * N, descriptor_missing)] = np.nan
    del exposure, noise, y
    desc[:, ~listed] = np.nan
    desc = np.moveaxis(desc, 0, -1)  # (date, asset, descriptor) view, no copy

    # --- FF5 characteristics ------------------------------------------------------
    def _char(style: str, missing: float) -> np.ndarray:
        x = X[..., styles.index(style)] if style in styles else np.zeros((T, N))
        y = 0.85 * x + 0.35 * rng.standard_normal(N) + 0.1 * rng.standard_normal((T, N))
        gone = ~listed | (rng.random(N) < missing)
        return np.where(gone, np.nan, y)

    book_to_price = 0.6 * np.exp(0.5 * _char("value", 0.02))
    profitability = 0.12 + 0.08 * _char("earnings_yield", 0.05)
    investment = 0.06 + 0.10 * _char("growth", 0.05)

    # --- prices: adjusted path and splits -----------------------------------------
    adj_close = np.exp(rng.normal(3.0, 0.8, N) + np.cumsum(growth_, axis=0))
    adj_close = np.where(listed, adj_close, np.nan)
    ratio = np.ones((T, N))
    has_split = np.flatnonzero(rng.random(N) < split_frac)
    if has_split.size:
        when = rng.integers(first[has_split], np.maximum(first[has_split] + 1, last[has_split]))
        factor_ = rng.choice([2.0, 3.0], has_split.size)
        ratio[:, has_split] = np.where(t_idx < when, factor_, 1.0)
    close = adj_close * ratio

    DA = ("date", "asset")
    ds = xr.Dataset(
        {
            "returns": (DA, returns, {"units": "fraction", "long_name": "simple total return"}),
            "market_cap": (DA, market_cap, {"long_name": "cap known before the date's return"}),
            "industry": ("asset", industry.astype(np.int64), {"industry_names": ind_names}),
            "descriptors": (("date", "asset", "descriptor"), desc),
            "book_to_price": (DA, book_to_price),
            "profitability": (DA, profitability),
            "investment": (DA, investment),
            "close": (DA, close, {"long_name": "unadjusted close"}),
            "adj_close": (DA, adj_close, {"long_name": "split-adjusted close"}),
            "truth_factor_returns": (("date", "factor"), f),
            "truth_exposures": (("date", "asset", "style"), X),
            "truth_factor_cov": (("date", "factor", "factor2"), true_cov),
            "truth_specific_var": (DA, np.where(listed, spec_var, np.nan)),
            "truth_specific_returns": (DA, np.where(observed, u, np.nan)),
            "truth_premia": ("factor", premia_vec, {"units": "annualized fraction"}),
            "truth_regime": ("date", state, {"long_name": "0 calm, 1 turbulent"}),
        },
        coords={
            "date": dates.values.astype("datetime64[ns]"),
            "asset": assets,
            "descriptor": np.array([t[0] for t in table], dtype=object),
            "style": np.array(styles, dtype=object),
            "factor": np.array(factors, dtype=object),
            "factor2": np.array(factors, dtype=object),
        },
        attrs={"title": "hsr_xr simulated market", "seed": int(seed)},
    )
    return ds
