"""Dense exposure matrices for analytics.

The regression never materializes industry dummies; analyses that need the
full exposure matrix X (asset × factor) build it here, in the canonical factor
order: ``country``, then the styles, then the industries.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .schema import industry_names, select_dates, validate


def factor_names(styles: list[str], industries: list[str]) -> list[str]:
    """Canonical factor order: ``["country", *styles, *industries]``."""
    return ["country", *styles, *industries]


def exposures(
    ds: xr.Dataset,
    date=None,
    *,
    loadings: str = "loadings",
    industry: str = "industry",
    fill_exposures: float | None = None,
) -> xr.DataArray:
    """Full exposure matrix ``X(date, asset, factor)``, or ``X(asset, factor)`` for one date.

    Country exposure is 1, style exposures are the loadings, industry
    exposures are 0/1 dummies from the integer codes (code -1 → all zeros).
    Missing style loadings stay NaN unless ``fill_exposures`` gives a value.
    Lazy if the inputs are Dask-backed.
    """
    ds = validate(ds, [loadings, industry])
    ds = select_dates(ds, date)
    X_s = ds[loadings]
    if fill_exposures is not None:
        X_s = X_s.fillna(fill_exposures)
    names = industry_names(ds, industry)
    ind = ds[industry]
    codes = xr.DataArray(np.arange(len(names)), dims="factor", coords={"factor": names})
    dummies = (ind == codes).astype(X_s.dtype)
    country = xr.ones_like(X_s.isel(style=0, drop=True)).expand_dims(factor=["country"])
    X = xr.concat(
        [country, X_s.rename(style="factor"), dummies.broadcast_like(X_s.isel(style=0, drop=True))],
        dim="factor",
    )
    lead = [d for d in ("date", "asset") if d in X.dims]
    return X.transpose(*lead, "factor").rename("exposures")
