"""Figures for the risk model (matplotlib is an optional extra: ``pip install hsr_xr[plot]``).

Every function returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so no GUI backend is needed) and writes a PNG when ``path`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .errors import ValidationError
from .schema import check_counts, select_dates

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(figsize: tuple[float, float]) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "hsr_xr figures need matplotlib: pip install 'hsr_xr[plot]' (or pip install matplotlib)"
        ) from exc
    return Figure(figsize=figsize, layout="constrained")


def _finish(fig: Figure, path: str | Path | None, dpi: int = 120) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=dpi, format="png")
    return fig


def _need(ds: xr.Dataset, names: Sequence[str], producer: str) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(
            "ds", f"expected a Dataset, got {type(ds).__name__}", "pass a Dataset"
        )
    for name in names:
        if name not in ds.variables:
            raise ValidationError(name, "variable is missing", f"compute it with {producer}")


def _labels(obj: xr.DataArray | xr.Dataset, dim: str, wanted, arg: str) -> list:
    """``wanted`` (a label or a sequence of them) as a list, each checked against ``dim``."""
    if dim not in obj.dims:
        raise ValidationError(arg, f"the input has no {dim!r} dim", f"pass data along {dim!r}")
    wanted = [wanted] if isinstance(wanted, str) or np.ndim(wanted) == 0 else list(wanted)
    have = set(obj.indexes[dim]) if dim in obj.indexes else set()
    unknown = [w for w in wanted if w not in have]
    if unknown:
        raise ValidationError(
            arg, f"{unknown} are not {dim} labels", f"pick among {list(obj[dim].values)[:8]}..."
        )
    return wanted


def _portfolios(ds: xr.Dataset, portfolios: Sequence[str] | str | None, limit: int) -> list:
    if "portfolio" not in ds.dims:
        return [None]
    if portfolios is None:
        return list(ds["portfolio"].values[:limit])
    return _labels(ds, "portfolio", portfolios, "portfolios")


def _pick(var: xr.DataArray, p) -> xr.DataArray:
    return var if p is None else var.sel(portfolio=p)


def plot_factor_returns(
    ds: xr.Dataset | xr.DataArray,
    factors: Sequence[str] | None = None,
    *,
    variable: str = "factor_returns",
    path: str | Path | None = None,
    figsize: tuple[float, float] = (10, 5),
) -> Figure:
    """Cumulative (summed) factor returns over time, in percent.

    Parameters
    ----------
    ds : Dataset with ``factor_returns(date, factor)``, or that DataArray.
    factors : names to plot; default ``country`` and the styles (if a
        ``style`` coordinate is present), else the first 13 factors.
    path : write a PNG here.
    """
    if isinstance(ds, xr.Dataset):
        _need(ds, [variable], "hsr_xr.factor_regression")
        fr = ds[variable]
        if factors is None and "style" in ds.coords:
            factors = ["country", *[str(s) for s in ds["style"].values]]
    else:
        fr = ds
    if factors is None:
        factors = [str(f) for f in fr["factor"].values[:13]] if "factor" in fr.dims else []
    factors = _labels(fr, "factor", factors, "factors")
    cum = fr.sel(factor=factors).fillna(0.0).cumsum("date") * 100.0
    fig = _figure(figsize)
    ax = fig.subplots()
    dates = cum["date"].values
    for f in factors:
        ax.plot(dates, cum.sel(factor=f).values, label=str(f), lw=1.2 if f == "country" else 0.9)
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_ylabel("cumulative return (%)")
    ax.set_title("Cumulative factor returns")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _finish(fig, path)


def plot_predicted_vs_realized(
    bias: xr.Dataset,
    portfolios: Sequence[str] | str | None = None,
    *,
    window: int = 21,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (10, 5),
) -> Figure:
    """Predicted vs realized daily volatility over time (percent).

    Predicted: the forecast for each date (:func:`hsr_xr.bias_statistics`'s
    ``forecast_vol``, RMS over the trailing ``window``). Realized: standard
    deviation of the portfolio returns over the same trailing ``window``.

    Parameters
    ----------
    bias : Dataset from :func:`hsr_xr.bias_statistics`.
    portfolios : portfolio labels (default the first four).
    """
    _need(bias, ["forecast_vol", "portfolio_return"], "hsr_xr.bias_statistics")
    check_counts(1, window=window)
    fig = _figure(figsize)
    ax = fig.subplots()
    for k, p in enumerate(_portfolios(bias, portfolios, 4)):
        sig = _pick(bias["forecast_vol"], p)
        r = _pick(bias["portfolio_return"], p).where(sig.notnull())
        pred = np.sqrt((sig**2).rolling(date=window, min_periods=window).mean()) * 100
        real = r.rolling(date=window, min_periods=window).std() * 100
        color = f"C{k}"
        label = "" if p is None else f"{p}: "
        ax.plot(pred["date"].values, pred.values, color=color, lw=1.3, label=f"{label}predicted")
        ax.plot(
            real["date"].values, real.values, color=color, lw=0.9, ls="--", label=f"{label}realized"
        )
    ax.set_ylabel(f"daily vol (%), {window}-day window")
    ax.set_title("Predicted vs realized volatility")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _finish(fig, path)


def plot_bias(
    bias: xr.Dataset,
    portfolios: Sequence[str] | str | None = None,
    *,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (10, 5),
) -> Figure:
    """Rolling bias statistic with its 95% band ``1 ± sqrt(2/window)``.

    Parameters
    ----------
    bias : Dataset from :func:`hsr_xr.bias_statistics`.
    portfolios : portfolio labels (default the first six).
    """
    _need(bias, ["rolling_bias"], "hsr_xr.bias_statistics")
    band = float(bias.attrs.get("rolling_band", np.nan))
    fig = _figure(figsize)
    ax = fig.subplots()
    dates = bias["date"].values
    if np.isfinite(band):
        ax.fill_between(dates, 1 - band, 1 + band, color="0.85", label="95% band")
    ax.axhline(1.0, color="0.4", lw=0.7)
    for p in _portfolios(bias, portfolios, 6):
        label = "portfolio" if p is None else str(p)
        ax.plot(dates, _pick(bias["rolling_bias"], p).values, lw=1.0, label=label)
    ax.set_ylabel(f"rolling bias statistic ({bias.attrs.get('window', '?')} obs)")
    ax.set_title("Bias statistic: std of r / forecast vol")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _finish(fig, path)


def plot_exposure_heatmap(
    exposure: xr.DataArray | xr.Dataset,
    *,
    portfolio: str | None = None,
    date=None,
    factors: Sequence[str] | None = None,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (10, 5),
) -> Figure:
    """Heatmap of portfolio factor exposures.

    Parameters
    ----------
    exposure : ``exposure`` from :func:`hsr_xr.portfolio_risk` (or its Dataset).
        After selecting ``portfolio`` and/or ``date`` it must be 2-D: (portfolio,
        factor) at one date, or (date, factor) for one portfolio.
    portfolio, date : selections applied first.
    factors : factor subset (default all).
    """
    if isinstance(exposure, xr.Dataset):
        _need(exposure, ["exposure"], "hsr_xr.portfolio_risk")
        exposure = exposure["exposure"]
    if portfolio is not None:
        exposure = exposure.sel(portfolio=_labels(exposure, "portfolio", portfolio, "portfolio")[0])
    if date is not None:
        exposure = select_dates(exposure, date)
    if factors is not None:
        exposure = exposure.sel(factor=_labels(exposure, "factor", factors, "factors"))
    if exposure.ndim != 2 or "factor" not in exposure.dims:
        raise ValidationError(
            "exposure",
            f"has dims {exposure.dims} after selection, expected (row, factor)",
            "select one date (date=...) or one portfolio (portfolio=...)",
        )
    row = next(d for d in exposure.dims if d != "factor")
    data = exposure.transpose(row, "factor").values
    lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    fig = _figure(figsize)
    ax = fig.subplots()
    img = ax.imshow(
        data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
    )
    fig.colorbar(img, ax=ax, label="exposure")
    names = [str(f) for f in exposure["factor"].values]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    labels = exposure[row].values
    if row == "date":
        step = max(1, len(labels) // 8)
        ticks = list(range(0, len(labels), step))
        ax.set_yticks(ticks, [str(np.datetime_as_string(labels[i], unit="D")) for i in ticks])
    else:
        ax.set_yticks(range(len(labels)), [str(v) for v in labels], fontsize=6)
    ax.set_title("Portfolio factor exposures")
    return _finish(fig, path)
