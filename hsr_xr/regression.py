"""Daily cross-sectional factor regression: factor and specific returns.

Labelled wrapper around :func:`hsr_xr.kernels.regression.regress`, chunked over
``date`` with ``asset`` (and ``style``) as core dims.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import xarray as xr

from .errors import ValidationError
from .exposures import factor_names
from .kernels import jit
from .kernels.regression import (
    SE_KINDS,
    STATUS_MEANINGS,
    STATUS_OK,
    WEIGHT_KINDS,
    InfiniteLoadingsError,
    regress,
)
from .schema import (
    check_aligned,
    check_coords,
    check_core_unchunked,
    check_counts,
    check_fills,
    check_flags,
    check_nonempty,
    industry_names,
    is_dask,
    is_number,
    validate,
)

STATUS_ATTRS = {
    "flag_values": list(STATUS_MEANINGS),
    "flag_meanings": " ".join(STATUS_MEANINGS.values()),
    "long_name": "regression status per date (0 = ok; otherwise factor returns are NaN)",
}

_OUTPUTS = (
    # name, core dims, dtype, attrs
    ("factor_returns", ("factor",), float, {"units": "fraction"}),
    ("specific_returns", ("asset",), float, {"units": "fraction"}),
    ("factor_returns_se", ("factor",), float, {"units": "fraction"}),
    ("factor_returns_tstat", ("factor",), float, {}),
    ("regression_n_assets", (), np.int64, {"long_name": "assets in the fit set"}),
    ("regression_r2", (), float, {"long_name": "weighted centered R^2 of the fit"}),
    ("regression_vef", (), float, {"long_name": "weighted uncentered variance explained"}),
    (
        "regression_cond",
        (),
        float,
        {"long_name": "1-norm cond. number, scaled country/style system"},
    ),
    ("regression_status", (), np.int8, STATUS_ATTRS),
)


def _status_summary(status: np.ndarray) -> str | None:
    status = np.asarray(status)
    bad = status != STATUS_OK
    if not bad.any():
        return None
    parts = [
        f"{int((status == code).sum())} {name}"
        for code, name in STATUS_MEANINGS.items()
        if code != STATUS_OK and (status == code).any()
    ]
    return (
        f"factor_regression: {int(bad.sum())} of {status.size} dates are degenerate "
        f"({', '.join(parts)}); their factor returns are NaN (see regression_status)"
    )


def _warn_block(status: np.ndarray) -> np.ndarray:
    msg = _status_summary(status)
    if msg:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return status


def _input(
    ds: xr.Dataset, arg: str | xr.DataArray, canon: str, taken: set[str]
) -> tuple[str, xr.DataArray | None]:
    """Resolve a variable argument (a name in ``ds`` or a DataArray) to (name, DataArray).

    A DataArray is keyed by its role ``canon`` (its own ``.name`` may be another
    input's, e.g. ``xr.ones_like(ds.returns)``), or ``"<canon> (argument)"`` if a
    name argument in ``taken`` already uses ``canon``.
    """
    if isinstance(arg, xr.DataArray):
        name = canon if canon not in taken else f"{canon} (argument)"
        check_coords(arg, name)
        dims = ("date", "asset") + (("style",) if "style" in arg.indexes else ())
        check_aligned({"ds": ds, name: arg}, dims)
        return name, arg
    return arg, ds[arg] if arg in ds.variables else None


def factor_regression(
    ds: xr.Dataset,
    *,
    returns: str | xr.DataArray = "returns",
    market_cap: str | xr.DataArray = "market_cap",
    industry: str | xr.DataArray = "industry",
    loadings: str | xr.DataArray = "loadings",
    estimation_universe: str | xr.DataArray | None = "estimation_universe",
    specific_var: str | xr.DataArray = "specific_var",
    weights: str = "sqrt_cap",
    weight_by_specific_var: bool = False,
    winsorize: float | None = 0.01,
    residuals: str = "raw",
    fill_exposures: float | None = 0.0,
    std_errors: str = "classical",
    min_dof: int = 10,
    max_cond: float = 1e12,
    threads: int | None = None,
    merge: bool = True,
) -> xr.Dataset:
    """Daily constrained WLS of returns on country, style and industry factors.

    Per date t, over the fit set (assets with a return, a positive cap, an
    industry code != -1 and style loadings, narrowed by ``estimation_universe``
    when that variable exists)::

        r_n = f_country + sum_s X_ns f_s + f_industry(n) + u_n,
        sum_k capshare_k f_industry_k = 0,

    where capshare_k is industry k's share of the fit set's market cap. The
    country (market) factor is free; industry returns are relative to it. An
    industry without fit-set members gets a NaN return that date.

    Parameters
    ----------
    ds : Dataset
        Panel with ``returns(date, asset)``, ``market_cap(date, asset)``,
        ``industry(asset)`` or ``industry(date, asset)`` and
        ``loadings(date, asset, style)`` (all stamped at t, known before t's
        return except the return itself).
    returns, market_cap, industry, loadings : str or DataArray
        Variable names in ``ds`` (or aligned DataArrays).
    estimation_universe : str, DataArray or None
        Boolean (date, asset) fit-set filter; used only if present in ``ds``.
    specific_var : str or DataArray
        Specific-variance forecast (date, asset); used only with
        ``weight_by_specific_var``. The value stamped at t-1 (the forecast for t)
        weights the regression at t.
    weights : {"sqrt_cap", "cap", "equal"}
        Regression weights, normalised to mean 1 over the fit set.
    weight_by_specific_var : bool
        Divide the weights by the previous date's specific variance (the seed's
        intended ``hsigma``). Fit-set assets without one use that date's median;
        a date without any keeps the plain weights.
    winsorize : float or None
        Clip fit returns at the date's ``winsorize`` / ``1 - winsorize``
        equal-weighted quantiles of the fit set (default 1%/99%); None disables.
    residuals : {"raw", "winsorized"}
        Specific returns against the raw returns (default: factor and specific
        parts add up to the return) or against the winsorized ones (clipped with
        the same bounds).
    fill_exposures : float or None
        Value for a missing style loading of an asset that has other loadings
        (seed: 0.0); None leaves any asset with a missing loading out of the fit.
        An asset with no loading at all is never filled: it stays out of the fit
        and gets a NaN specific return.
    std_errors : {"classical", "robust"}
        Factor-return standard errors: classical WLS (sigma^2 (X'WX)^-1 on the
        constrained system) or heteroskedasticity-robust HC1 sandwich.
    min_dof : int
        A date needs at least (free parameters + ``min_dof``) fit-set assets.
    max_cond : float
        Dates whose system has a larger condition number are flagged singular.
        ``regression_cond`` is the 1-norm condition number of the
        unit-diagonal-scaled (1 + S) x (1 + S) country/style system left after
        profiling out the constrained industries (its Schur complement).
    threads : int, optional
        Date blocks solved at once for in-memory input (default: the cores this
        process may use, or 1 when called from a thread other than the main one).
        Ignored for Dask-backed input: each task runs on one thread, Dask's
        workers giving the parallelism.
    merge : bool
        Return ``ds`` with the outputs added (True) or only the outputs.

    Returns
    -------
    Dataset
        ``factor_returns(date, factor)`` (factor = country, styles, industries),
        ``specific_returns(date, asset)`` (every asset with a return, an
        industry and loadings, inside the universe or not; NaN otherwise),
        ``factor_returns_se`` / ``factor_returns_tstat(date, factor)``,
        ``regression_n_assets``, ``regression_r2`` (weighted, centered),
        ``regression_vef`` (weighted, uncentered: 1 - sum w u^2 / sum w r^2),
        ``regression_cond`` and ``regression_status(date)`` (0 ok,
        1 too_few_assets, 2 constant_style, 3 singular_system; codes in the
        attrs ``flag_values``/``flag_meanings``). A degenerate date has NaN
        factor returns, specific returns and diagnostics (``regression_n_assets``
        still counts its fit set); one RuntimeWarning
        summarises them (for Dask data, when ``regression_status`` is computed).
        On a fitted date, ``regression_r2`` is NaN when the fit-set returns do
        not vary, and the standard errors are NaN when no residual is left to
        estimate the error variance from (no residual degrees of freedom, or an
        exact fit).

    Raises
    ------
    ValidationError
        Missing or misshaped inputs, misaligned coordinates, unknown industry
        codes, chunked ``asset``/``style`` dims, bad options.
    """
    check_flags(weight_by_specific_var=weight_by_specific_var, merge=merge)
    if weights not in WEIGHT_KINDS:
        raise ValidationError("weights", f"unknown kind {weights!r}", f"use one of {WEIGHT_KINDS}")
    if std_errors not in SE_KINDS:
        raise ValidationError(
            "std_errors", f"unknown kind {std_errors!r}", f"use one of {SE_KINDS}"
        )
    if residuals not in ("raw", "winsorized"):
        raise ValidationError(
            "residuals", f"unknown kind {residuals!r}", "use 'raw' or 'winsorized'"
        )
    if winsorize is not None and not (is_number(winsorize) and 0 <= winsorize < 0.5):
        raise ValidationError("winsorize", f"{winsorize!r} is not in [0, 0.5)", "use e.g. 0.01")
    check_fills(fill_exposures=fill_exposures)
    check_counts(0, min_dof=min_dof)
    check_counts(1, optional=True, threads=threads)
    if not (is_number(max_cond) and max_cond >= 1):
        raise ValidationError("max_cond", f"got {max_cond!r}", "pass a number >= 1 (inf: no limit)")
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(
            "ds", f"expected a Dataset, got {type(ds).__name__}", "pass a Dataset"
        )

    args = {
        "returns": returns,
        "market_cap": market_cap,
        "industry": industry,
        "loadings": loadings,
    }
    optional = []
    if estimation_universe is not None:
        args["estimation_universe"] = estimation_universe
        optional.append("estimation_universe")
    if weight_by_specific_var:
        args["specific_var"] = specific_var
    names, found = {}, {}
    taken = {a for a in args.values() if isinstance(a, str)}
    for canon, arg in args.items():
        name, var = _input(ds, arg, canon, taken)
        names[canon] = name
        if var is not None:
            found[name] = var
    # one Dataset construction (one merge), not one per variable
    work = xr.Dataset(found, coords=ds.coords)
    work = validate(work, [c for c in args if c not in optional], optional=optional, names=names)
    variables = {c: work[names[c]] for c in args if names[c] in work.variables}

    load = variables["loadings"]
    for canon, var in variables.items():
        check_core_unchunked(var, "asset", names[canon])
        check_nonempty(var, ("asset",), names[canon])
    check_core_unchunked(load, "style", names["loadings"])
    styles = [str(s) for s in load.indexes["style"]] if "style" in load.coords else None
    if styles is None:
        raise ValidationError(names["loadings"], "has no 'style' coordinate labels", "assign them")
    inds = industry_names(variables["industry"])
    factors = factor_names(styles, inds)
    if len(set(factors)) != len(factors):
        raise ValidationError(
            names["loadings"],
            f"style names collide with industry names or 'country' "
            f"({sorted({f for f in factors if factors.count(f) > 1})[:3]})",
            "rename the styles or the industries",
        )
    if "factor" in ds.indexes and merge and list(ds.indexes["factor"]) != factors:
        raise ValidationError(
            "factor",
            f"ds already has a 'factor' coordinate that differs from {factors[:3]}...",
            "drop it (ds.drop_dims('factor')) or pass merge=False",
        )

    ordered = ["returns", "market_cap", "industry", "loadings"]
    inputs = [variables[c] for c in ordered]
    core = [["asset"], ["asset"], ["asset"], ["asset", "style"]]
    has_universe = "estimation_universe" in variables
    if has_universe:
        inputs.append(variables["estimation_universe"])
        core.append(["asset"])
    if weight_by_specific_var:
        inputs.append(variables["specific_var"].shift(date=1))
        core.append(["asset"])

    # in-memory input: date blocks on every core; Dask input: Dask's workers do that
    if any(is_dask(v) for v in inputs):
        threads = 1
    elif threads is None:
        threads = jit.default_threads()

    def _kernel(r, cap, codes, x, *rest):
        rest = list(rest)
        universe = rest.pop(0) if has_universe else None
        sv = rest.pop(0) if weight_by_specific_var else None
        lead = np.broadcast_shapes(r.shape[:-1], cap.shape[:-1], codes.shape[:-1], x.shape[:-2])
        try:
            res = regress(  # broadcasts the other inputs to the returns' (date, asset) itself
                np.broadcast_to(r, (*lead, r.shape[-1])),
                cap,
                codes,
                x,
                universe,
                sv,
                n_industries=len(inds),
                weights=weights,
                winsorize=winsorize,
                residuals=residuals,
                fill_exposures=fill_exposures,
                std_errors=std_errors,
                min_dof=min_dof,
                max_cond=max_cond,
                threads=threads,
            )
        except InfiniteLoadingsError:  # found in the kernel's pass over the loadings
            raise ValidationError(
                names["loadings"], "has infinite values", "set them to NaN (missing)"
            ) from None
        return tuple(res)

    outs = xr.apply_ufunc(
        _kernel,
        *inputs,
        input_core_dims=core,
        output_core_dims=[list(o[1]) for o in _OUTPUTS],
        dask="parallelized",
        output_dtypes=[o[2] for o in _OUTPUTS],
        dask_gufunc_kwargs={"output_sizes": {"factor": len(factors)}},
        keep_attrs=False,
    )
    # Variables on the returns' own date and asset indexes: nothing to align
    result = {}
    for (name, _, _, attrs), out in zip(_OUTPUTS, outs, strict=True):
        dims = [d for d in ("date", "asset", "factor") if d in out.dims]
        result[name] = out.variable.transpose(*dims)
        result[name].attrs = dict(attrs)
    ref = outs[[o[0] for o in _OUTPUTS].index("specific_returns")]  # (date, asset)
    indexes = ref.drop_vars([c for c in ref.coords if c not in ref.dims]).coords
    result = xr.Dataset(result, coords=indexes).assign_coords(factor=factors)

    status = result["regression_status"]
    if isinstance(status.data, da.Array):
        chunks = status.data.chunks
        warned = status.data.rechunk(-1).map_blocks(_warn_block, dtype=status.dtype)
        result["regression_status"] = status.copy(data=warned.rechunk(chunks))
    else:
        msg = _status_summary(status.values)
        if msg:
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    if not merge:
        return result
    return ds.assign(result.data_vars)
