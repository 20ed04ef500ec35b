"""hsr_xr: equity factor models on xarray, Dask and Zarr."""

from .errors import IncompleteStoreError, ValidationError
from .exposures import exposures, factor_names
from .regression import factor_regression
from .schema import VARIABLES, validate
from .simulate import simulate_market

__version__ = "0.1.0"

__all__ = [
    "VARIABLES",
    "IncompleteStoreError",
    "ValidationError",
    "__version__",
    "exposures",
    "factor_names",
    "factor_regression",
    "simulate_market",
    "validate",
]
