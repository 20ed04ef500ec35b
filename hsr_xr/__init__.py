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
from .ff5 import ff5_factors
from .frames import from_long_frame, from_wide_frames
from .loadings import ZeroStdWarning, compute_loadings, standardize, style_mapping
from .regression import factor_regression
from .resample import resample
from .risk import risk_model
from .rolling import rolling_regression
from .schema import VARIABLES, validate
from .simulate import simulate_market
from .store import open_store, to_store

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
    "ff5_factors",
    "forecast_vol",
    "from_long_frame",
    "from_wide_frames",
    "open_store",
    "portfolio_risk",
    "portfolio_sets",
    "realized_vol",
    "resample",
    "risk_model",
    "rolling_regression",
    "simulate_market",
    "standardize",
    "style_mapping",
    "to_store",
    "validate",
    "validation_table",
    "variance_explained",
]
