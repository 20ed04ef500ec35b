"""hsr_xr: equity factor models on xarray, Dask and Zarr."""

from .analytics import (
    bias_statistics,
    forecast_vol,
    portfolio_risk,
    portfolio_sets,
    realized_vol,
    validation_table,
    variance_explained,
)
from .errors import IncompleteStoreError, ValidationError
from .exposures import exposures, factor_names
from .loadings import ZeroStdWarning, compute_loadings, standardize, style_mapping
from .regression import factor_regression
from .schema import VARIABLES, validate
from .simulate import simulate_market

__version__ = "0.1.0"

__all__ = [
    "VARIABLES",
    "IncompleteStoreError",
    "ValidationError",
    "ZeroStdWarning",
    "__version__",
    "bias_statistics",
    "compute_loadings",
    "exposures",
    "factor_names",
    "factor_regression",
    "forecast_vol",
    "portfolio_risk",
    "portfolio_sets",
    "realized_vol",
    "simulate_market",
    "standardize",
    "style_mapping",
    "validate",
    "validation_table",
    "variance_explained",
]
