"""Rolling per-asset factor regressions (the seed's ``ff5_analysis``), vectorized.

:func:`rolling_regression` regresses every asset's returns on a set of factor
series (e.g. the output of :func:`hsr_xr.ff5_factors`) over a trailing window and
returns intercepts, betas, the fitted value and residual at each window's last
point, the seed's alpha, R² and the observation count, for all assets at once.
The work is done by :func:`hsr_xr.kernels.rolling.rolling_ols`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from .errors import ValidationError
from .kernels.rolling import FACTOR_OUTPUTS, OUTPUTS, STDERR_OUTPUTS, WINDOW_TYPES, rolling_ols
from .schema import (
    check_aligned,
    check_coords,
    check_core_unchunked,
    check_dims,
    check_finite,
    check_flags,
    check_nonempty,
    check_risk_free,
    is_integer,
)

_ATTRS: dict[str, dict[str, str]] = {
    "intercept": {"long_name": "regression intercept", "units": "fraction per date"},
    "betas": {"long_name": "factor loadings (slopes)", "units": "1"},
    "prediction": {
        "long_name": "fitted return at the window's last observation",
        "units": "fraction",
    },
    "residual": {
        "long_name": "return minus prediction at the last observation",
        "units": "fraction",
    },
    "alpha": {
        "long_name": "intercept + last residual (the seed's alpha)",
        "units": "fraction",
    },
    "r2": {"long_name": "in-window R² (centered with an intercept, uncentered without)"},
    "n_obs": {"long_name": "valid observations in the window", "units": "count"},
    "intercept_stderr": {"long_name": "classical OLS standard error of the intercept"},
    "betas_stderr": {"long_name": "classical OLS standard errors of the betas"},
    "intercept_tstat": {"long_name": "intercept / intercept_stderr"},
    "betas_tstat": {"long_name": "betas / betas_stderr"},
}


def _factor_array(
    factors: xr.DataArray | xr.Dataset, factor_names: Sequence[str] | None
) -> xr.DataArray:
    """Factors as a (date, factor) DataArray."""
    if factor_names is not None:
        if isinstance(factor_names, str):
            raise ValidationError(
                "factor_names", f"got the string {factor_names!r}", "pass a list, e.g. ['MKT']"
            )
        factor_names = list(factor_names)
        if not factor_names:
            raise ValidationError("factor_names", "is empty", "name at least one factor")
        dups = sorted({str(n) for n in factor_names if factor_names.count(n) > 1})
        if dups:
            raise ValidationError("factor_names", f"repeats {dups}", "name each factor once")
    if isinstance(factors, xr.Dataset):
        check_coords(factors, "factors")
        if factor_names is None:
            factor_names = [
                str(name)
                for name, var in factors.data_vars.items()
                if var.dims == ("date",) and var.dtype.kind in "fiu"
            ]
            if not factor_names:
                raise ValidationError(
                    "factors",
                    "the Dataset has no numeric variables over 'date' alone",
                    "pass factor series with dims ('date',), or factor_names=[...]",
                )
        missing = [n for n in factor_names if n not in factors.data_vars]
        if missing:
            raise ValidationError(
                "factor_names",
                f"{missing} not in factors (have: {sorted(map(str, factors.data_vars))})",
                "choose among the Dataset's variables",
            )
        for name in factor_names:
            if factors[name].dims != ("date",):
                raise ValidationError(
                    name, f"has dims {factors[name].dims}, expected ('date',)", "select a series"
                )
        arr = factors[list(factor_names)].to_dataarray("factor")
        arr = arr.assign_coords(factor=np.array([str(n) for n in factor_names], dtype=object))
    elif isinstance(factors, xr.DataArray):
        if set(factors.dims) != {"date", "factor"}:
            raise ValidationError(
                "factors",
                f"has dims {factors.dims}, expected (date, factor)",
                "rename the dims, or pass a Dataset of factor series over 'date'",
            )
        arr = factors
        if "factor" not in arr.coords:
            arr = arr.assign_coords(factor=[f"factor_{i}" for i in range(arr.sizes["factor"])])
        if factor_names is not None:
            have = [str(f) for f in arr.factor.values]
            missing = [n for n in factor_names if n not in have]
            if missing:
                raise ValidationError(
                    "factor_names", f"{missing} not in factors (have: {have})", "choose among them"
                )
            arr = arr.sel(factor=list(factor_names))
    else:
        raise ValidationError(
            "factors",
            f"expected a DataArray or Dataset, got {type(factors).__name__}",
            "pass e.g. hx.ff5_factors(ds)",
        )
    if arr.dtype.kind not in "fiu":
        raise ValidationError("factors", f"has dtype {arr.dtype}", "cast to float")
    check_coords(arr, "factors")
    return arr.transpose("date", "factor").astype(float)


def rolling_regression(
    returns: xr.DataArray,
    factors: xr.DataArray | xr.Dataset,
    window: int = 20,
    *,
    min_obs: int | None = None,
    window_type: str = "observations",
    add_intercept: bool = True,
    risk_free: xr.DataArray | float | None = None,
    stderr: bool = False,
    factor_names: Sequence[str] | None = None,
) -> xr.Dataset:
    """Rolling per-asset OLS of returns on factors, all assets at once.

    For each asset and date, regress the asset's (excess) returns on the factors
    (plus an intercept) over a trailing window ending at that date.

    Parameters
    ----------
    returns : DataArray (date, asset)
        Simple returns (fractions); NaN = missing, +-inf refused. With Dask, ``date`` must be
        one chunk (chunk over ``asset``).
    factors : DataArray (date, factor) or Dataset
        Factor returns (fractions). A Dataset contributes its numeric variables
        with dims ``("date",)`` (e.g. MKT, SMB, HML, RMW, CMA of
        :func:`hsr_xr.ff5_factors`; variables with other dims are ignored), or
        those named in ``factor_names``. Dates must equal those of ``returns``.
        A date with any NaN factor is invalid for every asset.
    window : int
        Window length, in valid observations or in dates (``window_type``).
    min_obs : int, optional
        Fewest valid observations for a fit. Default: ``window`` for
        ``"observations"`` (every window is full, as in the seed) and the number
        of parameters for ``"dates"`` (statsmodels' default). Must lie between
        the number of parameters and ``window``.
    window_type : {"observations", "dates"}
        ``"observations"`` (the seed's): the last ``window`` valid observations of
        each asset (valid = finite return and all factors finite); results are
        reported at the dates of valid observations (the window's last point)
        and are NaN on the asset's other dates. With ``min_obs < window`` the
        first windows expand from ``min_obs`` observations.
        ``"dates"``: the last ``window`` dates, using the valid observations among
        them when there are at least ``min_obs`` (statsmodels
        ``RollingOLS(..., missing="drop")``); no fit before the ``window``-th date.
    add_intercept : bool
        Include an intercept (default). Without it, ``intercept`` is 0 where a
        fit exists and ``r2`` is uncentered (statsmodels' convention).
    risk_free : DataArray (date,) or float, optional
        Subtracted from ``returns`` (not from the factors) before the fit.
    stderr : bool
        Add classical (homoskedastic) standard errors and t-statistics.
    factor_names : sequence of str, optional
        Factors to use (variables of a Dataset, or labels of ``factor``).

    Returns
    -------
    Dataset with coords date, asset, factor and variables

    - ``intercept`` (date, asset): fitted intercept (fraction per date);
    - ``betas`` (date, asset, factor): fitted slopes;
    - ``prediction`` (date, asset): intercept + betas · factors at the window's last
      point (for ``"dates"``, the last date; defined when its factors are);
    - ``residual`` (date, asset): return minus ``prediction`` at that point;
    - ``alpha`` (date, asset): ``intercept + residual``, the seed's definition
      (the average abnormal return plus the last date's unexplained return);
    - ``r2`` (date, asset): in-window R²; ``n_obs`` (date, asset): valid
      observations in the window (0 where no window ends);
    - with ``stderr=True``: ``intercept_stderr``, ``betas_stderr``,
      ``intercept_tstat``, ``betas_tstat``.

    Outputs are NaN where there is no fit: too few observations, a singular
    factor matrix in the window, or (``"observations"``) no valid observation
    on that date; ``residual``/``alpha`` also where the last return is missing.

    Raises
    ------
    ValidationError
        Wrong dims or types, misaligned dates, chunked ``date``, bad options.
    """
    if not isinstance(returns, xr.DataArray):
        raise ValidationError(
            "returns",
            f"expected a DataArray (date, asset), got {type(returns).__name__}",
            "pass ds.returns",
        )
    check_dims(returns, "returns")
    check_coords(returns, "returns")
    fac = _factor_array(factors, factor_names)
    check_aligned({"returns": returns, "factors": fac}, ["date"])
    check_flags(add_intercept=add_intercept, stderr=stderr)
    if window_type not in WINDOW_TYPES:
        raise ValidationError(
            "window_type", f"got {window_type!r}", f"use one of {list(WINDOW_TYPES)}"
        )
    if not is_integer(window) or window < 1:
        raise ValidationError("window", f"got {window!r}", "pass a positive integer")
    n_par = fac.sizes["factor"] + int(add_intercept)
    if window < n_par:
        raise ValidationError(
            "window",
            f"a window of {window} cannot fit {n_par} parameters",
            f"use window >= {n_par}",
        )
    if min_obs is None:
        min_obs = window if window_type == "observations" else n_par
    if not is_integer(min_obs):
        raise ValidationError("min_obs", f"got {min_obs!r}", "pass an integer")
    if not n_par <= min_obs <= window:
        raise ValidationError(
            "min_obs",
            f"got {min_obs}; it must lie in [{n_par} (parameters), {window} (window)]",
            "pass a value in that range, or None for the default",
        )
    if risk_free is not None:
        risk_free = check_risk_free(risk_free, returns)
        returns = returns - risk_free
    check_core_unchunked(returns, "date", "returns")
    check_nonempty(returns, ("date",), "returns")
    # +-inf is bad input, as everywhere (NaN is the missing value); lazily for Dask
    returns, fac = check_finite(returns, "returns"), check_finite(fac, "factors")
    if isinstance(fac.data, da.Array):
        fac = fac.chunk({"date": -1, "factor": -1})

    names = OUTPUTS + (STDERR_OUTPUTS if stderr else ())
    core = [["date", "factor"] if n in FACTOR_OUTPUTS else ["date"] for n in names]
    dtypes = [np.int64 if n == "n_obs" else np.float64 for n in names]
    results = xr.apply_ufunc(
        rolling_ols,
        returns.astype(float),
        fac,
        input_core_dims=[["date"], ["date", "factor"]],
        output_core_dims=core,
        dask="parallelized",
        output_dtypes=dtypes,
        kwargs=dict(
            window=int(window),
            min_obs=int(min_obs),
            window_type=window_type,
            add_intercept=add_intercept,
            stderr=stderr,
        ),
    )
    out = xr.Dataset(
        {
            name: res.transpose("date", "asset", ...).assign_attrs(_ATTRS[name])
            for name, res in zip(names, results, strict=True)
        }
    )
    out.attrs.update(
        window=int(window),
        window_type=window_type,
        min_obs=int(min_obs),
        add_intercept=int(add_intercept),
        alpha_definition="intercept + residual at the window's last point (seed ff5_analysis)",
    )
    return out
