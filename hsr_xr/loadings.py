"""Descriptors -> standardized style loadings (seed steps 1-2).

Cross-sectional winsorizing and standardizing of every (date, descriptor)
cross-section, aggregation of descriptor z-scores into styles, and the same
standardization of the styles. The work is one NumPy kernel per date block
(:mod:`hsr_xr.kernels.standardize`), wrapped with ``xr.apply_ufunc``: ``asset``
(and ``descriptor``) are core dims, Dask chunks run over ``date``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import ValidationError
from .kernels import standardize as K
from .schema import (
    SEED_STYLES,
    check_aligned,
    check_coords,
    check_core_unchunked,
    check_finite,
    check_flags,
    check_nonempty,
    industry_names,
    is_integer,
    is_number,
    validate,
)

#: Styles matched by exact descriptor name only (no ``<style>_`` prefix rule).
EXACT_STYLES: tuple[str, ...] = ("size", "nonlinear_size")

StylesArg = Sequence[str] | Mapping[str, Sequence[str] | Mapping[str, float]] | None


class ZeroStdWarning(RuntimeWarning):
    """A cross-section had zero std after winsorizing; its z-scores are NaN."""


def _check_params(
    std: str, min_valid: int, lower: float | None, upper: float | None, n_std: float | None
) -> dict[str, Any]:
    if std not in K.STD_KINDS:
        raise ValidationError("std", f"unknown std {std!r}", f"use one of {K.STD_KINDS}")
    if not (is_integer(min_valid) and min_valid >= 1):
        raise ValidationError("min_valid", f"got {min_valid!r}", "pass an integer >= 1")
    for name, q in (("lower", lower), ("upper", upper)):
        if q is not None and not (is_number(q) and 0.0 <= q <= 1.0):
            raise ValidationError(
                name, f"got {q!r}, not a quantile level in [0, 1]", "pass a level, or None"
            )
    if lower is not None and upper is not None and lower > upper:
        raise ValidationError("lower", f"lower={lower} > upper={upper}", "swap them")
    if n_std is not None and not (is_number(n_std) and n_std > 0):
        raise ValidationError("n_std", f"got {n_std!r}", "pass a positive number or None")
    return dict(lower=lower, upper=upper, n_std=n_std, std=std, min_valid=int(min_valid))


def _warn_zero_std(counts: np.ndarray, labels: Sequence[str]) -> None:
    """One :class:`ZeroStdWarning` per label with a non-zero count of cross-sections."""
    for label, count in zip(labels, np.atleast_1d(counts), strict=True):
        if count:
            warnings.warn(
                f"{label}: zero cross-sectional std on {int(count)} date(s) "
                "(counted per Dask block when chunked); its values are NaN there",
                ZeroStdWarning,
                stacklevel=3,
            )


# --------------------------------------------------------------------------------------
# generic standardize


def _standardize_block(
    x: np.ndarray, w: np.ndarray, ids: np.ndarray, *, labels: Sequence[str], params: dict
) -> np.ndarray:
    z, status = K.standardize(x, w, **params)
    zero = status == K.STATUS_ZERO_STD
    if zero.any():
        ids = np.broadcast_to(ids, status.shape)
        _warn_zero_std(np.bincount(ids[zero], minlength=len(labels)), labels)
    return z


def standardize(
    da: xr.DataArray,
    weights: xr.DataArray,
    *,
    dim: str = "asset",
    lower: float | None = 0.001,
    upper: float | None = 0.999,
    n_std: float | None = 3.0,
    std: str = "cap",
    min_valid: int = 25,
) -> xr.DataArray:
    """Winsorize and standardize every cross-section of ``da`` along ``dim``.

    Per cross-section (every combination of the other dims, e.g. one date and
    one descriptor): fewer than ``min_valid`` assets with a value and a valid
    weight -> all NaN; clip to the equal-weighted ``lower``/``upper`` quantiles
    (linear interpolation); clip to the weighted mean +- ``n_std`` stds;
    recompute and return ``(x - mean) / std``. The mean is weighted by
    ``weights`` (NaN, infinite or negative weights excluded); ``std="cap"``
    uses the weighted std (seed), ``std="equal"`` the equal-weighted std of
    the weighted assets (Barra USE4); both are population stds. A zero std
    gives NaN and a :class:`ZeroStdWarning` per series with the number of
    affected cross-sections (per Dask block when the data are chunked).

    Parameters
    ----------
    da : DataArray, dims include ``dim``
        Raw values (any units), NaN = missing; infinite values are refused.
    weights : DataArray, dims a subset of ``da.dims`` including ``dim``
        Market caps (any positive scale), aligned with ``da``.
    dim : str
        Cross-section dim (core dim; must be a single Dask chunk).
    lower, upper : float or None
        Quantile levels of the first clip; ``None`` skips that side.
    n_std : float or None
        Width of the second clip in stds; ``None`` skips it.
    std : {"cap", "equal"}
        Which std scales the z-scores.
    min_valid : int
        Minimum number of assets with a value and a weight per cross-section.

    Returns
    -------
    DataArray, same dims and coords as ``da``
        z-scores (unitless), NaN where undefined.
    """
    params = _check_params(std, min_valid, lower, upper, n_std)
    name = str(da.name) if getattr(da, "name", None) is not None else "da"
    if not isinstance(da, xr.DataArray):
        raise ValidationError(name, f"expected a DataArray, got {type(da).__name__}", "pass one")
    if not isinstance(weights, xr.DataArray):
        raise ValidationError(
            "weights", f"expected a DataArray, got {type(weights).__name__}", "pass one"
        )
    if dim not in da.dims:
        raise ValidationError(name, f"has dims {da.dims}, no {dim!r}", "pass dim= or rename")
    if dim not in weights.dims or not set(weights.dims) <= set(da.dims):
        raise ValidationError(
            "weights",
            f"has dims {weights.dims}; expected {dim!r} and a subset of {da.dims}",
            "pass weights over the cross-section dim (and optionally the date dim)",
        )
    for obj, label in ((da, name), (weights, "weights")):
        if obj.dtype.kind not in "fiu":
            raise ValidationError(label, f"has dtype {obj.dtype}", "cast to float")
        check_coords(obj, label)
        check_core_unchunked(obj, dim, label)
    check_nonempty(da, (dim,), name)
    check_aligned({name: da, "weights": weights}, weights.dims)
    # one +-inf would blank its whole cross-section through the quantile clip
    da = check_finite(da, name)

    series_dims = [d for d in da.dims if d not in (dim, "date")]
    sizes = [da.sizes[d] for d in series_dims]
    ids = xr.DataArray(
        np.arange(int(np.prod(sizes, dtype=np.int64))).reshape(sizes), dims=series_dims
    )
    labels = []
    for flat in range(ids.size):
        pos = np.unravel_index(flat, sizes) if sizes else ()
        parts = [
            f"{d}={(da[d].values[i] if d in da.coords else i)!s}"
            for d, i in zip(series_dims, pos, strict=True)
        ]
        labels.append(f"{name}[{', '.join(parts)}]" if parts else repr(name))

    out = xr.apply_ufunc(
        _standardize_block,
        da.astype(float),
        weights.astype(float),
        ids,
        input_core_dims=[[dim], [dim], []],
        output_core_dims=[[dim]],
        dask="parallelized",
        output_dtypes=[float],
        kwargs=dict(labels=labels, params=params),
        keep_attrs=False,
    )
    out = out.transpose(*da.dims)
    out.attrs = {"units": "z", "standardize_std": std}
    return out.rename(da.name)


# --------------------------------------------------------------------------------------
# styles


def _matches(style: str, descriptor: str) -> bool:
    if style in EXACT_STYLES:
        return descriptor == style
    return descriptor == style or descriptor.startswith(style + "_")


def style_mapping(
    descriptor_names: Sequence[str], styles: StylesArg = None
) -> dict[str, dict[str, float]]:
    """Resolve which descriptors (with which weights) make up each style.

    Parameters
    ----------
    descriptor_names : sequence of str
        The available descriptors.
    styles : None, sequence of str, or mapping
        ``None``: the seed's styles (:data:`SEED_STYLES`) that match at least one
        descriptor. A sequence of style names: each matched by the seed rule.
        A mapping ``style -> [descriptors]`` (equal weights) or
        ``style -> {descriptor: weight}``: used as given. The seed rule: a
        descriptor belongs to style ``s`` when its name is ``s`` or starts with
        ``s + "_"``; ``size`` and ``nonlinear_size`` match exact names only.

    Returns
    -------
    dict style -> {descriptor: weight}
        In style order.

    Raises
    ------
    ValidationError
        If a requested style matches no descriptor, a mapping names an unknown
        descriptor, or a weight is negative or all weights of a style are 0.
    """
    names = [str(d) for d in descriptor_names]
    out: dict[str, dict[str, float]] = {}
    if isinstance(styles, str) or not (styles is None or isinstance(styles, Mapping | Iterable)):
        raise ValidationError(
            "styles", f"got {styles!r}", "pass a list of style names or {style: descriptors}"
        )
    if styles is None or not isinstance(styles, Mapping):
        requested = SEED_STYLES if styles is None else [str(s) for s in styles]
        for style in requested:
            members = {d: 1.0 for d in names if _matches(style, d)}
            if members:
                out[style] = members
            elif styles is not None:
                raise ValidationError(
                    "styles",
                    f"style {style!r} matches no descriptor (have {names})",
                    "name descriptors '<style>_...', or pass styles={style: [descriptors]}",
                )
        if not out:
            raise ValidationError(
                "styles",
                f"no descriptor matches the seed styles {list(SEED_STYLES)} (have {names})",
                "pass styles={style: [descriptors]}",
            )
        return out
    for style, members in styles.items():
        ok_members = isinstance(members, str | Iterable)
        if isinstance(members, Mapping):
            ok_members = all(is_number(v) for v in members.values())
        if not ok_members:
            raise ValidationError(
                "styles",
                f"style {style!r} has members {members!r}",
                "map each style to a descriptor name, a list of names, or {name: weight}",
            )
        weights = (
            {str(d): float(v) for d, v in members.items()}
            if isinstance(members, Mapping)
            else {str(d): 1.0 for d in ([members] if isinstance(members, str) else members)}
        )
        unknown = [d for d in weights if d not in names]
        if unknown:
            raise ValidationError(
                "styles", f"style {style!r} names unknown descriptors {unknown}", f"use {names}"
            )
        if any(v < 0 or not np.isfinite(v) for v in weights.values()) or not any(
            v > 0 for v in weights.values()
        ):
            raise ValidationError(
                "styles",
                f"style {style!r} has weights {weights}",
                "use finite non-negative weights, at least one positive",
            )
        out[str(style)] = weights
    if not out:
        raise ValidationError("styles", "empty mapping", "map at least one style")
    return out


def _loadings_block(
    desc: np.ndarray,
    caps: np.ndarray,
    *codes: np.ndarray,
    mapping: np.ndarray,
    params: dict,
    ortho: tuple[int, int] | None,
    n_industries: int,
    descriptor_labels: Sequence[str],
    style_labels: Sequence[str],
    want_coverage: bool,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Fused kernel on a date block: desc (B..., D, N), caps (B..., N) -> (B..., N, S)."""
    caps = np.asarray(caps, dtype=float)
    w = caps[..., None, :]
    z, st_d = K.standardize(desc, w, **params)
    loadings, st_s = K.standardize(K.combine(z, mapping), w, **params)
    if ortho is not None:
        i_size, i_nl = ortho
        resid = K.orthogonalize(loadings[..., i_nl, :], loadings[..., i_size, :], caps)
        loadings[..., i_nl, :], st_s[..., i_nl] = K.standardize(resid, caps, **params)
    lead = tuple(range(st_d.ndim - 1))
    _warn_zero_std(np.sum(st_d == K.STATUS_ZERO_STD, axis=lead), descriptor_labels)
    _warn_zero_std(np.sum(st_s == K.STATUS_ZERO_STD, axis=lead), style_labels)
    outs: list[np.ndarray] = []
    if want_coverage:
        outs.extend(K.coverage(loadings, w))
    if codes:
        listed = np.isfinite(caps) & (caps > 0)
        eligible = (st_s == K.STATUS_OK)[..., None] & listed[..., None, :]
        loadings = K.industry_fill(
            loadings, w, codes[0][..., None, :], n_industries, eligible=eligible
        )
    # (B..., N, S): the labelled layout (date, asset, style), so that Dask only
    # concatenates contiguous blocks
    loadings = np.ascontiguousarray(np.swapaxes(loadings, -1, -2))
    return (loadings, *outs) if outs else loadings


def compute_loadings(
    ds: xr.Dataset,
    *,
    styles: StylesArg = None,
    std: str = "cap",
    min_valid: int = 25,
    lower: float | None = 0.001,
    upper: float | None = 0.999,
    n_std: float | None = 3.0,
    orthogonalize: bool = False,
    fill_missing: bool = False,
    coverage: bool = False,
    descriptors: str = "descriptors",
    market_cap: str = "market_cap",
    industry: str = "industry",
    merge: bool = True,
) -> xr.Dataset:
    """Raw descriptors -> standardized style loadings (seed steps 1-2).

    1. Every (date, descriptor) cross-section is winsorized and standardized
       (see :func:`standardize`: ``min_valid`` assets with a value and a cap,
       clip to the equal-weighted ``lower``/``upper`` quantiles, clip to the
       cap-weighted mean +- ``n_std`` stds, z-score with the cap-weighted mean
       and the ``std`` std).
    2. Each style is the NaN-skipping (weighted) mean of its descriptors'
       z-scores (:func:`style_mapping`), standardized again the same way.
    3. Options (off by default, the seed does not do them):
       ``orthogonalize`` replaces ``nonlinear_size`` by its cap-weighted
       regression residual on ``size`` (with intercept), re-standardized;
       ``coverage`` adds ``loadings_coverage_cap`` and
       ``loadings_coverage_assets`` (date, style): the share of the listed
       cap and of the listed assets (those with a cap) that have a loading;
       ``fill_missing`` fills a listed asset's missing loading with the
       cap-weighted mean loading of its industry on that date (0 when the
       industry is unknown or empty); coverage is measured before filling,
       and dates where a style is undefined stay NaN.

    Zero-std cross-sections give NaN and one :class:`ZeroStdWarning` per
    descriptor or style with the number of dates (per Dask block when chunked).

    Parameters
    ----------
    ds : Dataset
        With ``descriptors`` (date, asset, descriptor), ``market_cap``
        (date, asset), and ``industry`` (asset or date, asset) for
        ``fill_missing``. Dask data must keep ``asset`` and ``descriptor``
        in one chunk; chunk over ``date`` (a few dates per chunk, e.g. 4-16,
        keeps each block's working set in cache; memory per block is about
        10 x dates x descriptors x assets x 8 bytes).
    styles : None, sequence of str or mapping
        Style -> descriptor mapping, see :func:`style_mapping`. ``None`` uses
        the ``style`` coordinate of ``ds`` if present, else the seed's styles.
    std : {"cap", "equal"}
        Cap-weighted std (seed) or equal-weighted std (Barra USE4).
    min_valid, lower, upper, n_std
        See :func:`standardize`.
    orthogonalize, fill_missing, coverage : bool
        Options described above.
    descriptors, market_cap, industry : str
        Names of the input variables.
    merge : bool
        Return ``ds`` with the new variables added (True) or only the new ones.

    Returns
    -------
    Dataset
        ``loadings`` (date, asset, style), z-scores; with ``coverage=True``
        also ``loadings_coverage_cap`` and ``loadings_coverage_assets``
        (date, style), fractions in [0, 1].
    """
    params = _check_params(std, min_valid, lower, upper, n_std)
    check_flags(
        orthogonalize=orthogonalize, fill_missing=fill_missing, coverage=coverage, merge=merge
    )
    required = ["descriptors", "market_cap"] + (["industry"] if fill_missing else [])
    names = {"descriptors": descriptors, "market_cap": market_cap, "industry": industry}
    ds = validate(ds, required, names=names)
    desc = ds[descriptors]
    caps = ds[market_cap]
    if "descriptor" not in desc.coords:
        raise ValidationError(descriptors, "has no 'descriptor' coordinate", "assign names")
    for var, name, dims in (
        (desc, descriptors, ("asset", "descriptor")),
        (caps, market_cap, ("asset",)),
    ):
        for d in dims:
            check_core_unchunked(var, d, name)
        check_nonempty(var, dims, name)

    descriptor_labels = [str(d) for d in desc.indexes["descriptor"]]
    if styles is None and "style" in ds.coords:
        styles = [str(s) for s in ds.indexes["style"]]
    resolved = style_mapping(descriptor_labels, styles)
    style_labels = list(resolved)
    mapping = np.zeros((len(descriptor_labels), len(style_labels)))
    for j, members in enumerate(resolved.values()):
        for d, v in members.items():
            mapping[descriptor_labels.index(d), j] = v
    if (
        merge
        and "style" in ds.dims
        and ("style" not in ds.indexes or set(map(str, ds.indexes["style"])) != set(style_labels))
    ):
        raise ValidationError(
            "style",
            f"the Dataset's style coordinate differs from the styles computed {style_labels}",
            "pass merge=False, or drop the variables along 'style' first (ds.drop_dims('style'))",
        )
    ortho = None
    if orthogonalize:
        if not {"size", "nonlinear_size"} <= set(style_labels):
            raise ValidationError(
                "styles",
                "orthogonalize=True needs the styles 'size' and 'nonlinear_size'",
                "include both styles, or pass orthogonalize=False",
            )
        ortho = (style_labels.index("size"), style_labels.index("nonlinear_size"))

    args = [desc, caps]  # the kernel casts to float64 per block
    core = [["descriptor", "asset"], ["asset"]]
    n_industries = 0
    if fill_missing:
        codes = ds[industry]
        check_core_unchunked(codes, "asset", industry)
        n_industries = len(industry_names(ds, industry))
        args.append(codes.astype(np.int64))
        core.append(["asset"])
    out_core = [["asset", "style"]] + ([["style"], ["style"]] if coverage else [])
    result = xr.apply_ufunc(
        _loadings_block,
        *args,
        input_core_dims=core,
        output_core_dims=out_core,
        dask="parallelized",
        output_dtypes=[float] * len(out_core),
        dask_gufunc_kwargs={"output_sizes": {"style": len(style_labels)}},
        kwargs=dict(
            mapping=mapping,
            params=params,
            ortho=ortho,
            n_industries=n_industries,
            descriptor_labels=[f"descriptor {d!r}" for d in descriptor_labels],
            style_labels=[f"style {s!r}" for s in style_labels],
            want_coverage=coverage,
        ),
        keep_attrs=False,
    )
    result = result if isinstance(result, tuple) else (result,)
    loadings = result[0].transpose("date", "asset", "style", ...).assign_coords(style=style_labels)
    loadings.attrs = {
        "long_name": "standardized style exposures",
        "units": "z",
        "std": std,
        "min_valid": int(min_valid),
        "quantile_clip": f"{lower}/{upper}",
        "n_std": "none" if n_std is None else float(n_std),
        "orthogonalize": int(bool(orthogonalize)),
        "fill_missing": int(bool(fill_missing)),
    }
    new = {"loadings": loadings}
    if coverage:
        for key, arr, meaning in (
            ("loadings_coverage_cap", result[1], "share of listed cap with a loading"),
            ("loadings_coverage_assets", result[2], "share of listed assets with a loading"),
        ):
            new[key] = arr.transpose("date", "style").assign_coords(style=style_labels)
            new[key].attrs = {"long_name": meaning, "units": "fraction"}
    if merge:
        return ds.assign(new)
    return xr.Dataset(new)
