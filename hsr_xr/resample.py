"""Resample a daily panel to calendar weeks, months, quarters or years (the as-of rule).

Periods come from the date index as integer period ordinals (never strings), so
week 10 can never sort before week 2. Compounding and last-valid values walk
the dates of all periods together (the j-th date of every period at once, so each
period is reduced in date order); first values are a row gather. On Dask the date
chunks are first moved onto period edges so that no period straddles a chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError
from .schema import FINITE, VARIABLES, check_finite, check_flags, parse_dates, validate

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_FREQS = {
    "M": "M",
    "ME": "M",
    "Q": "Q-DEC",
    "QE": "Q-DEC",
    "A": "Y-DEC",
    "Y": "Y-DEC",
    "YE": "Y-DEC",
}


def period_freq(freq: str, anchor: str = "FRI") -> str:
    """The pandas Period frequency for ``freq`` ("W", "W-<DAY>", "M", "Q", "A")."""
    f = str(freq).upper()
    if f == "W":
        f = f"W-{str(anchor).upper()}"
    if f.startswith("W-"):
        if f[2:] not in WEEKDAYS:
            raise ValidationError(
                "anchor", f"unknown week anchor {f[2:]!r}", f"use one of {list(WEEKDAYS)}"
            )
        return f
    if f in _FREQS:
        return _FREQS[f]
    raise ValidationError(
        "freq", f"unknown frequency {freq!r}", "use 'D', 'W' (or 'W-FRI' etc.), 'M', 'Q' or 'A'"
    )


def period_starts(dates: pd.DatetimeIndex, freq: str, anchor: str = "FRI") -> np.ndarray:
    """Index of the first date of each period, for strictly increasing ``dates``.

    Calendar weeks end on ``anchor`` ("W" = "W-FRI"); "M", "Q" and "A" are
    calendar months, quarters and years. "D" makes every date its own period.

    Returns
    -------
    ndarray of int64, shape (n_periods,)
    """
    if str(freq).upper() == "D":
        return np.arange(len(dates), dtype=np.int64)
    codes = dates.to_period(period_freq(freq, anchor)).asi8
    change = np.ones(len(codes), dtype=bool)
    change[1:] = codes[1:] != codes[:-1]
    return np.flatnonzero(change).astype(np.int64)


def period_complete(
    dates: pd.DatetimeIndex,
    starts: np.ndarray,
    freq: str,
    anchor: str = "FRI",
    holidays: Sequence | None = None,
) -> np.ndarray:
    """Whether the panel covers each period's whole calendar span, shape (n_periods,).

    Only the first and the last period can be cut by the panel: the first is
    incomplete when a business day of its calendar period precedes the panel's
    first date, the last when one follows the panel's last date. Business days
    are weekdays other than ``holidays`` (dates, e.g. the exchange's closures);
    without them a period whose first (last) weekday is a holiday counts as
    incomplete when the panel starts (ends) next to it. With "D" every period is
    complete.
    """
    days = [] if holidays is None else parse_dates(holidays, "holidays").values.astype("M8[D]")
    ok = np.ones(len(starts), dtype=bool)
    if str(freq).upper() == "D" or not len(starts):
        return ok
    first, last = dates[0], dates[-1]
    span = pd.DatetimeIndex([first, last]).to_period(period_freq(freq, anchor))
    stamps = (span[0].start_time, first, last, span[1].end_time)
    start, first_day, last_day, end = (np.datetime64(t.date(), "D") for t in stamps)
    # business days before the panel, and after it
    ok[0] &= np.busday_count(start, first_day, holidays=days) == 0
    ok[-1] &= np.busday_count(last_day + 1, end + 1, holidays=days) == 0
    return ok


def _by_position(block: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Yield ``(periods, rows)`` for j = 0, 1, ...: the j-th date of every period that has one.

    ``periods`` indexes the period axis (a full slice while every period has a j-th
    date) and ``rows`` is a fresh (n_periods_j, ...) copy of those dates. Walking the
    positions in order keeps each period's reduction in date order, and every step is
    a row gather. (``np.ufunc.reduceat`` along ``date`` spends more time on its
    full-size temporaries and its strided walk over dates than on the products.)
    """
    for j in range(int(lengths.max(initial=0))):
        has = lengths > j
        periods = slice(None) if has.all() else np.flatnonzero(has)
        yield periods, block[starts[periods] + j]


def _compound(block: np.ndarray, starts: np.ndarray, lengths: np.ndarray, full: bool):
    """prod(1 + r) - 1 per period over the valid returns, in date order and in the
    returns' float dtype; NaN without (enough) data."""
    shape = (len(starts), *block.shape[1:])
    growth = np.ones(shape, dtype=block.dtype)
    # full: some return missing so far; else: every return missing so far
    bad = np.full(shape, not full)
    for periods, rows in _by_position(block, starts, lengths):
        missing = np.isnan(rows)
        rows += 1.0
        np.copyto(rows, 1.0, where=missing)
        growth[periods] *= rows
        if full:
            bad[periods] |= missing
        else:
            bad[periods] &= missing
    growth -= 1.0
    growth[bad] = np.nan
    return growth


def _first(block: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Value stamped at each period's first date (its as-of value before the period)."""
    return block[starts]


def _last_valid(block: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Last non-missing value inside each period (missing if none).

    Missing is NaN for float and complex values and NaT for datetimes and
    timedeltas; other dtypes have no missing value and give the last date's.
    """
    kind = block.dtype.kind
    if kind not in "fcmM":
        return block[starts + lengths - 1]
    missing = np.isnan if kind in "fc" else np.isnat
    out = np.full((len(starts), *block.shape[1:]), np.nan if kind in "fc" else "NaT", block.dtype)
    for periods, rows in _by_position(block, starts, lengths):
        if isinstance(periods, slice):
            np.copyto(out, rows, where=~missing(rows))
        else:
            out[periods] = np.where(missing(rows), out[periods], rows)
    return out


def _aligned_chunks(chunks: tuple[int, ...], starts: np.ndarray, n: int) -> tuple[int, ...]:
    """Date chunks whose edges are moved back onto the start of the period they cut."""
    edges = np.cumsum((0, *chunks))
    inner = starts[np.searchsorted(starts, edges[1:-1], side="right") - 1]
    edges = np.unique(np.concatenate([[0], inner, [n]]))
    return tuple(int(c) for c in np.diff(edges)) or (0,)  # (0,): no dates


def _reduce(var: xr.DataArray, fn: Callable, starts: np.ndarray, **kwargs) -> xr.DataArray:
    """Apply a per-period block reduction ``fn`` along ``date`` (NumPy or Dask)."""
    var = var.transpose("date", ...)
    n = var.sizes["date"]
    lengths = np.diff(np.append(starts, n))
    data = var.data
    if isinstance(data, da.Array):
        data = data.rechunk({0: _aligned_chunks(data.chunks[0], starts, n)})
        edges = np.cumsum((0, *data.chunks[0]))
        counts = tuple(int(c) for c in np.diff(np.searchsorted(starts, edges)))

        def block_fn(block: np.ndarray, block_info=None) -> np.ndarray:
            lo, hi = block_info[0]["array-location"][0]
            sel = (starts >= lo) & (starts < hi)
            return fn(block, starts[sel] - lo, lengths[sel], **kwargs)

        out = data.map_blocks(block_fn, chunks=(counts, *data.chunks[1:]), dtype=var.dtype)
    else:
        out = fn(np.asarray(data), starts, lengths, **kwargs)
    coords = {k: c for k, c in var.coords.items() if "date" not in c.dims}
    return xr.DataArray(out, dims=var.dims, coords=coords, attrs=var.attrs)


def _names(value: str | Sequence[str], option: str) -> list[str]:
    """A variable name or a sequence of names as a list (a str is one name)."""
    if isinstance(value, str):
        return [value]
    names = list(value) if isinstance(value, Iterable) else None
    if names is None or not all(isinstance(v, str) for v in names):
        raise ValidationError(option, f"got {value!r}", "pass a variable name or a list of names")
    return names


def resample(
    ds: xr.Dataset,
    freq: str = "W",
    *,
    anchor: str = "FRI",
    label: Literal["last", "first"] = "last",
    characteristics: Literal["first", "last"] = "first",
    require_full: bool = False,
    returns: str | Sequence[str] | None = None,
    end_of_period: Sequence[str] = ("close", "adj_close"),
    holidays: Sequence | None = None,
) -> xr.Dataset:
    """Resample a (date, ...) panel to calendar periods, keeping the as-of rule.

    - Returns (``returns``, ``factor_returns``, ``specific_returns``, ...) are
      compounded over every date of the period: prod(1 + r) - 1 over the valid
      returns; NaN if there is no valid return in the period (or, with
      ``require_full``, one is missing).
    - Characteristics and caps (every other variable with a ``date`` dim) take,
      by default (``characteristics="first"``), the value stamped at the period's
      first date. By the as-of convention that value is known before any of the
      period's returns, so the period's ``market_cap`` is the cap at the end of
      the previous period and sorts/weights on it do not look ahead.
      ``characteristics="last"`` takes the last valid value inside the period
      (the seed's LAST_VALUE); it contains information from within the period,
      i.e. it looks ahead relative to the period's return. Use it only knowingly.
    - End-of-period levels (``end_of_period``, prices by default) take the last
      valid value inside the period: the close at the period's end.
    - Variables without a ``date`` dim are kept as they are.
    - Per-date forecasts and variances (``factor_cov``, ``specific_var``,
      ``truth_factor_cov``, ``truth_specific_var``) are refused: a daily one is not
      a period one; refit the risk model on the resampled returns.

    Parameters
    ----------
    ds : Dataset
        Panel with a strictly increasing datetime ``date`` coordinate; ``date``
        may be Dask-chunked anywhere (chunks are moved onto period edges).
    freq : {"D", "W", "W-<DAY>", "M", "Q", "A"}
        "D" returns ``ds`` unchanged apart from the period coordinates.
    anchor : str
        Last weekday of a calendar week for ``freq="W"`` ("FRI" by default).
    label : {"last", "first"}
        Label each period by its last (default) or first trading date.
    characteristics : {"first", "last"}
        As-of value at the period's first date (default) or last valid value
        inside the period (look-ahead option).
    require_full : bool
        Make a period's return NaN unless the asset has a valid return on every
        trading date of the period.
    returns : str, sequence of str or None
        Variables compounded as simple returns. ``None`` (default): every
        variable whose registry role is "return" (``returns``,
        ``factor_returns``, ``specific_returns``, ``truth_*_returns``).
    end_of_period : sequence of str
        Level variables taken at the period's end; names absent from ``ds`` are ignored.
    holidays : sequence of dates, optional
        Exchange closures, only used to decide whether the panel cuts its first
        or last period (the ``complete`` coordinate).

    Returns
    -------
    Dataset with ``date`` = one label per period and coordinates
    ``first_date(date)``, ``last_date(date)``, ``n_dates(date)`` (trading
    dates in the period) and ``complete(date)``: False for a first or last period
    that the panel cuts (see :func:`period_complete`; ``holidays`` refine it),
    whose return covers only part of its calendar span.

    Raises
    ------
    ValidationError
        Bad coordinates, unknown ``freq``/``anchor``/options, or a missing or
        non-float return variable.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValidationError("ds", f"expected a Dataset, got {type(ds).__name__}", "pass one")
    if "date" not in ds.dims:
        raise ValidationError("date", "the Dataset has no 'date' dim", "rename the time dim")
    if label not in ("last", "first"):
        raise ValidationError("label", f"got {label!r}", "use 'last' or 'first'")
    if characteristics not in ("first", "last"):
        raise ValidationError(
            "characteristics", f"got {characteristics!r}", "use 'first' or 'last'"
        )
    check_flags(require_full=require_full)
    if returns is None:
        ret_names = [v for v in ds.data_vars if getattr(VARIABLES.get(v), "role", "") == "return"]
    else:
        ret_names = _names(returns, "returns")
    end_of_period = _names(end_of_period, "end_of_period")
    forecasts = [v for v in ds.data_vars if getattr(VARIABLES.get(v), "role", "") == "forecast"]
    if forecasts:
        raise ValidationError(
            forecasts[0],
            f"{forecasts} are per-date (co)variances or forecasts; a daily one is not a "
            "forecast for a week or a month",
            f"drop them (ds.drop_vars({forecasts})) and refit, e.g. hx.risk_model on the "
            "resampled returns",
        )
    ds = validate(ds, [], optional=list(VARIABLES))
    for name in ret_names:
        if name not in ds.data_vars:
            raise ValidationError(
                name, "return variable is missing", "add it, or pass returns=<name> (or ())"
            )
        if "date" not in ds[name].dims or ds[name].dtype.kind != "f":
            raise ValidationError(
                name, f"dims {ds[name].dims}, dtype {ds[name].dtype}", "need float with a date dim"
            )
        if name not in FINITE:  # those were checked by validate
            ds = ds.assign({name: check_finite(ds[name], name)})
    dates = ds.indexes["date"]
    starts = period_starts(dates, freq, anchor)
    ends = np.append(starts, len(dates))[1:] - 1

    if str(freq).upper() == "D":
        out = ds.copy()
    else:
        char_fn = _first if characteristics == "first" else _last_valid
        new = {}
        for name, var in ds.data_vars.items():
            if "date" not in var.dims:
                new[name] = var
                continue
            if name in ret_names:
                reduced = _reduce(var, _compound, starts, full=require_full)
            elif name in end_of_period:
                reduced = _reduce(var, _last_valid, starts)
            else:
                reduced = _reduce(var, char_fn, starts)
            new[name] = reduced.transpose(*var.dims)
        coords = {k: c for k, c in ds.coords.items() if "date" not in c.dims}
        out = xr.Dataset(new, coords=coords, attrs=ds.attrs)
    labels = dates[ends] if label == "last" else dates[starts]
    out = out.assign_coords(
        date=labels,
        first_date=("date", dates[starts]),
        last_date=("date", dates[ends]),
        n_dates=("date", (ends - starts + 1).astype(np.int64)),
        complete=("date", period_complete(dates, starts, freq, anchor, holidays)),
    )
    out.attrs = {**ds.attrs, "freq": str(freq), "label": label, "characteristics": characteristics}
    return out
