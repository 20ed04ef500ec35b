"""Fama-French five factors from 2x3, 2x2 or 2x2x2x2 sorts (Ken French's rules; README).

:func:`ff5_factors` works on a panel at any frequency (daily, or the output of
:func:`hsr_xr.resample`). The sorts run per date, vectorized over dates, in the
kernel :func:`hsr_xr.kernels.sorts.double_sort`; Dask chunks them over ``date``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError
from .kernels import jit
from .kernels.sorts import double_sort
from .schema import (
    check_aligned,
    check_core_unchunked,
    check_counts,
    check_flags,
    check_nonempty,
    check_risk_free,
    is_dask,
    is_integer,
    validate,
)

SORTS: tuple[str, ...] = ("book_to_price", "profitability", "investment")
PORTFOLIOS: tuple[str, ...] = ("SL", "SM", "SH", "BL", "BM", "BH")
FACTORS: tuple[str, ...] = ("MKT", "SMB", "HML", "RMW", "CMA")
#: Sort designs: characteristic breakpoint quantiles, and whether the sort is joint.
DESIGNS: dict[str, tuple[tuple[float, ...], bool]] = {
    "2x3": ((0.3, 0.7), False),
    "2x2": ((0.5,), False),
    "2x2x2x2": ((0.5,), True),
}
#: 2x2x2x2 portfolio names (e.g. "SLWC"): the (low, high) group letter of size and of
#: each characteristic in SORTS order.
JOINT_LETTERS: tuple[tuple[str, str], ...] = (("S", "B"), ("L", "H"), ("W", "R"), ("C", "A"))
FORMATION_MONTH = 7  # annual rebalance: formed at the end of June, held July-June


def _mask(
    ds: xr.Dataset, spec: str | xr.DataArray | None, label: str, like: xr.DataArray
) -> xr.DataArray:
    """Resolve a boolean (date, asset) or (asset,) mask given by name or as a DataArray.

    An (asset,) mask stays one (the kernel broadcasts it): on Dask it is one small
    block instead of a task per date chunk. ``None`` is every asset.
    """
    if spec is None:
        return xr.DataArray(np.ones(like.sizes["asset"], dtype=bool), dims="asset")
    if isinstance(spec, str):
        if spec not in ds:
            raise ValidationError(
                spec, f"{label} variable is missing", "add it to the Dataset or pass a DataArray"
            )
        mask, name = ds[spec], spec
    elif isinstance(spec, xr.DataArray):
        mask, name = spec, label
    else:
        raise ValidationError(
            label, f"expected a variable name or a DataArray, got {type(spec).__name__}", "fix it"
        )
    if not set(mask.dims) <= {"date", "asset"} or "asset" not in mask.dims:
        raise ValidationError(
            name, f"has dims {mask.dims}, expected (date, asset) or (asset,)", "rename the dims"
        )
    if mask.dtype.kind != "b":
        raise ValidationError(
            name, f"has dtype {mask.dtype}, expected bool", "cast with .astype(bool)"
        )
    check_aligned({"returns": like, name: mask}, ("date", "asset"))
    check_core_unchunked(mask, "asset", name)
    return mask.transpose(..., "asset")


def _risk_free(ds: xr.Dataset, spec: str | xr.DataArray | float | None, like: xr.DataArray):
    if spec is None:
        return 0.0
    if isinstance(spec, str):
        if spec not in ds:
            raise ValidationError(spec, "risk_free variable is missing", "add it or pass a series")
        return check_risk_free(ds[spec], like, spec)
    return check_risk_free(spec, like)


def formation_index(dates: pd.DatetimeIndex, month: int = FORMATION_MONTH) -> np.ndarray:
    """Index of the annual formation date that each date's holdings come from.

    The formation date of the holding year starting in ``month`` of year *y* is the
    first date of that month in *y*; its stamped values are known at the end of
    the previous month. Dates before the first formation date get -1.

    Parameters
    ----------
    dates : DatetimeIndex, strictly increasing

    Returns
    -------
    ndarray of int64, shape (len(dates),)
    """
    years = dates.year.to_numpy().astype(np.int64)
    months = dates.month.to_numpy()
    out = np.full(len(dates), -1, dtype=np.int64)
    if len(dates) == 0:
        return out
    key = years - (months < month)  # holding year of each date
    in_month = np.flatnonzero(months == month)
    form_years, first = np.unique(years[in_month], return_index=True)
    y0 = int(key.min())
    lookup = np.full(int(years.max()) - y0 + 1, -1, dtype=np.int64)
    lookup[form_years - y0] = in_month[first]
    return lookup[key - y0]


def _at_formation(var: xr.DataArray, idx: np.ndarray, fill) -> xr.DataArray:
    """Values of ``var`` at each date's formation date (``fill`` where there is none)."""
    gathered = var.isel(date=np.maximum(idx, 0))
    gathered = xr.DataArray(gathered.data, dims=var.dims, coords={"date": var.date})
    keep = xr.DataArray(idx >= 0, dims="date", coords={"date": var.date})
    return gathered.where(keep, fill)


def portfolio_names(design: str) -> tuple[str, ...]:
    """Portfolio labels of a sort design, in the kernel's portfolio order.

    "2x3": SL SM SH BL BM BH; "2x2": SL SH BL BH (size S/B, then the
    characteristic's Low/Mid/High group); "2x2x2x2": size, then book-to-price
    L/H, profitability W/R (weak/robust), investment C/A (conservative/aggressive),
    e.g. "SLWC".
    """
    if not isinstance(design, str) or design not in DESIGNS:
        raise ValidationError("design", f"got {design!r}", f"use one of {tuple(DESIGNS)}")
    if design == "2x3":
        return PORTFOLIOS
    if design == "2x2":
        return ("SL", "SH", "BL", "BH")
    groups = np.indices((2,) * 4).reshape(4, -1).T
    return tuple("".join(JOINT_LETTERS[k][g] for k, g in enumerate(row)) for row in groups)


def _spreads(port: np.ndarray, names: tuple[str, ...], joint: bool) -> np.ndarray:
    """SMB, HML, RMW, CMA (T, 4) from the portfolio returns (T, [sort,] portfolio).

    Means add their terms one by one, in a fixed order: NumPy's reductions order
    their sums by the array's shape, and a factor must not depend on the date chunks.
    """

    def mean(x: np.ndarray, columns: list[int]) -> np.ndarray:
        total = x[..., columns[0]]
        for c in columns[1:]:
            total = total + x[..., c]
        return total / len(columns)

    def spread(pos: int, long: str, short: str) -> np.ndarray:
        """Mean of the portfolios with letter ``long`` at ``pos`` minus those with ``short``."""
        pick = [[i for i, q in enumerate(names) if q[pos] == c] for c in (long, short)]
        return mean(port, pick[0]) - mean(port, pick[1])

    if joint:
        factors = [spread(0, "S", "B"), spread(1, "H", "L"), spread(2, "R", "W")]
        factors.append(spread(3, "C", "A"))
    else:
        high_low = spread(-1, "H", "L")  # (T, sort), sorts in SORTS order
        smb = mean(spread(0, "S", "B"), list(range(len(SORTS))))  # the three size legs
        factors = [smb, high_low[:, 0], high_low[:, 1], -high_low[:, 2]]  # CMA: long low inv.
    return np.stack(factors, axis=-1)


def _sort_block(
    ret, w, size, bp, prof, inv, held, sortable, bp_mask, *, char_probs, joint, names, threads
):
    """double_sort on one block of dates, and SMB, HML, RMW, CMA from its portfolios."""
    shape = np.broadcast_shapes(ret.shape, w.shape, size.shape)
    b = [np.broadcast_to(a, shape) for a in (ret, w, size, held, sortable, bp_mask)]
    chars = [np.broadcast_to(c, shape) for c in (bp, prof, inv)]  # no stacked copy
    port, count, market = double_sort(
        b[0],
        b[1],
        b[2],
        chars,
        held=b[3],
        sortable=b[4],
        breakpoint_mask=b[5],
        char_probs=char_probs,
        joint=joint,
        threads=threads,
    )
    if joint:  # one joint sort: (date, portfolio)
        port, count = port[:, 0], count[:, 0]
    return port, count, market, _spreads(port, names, joint)


def ff5_factors(
    ds: xr.Dataset,
    *,
    rebalance: Literal["period", "annual"] = "period",
    weight_lag: int = 1,
    design: Literal["2x3", "2x2", "2x2x2x2"] = "2x3",
    breakpoint_universe: str | xr.DataArray | None = None,
    universe: str | xr.DataArray | None = None,
    risk_free: str | xr.DataArray | float | None = None,
    returns: str = "returns",
    market_cap: str = "market_cap",
    book_to_price: str = "book_to_price",
    profitability: str = "profitability",
    investment: str = "investment",
    threads: int | None = None,
    merge: bool = False,
) -> xr.Dataset:
    """Fama-French five factors and their sort portfolios.

    Default (``design="2x3"``), independent 2x3 sorts: size at the median of the
    breakpoint universe, and each characteristic (``book_to_price``,
    ``profitability``, ``investment``) at its 30th/70th percentiles over the
    breakpoint universe. Buckets are right-closed (``x <= q30`` low, ``x > q70``
    high, ``cap <= median`` small). An asset missing a characteristic leaves
    that sort only; an asset without a cap, a return or outside ``universe``
    leaves every sort and MKT. Portfolio returns are value-weighted by the cap.

    Factors (Ken French's definitions): MKT = cap-weighted return of all held assets (minus
    ``risk_free``); SMB = mean over the three sorts of (mean of the small legs
    - mean of the big legs); HML = mean(SH, BH) − mean(SL, BL) on book_to_price;
    RMW = the same on profitability (robust minus weak); CMA = mean(SL, BL) −
    mean(SH, BH) on investment (long conservative = low investment). A factor is
    NaN when one of its buckets is empty.

    ``design="2x2"``: the same with every characteristic split at its median
    (portfolios SL, SH, BL, BH). ``design="2x2x2x2"`` (Fama-French 2015): one
    joint sort on size and the three characteristics, each at its median, into
    16 portfolios (an asset needs all three characteristics); SMB is the mean of
    the 8 small minus the mean of the 8 big portfolios, HML / RMW / CMA the mean
    of the 8 high book-to-price / robust / conservative minus the mean of the
    other 8.

    Parameters
    ----------
    ds : Dataset
        ``returns`` (date, asset) simple returns over each date or period;
        ``market_cap`` (date, asset) cap known before that return; the three
        characteristics (date, asset), as of the date (known before its return).
        ``asset`` must be a single Dask chunk; ``date`` may be chunked.
    rebalance : {"period", "annual"}
        "period": re-sort on every date from that date's values (the seed's mode).
        "annual": form portfolios on the first date of each July from the values
        stamped there (known at the end of June) and hold them July-June; before
        the first formation the portfolios and SMB/HML/RMW/CMA are NaN (count 0),
        while MKT, which needs no sort, is defined.
    weight_lag : {1, 0}
        1 (default): sort on and weight by ``market_cap`` exactly as stamped, i.e.
        the cap known before the return. 0 (seed compat, looks ahead): use the cap
        after the return, i.e. the next date's ``market_cap`` (the last date is NaN).
    design : {"2x3", "2x2", "2x2x2x2"}
        Sort design (see above).
    breakpoint_universe : str or DataArray of bool (date, asset) or (asset,), optional
        Assets that set the breakpoints (e.g. NYSE). Default: every sortable asset.
    universe : str or DataArray of bool, optional
        Assets allowed at all (e.g. excluding one exchange). Default: all.
    risk_free : str, DataArray (date,) or float, optional
        Subtracted from MKT only.
    returns, market_cap, book_to_price, profitability, investment : str
        Variable names in ``ds``.
    threads : int, optional
        Date ranges sorted at once for in-memory input (default: the cores this
        process may use, or 1 when called from a thread other than the main one).
        Ignored for Dask-backed input: each task runs on one thread, Dask's
        workers giving the parallelism. Results do not depend on it.
    merge : bool
        Return ``ds`` with the outputs added instead of a new Dataset.

    Returns
    -------
    Dataset over ``date`` with ``MKT``, ``SMB``, ``HML``, ``RMW``, ``CMA``
    (fractions per date), ``portfolio_returns(date, sort, portfolio)`` (NaN for an
    empty bucket) and ``portfolio_count(date, sort, portfolio)`` (int64). ``sort``
    is ("book_to_price", "profitability", "investment"); ``portfolio`` is
    ("SL", "SM", "SH", "BL", "BM", "BH"): Small/Big by Low/Mid/High characteristic
    (for investment, L = conservative, H = aggressive); "2x2" has ("SL", "SH",
    "BL", "BH"). "2x2x2x2" has no ``sort`` dim: ``portfolio_returns(date,
    portfolio)`` over the 16 names of :func:`portfolio_names` (e.g. "SLWC" =
    small, low book-to-price, weak profitability, conservative investment).

    Raises
    ------
    ValidationError
        Missing or mis-shaped variables, chunked ``asset``, misaligned masks or
        risk-free series, or invalid options.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValidationError("ds", f"expected a Dataset, got {type(ds).__name__}", "pass one")
    check_flags(merge=merge)
    check_counts(1, optional=True, threads=threads)
    if not isinstance(rebalance, str) or rebalance not in ("period", "annual"):
        raise ValidationError("rebalance", f"got {rebalance!r}", "use 'period' or 'annual'")
    port_names = portfolio_names(design)  # validates design
    if merge and "portfolio" in ds.indexes and list(ds.indexes["portfolio"]) != list(port_names):
        raise ValidationError(
            "portfolio",
            f"ds already holds portfolios {list(ds.indexes['portfolio'])}, not those of "
            f"design {design!r}",
            "drop portfolio_returns, portfolio_count and the portfolio coordinate first, "
            "or use merge=False",
        )
    if not is_integer(weight_lag) or weight_lag not in (0, 1):
        raise ValidationError(
            "weight_lag", f"got {weight_lag!r}", "use 1 (cap before the return) or 0 (seed)"
        )
    names = {
        "returns": returns,
        "market_cap": market_cap,
        "book_to_price": book_to_price,
        "profitability": profitability,
        "investment": investment,
    }
    ds_v = validate(ds, list(names), names=names)
    arrays = {}
    for canon, actual in names.items():
        var = ds_v[actual]
        check_core_unchunked(var, "asset", actual)
        check_nonempty(var, ("asset",), actual)
        arrays[canon] = var.transpose("date", "asset")
    ret = arrays["returns"]
    check_aligned({n: arrays[c] for c, n in names.items()}, ("date", "asset"))
    held = _mask(ds, universe, "universe", ret)
    bp_universe = _mask(ds, breakpoint_universe, "breakpoint_universe", ret)
    rf = _risk_free(ds, risk_free, ret)

    cap = arrays["market_cap"]
    if weight_lag == 0:
        cap = cap.shift(date=-1)
    size, chars, sortable, bp_mask = cap, [arrays[s] for s in SORTS], held, bp_universe
    if rebalance == "annual":
        idx = formation_index(ret.indexes["date"])
        if len(idx) and (idx < 0).all():
            raise ValidationError(
                "rebalance",
                "'annual' forms portfolios on the first date in July, and the panel has no "
                "July date (quarterly or yearly periods labelled at their last date, or less "
                "than a year of history), so every factor would be NaN",
                "use daily, weekly or monthly dates that include a July, or rebalance='period'",
            )
        size = _at_formation(cap, idx, np.nan)
        chars = [_at_formation(c, idx, np.nan) for c in chars]
        # an (asset,) mask is the same at every formation date
        if "date" in held.dims:
            sortable = _at_formation(held, idx, False)
        if "date" in bp_universe.dims:
            bp_mask = _at_formation(bp_universe, idx, False)

    char_probs, joint = DESIGNS[design]
    # in-memory input: date ranges on every core; Dask input: Dask's workers do that
    if any(is_dask(v) for v in (ret, cap, size, *chars, held, sortable, bp_mask)):
        threads = 1
    elif threads is None:
        threads = jit.default_threads()
    core = ["portfolio"] if joint else ["sort", "portfolio"]
    # the factors come from the same task as the portfolios: on Dask, one task per
    # date chunk plus its outputs, not a graph of small array operations
    port, count, market, spreads = xr.apply_ufunc(
        _sort_block,
        ret,
        cap,
        size,
        *chars,
        held,
        sortable,
        bp_mask,
        input_core_dims=[["asset"]] * 9,
        output_core_dims=[core, core, [], ["spread"]],
        kwargs={"char_probs": char_probs, "joint": joint, "names": port_names, "threads": threads},
        dask="parallelized",
        output_dtypes=[float, np.int64, float, float],
        dask_gufunc_kwargs={
            "output_sizes": {
                "portfolio": len(port_names),
                "spread": 4,
                **({} if joint else {"sort": len(SORTS)}),
            }
        },
    )
    coords = {"portfolio": np.array(port_names, dtype=object)}
    if not joint:
        coords["sort"] = np.array(SORTS, dtype=object)
    by_sort = {**port.coords, **coords}
    smb, hml, rmw, cma = (spreads.data[:, k] for k in range(4))

    def factor(data, long_name: str) -> xr.DataArray:
        return xr.DataArray(
            data,
            dims=("date",),
            coords=market.coords,
            attrs={"long_name": long_name, "units": "fraction"},
        )

    out = xr.Dataset(
        {
            "MKT": (market - rf).assign_attrs(
                long_name="cap-weighted market return"
                + (" minus risk-free" if risk_free is not None else ""),
                units="fraction",
            ),
            "SMB": factor(smb, "small minus big"),
            "HML": factor(hml, "high minus low book-to-price"),
            "RMW": factor(rmw, "robust minus weak profitability"),
            "CMA": factor(cma, "conservative minus aggressive investment"),
            "portfolio_returns": xr.DataArray(
                port.data,
                dims=port.dims,
                coords=by_sort,
                attrs={
                    "long_name": f"value-weighted {design} sort portfolio returns",
                    "units": "fraction",
                },
            ),
            "portfolio_count": xr.DataArray(
                count.data,
                dims=count.dims,
                coords=by_sort,
                attrs={"long_name": "number of assets per portfolio"},
            ),
        },
        attrs={"rebalance": rebalance, "weight_lag": weight_lag, "design": design},
    )
    if merge:
        return ds.assign(out.data_vars)
    return out
