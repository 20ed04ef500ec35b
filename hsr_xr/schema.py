"""The variable registry (the data model in the README) and input validation.

Every public function validates its inputs here before it builds any graph.
Coordinate checks are eager (coordinates are always in memory); value checks
(positive caps, known industry codes) are eager on NumPy-backed data and are
attached lazily to Dask-backed data, so that building a graph never computes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError

UNKNOWN_INDUSTRY = -1

#: The seed's twelve style factors, in the seed's order (the default `style` coordinate).
SEED_STYLES: tuple[str, ...] = (
    "beta",
    "volatility",
    "momentum",
    "size",
    "nonlinear_size",
    "trading_activity",
    "growth",
    "earnings_yield",
    "value",
    "earnings_variability",
    "leverage",
    "dividend_yield",
)


@dataclass(frozen=True)
class VarSpec:
    """Registry entry: allowed dims, dtype kind and meaning of one variable."""

    name: str
    dims: tuple[tuple[str, ...], ...]
    kind: str  # numpy dtype kinds accepted, e.g. "f", "iu", "b"
    meaning: str
    units: str = ""
    #: How the variable aggregates over a period (:func:`hsr_xr.resample`):
    #: "return" compounds, "level" takes the period's last value, "characteristic"
    #: the as-of value at the period's first date, "forecast" cannot be resampled.
    role: str = "characteristic"


def _spec(name, dims, kind, meaning, units="", role="characteristic"):
    dims = dims if isinstance(dims[0], tuple) else (dims,)
    return name, VarSpec(name, dims, kind, meaning, units, role)


DA = ("date", "asset")
VARIABLES: dict[str, VarSpec] = dict(
    [
        _spec("returns", DA, "f", "simple total return over the date", "fraction", "return"),
        _spec("market_cap", DA, "f", "capitalisation known before the date's return", "currency"),
        _spec(
            "industry",
            (DA, ("asset",)),
            "iu",
            "integer industry code, -1 = unknown; names in attrs['industry_names']",
        ),
        _spec("estimation_universe", DA, "b", "assets that enter the regression fit"),
        _spec("descriptors", ("date", "asset", "descriptor"), "f", "raw descriptor values"),
        _spec("loadings", ("date", "asset", "style"), "f", "standardized style exposures", "z"),
        _spec(
            "factor_returns",
            ("date", "factor"),
            "f",
            "regression factor returns",
            "fraction",
            "return",
        ),
        _spec("specific_returns", DA, "f", "regression residuals", "fraction", "return"),
        _spec(
            "factor_cov",
            ("date", "factor", "factor2"),
            "f",
            "factor covariance forecast for the next date",
            "fraction^2",
            "forecast",
        ),
        _spec(
            "specific_var",
            DA,
            "f",
            "specific variance forecast for next date",
            "fraction^2",
            "forecast",
        ),
        _spec("book_to_price", DA, "f", "book value / market value (FF5 value)"),
        _spec("profitability", DA, "f", "operating profitability (FF5 RMW)"),
        _spec("investment", DA, "f", "asset growth (FF5 CMA)"),
        _spec("close", DA, "f", "unadjusted close price", "currency", "level"),
        _spec("adj_close", DA, "f", "split- and dividend-adjusted close", "currency", "level"),
        # ground truth planted by simulate_market
        _spec(
            "truth_factor_returns",
            ("date", "factor"),
            "f",
            "planted factor returns",
            "fraction",
            "return",
        ),
        _spec("truth_specific_returns", DA, "f", "planted specific returns", "fraction", "return"),
        _spec("truth_exposures", ("date", "asset", "style"), "f", "planted style exposures"),
        _spec(
            "truth_factor_cov",
            ("date", "factor", "factor2"),
            "f",
            "covariance of the date's factor returns",
            "fraction^2",
            "forecast",
        ),
        _spec(
            "truth_specific_var",
            DA,
            "f",
            "variance of the date's specific returns",
            "fraction^2",
            "forecast",
        ),
    ]
)

POSITIVE = ("market_cap", "close", "adj_close")
#: Returns and raw descriptors are checked for +-inf (NaN is the missing value; inf is bad
#: input: one infinite descriptor would blank its whole cross-section through the
#: winsorization quantiles).
FINITE = ("returns", "factor_returns", "specific_returns", "descriptors")
#: Variances: NaN is missing; negative or infinite values are bad input.
NONNEGATIVE = ("specific_var",)


def _dims_text(spec: VarSpec) -> str:
    return " or ".join("(" + ", ".join(d) + ")" for d in spec.dims)


def is_dask(obj: xr.DataArray) -> bool:
    """True when ``obj`` is backed by a Dask array."""
    return isinstance(obj.data, da.Array)


#: Dates that datetime64[ns] holds (a day inside its range at each end).
NS_DATE_RANGE = (np.datetime64("1677-09-22", "D"), np.datetime64("2262-04-10", "D"))


def datetime_ns(values, name: str) -> np.ndarray:
    """``values`` (datetime64 of any unit) as datetime64[ns], the unit hsr_xr stores.

    NumPy's cast overflows silently outside about 1677-2262 (e.g. a 9999-12-31
    "open" sentinel in microseconds becomes 1816-03-29), so such dates are refused.
    """
    arr = np.asarray(values)
    if arr.dtype == np.dtype("datetime64[ns]"):
        return arr
    lo, hi = NS_DATE_RANGE
    outside = ~np.isnat(arr) & ((arr < lo) | (arr > hi))
    if outside.any():
        raise ValidationError(
            name,
            f"has dates outside {lo}..{hi} (e.g. {arr[outside].flat[0]}), which "
            "nanosecond datetimes cannot hold",
            "replace open-ended sentinels such as 9999-12-31 with NaT, or store those dates "
            "as strings",
        )
    return arr.astype("datetime64[ns]")


def parse_dates(values: Any, name: str) -> pd.DatetimeIndex:
    """Date labels -> timezone-naive DatetimeIndex without NaT, or a named error.

    Numbers are refused: pandas reads 20200102 as nanoseconds since 1970.
    """
    if isinstance(values, (set, frozenset)):
        values = sorted(values)
    arr = np.asarray(values)
    if arr.size == 0:  # no dates (np.asarray([]) is float)
        return pd.DatetimeIndex([])
    first = next((v for v in arr.flat if not pd.isna(v)), None)
    if arr.dtype.kind in "biuf" or (arr.dtype.kind == "O" and isinstance(first, numbers.Number)):
        raise ValidationError(
            name,
            f"dates are numbers (e.g. {first}), which pandas would read as nanoseconds since 1970",
            "parse them first, e.g. pd.to_datetime(x.astype(str), format='%Y%m%d')",
        )
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(arr))
    except (ValueError, TypeError) as err:
        raise ValidationError(name, "values are not dates", "parse them first") from err
    if dates.tz is not None:  # .values would shift the dates to UTC
        raise ValidationError(
            name, f"dates are timezone-aware ({dates.tz})", "drop the zone: .tz_localize(None)"
        )
    if dates.isna().any():
        raise ValidationError(
            name, f"has {int(dates.isna().sum())} missing dates", "drop or fill those rows"
        )
    return dates


def check_coords(obj: xr.Dataset | xr.DataArray, label: str = "input") -> None:
    """Check the canonical coordinates present on ``obj``.

    ``date`` must be datetime64, strictly increasing (so no duplicates);
    ``asset`` and the factor-like dims must have unique labels.
    """
    if "date" in obj.dims:
        if "date" not in obj.coords:
            raise ValidationError(
                "date", f"{label} has a 'date' dim without coordinate labels", "assign dates"
            )
        dates = obj.indexes["date"]
        if not isinstance(dates, pd.DatetimeIndex) or dates.tz is not None:
            raise ValidationError(
                "date",
                f"coordinate has dtype {dates.dtype}, not (timezone-naive) datetime64",
                "convert with pd.to_datetime (and .tz_localize(None)) before building the Dataset",
            )
        if dates.has_duplicates:
            dup = dates[dates.duplicated()][:3].strftime("%Y-%m-%d").tolist()
            raise ValidationError(
                "date", f"duplicate dates {dup} in {label}", "drop or aggregate duplicate rows"
            )
        if not dates.is_monotonic_increasing:
            raise ValidationError(
                "date", f"dates of {label} are not increasing", "sort with ds.sortby('date')"
            )
    for dim in ("asset", "descriptor", "style", "factor", "factor2", "portfolio"):
        if dim in obj.dims and dim in obj.coords and obj.indexes[dim].has_duplicates:
            dup = obj.indexes[dim][obj.indexes[dim].duplicated()][:3].tolist()
            raise ValidationError(
                dim, f"duplicate labels {dup} in {label}", f"make the {dim} labels unique"
            )


def check_dims(var: xr.DataArray, name: str, spec: VarSpec | None = None) -> None:
    """Check that ``var`` has one of the registry dims of ``spec`` (any order)."""
    spec = spec or VARIABLES[name]
    if not any(set(var.dims) == set(d) for d in spec.dims):
        raise ValidationError(
            name,
            f"has dims {var.dims}, expected {_dims_text(spec)}",
            "rename or transpose the dims to the canonical names "
            "(e.g. ds.rename({'time': 'date', 'ticker': 'asset'}))",
        )
    if var.dtype.kind not in spec.kind:
        raise ValidationError(
            name, f"has dtype {var.dtype}, expected kind {spec.kind!r}", "cast with .astype(...)"
        )


def _check_values(
    var: xr.DataArray, name: str, bad: Callable[[np.ndarray], np.ndarray], problem: str, fix: str
) -> xr.DataArray:
    """Raise if ``bad(values)`` is true anywhere; lazily (at compute) for Dask data."""
    if not is_dask(var):
        mask = bad(np.asarray(var.values))
        if mask.any():
            raise ValidationError(name, f"{problem} ({int(mask.sum())} values)", fix)
        return var

    def _block(block: np.ndarray) -> np.ndarray:
        mask = bad(block)
        if mask.any():
            raise ValidationError(name, f"{problem} ({int(mask.sum())} values in a chunk)", fix)
        return block

    return var.copy(data=var.data.map_blocks(_block, dtype=var.dtype))


def check_finite(var: xr.DataArray, name: str) -> xr.DataArray:
    """Raise if ``var`` holds +-inf (NaN is the missing value); lazily for Dask data."""
    return _check_values(var, name, np.isinf, "has infinite values", "set them to NaN (missing)")


def industry_names(ds: xr.Dataset | xr.DataArray, industry: str = "industry") -> list[str]:
    """The industry names of ``ds[industry]`` (attr ``industry_names``).

    Without that attr, in-memory codes are named ``ind_<code>`` up to the largest
    code; Dask-backed codes need the attr (finding the largest code would compute).
    """
    var = ds[industry] if isinstance(ds, xr.Dataset) else ds
    names = var.attrs.get("industry_names")
    if names is None:
        if is_dask(var):
            raise ValidationError(
                industry,
                "is Dask-backed and has no attrs['industry_names'] (naming the codes would "
                "compute them while the graph is built)",
                f"set ds[{industry!r}].attrs['industry_names'] = [...], or load it first",
            )
        n = int(var.max().values) + 1
        names = [f"ind_{k}" for k in range(n)]
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValidationError(
            industry, f"has attrs['industry_names'] = {names!r}", "set it to a list of names"
        )
    names = [str(n) for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(
            industry,
            f"attrs['industry_names'] repeats {repeated[:3]}",
            "name each industry once (merge the codes of one industry)",
        )
    return names


def validate(
    ds: xr.Dataset,
    required: Iterable[str],
    *,
    optional: Iterable[str] = (),
    names: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Validate ``ds`` against the registry and return it (with lazy checks attached).

    Parameters
    ----------
    ds : Dataset
        Input panel.
    required : iterable of str
        Canonical names that must be present.
    optional : iterable of str
        Canonical names checked only if present.
    names : mapping canonical -> actual, optional
        Variable names the caller uses instead of the canonical ones.

    Raises
    ------
    ValidationError
        On a missing variable, wrong dims or dtype, bad coordinates,
        non-positive or infinite caps or prices, infinite returns, or industry
        codes outside the known list.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(
            "ds", f"expected an xarray.Dataset, got {type(ds).__name__}", "pass a Dataset"
        )
    names = dict(names or {})
    required, optional = list(required), list(optional)
    check_coords(ds, "the Dataset")
    out = ds
    for canon in required + optional:
        actual = names.get(canon, canon)
        if actual not in ds.data_vars and actual not in ds.coords:
            if canon in required:
                raise ValidationError(
                    actual,
                    f"variable is missing (have: {sorted(map(str, ds.data_vars))})",
                    f"add it, or pass {canon}=<name> to use another variable",
                )
            continue
        var = original = ds[actual]
        if canon in VARIABLES:
            check_dims(var, actual, VARIABLES[canon])
        if canon in POSITIVE:
            var = _check_values(
                var,
                actual,
                lambda x: (x <= 0) | np.isinf(x),
                "has zero, negative or infinite values",
                "set unknown or invalid values to NaN",
            )
        if canon in NONNEGATIVE:
            var = _check_values(
                var,
                actual,
                lambda x: (x < 0) | np.isinf(x),
                "has negative or infinite variances",
                "set unknown variances to NaN (risk_model forecasts are > 0)",
            )
        if canon in FINITE and var.dtype.kind == "f":
            var = check_finite(var, actual)
        if canon == "industry":
            # without names, Dask-backed codes are only checked for codes below -1 (their
            # largest code would have to be computed); functions that need the names ask
            if is_dask(var) and "industry_names" not in var.attrs:
                n, known = np.iinfo(np.int64).max, "codes below -1"
            else:
                n = len(industry_names(var))
                known = f"codes outside -1..{n - 1} (the known list attrs['industry_names'])"
            var = _check_values(
                var,
                actual,
                lambda x, n=n: (x < UNKNOWN_INDUSTRY) | (x >= n),
                f"has {known}",
                "map unknown industries to -1 or extend attrs['industry_names']",
            )
        if var is not original:  # a lazy check was attached
            out = out.assign({actual: var})
    return out


def check_aligned(objs: Mapping[str, xr.DataArray | xr.Dataset], dims: Iterable[str]) -> None:
    """Raise if the objects' labels differ on any shared dim in ``dims``.

    xarray would silently inner-join misaligned inputs; we refuse instead.
    """
    items = list(objs.items())
    for dim in dims:
        ref_name, ref = next(((k, o) for k, o in items if dim in o.dims), (None, None))
        if ref is None:
            continue
        for name, obj in items:
            if dim in obj.dims and dim not in obj.indexes:
                raise ValidationError(
                    name, f"has no {dim!r} coordinate labels", f"assign its {dim} labels"
                )
        for name, obj in items:
            if dim in obj.dims and not obj.indexes[dim].equals(ref.indexes[dim]):
                raise ValidationError(
                    name,
                    f"{dim} coordinate differs from that of {ref_name!r}",
                    f"align first, e.g. xr.align(a, b, join='inner') or .reindex({dim}=...)",
                )


def check_risk_free(
    risk_free: xr.DataArray | float, returns: xr.DataArray, name: str = "risk_free"
) -> xr.DataArray | float:
    """A risk-free rate per period, validated: a finite number, or a float series over
    ``returns``' dates (NaN allowed, inf refused lazily)."""
    if isinstance(risk_free, xr.DataArray):
        if risk_free.dims != ("date",):
            raise ValidationError(
                name, f"has dims {risk_free.dims}, expected ('date',)", "pass a series rf(date)"
            )
        if risk_free.dtype.kind not in "fiu":
            raise ValidationError(
                name, f"has dtype {risk_free.dtype}", "pass a numeric rate series"
            )
        check_coords(risk_free, name)
        check_aligned({"returns": returns, name: risk_free}, ["date"])
        if is_dask(returns):  # chunk it as the returns, so that r - rf keeps their chunks
            risk_free = risk_free.chunk({"date": returns.chunksizes["date"]})
        elif is_dask(risk_free):
            risk_free = risk_free.chunk({"date": -1})
        return check_finite(risk_free.astype(float), name)
    if not is_number(risk_free, finite=True):
        raise ValidationError(name, f"got {risk_free!r}", "pass a finite float or a date series")
    return float(risk_free)


def is_flag(v: Any) -> bool:
    """A bool (Python or NumPy): ``"no"`` or ``0`` is not a switch."""
    return isinstance(v, (bool, np.bool_))


def check_flags(**flags: Any) -> None:
    """Raise unless every keyword is a bool (see :func:`is_flag`)."""
    for name, value in flags.items():
        if not is_flag(value):
            raise ValidationError(name, f"got {value!r}", "pass True or False")


def is_number(v: Any, finite: bool = False) -> bool:
    """A real number (Python or NumPy, not a bool); finite if ``finite``."""
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        return False
    try:
        return not finite or math.isfinite(float(v))
    except OverflowError:  # an int too large for a float
        return False


def is_integer(v: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def check_counts(minimum: int, *, optional: bool = False, **counts: Any) -> None:
    """Raise unless every keyword is an integer >= ``minimum`` (or None if ``optional``)."""
    for name, value in counts.items():
        if optional and value is None:
            continue
        if not (is_integer(value) and value >= minimum):
            fix = f"pass an integer >= {minimum}" + (" or None" if optional else "")
            raise ValidationError(name, f"got {value!r}", fix)


def check_fills(**fills: Any) -> None:
    """Raise unless every keyword is None or a finite number (a fill value)."""
    for name, value in fills.items():
        if value is not None and not is_number(value, finite=True):
            raise ValidationError(name, f"got {value!r}", "pass a finite number, or None")


def check_nonempty(var: xr.DataArray, dims: Iterable[str], name: str) -> None:
    """Raise if one of ``dims`` of ``var`` has length 0 (a kernel needs at least one)."""
    for dim in dims:
        if var.sizes.get(dim, 1) == 0:
            raise ValidationError(
                name, f"has no {dim} (length 0)", f"select a non-empty {dim} range"
            )


def select_dates(obj: xr.DataArray | xr.Dataset, date: Any) -> xr.DataArray | xr.Dataset:
    """``obj.sel(date=date)`` (unchanged if ``date`` is None or ``obj`` has no date dim).

    A label that is not in ``obj``'s dates, or a selection of no date, raises a
    :class:`ValidationError` naming the date range (not a bare ``KeyError``).
    """
    if date is None or "date" not in obj.dims:
        return obj
    index = obj.indexes["date"]
    span = f"{index[0]} .. {index[-1]}" if len(index) else "no dates"
    try:
        out = obj.sel(date=date)
    except KeyError as err:
        raise ValidationError(
            "date",
            f"{date!r} is not one of the panel's dates ({span}, {len(index)} dates)",
            "pick labels from ds.date, or pass a slice",
        ) from err
    if out.sizes.get("date", 1) == 0:
        raise ValidationError(
            "date",
            f"{date!r} selects none of the panel's dates ({span})",
            "pass a range that overlaps ds.date",
        )
    return out


def check_core_unchunked(var: xr.DataArray, dim: str, name: str) -> None:
    """Raise if ``dim`` (a core dim of a kernel) is split across several Dask chunks."""
    if is_dask(var) and dim in var.dims:
        nchunks = len(var.chunksizes[dim])
        if nchunks > 1:
            raise ValidationError(
                name,
                f"core dim {dim!r} is split into {nchunks} Dask chunks",
                f"rechunk with .chunk({{{dim!r}: -1}})",
            )
