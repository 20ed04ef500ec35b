"""Risk model: factor covariance and specific variance forecasts (seed, USE4S, USE4L presets).

:func:`risk_model` turns ``factor_returns(date, factor)`` and
``specific_returns(date, asset)`` into ``factor_cov(date, factor, factor2)``,
``specific_var(date, asset)`` and per-date multipliers. The kernels are in
:mod:`hsr_xr.kernels.covariance` (factor side) and :mod:`hsr_xr.kernels.specific`.

**As-of rule.** The forecast stamped at date *t* uses information up to and
including *t* (returns of *t*, loadings and caps stamped at *t*) and applies to
the return of date *t + 1*.

=====================  ===========  ===========  ===========
option                 seed         use4s        use4l
=====================  ===========  ===========  ===========
vol / corr half-life   42 / 200     84 / 504     252 / 504
Newey–West lags        0 / 0        5 / 2        5 / 2
min_periods            21           63           63
eigen adjustment       no           a=1.2        a=1.2
factor VRA half-life   --           42           168
regime multiplier      21/42        --           --
specific half-life     42           84           252
specific NW lags       0            5            5
specific extras        q99.5 clip,  structural,  structural,
                       median fill, Bayes q=0.1, Bayes q=0.1,
                       5% shrink    VRA hl 42    VRA hl 168
=====================  ===========  ===========  ===========

EWMAs are weight-normalized from the first observation (never started at zero),
with NaN before ``min_periods`` observations. Every ``factor_cov`` is symmetric
PSD: without the eigen adjustment, dates that fail a Cholesky test have their
negative eigenvalues clipped at 0 (pairwise-missing factors or Newey–West terms
can make the raw matrix slightly indefinite; without correlation lags, dates
where every valid factor has the same observation history are a weighted Gram
matrix, PSD up to rounding, and are not tested); the eigen adjustment is PSD by
construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from .errors import ValidationError
from .kernels import covariance as kcov
from .kernels import specific as kspec
from .schema import (
    check_aligned,
    check_coords,
    check_core_unchunked,
    check_flags,
    check_nonempty,
    industry_names,
    is_dask,
    is_flag,
    is_integer,
    is_number,
    validate,
)

#: Options with their neutral values (``preset=None``): plain EWMA, no adjustments.
DEFAULTS: dict[str, Any] = {
    "vol_halflife": 42.0,
    "corr_halflife": 200.0,
    "vol_lags": 0,
    "corr_lags": 0,
    "min_periods": 21,
    "eigen": False,
    "eigen_sims": 100,
    "eigen_window": 252,
    "eigen_scale": 1.2,
    "eigen_stride": 21,
    "eigen_seed": 0,
    "vra_halflife": None,
    "regime": False,
    "regime_halflives": (21.0, 42.0),
    "regime_proxy": None,
    "specific_halflife": 42.0,
    "specific_lags": 0,
    "specific_min_periods": 21,
    "specific_clip": None,
    "specific_fill": False,
    "specific_shrink": 0.0,
    "structural": False,
    "structural_window": 252,
    "bayesian_q": None,
    "specific_vra_halflife": None,
    "specific_floor": 1e-10,
    "horizon": 1,
}

#: Presets: the seed notebook's model and Barra USE4 short / long horizon.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "vol_halflife": 42.0,
        "corr_halflife": 200.0,
        "regime": True,
        "regime_halflives": (21.0, 42.0),
        "specific_halflife": 42.0,
        "specific_clip": 0.995,
        "specific_fill": True,
        "specific_shrink": 0.05,
    },
    "use4s": {
        "vol_halflife": 84.0,
        "corr_halflife": 504.0,
        "vol_lags": 5,
        "corr_lags": 2,
        "min_periods": 63,
        "eigen": True,
        "vra_halflife": 42.0,
        "specific_halflife": 84.0,
        "specific_lags": 5,
        "specific_min_periods": 63,
        "structural": True,
        "bayesian_q": 0.1,
        "specific_vra_halflife": 42.0,
    },
    "use4l": {
        "vol_halflife": 252.0,
        "corr_halflife": 504.0,
        "vol_lags": 5,
        "corr_lags": 2,
        "min_periods": 63,
        "eigen": True,
        "vra_halflife": 168.0,
        "specific_halflife": 252.0,
        "specific_lags": 5,
        "specific_min_periods": 63,
        "structural": True,
        "bayesian_q": 0.1,
        "specific_vra_halflife": 168.0,
    },
}

_HALFLIVES = ("vol_halflife", "corr_halflife", "specific_halflife")
_OPTIONAL_HALFLIVES = ("vra_halflife", "specific_vra_halflife")
_COUNTS = ("vol_lags", "corr_lags", "specific_lags")
_POSITIVE_INTS = ("min_periods", "specific_min_periods", "eigen_sims", "eigen_window")
_POSITIVE_INTS += ("eigen_stride", "structural_window")
_FLAGS = ("eigen", "regime", "specific_fill", "structural")


def _halflife(v: Any) -> bool:
    """A positive half-life in dates; ``inf`` means equal weights."""
    return is_number(v) and v > 0


#: (options, test, what a valid value is)
_RULES: list[tuple[tuple[str, ...], Any, str]] = [
    (_HALFLIVES, _halflife, "a positive number of dates (inf: equal weights)"),
    (
        _OPTIONAL_HALFLIVES,
        lambda v: v is None or _halflife(v),
        "None or a positive number of dates",
    ),
    (_COUNTS, lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    (_POSITIVE_INTS, lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    (_FLAGS, is_flag, "True or False"),
    (
        ("horizon",),
        lambda v: is_number(v, finite=True) and v > 0,
        "a positive finite number of dates",
    ),
    (("eigen_scale",), lambda v: is_number(v, finite=True) and v >= 0, "a finite number >= 0"),
    (("eigen_seed",), lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    (("specific_floor",), lambda v: is_number(v, finite=True) and v >= 0, "a finite variance >= 0"),
    (("specific_clip",), lambda v: v is None or (is_number(v) and 0 < v <= 1), "None or in (0, 1]"),
    (("specific_shrink",), lambda v: is_number(v) and 0 <= v <= 1, "in [0, 1]"),
    (
        ("bayesian_q",),
        lambda v: v is None or (is_number(v, finite=True) and v >= 0),
        "None or finite >= 0",
    ),
    (
        ("regime_halflives",),
        lambda v: (
            not isinstance(v, str)
            and isinstance(v, Iterable)
            and len(pair := list(v)) == 2
            and all(_halflife(h) for h in pair)
        ),
        "a pair (short, long) of positive half-lives",
    ),
]


def resolve_options(preset: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The full option set of ``preset`` with ``overrides`` applied, validated.

    Numbers must be real (bools are refused), counts integers and switches
    bools, so that a typo such as ``eigen="no"`` is an error, not a truthy switch.
    """
    if preset is not None and preset not in PRESETS:
        raise ValidationError(
            "preset", f"unknown preset {preset!r}", f"use one of {sorted(PRESETS)} or None"
        )
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValidationError(
            unknown[0], "is not a risk_model option", f"use one of {sorted(DEFAULTS)}"
        )
    opts = {**DEFAULTS, **(PRESETS[preset] if preset else {}), **overrides}
    for names, test, what in _RULES:
        for name in names:
            if not test(opts[name]):
                raise ValidationError(
                    name, f"must be {what}, got {opts[name]!r}", f"pass {name} as {what}"
                )
    return opts


def _proxy(ds: xr.Dataset, f: xr.DataArray, proxy: Any) -> xr.DataArray:
    """The regime proxy series over ``date``: user series / variable, else the country factor."""
    if proxy is None:
        label = "country" if "country" in f.indexes["factor"] else f.indexes["factor"][0]
        return f.sel(factor=label, drop=True)
    if isinstance(proxy, str):
        if proxy not in ds:
            raise ValidationError(
                proxy, "regime_proxy variable is missing", "add it or pass a DataArray"
            )
        proxy = ds[proxy]
    if not isinstance(proxy, xr.DataArray) or proxy.dims != ("date",):
        raise ValidationError(
            "regime_proxy",
            "must be a DataArray with the single dim 'date' (or a variable name)",
            "pass e.g. ds.my_index_returns",
        )
    check_coords(proxy, "regime_proxy")
    check_aligned({"factor_returns": f, "regime_proxy": proxy}, ["date"])
    if proxy.dtype.kind not in "fiu":
        raise ValidationError("regime_proxy", f"has dtype {proxy.dtype}", "pass numeric returns")
    return proxy.astype(float, copy=False)


def _factor_side(f: xr.DataArray, proxy: xr.DataArray, opts: dict[str, Any]) -> xr.Dataset:
    K = f.sizes["factor"]
    if is_dask(f):
        f = f.chunk({"date": -1, "factor": -1})
    if is_dask(proxy) or is_dask(f):
        proxy = proxy.chunk({"date": -1})
    kwargs = {
        k: opts[k]
        for k in (
            "vol_halflife",
            "corr_halflife",
            "vol_lags",
            "corr_lags",
            "min_periods",
            "eigen",
            "eigen_sims",
            "eigen_window",
            "eigen_scale",
            "eigen_stride",
            "eigen_seed",
            "vra_halflife",
        )
    }
    kwargs["regime_halflives"] = tuple(opts["regime_halflives"]) if opts["regime"] else None
    kwargs["horizon"] = float(opts["horizon"])
    F, regime, vra = xr.apply_ufunc(
        kcov.factor_risk,
        f,
        proxy,
        input_core_dims=[["date", "factor"], ["date"]],
        output_core_dims=[["date", "factor", "factor2"], ["date"], ["date"]],
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[float, float, float],
        dask_gufunc_kwargs={"output_sizes": {"factor2": K}},
    )
    F = F.assign_coords(factor2=f.indexes["factor"].values)
    return xr.Dataset({"factor_cov": F, "regime_multiplier": regime, "vra_lambda": vra})


#: Bytes per Dask chunk of the widest input of the specific side's steps, in both
#: layouts (the cross-sectional one over dates here, the time-series one over assets in
#: :func:`hsr_xr.pipeline.time_series_chunks`): memory stays bounded whatever the history.
CHUNK_BYTES = 16 * 2**20


def chunk_length(bytes_per_step: int) -> int:
    """Steps (dates or assets) per Dask chunk: about ``CHUNK_BYTES``, at least 1."""
    return max(1, CHUNK_BYTES // max(int(bytes_per_step), 1))


def _date_chunk(n_assets: int, per_asset: int = 1) -> int:
    """Dates per chunk for the cross-sectional layout, for an input with ``per_asset``
    float64 values per (date, asset)."""
    return chunk_length(8 * n_assets * per_asset)


def _cross(var: xr.DataArray, date_chunk: int | None) -> xr.DataArray:
    """Rechunk to the cross-sectional layout (whole asset axis) under Dask."""
    if date_chunk is None or not is_dask(var):
        return var
    return var.chunk({"date": date_chunk, "asset": -1})


def _xs(func, *args: xr.DataArray, out_dims=(), n_out=1, kwargs=None):
    """apply_ufunc of a cross-sectional kernel (asset core dim; extra core dims per input)."""
    core = [["asset", *[d for d in a.dims if d not in ("date", "asset")]] for a in args]
    args = [a.transpose("date", *c) for a, c in zip(args, core, strict=True)]
    out_core = [list(out_dims)] * n_out
    return xr.apply_ufunc(
        func,
        *args,
        input_core_dims=core,
        output_core_dims=out_core,
        kwargs=kwargs or {},
        dask="parallelized",
        output_dtypes=[float] * n_out if n_out > 1 else [float],
    )


def _scale_floor(
    var: np.ndarray, scale: np.ndarray, *, floor: float, overwrite: bool = False
) -> np.ndarray:
    """``max(var * scale, floor)`` with NaN kept; into ``var`` itself with ``overwrite``."""
    inplace = overwrite and var.dtype == float and var.flags.writeable
    out = np.multiply(var, scale, out=var if inplace else None)
    return np.maximum(out, floor, out=out)


def _specific_side(
    ds: xr.Dataset,
    opts: dict[str, Any],
    regime: xr.DataArray,
    names: dict[str, str],
) -> xr.Dataset:
    e = ds[names["specific_returns"]].astype(float, copy=False)
    check_core_unchunked(e, "date", names["specific_returns"])
    dask_in = is_dask(e)
    # the widest cross-sectional input: loadings (styles per asset) in the structural model
    width = ds[names["loadings"]].sizes.get("style", 1) if opts["structural"] else 1
    dc = _date_chunk(e.sizes["asset"], width) if dask_in else None

    ts_kwargs = {
        "halflife": float(opts["specific_halflife"]),
        "lags": int(opts["specific_lags"]),
        "min_periods": int(opts["specific_min_periods"]),
    }
    clip = None
    if opts["specific_clip"] is not None:
        q = float(opts["specific_clip"])
        if dask_in:  # cross-sectional quantiles on date chunks, then the asset-chunked EWMA
            clip = _xs(kspec.squared_quantile, _cross(e, dc), kwargs={"q": q})
            clip = clip.chunk({"date": -1})
        else:  # one call holds every asset: the EWMA's squares give the quantiles too
            ts_kwargs["clip_q"] = q
    n_ts = 1
    if opts["structural"]:
        ts_kwargs["history_window"] = int(opts["structural_window"])
        n_ts = 2
    inputs = [e] if clip is None else [e, clip]
    res = xr.apply_ufunc(
        kspec.specific_ewma,
        *inputs,
        input_core_dims=[["date"]] * len(inputs),
        output_core_dims=[["date"]] * n_ts,
        kwargs=ts_kwargs,
        dask="parallelized",
        output_dtypes=[float] * n_ts,
    )
    var, hist = res if n_ts == 2 else (res, None)
    var = _cross(var.transpose("date", "asset"), dc)
    out = {}

    present = _cross(e.notnull(), dc)
    if opts["specific_fill"] or opts["specific_shrink"]:
        fill = present if opts["specific_fill"] else xr.zeros_like(present)
        var = _xs(
            kspec.seed_fill_shrink,
            var,
            fill,
            out_dims=("asset",),
            # NumPy: var is the EWMA's own output, finished in place (not inside a graph)
            kwargs={
                "shrink": float(opts["specific_shrink"]),
                "overwrite": not (is_dask(var) or is_dask(fill)),
            },
        )

    cap = None
    if names["market_cap"] in ds:
        cap = _cross(ds[names["market_cap"]].astype(float, copy=False), dc)

    if opts["structural"]:
        load = ds[names["loadings"]].astype(float, copy=False)
        ind = ds[names["industry"]]
        n_ind = len(industry_names(ds, names["industry"]))
        ind = ind.broadcast_like(e).transpose("date", "asset")
        if dask_in:
            load = load.chunk({"date": dc, "asset": -1, "style": -1})
            ind = ind.chunk({"date": dc, "asset": -1})
        w = np.sqrt(cap) if cap is not None else xr.ones_like(var)
        var = _xs(
            kspec.structural_blend,
            var,
            _cross(hist.transpose("date", "asset"), dc),
            load,
            ind,
            w,
            present,
            out_dims=("asset",),
            kwargs={"n_industries": n_ind},
        )

    if opts["bayesian_q"] is not None:
        var = _xs(
            kspec.bayesian_shrink, var, cap, out_dims=("asset",), kwargs={"q": opts["bayesian_q"]}
        )

    lam = xr.ones_like(regime)
    if opts["specific_vra_halflife"] is not None:
        # (Dask cannot shift a one-date array)
        prev = var.shift(date=1) if var.sizes["date"] > 1 else xr.full_like(var, np.nan)
        w = cap if cap is not None else xr.ones_like(var)
        b2 = _xs(kcov.bias_squared, _cross(e, dc), prev, w)
        if is_dask(b2):  # also when only the caps or loadings are Dask-backed
            b2 = b2.chunk({"date": -1})
        lam = xr.apply_ufunc(
            kcov.lambda_from_bias,
            b2,
            input_core_dims=[["date"]],
            output_core_dims=[["date"]],
            kwargs={"halflife": float(opts["specific_vra_halflife"])},
            dask="parallelized",
            output_dtypes=[float],
        )
        var = var * lam**2
    out["specific_vra_lambda"] = lam

    scale = regime**2 * float(opts["horizon"])
    var = xr.apply_ufunc(
        _scale_floor,
        var,
        scale,
        # NumPy: var is this function's own intermediate, so it is scaled in place
        # (never inside a Dask graph: a recompute would scale the same buffer again)
        kwargs={
            "floor": float(opts["specific_floor"]),
            "overwrite": not (is_dask(var) or is_dask(scale)),
        },
        dask="parallelized",
        output_dtypes=[float],
    )
    out["specific_var"] = var.transpose("date", "asset")
    return xr.Dataset(out)


def risk_model(
    ds: xr.Dataset,
    preset: str | None = "seed",
    *,
    factor_returns: str = "factor_returns",
    specific_returns: str = "specific_returns",
    loadings: str = "loadings",
    industry: str = "industry",
    market_cap: str = "market_cap",
    merge: bool = True,
    **overrides: Any,
) -> xr.Dataset:
    """Factor covariance and specific variance forecasts.

    The forecast stamped at date *t* uses information up to and including *t* and
    applies to the return of *t + 1* (so ``factor_cov[t]`` is compared with
    ``factor_returns[t + 1]``).

    Parameters
    ----------
    ds : Dataset
        Holds ``factor_returns(date, factor)`` and ``specific_returns(date, asset)``
        (fractions); for the structural model also ``loadings(date, asset, style)`` and
        ``industry(asset)`` or ``(date, asset)``; for Bayesian shrinkage
        ``market_cap(date, asset)`` (also used to cap-weight the specific VRA and, as
        sqrt cap, the structural regression).
    preset : {"seed", "use4s", "use4l"} or None
        Option set (see :data:`PRESETS`); ``None`` = plain EWMA (:data:`DEFAULTS`).
    factor_returns, specific_returns, loadings, industry, market_cap : str
        Variable names in ``ds``.
    merge : bool
        Return ``ds`` with the outputs added (default) or only the outputs.
    **overrides
        Any option of :data:`DEFAULTS`, overriding the preset:

        - ``vol_halflife``, ``corr_halflife`` (dates), ``vol_lags``, ``corr_lags``
          (Newey–West lags, Bartlett weights), ``min_periods`` (NaN before);
        - ``eigen`` with ``eigen_sims`` (M), ``eigen_window`` (simulated history length),
          ``eigen_scale`` (a), ``eigen_stride`` (simulate every n-th date, hold between),
          ``eigen_seed``; cost ~70 ms per simulation date at K=73 with M=100 (see
          :func:`hsr_xr.kernels.covariance.eigen_adjust`);
        - ``vra_halflife`` (USE4 factor VRA; None = off);
        - ``regime`` (seed regime multiplier), ``regime_halflives`` (short, long),
          ``regime_proxy`` (a ``DataArray(date)`` or variable name; default: the
          ``country`` factor return);
        - ``specific_halflife``, ``specific_lags``, ``specific_min_periods``,
          ``specific_clip`` (per-date quantile of squared residuals, e.g. 0.995),
          ``specific_fill`` (median fill of present assets without a forecast),
          ``specific_shrink`` (weight toward the cross-sectional median);
        - ``structural`` (USE4 structural model blended by history length over
          ``structural_window`` dates), ``bayesian_q`` (size-decile shrinkage, None =
          off), ``specific_vra_halflife`` (None = off), ``specific_floor``;
        - ``horizon`` (dates; variances scale linearly, e.g. 21 for monthly).

    Returns
    -------
    Dataset
        ``factor_cov(date, factor, factor2)``: symmetric PSD (negative eigenvalues
        clipped at 0), ``horizon`` × daily squared return; NaN rows/columns for factors
        with fewer than ``min_periods`` observations. ``specific_var(date, asset)``:
        > 0 where defined. ``regime_multiplier(date)``, ``vra_lambda(date)`` (factor
        VRA lambda, F scaled by lambda**2) and ``specific_vra_lambda(date)``; each 1
        when off. Lazy when the inputs are Dask-backed (``specific_returns`` must have
        ``date`` in one chunk).

    Raises
    ------
    ValidationError
        Unknown preset or option, bad option values, missing or malformed variables.
    """
    check_flags(merge=merge)
    opts = resolve_options(preset, overrides)
    names = {
        "factor_returns": factor_returns,
        "specific_returns": specific_returns,
        "loadings": loadings,
        "industry": industry,
        "market_cap": market_cap,
    }
    required = ["factor_returns", "specific_returns"]
    if opts["structural"]:
        required += ["loadings", "industry"]
    if opts["bayesian_q"] is not None:
        required += ["market_cap"]
    optional = [k for k in ("market_cap",) if k not in required]
    for key in required:
        if names[key] not in ds:
            option = "structural=False" if key in ("loadings", "industry") else "bayesian_q=None"
            extra = f" (or pass {option})" if key not in required[:2] else ""
            raise ValidationError(
                names[key],
                f"variable is missing (have: {sorted(map(str, ds.data_vars))})",
                f"add it, or pass {key}=<name> to use another variable{extra}",
            )
    ds = validate(ds, required, optional=optional, names=names)
    check_nonempty(ds[factor_returns], ("date", "factor"), factor_returns)
    check_nonempty(ds[specific_returns], ("asset",), specific_returns)
    f = ds[factor_returns].transpose("date", "factor").astype(float, copy=False)
    proxy = _proxy(ds, f, opts["regime_proxy"])
    fac = _factor_side(f, proxy, opts)
    spec = _specific_side(ds, opts, fac["regime_multiplier"], names)
    out = xr.merge([fac, spec], join="exact")
    out["factor_cov"].attrs.update(
        units=f"fraction^2 per {opts['horizon']} date(s)",
        long_name="factor covariance forecast for the next date",
        as_of="stamped at t: uses data up to and including t, forecasts the return of t+1",
        preset=str(preset),
    )
    out["specific_var"].attrs.update(
        units=f"fraction^2 per {opts['horizon']} date(s)",
        long_name="specific variance forecast for the next date",
        as_of="stamped at t: uses data up to and including t, forecasts the return of t+1",
        preset=str(preset),
    )
    out["regime_multiplier"].attrs["long_name"] = (
        "seed regime multiplier (F, specific x its square)"
    )
    out["vra_lambda"].attrs["long_name"] = "factor volatility regime adjustment (F x lambda^2)"
    out["specific_vra_lambda"].attrs["long_name"] = "specific VRA (specific_var x lambda^2)"
    if merge:
        return ds.assign(out.data_vars)
    return out
