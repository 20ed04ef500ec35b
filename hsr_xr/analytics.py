"""Risk analytics and forecast validation.

Per-asset variance explained, portfolio risk with an x-σ-ρ decomposition,
realized volatility, bias statistics, standard portfolio sets and the
validation table.

Conventions
-----------
* Exposures are ``[country = 1, loadings(style), onehot(industry)]`` in the
  canonical factor order (:func:`hsr_xr.exposures.factor_names`); the dense
  matrix is never built. ``factor_cov`` is reordered to that order by label.
* ``factor_cov`` and ``specific_var`` stamped at date *t* forecast the return
  of *t+1*. :func:`portfolio_risk` and :func:`variance_explained` at *t* use
  everything stamped at *t* (as the seed's single-date analysis does).
  :func:`bias_statistics` pairs the return of *t* with weights and loadings
  stamped *t* (known before that return) and the covariance forecasts stamped
  *t−1*.
* Weights: NaN means "not held" (0). A held asset with a NaN loading or NaN
  specific variance makes that portfolio's risk NaN on that date. A factor
  without a forecast yet (NaN in ``factor_cov``, e.g. a new industry in its
  warm-up) makes NaN only the portfolios exposed to it. A held
  asset with a NaN return (suspension) contributes 0 to the portfolio return
  unless ``fill_returns=None``; a date on which no asset has a return (a
  holiday row) is NaN and is not an observation.
* Variances are per period of the inputs (daily fraction²); vols are their
  square roots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError
from .exposures import factor_names
from .kernels import analytics as K
from .schema import (
    check_aligned,
    check_coords,
    check_core_unchunked,
    check_counts,
    check_fills,
    check_flags,
    check_nonempty,
    industry_names,
    select_dates,
    validate,
)

WEIGHT_DIMS = ("portfolio", "date", "asset")


# ----------------------------------------------------------------------------- inputs


def _model_inputs(
    ds: xr.Dataset,
    *,
    loadings: str,
    industry: str,
    factor_cov: str,
    specific_var: str,
    fill_exposures: float | None,
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray, xr.DataArray]:
    """Validated loadings, industry codes, factor_cov (canonical order), specific_var."""
    names = {
        "loadings": loadings,
        "industry": industry,
        "factor_cov": factor_cov,
        "specific_var": specific_var,
    }
    ds = validate(ds, list(names), names=names)
    S = ds[loadings]
    check_nonempty(S, ("date", "asset"), loadings)
    check_fills(fill_exposures=fill_exposures)
    if fill_exposures is not None:
        S = S.fillna(fill_exposures)
    inds = industry_names(ds, industry)
    expected = factor_names([str(s) for s in S["style"].values], inds)
    F = ds[factor_cov]
    for dim in ("factor", "factor2"):
        have = [str(x) for x in F[dim].values]
        if have != expected:
            if sorted(have) != sorted(expected):
                missing = sorted(set(expected) - set(have))[:5]
                extra = sorted(set(have) - set(expected))[:5]
                raise ValidationError(
                    factor_cov,
                    f"{dim} labels do not match country + styles + industries "
                    f"(missing {missing}, unexpected {extra})",
                    "build factor_cov from factor_returns ordered by hsr_xr.factor_names",
                )
            F = F.sel({dim: expected})
    S = S.transpose(..., "asset", "style")
    F = F.transpose(..., "factor", "factor2")
    codes = ds[industry]
    D = ds[specific_var]
    for var, dim, name in (
        (S, "asset", loadings),
        (S, "style", loadings),
        (codes, "asset", industry),
        (F, "factor", factor_cov),
        (F, "factor2", factor_cov),
        (D, "asset", specific_var),
    ):
        check_core_unchunked(var, dim, name)
    return S, codes, F, D


def _check_weights(weights: xr.DataArray, name: str, ref: xr.DataArray) -> xr.DataArray:
    """Validate a weights DataArray against the panel's coordinates."""
    if not isinstance(weights, xr.DataArray):
        raise ValidationError(
            name, f"expected an xarray.DataArray, got {type(weights).__name__}", "wrap in DataArray"
        )
    dims = set(weights.dims)
    if "asset" not in dims or not dims <= set(WEIGHT_DIMS):
        raise ValidationError(
            name,
            f"has dims {weights.dims}, expected (asset), (date, asset), (portfolio, asset) "
            "or (portfolio, date, asset)",
            "rename or transpose the dims to the canonical names",
        )
    if weights.dtype.kind not in "fiu":
        raise ValidationError(name, f"has dtype {weights.dtype}", "cast with .astype(float)")
    check_coords(weights, name)
    if "asset" not in weights.coords:
        raise ValidationError(name, "has no asset labels", "assign the asset coordinate")
    check_aligned({name: weights, "the Dataset": ref}, ["asset", "date"])
    check_core_unchunked(weights, "asset", name)
    check_core_unchunked(weights, "portfolio", name)
    return weights.astype(float)


# ----------------------------------------------------------------------------- variance explained


def variance_explained(
    ds: xr.Dataset,
    date=None,
    *,
    loadings: str = "loadings",
    industry: str = "industry",
    factor_cov: str = "factor_cov",
    specific_var: str = "specific_var",
    fill_exposures: float | None = None,
    merge: bool = False,
) -> xr.Dataset:
    """Per-asset factor variance, total variance and variance explained (factor R²).

    ``factor_variance = diag(X F Xᵀ)``, ``total_variance = factor_variance +
    specific_var``, ``variance_explained = factor_variance / total_variance``,
    all with dims (date, asset), or (asset) for a single ``date``. Vectorized
    over dates (one batched kernel per Dask chunk of dates); NaN where a loading
    or the specific variance is missing.

    Parameters
    ----------
    ds : Dataset
        Needs ``loadings(date, asset, style)``, ``industry``,
        ``factor_cov(date, factor, factor2)``, ``specific_var(date, asset)``.
    date : label, list or slice, optional
        Dates to evaluate (default all).
    fill_exposures : float, optional
        Fill missing loadings with this value (default: leave NaN).
    merge : bool
        Return ``ds`` with the three variables added.
    """
    check_flags(merge=merge)
    S, codes, F, D = _model_inputs(
        ds, loadings=loadings, industry=industry, factor_cov=factor_cov,
        specific_var=specific_var, fill_exposures=fill_exposures,
    )  # fmt: skip
    S, codes, F, D = (select_dates(x, date) for x in (S, codes, F, D))
    fvar = xr.apply_ufunc(
        K.asset_factor_variance,
        S,
        codes,
        F,
        input_core_dims=[["asset", "style"], ["asset"], ["factor", "factor2"]],
        output_core_dims=[["asset"]],
        dask="parallelized",
        output_dtypes=[float],
    )
    total = fvar + D
    out = xr.Dataset(
        {
            "factor_variance": fvar.assign_attrs(units="fraction^2", long_name="diag(X F X')"),
            "total_variance": total.assign_attrs(units="fraction^2"),
            "variance_explained": (fvar / total).assign_attrs(long_name="factor R2 per asset"),
        }
    )
    out = out.transpose(*[d for d in ("date", "asset") if d in out.dims])
    return ds.assign(out.data_vars) if merge else out


# ----------------------------------------------------------------------------- portfolio risk


def portfolio_risk(
    ds: xr.Dataset,
    weights: xr.DataArray,
    date=None,
    benchmark: xr.DataArray | None = None,
    *,
    loadings: str = "loadings",
    industry: str = "industry",
    factor_cov: str = "factor_cov",
    specific_var: str = "specific_var",
    fill_exposures: float | None = None,
) -> xr.Dataset:
    """Factor, specific and total risk of portfolios with an x-σ-ρ decomposition.

    Parameters
    ----------
    ds : Dataset
        Needs ``loadings``, ``industry``, ``factor_cov``, ``specific_var``.
    weights : DataArray
        Holdings with dims (asset), (date, asset), (portfolio, asset) or
        (portfolio, date, asset); asset (and date) labels must equal the
        Dataset's. NaN = not held.
    date : label, list or slice, optional
        Dates to evaluate (default all).
    benchmark : DataArray, optional
        Benchmark holdings (same dim rules); the result is then the active
        (tracking) risk of ``weights − benchmark``.
    fill_exposures : float, optional
        Fill missing loadings with this value (default: leave NaN).

    Returns
    -------
    Dataset with dims ([portfolio], [date], [factor]):
        ``factor_variance``, ``specific_variance``, ``total_variance``
        (fraction² per period); ``factor_risk``, ``specific_risk``,
        ``total_risk`` (their square roots); ``r2`` (factor share of
        variance); ``exposure`` (``Xᵀw``, by factor); ``factor_vol``
        (σ_k); ``correlation`` (ρ_k, correlation of factor k with the
        portfolio's factor return); ``contribution`` (``x_k σ_k ρ_k``,
        summing over factors to ``factor_risk``).
    """
    S, codes, F, D = _model_inputs(
        ds, loadings=loadings, industry=industry, factor_cov=factor_cov,
        specific_var=specific_var, fill_exposures=fill_exposures,
    )  # fmt: skip
    w = _check_weights(weights, "weights", S)
    if benchmark is not None:
        b = _check_weights(benchmark, "benchmark", S)
        w = w.fillna(0.0) - b.fillna(0.0)
    S, codes, F, D, w = (select_dates(x, date) for x in (S, codes, F, D, w))
    return _risk(w, S, codes, F, D, active=benchmark is not None)


def _risk(w, S, codes, F, D, active: bool = False) -> xr.Dataset:
    single = "portfolio" not in w.dims
    if single:
        w = w.expand_dims(portfolio=1)
    h, fvar, svar, contrib, corr = xr.apply_ufunc(
        K.portfolio_risk,
        w,
        S,
        codes,
        F,
        D,
        input_core_dims=[
            ["portfolio", "asset"],
            ["asset", "style"],
            ["asset"],
            ["factor", "factor2"],
            ["asset"],
        ],
        output_core_dims=[
            ["portfolio", "factor"],
            ["portfolio"],
            ["portfolio"],
            ["portfolio", "factor"],
            ["portfolio", "factor"],
        ],
        dask="parallelized",
        output_dtypes=[float] * 5,
    )
    total = fvar + svar
    fvol = np.sqrt(xr.apply_ufunc(np.diagonal, F, kwargs={"axis1": -2, "axis2": -1},
                                  input_core_dims=[["factor", "factor2"]],
                                  output_core_dims=[["factor"]], dask="parallelized",
                                  output_dtypes=[float]))  # fmt: skip
    var2 = "fraction^2"
    out = xr.Dataset(
        {
            "factor_variance": fvar.assign_attrs(units=var2),
            "specific_variance": svar.assign_attrs(units=var2),
            "total_variance": total.assign_attrs(units=var2),
            "factor_risk": np.sqrt(fvar).assign_attrs(units="fraction"),
            "specific_risk": np.sqrt(svar).assign_attrs(units="fraction"),
            "total_risk": np.sqrt(total).assign_attrs(units="fraction"),
            "r2": (fvar / total).assign_attrs(long_name="factor share of variance"),
            "exposure": h.assign_attrs(long_name="portfolio factor exposure X'w"),
            "factor_vol": fvol.assign_attrs(units="fraction", long_name="factor volatility"),
            "correlation": corr.assign_attrs(long_name="corr(factor, portfolio factor return)"),
            "contribution": contrib.assign_attrs(
                units="fraction", long_name="x*sigma*rho; sums to factor_risk"
            ),
        },
        attrs={"active": int(active)},
    )
    order = [d for d in ("portfolio", "date", "factor") if d in out.dims]
    out = out.transpose(*order)
    return out.isel(portfolio=0, drop=True) if single else out


# ----------------------------------------------------------------------------- returns and vol


def _portfolio_returns(
    w: xr.DataArray, r: xr.DataArray, fill_returns: float | None
) -> tuple[xr.DataArray, xr.DataArray]:
    """Σ_n w r per date; NaN weight = not held; NaN return filled (or NaN if held).

    Also returns ``no_data(date)``: dates on which no asset has a return (a
    holiday row, a data gap). Their return is NaN whatever ``fill_returns`` says
    (filling would record a 0 outcome that never happened), and they are not
    observations: rolling windows do not count them against ``min_periods``.
    """
    w0 = w.fillna(0.0)
    out = xr.dot(w0, r.fillna(0.0 if fill_returns is None else fill_returns), dim="asset")
    if fill_returns is None:
        held = (w0 != 0).astype(float)
        missing = xr.dot(held, r.isnull().astype(float), dim="asset")
        out = out.where(missing == 0)
    no_data = r.count("asset") == 0
    return out.where(~no_data), no_data.broadcast_like(out)


def _returns_input(ds: xr.Dataset, returns: str) -> xr.DataArray:
    ds = validate(ds, ["returns"], names={"returns": returns})
    r = ds[returns].transpose("date", "asset")
    check_core_unchunked(r, "asset", returns)
    return r


def realized_vol(
    ds: xr.Dataset,
    weights: xr.DataArray,
    date=None,
    *,
    window: int = 252,
    forward: bool = False,
    min_periods: int | None = None,
    ddof: int = 1,
    returns: str = "returns",
    fill_returns: float | None = 0.0,
) -> xr.Dataset:
    """Realized volatility of portfolio returns over a rolling window (the seed's calc).

    The portfolio return of date *t* is ``Σ_n w r_t``: with (asset) weights the
    same holdings are applied to every date (the seed's ex-post vol of today's
    portfolio); with dated weights, each date's holdings.

    Parameters
    ----------
    ds : Dataset
        Needs ``returns(date, asset)``.
    weights : DataArray
        (asset), (date, asset), (portfolio, asset) or (portfolio, date, asset).
    date : label, optional
        Return only this date (or list/slice of dates).
    window : int
        Window length in periods.
    forward : bool
        ``False``: trailing window ending at *t* (the seed). ``True``: the next
        ``window`` returns after *t*, comparable to a forecast stamped at *t*.
    min_periods : int, optional
        Finite returns a window needs (default: every date of the window that
        has market data; a date on which no asset has a return does not count).
    ddof : int
        Delta degrees of freedom of the standard deviation.
    fill_returns : float or None
        Return used for a held asset whose return is NaN (default 0, the seed's
        fill); ``None`` makes that date's portfolio return NaN. A date on which
        no asset has a return is NaN either way.

    Returns
    -------
    Dataset with ``portfolio_return([portfolio], date)`` and
    ``realized_vol([portfolio], date)`` (fraction per period).
    """
    check_flags(forward=forward)
    check_counts(1, window=window)
    check_counts(0, ddof=ddof)
    check_counts(0, optional=True, min_periods=min_periods)
    check_fills(fill_returns=fill_returns)
    r = _returns_input(ds, returns)
    w = _check_weights(weights, "weights", r)
    pr, no_data = _portfolio_returns(w, r, fill_returns)
    pr, no_data = _along_date(pr, no_data)
    # default: every date of the window that has market data (no-data dates do not count)
    inputs = [pr, no_data] if min_periods is None else [pr]
    vol = xr.apply_ufunc(
        K.rolling_std,
        *inputs,
        kwargs={"window": window, "min_periods": window if min_periods is None else min_periods,
                "ddof": ddof},
        input_core_dims=[["date"]] * len(inputs),
        output_core_dims=[["date"]],
        dask="parallelized",
        output_dtypes=[float],
    )  # fmt: skip
    if forward:
        vol = vol.shift(date=-window)
    out = xr.Dataset(
        {
            "portfolio_return": pr.assign_attrs(units="fraction"),
            "realized_vol": vol.assign_attrs(units="fraction", window=window, forward=int(forward)),
        }
    )
    return select_dates(out, date)


def _along_date(*objs: xr.DataArray) -> list[xr.DataArray]:
    """``objs`` with ``date`` last (and one Dask chunk along it when any is Dask-backed)."""
    if _dask(*objs):
        objs = tuple(x.chunk({"date": -1}) for x in objs)
    return [x.transpose(..., "date") for x in objs]


def _dask(*objs) -> bool:
    return any(isinstance(o.data, da.Array) for o in objs)


# ----------------------------------------------------------------------------- bias statistics


def forecast_vol(
    ds: xr.Dataset,
    weights: xr.DataArray,
    *,
    loadings: str = "loadings",
    industry: str = "industry",
    factor_cov: str = "factor_cov",
    specific_var: str = "specific_var",
    fill_exposures: float | None = None,
) -> xr.DataArray:
    """Predicted vol of each date's portfolio return, from the previous date's forecast.

    ``σ̂_t = sqrt(w_tᵀ (X_t F_{t−1} X_tᵀ + D_{t−1}) w_t)``: weights and loadings
    stamped *t* (known before *t*'s return), ``factor_cov``/``specific_var``
    stamped *t−1*. NaN on the first date. Dims ([portfolio], date).
    """
    S, codes, F, D = _model_inputs(
        ds, loadings=loadings, industry=industry, factor_cov=factor_cov,
        specific_var=specific_var, fill_exposures=fill_exposures,
    )  # fmt: skip
    w = _check_weights(weights, "weights", S)
    risk = _risk(w, S, codes, F.shift(date=1), D.shift(date=1))
    return risk["total_risk"].rename("forecast_vol")


def bias_statistics(
    ds: xr.Dataset,
    weights: xr.DataArray,
    horizon: int = 1,
    window: int = 63,
    *,
    date=None,
    min_periods: int | None = None,
    returns: str = "returns",
    loadings: str = "loadings",
    industry: str = "industry",
    factor_cov: str = "factor_cov",
    specific_var: str = "specific_var",
    fill_exposures: float | None = None,
    fill_returns: float | None = 0.0,
) -> xr.Dataset:
    """Forecast-vs-realized bias statistics of portfolios.

    Standardized outcomes ``b_t = r_t / σ̂_{t−1}`` (:func:`forecast_vol`: the
    forecast stamped at the previous date). With ``horizon = h > 1`` the dates
    are cut into consecutive non-overlapping blocks of ``h`` dates from the
    first date (an incomplete last block is dropped); the block's return is the
    sum of its daily portfolio returns and the forecast is ``sqrt(h)`` times
    the daily forecast for the block's first date; outcomes are labelled by the
    block's first date. Dates on which no asset has a return (holiday rows, data
    gaps) are not outcomes: ``b`` is NaN there, a block sums only its dates with
    data (with the forecast for the first of them, scaled by the square root of
    their count), and rolling windows do not count them against ``min_periods``.
    A zero forecast (nothing held) gives no outcome either.

    Parameters
    ----------
    ds : Dataset
        Needs ``returns``, ``loadings``, ``industry``, ``factor_cov``, ``specific_var``.
    weights : DataArray
        (asset), (date, asset), (portfolio, asset) or (portfolio, date, asset);
        NaN = not held. See :func:`portfolio_sets` for standard sets.
    horizon : int
        Periods per outcome.
    window : int
        Rolling window (outcomes) of the rolling bias statistic; its 95% band is
        ``1 ± sqrt(2/window)``.
    date : slice or list of labels, optional
        Evaluation period: outcomes (labelled by the return's date) outside it
        are left out (e.g. ``slice("2016-01-01", None)`` to skip a warm-up and
        compare presets on the same dates).
    min_periods : int, optional
        Finite outcomes a rolling window needs (default: every outcome of the
        window that has market data).
    fill_returns : float or None
        Return of a held asset with a NaN return (default 0); a date on which no
        asset has a return is NaN either way.

    Returns
    -------
    Dataset with
        ``portfolio_return``, ``forecast_vol``, ``standardized`` ([portfolio], date);
        ``bias`` (std of b, ddof 1), ``n_obs`` (T), ``band_lower``/``band_upper``
        (``1 ∓ sqrt(2/T)``), ``in_band``; ``rolling_bias`` ([portfolio], date);
        ``mrad`` (mean |rolling − 1|); ``fraction_in_band`` (of rolling windows);
        attrs ``window``, ``horizon``, ``rolling_band`` = sqrt(2/window).
    """
    check_counts(1, horizon=horizon)
    check_counts(0, optional=True, min_periods=min_periods)
    check_counts(2, window=window)
    check_fills(fill_returns=fill_returns)
    if date is not None and not isinstance(date, slice) and np.ndim(date) == 0:
        raise ValidationError(
            "date", f"got the single date {date!r}", "pass a slice or a list of dates (a range)"
        )
    r = _returns_input(ds, returns)
    sigma = forecast_vol(
        ds,
        weights,
        loadings=loadings,
        industry=industry,
        factor_cov=factor_cov,
        specific_var=specific_var,
        fill_exposures=fill_exposures,
    )
    w = weights.astype(float)
    pr, no_data = _portfolio_returns(w, r, fill_returns)
    if horizon > 1:
        # a block sums the returns of its dates with data; its forecast scales with their count
        n_blocks = r.sizes["date"] // horizon
        starts = r["date"].values[: n_blocks * horizon : horizon]

        def by_block(x: xr.DataArray) -> xr.DataArray:
            x = x.isel(date=slice(0, n_blocks * horizon)).drop_vars("date")
            return x.coarsen(date=horizon).construct(date=("block", "step"))

        has_data = ~by_block(no_data)
        n_data = has_data.sum("step").rename(block="date").assign_coords(date=starts)
        pr = by_block(pr.where(~no_data, 0.0)).sum("step", skipna=False)
        pr = pr.rename(block="date").assign_coords(date=starts).where(n_data > 0)
        no_data = n_data == 0
        # the forecast made for the block's first date with data
        first = has_data & (has_data.cumsum("step") == 1)
        sigma = by_block(sigma).where(first).sum("step", min_count=1)
        sigma = sigma.rename(block="date").assign_coords(date=starts) * np.sqrt(n_data)
    pr, sigma, no_data = (select_dates(x, date) for x in (pr, sigma, no_data))
    pr, sigma, no_data = _along_date(pr, sigma, no_data)
    b = (pr / sigma.where(sigma > 0)).drop_attrs().rename("standardized")  # no risk: no outcome
    # default: every outcome of the window that has market data (no-data dates do not count)
    inputs = [b, no_data] if min_periods is None else [b]
    bias, n_obs, rolling, mrad, inside = xr.apply_ufunc(
        K.bias_summary,
        *inputs,
        kwargs={
            "window": int(window),
            "min_periods": int(window if min_periods is None else min_periods),
        },
        input_core_dims=[["date"]] * len(inputs),
        output_core_dims=[[], [], ["date"], [], []],
        dask="parallelized",
        output_dtypes=[float] * 5,
    )
    half = np.sqrt(2.0 / n_obs)
    return xr.Dataset(
        {
            "portfolio_return": pr.assign_attrs(units="fraction"),
            "forecast_vol": sigma.assign_attrs(units="fraction"),
            "standardized": b,
            "bias": bias,
            "n_obs": n_obs,
            "band_lower": 1.0 - half,
            "band_upper": 1.0 + half,
            "in_band": np.abs(bias - 1.0) <= half,
            "rolling_bias": rolling,
            "mrad": mrad,
            "fraction_in_band": inside,
        },
        attrs={
            "window": int(window),
            "horizon": int(horizon),
            "rolling_band": np.sqrt(2.0 / window),
        },
    )


# ----------------------------------------------------------------------------- portfolio sets

PORTFOLIO_SETS = ("cap", "equal", "random", "mimicking")


def portfolio_sets(
    ds: xr.Dataset,
    sets: Sequence[str] = PORTFOLIO_SETS,
    *,
    n_random: int = 20,
    random_size: int | None = None,
    seed: int = 0,
    user: Mapping[str, xr.DataArray] | None = None,
    market_cap: str = "market_cap",
    loadings: str = "loadings",
    industry: str = "industry",
    specific_var: str = "specific_var",
) -> xr.DataArray:
    """Standard validation portfolios as weights(portfolio, date, asset).

    The universe at date *t* is the assets with a cap and all loadings at *t*
    and, when ``specific_var`` is present, a specific-variance forecast at
    *t−1* (so the forecast of *t*'s return exists). Sets:

    * ``"cap"``: cap-weighted (weights sum to 1);
    * ``"equal"``: equal-weighted;
    * ``"random"``: ``n_random`` long-only portfolios with fixed uniform random
      scores per asset (optionally on a random subset of ``random_size``
      assets), renormalized over each date's universe;
    * ``"mimicking"``: one pure factor portfolio per style (unit exposure to
      the style, zero to the other styles and to every industry, √cap-weighted
      regression; see :func:`hsr_xr.kernels.analytics.pure_factor_weights`);
    * ``user``: name -> weights (asset) or (date, asset), added as set ``"user"``.

    Returns
    -------
    DataArray weights(portfolio, date, asset) with a ``set`` coordinate on
    ``portfolio``; 0 outside the universe. Lazy on Dask input.
    """
    check_counts(0, n_random=n_random)
    unknown = set(sets) - set(PORTFOLIO_SETS)
    if unknown:
        raise ValidationError(
            "sets", f"unknown portfolio sets {sorted(unknown)}", f"choose from {PORTFOLIO_SETS}"
        )
    names = {"market_cap": market_cap, "loadings": loadings, "industry": industry}
    ds = validate(ds, list(names), optional=["specific_var"], names={**names,
                  "specific_var": specific_var})  # fmt: skip
    cap = ds[market_cap].transpose("date", "asset")
    S = ds[loadings].transpose("date", "asset", "style")
    valid = cap.notnull() & S.notnull().all("style")
    if specific_var in ds:
        valid = valid & ds[specific_var].shift(date=1).notnull()
    parts: list[xr.DataArray] = []

    def _add(w: xr.DataArray, labels: list[str], set_name: str) -> None:
        w = w.transpose("portfolio", "date", "asset")
        parts.append(w.assign_coords(portfolio=labels, set=("portfolio", [set_name] * len(labels))))

    def _normalize(x: xr.DataArray) -> xr.DataArray:
        x = x.where(valid, 0.0)
        return (x / x.sum("asset").where(lambda s: s > 0)).fillna(0.0)

    if "cap" in sets:
        _add(_normalize(cap).expand_dims(portfolio=1), ["cap"], "cap")
    if "equal" in sets:
        _add(_normalize(xr.ones_like(cap)).expand_dims(portfolio=1), ["equal"], "equal")
    if "random" in sets and n_random > 0:
        rng = np.random.default_rng(seed)
        n = cap.sizes["asset"]
        score = rng.uniform(size=(n_random, n))
        if random_size is not None and random_size < n:
            rank = np.argsort(np.argsort(rng.uniform(size=(n_random, n)), axis=1), axis=1)
            score = np.where(rank < random_size, score, 0.0)
        score = xr.DataArray(score, dims=("portfolio", "asset"), coords={"asset": cap["asset"]})
        labels = [f"random_{k:03d}" for k in range(n_random)]
        _add(_normalize(score * xr.ones_like(cap)), labels, "random")
    if "mimicking" in sets:
        codes = ds[industry]
        check_core_unchunked(S, "asset", loadings)
        check_core_unchunked(S, "style", loadings)
        reg = np.sqrt(cap).where(valid)
        w = xr.apply_ufunc(
            K.pure_factor_weights,
            S,
            codes,
            reg,
            kwargs={"n_industries": len(industry_names(ds, industry))},
            input_core_dims=[["asset", "style"], ["asset"], ["asset"]],
            output_core_dims=[["style", "asset"]],
            dask="parallelized",
            output_dtypes=[float],
        )
        labels = [f"mimic_{s}" for s in S["style"].values]
        _add(w.rename(style="portfolio").drop_vars("portfolio"), labels, "mimicking")
    for name, uw in (user or {}).items():
        uw = _check_weights(uw, f"user[{name!r}]", cap)
        if "portfolio" in uw.dims:
            raise ValidationError(
                f"user[{name!r}]",
                "has a portfolio dim",
                "pass one (asset) or (date, asset) array per name",
            )
        _add(uw.fillna(0.0).broadcast_like(cap).expand_dims(portfolio=1), [name], "user")
    if not parts:
        raise ValidationError(
            "sets", "no portfolios requested", "name at least one set or pass user="
        )
    out = xr.concat(parts, dim="portfolio").rename("weights")
    return out.chunk({"portfolio": -1}) if _dask(out) else out


# ----------------------------------------------------------------------------- validation table


def validation_table(
    ds: xr.Dataset,
    weights: xr.DataArray | None = None,
    *,
    window: int = 63,
    horizon: int = 1,
    date=None,
    **set_options,
) -> pd.DataFrame:
    """Per portfolio set: mean bias statistic, MRAD and fraction of windows in the band.

    Parameters
    ----------
    ds : Dataset
        After :func:`hsr_xr.risk_model` (needs ``returns``, ``market_cap``,
        ``loadings``, ``industry``, ``factor_cov``, ``specific_var``).
    weights : DataArray, optional
        weights(portfolio, date, asset) with a ``set`` coordinate; default
        :func:`portfolio_sets` (``set_options`` are passed to it).
    window, horizon, date
        As in :func:`bias_statistics` (``date`` restricts the evaluation period).

    Returns
    -------
    DataFrame indexed by set with columns ``portfolios``, ``outcomes`` (mean
    T), ``mean_bias``, ``mrad``, ``in_band`` (fraction of rolling windows
    inside ``1 ± sqrt(2/window)``, pooled over the set's portfolios) and
    ``full_in_band`` (fraction of portfolios whose full-sample bias is inside
    ``1 ± sqrt(2/T)``). Computes.
    """
    if weights is None:
        weights = portfolio_sets(ds, **set_options)
    res = bias_statistics(ds, weights, horizon=horizon, window=window, date=date).compute()
    if "portfolio" not in res.dims:
        res = res.expand_dims(portfolio=["portfolio"])
    sets = res["set"].values if "set" in res.coords else np.array(["all"] * res.sizes["portfolio"])
    n_win = res["rolling_bias"].notnull().sum("date").values
    frame = pd.DataFrame(
        {
            "set": sets,
            "bias": res["bias"].values,
            "n_obs": res["n_obs"].values,
            "mrad": res["mrad"].values,
            "inside": res["fraction_in_band"].values * n_win,
            "windows": n_win,
            "full_in_band": res["in_band"].values.astype(float),
        }
    )
    g = frame.groupby("set", sort=False)
    table = pd.DataFrame(
        {
            "portfolios": g.size(),
            "outcomes": g["n_obs"].mean(),
            "mean_bias": g["bias"].mean(),
            "mrad": g["mrad"].mean(),
            "in_band": g["inside"].sum() / g["windows"].sum(),
            "full_in_band": g["full_in_band"].mean(),
        }
    )
    table.attrs.update(window=window, horizon=horizon, rolling_band=float(np.sqrt(2.0 / window)))
    return table
