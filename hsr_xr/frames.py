"""Readers from pandas layouts: the seed's long tables and date × asset frames."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ValidationError
from .schema import UNKNOWN_INDUSTRY, VARIABLES, check_coords, datetime_ns, parse_dates


def _labels(values: Iterable) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def _registry_dtype(name: str, values: np.ndarray) -> np.ndarray:
    """Float ``values`` of a registry variable in its own dtype.

    Integer codes (``industry``): missing -> -1 (unknown); flags
    (``estimation_universe``): missing -> False. Other values must be exact.
    """
    spec = VARIABLES.get(name)
    if spec is None or "f" in spec.kind:
        return values
    missing = np.isnan(values)
    known = values[~missing]
    if "b" in spec.kind:
        if not np.isin(known, (0.0, 1.0)).all():
            raise ValidationError(name, "has values other than 0/1", "pass a 0/1 or bool flag")
        return np.where(missing, False, values == 1.0)
    if (known != np.round(known)).any():
        raise ValidationError(name, "has non-integer codes", "pass integer codes")
    if (np.abs(known) >= 2**53).any():  # beyond exact float64 integers
        raise ValidationError(name, "has codes of 2**53 or more", "pass small integer codes")
    return np.where(missing, UNKNOWN_INDUSTRY, values).astype(np.int64)


def from_long_frame(
    df: pd.DataFrame,
    *,
    date: str = "date",
    asset: str = "asset",
    name: str = "descriptor",
    value: str = "val",
    cube: str = "descriptors",
    cube_dim: str = "descriptor",
) -> xr.Dataset:
    """Long table (date, asset, name, value) -> Dataset, as in the seed's parquet files.

    Names that are registry variables over (date, asset) (``market_cap``,
    ``returns``, ``book_to_price``, ...) become their own variables; every other
    name becomes a slice of the ``cube`` variable (date, asset, ``cube_dim``).

    Raises
    ------
    ValidationError
        On missing columns, unparseable or missing dates, non-numeric values, or
        duplicate (date, asset, name) rows.
    """
    for col in (date, asset, name, value):
        if col not in df.columns:
            raise ValidationError(
                col, f"column missing from the frame (have {list(df.columns)})",
                "pass date=, asset=, name=, value= with the frame's column names",
            )  # fmt: skip
    dates = parse_dates(df[date].to_numpy(), date)
    for col in (asset, name):
        missing = df[col].isna()
        if missing.any():
            raise ValidationError(
                col, f"has {int(missing.sum())} missing values", "drop or fill those rows"
            )
    try:
        values = df[value].to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise ValidationError(
            value, "values are not numbers", "convert them with pd.to_numeric"
        ) from err
    for arg, label in (("cube", cube), ("cube_dim", cube_dim)):
        if label in ("date", "asset"):
            raise ValidationError(arg, f"is {label!r}, a dimension name", "pick another name")
    d_codes, d_uniq = pd.factorize(dates, sort=True)
    a_codes, a_uniq = pd.factorize(df[asset].astype(str).to_numpy(), sort=True)
    n_codes, n_uniq = pd.factorize(df[name].astype(str).to_numpy(), sort=False)
    T, N, K = len(d_uniq), len(a_uniq), len(n_uniq)
    flat = (d_codes.astype(np.int64) * N + a_codes) * K + n_codes
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        bad = uniq[counts > 1][0]
        t, rest = divmod(int(bad), N * K)
        a, k = divmod(rest, K)
        raise ValidationError(
            name,
            f"{int((counts > 1).sum())} duplicate (date, asset, name) rows, e.g. "
            f"({d_uniq[t]:%Y-%m-%d}, {a_uniq[a]}, {n_uniq[k]})",
            "drop duplicates (df.drop_duplicates([date, asset, name], keep='last'))",
        )
    cube_arr = np.full((T, N, K), np.nan)
    cube_arr.reshape(-1)[flat] = values
    coords = {"date": datetime_ns(d_uniq.values, date), "asset": _labels(a_uniq)}
    own = [k for k, n in enumerate(n_uniq) if VARIABLES.get(n) and VARIABLES[n].dims[0] == (
        "date", "asset")]  # fmt: skip
    rest = [k for k in range(K) if k not in own]
    data = {
        n_uniq[k]: (("date", "asset"), _registry_dtype(n_uniq[k], cube_arr[..., k])) for k in own
    }
    if rest:
        data[cube] = (("date", "asset", cube_dim), cube_arr[..., rest])
        coords[cube_dim] = _labels(n_uniq[rest])
    ds = xr.Dataset(data, coords=coords)
    check_coords(ds, "the long frame")
    return ds


def from_wide_frames(
    frames: Mapping[str, pd.DataFrame],
    *,
    join: Literal["exact", "inner", "outer"] = "exact",
) -> xr.Dataset:
    """Date × asset DataFrames (index dates, columns assets) -> Dataset.

    ``join="exact"`` (default) refuses frames whose dates or assets differ,
    naming the frame; ``"inner"``/``"outer"`` align them explicitly.
    """
    if join not in ("exact", "inner", "outer"):
        raise ValidationError("join", f"got {join!r}", "use 'exact', 'inner' or 'outer'")
    if not isinstance(frames, Mapping) or not frames:
        raise ValidationError("frames", "no frames given", "pass {name: DataFrame, ...}")
    arrays = {}
    for key, frame in frames.items():
        if key in ("date", "asset"):
            raise ValidationError(key, "is a dimension name, not a variable", "rename the frame")
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError(key, f"is a {type(frame).__name__}", "pass a DataFrame")
        index = parse_dates(frame.index, key)
        try:
            values = frame.to_numpy(dtype=float)
        except (ValueError, TypeError) as err:
            raise ValidationError(
                key, "values are not numbers", "convert them with pd.to_numeric"
            ) from err
        arr = xr.DataArray(
            _registry_dtype(key, values),
            dims=("date", "asset"),
            coords={
                "date": datetime_ns(index.values, key),
                "asset": _labels(frame.columns),
            },
            name=key,
        )
        check_coords(arr, f"frame {key!r}")
        arrays[key] = arr
    if join == "exact":
        first = next(iter(arrays))
        for key, arr in arrays.items():
            for dim in ("date", "asset"):
                if not arr.indexes[dim].equals(arrays[first].indexes[dim]):
                    raise ValidationError(
                        key,
                        f"{dim} labels differ from those of frame {first!r}",
                        "align the frames, or pass join='inner' or join='outer'",
                    )
    # alignment keeps codes and flags in their dtype: a new cell is unknown / not in it
    fill = {k: UNKNOWN_INDUSTRY if a.dtype.kind == "i" else False for k, a in arrays.items()
            if a.dtype.kind in "ib"}  # fmt: skip
    return xr.merge(list(arrays.values()), join=join, fill_value=fill)
