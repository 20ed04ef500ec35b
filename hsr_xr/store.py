"""Zarr v3 persistence: atomic writes, date appends, variable updates, lazy reads.

Store policy
------------
* Zarr format 3, one group per Dataset (the root, or a named sub-group such as
  ``ff5_W``), chunked along ``date`` only by default (see :func:`default_chunks`).
* Metadata is **not consolidated** by default: consolidated metadata is not part
  of the Zarr v3 specification, and local or object stores read fine without
  it. Pass ``consolidated=True`` to opt in (the store is then re-consolidated
  after every append or update).
* Strings (asset, descriptor, factor labels) are written as variable-length
  UTF-8, never as fixed-width unicode.
* Completeness marker: a group is readable only if its attribute
  ``hsr_xr_complete`` is true. A fresh store goes to a temporary sibling
  directory that is renamed into place when complete, so a failed write leaves
  the previous store (or nothing) behind; a group written into an existing
  store is written in place and left marked incomplete if that fails. Appends
  and updates clear the marker first, roll back on error (an append is
  truncated back; an update deletes what it added and the staged copies of the
  variables it replaces, which are swapped in by directory renames only after
  every write finished) and set it again. A process killed mid-write leaves the
  marker cleared, and :func:`open_store` refuses the store.
* Attributes must be JSON values (NumPy scalars and arrays are converted);
  anything else is refused with the attribute named.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array
import dask.threaded
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .errors import IncompleteStoreError, ValidationError
from .schema import VARIABLES, check_coords, datetime_ns, is_integer, validate

MARKER = "hsr_xr_complete"
FORMAT = "hsr_xr_format"
_CHUNK_TARGET_BYTES = 64 * 2**20


def default_chunks(ds: xr.Dataset, target_bytes: int = _CHUNK_TARGET_BYTES) -> dict[str, int]:
    """Date chunk size so the largest variable's chunks hold about ``target_bytes``.

    All other dims stay whole (cross-sectional steps need ``asset`` whole).
    """
    if "date" not in ds.dims:
        return {}
    per_date = max(
        (v.dtype.itemsize * int(np.prod([n for d, n in v.sizes.items() if d != "date"]))
         for v in ds.data_vars.values() if "date" in v.dims),
        default=1,
    )  # fmt: skip
    size = target_bytes // max(per_date, 1)  # an empty date dim keeps it for later appends
    return {"date": int(np.clip(size, 1, ds.sizes["date"] or size))}


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _json_attrs(attrs: dict, owner: str) -> dict:
    """Attrs as JSON values (NumPy scalars/arrays to Python); refuse anything else."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic | np.ndarray):
            value = value.tolist()
        try:
            json.dumps(value)
        except (TypeError, ValueError) as err:
            raise ValidationError(
                f"{owner}.attrs[{key!r}]",
                f"a {type(value).__name__} cannot be stored as a Zarr attribute",
                "convert it to a str, number, bool or a list/dict of those, or drop it",
            ) from err
        out[key] = value
    return out


def _is_text(dtype: np.dtype) -> bool:
    """Object, fixed-width unicode or NumPy 2 StringDType (how strings come and go)."""
    return dtype.kind in "OUT"


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width unicode -> object (vlen-utf8); JSON attrs; drop stale encodings.

    The group attrs carry this package's format and an *incomplete* marker, so a
    write that stops early leaves a group that ``open_store`` refuses and
    ``store_groups`` still lists; the marker is set once the write has finished
    (a marker in the input's attrs, e.g. from ``xr.open_zarr``, is not kept).
    """
    out = ds.copy()
    for name, var in ds.variables.items():  # Variables: no coordinates to carry back in
        if isinstance(var.dtype, pd.CategoricalDtype):  # Zarr has no categorical dtype
            values = np.asarray(var.values)
            var = var.copy(data=values.astype(object) if _is_text(values.dtype) else values)
        elif var.dtype.kind in "UT":  # fixed-width or NumPy 2 StringDType: vlen-utf8
            var = var.astype(object)
        elif var.dtype.kind == "M" and var.dtype != np.dtype("datetime64[ns]"):
            # the stored unit (see _encoding); out-of-range dates are refused, lazily on Dask
            data = var.data
            if isinstance(data, dask.array.Array):
                data = data.map_blocks(datetime_ns, str(name), dtype="datetime64[ns]")
            else:
                data = datetime_ns(data, str(name))
            var = var.copy(data=data)
        else:
            continue
        if name in ds.coords:
            out = out.assign_coords({name: var})
        else:
            out[name] = var
    attrs = {k: v for k, v in out.attrs.items() if k not in (MARKER, FORMAT)}
    out.attrs = {**_json_attrs(attrs, "ds"), MARKER: False, FORMAT: 1}
    for name, var in out.variables.items():
        var.attrs = _json_attrs(var.attrs, str(name))
        var.encoding = {}
    return out


def _encoding(ds: xr.Dataset, chunks: Mapping[str, int]) -> dict[str, dict]:
    enc: dict[str, dict] = {}
    for name, var in ds.variables.items():
        if name in ds.dims and name != "date":
            continue
        e: dict = {}
        if var.ndim:
            e["chunks"] = tuple(
                int(min(chunks.get(d, s), s) if s else chunks.get(d, 1)) or 1
                for d, s in var.sizes.items()
            )
        if name == "date" or var.dtype.kind == "M":
            e.update(units="nanoseconds since 1970-01-01", dtype="int64")
        enc[name] = e
    return enc


def _set_marker(path: Path, group: str | None, complete: bool, consolidated: bool) -> None:
    grp = zarr.open_group(str(path), path=group or "", mode="r+")
    grp.attrs.update({MARKER: complete, FORMAT: 1})
    if consolidated:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            zarr.consolidate_metadata(str(path))


def _compute(delayed, progress: bool) -> None:
    """Run a write. With the threaded scheduler the write gets its own thread pool,
    whose exit waits for in-flight chunk writes, so that a failed write can be
    cleaned up after its last chunk landed (Dask raises at the first error)."""
    bar = nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar()
    with bar:
        if dask.base.get_scheduler(collections=[delayed]) is dask.threaded.get:
            with ThreadPoolExecutor(dask.system.CPU_COUNT) as pool, dask.config.set(pool=pool):
                dask.compute(delayed)
        else:
            dask.compute(delayed)


def _write(ds, path, *, mode, group, chunks, consolidated, progress, **kwargs) -> None:
    with warnings.catch_warnings():
        if consolidated:
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        delayed = ds.to_zarr(
            str(path),
            mode=mode,
            group=group,
            zarr_format=3,
            consolidated=consolidated,
            compute=False,
            **kwargs,
        )
    _compute(delayed, progress)


def to_store(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    mode: Literal["w-", "w", "append", "update"] = "w-",
    group: str | None = None,
    chunks: Mapping[str, int] | None = None,
    consolidated: bool = False,
    progress: bool = False,
) -> Path:
    """Write ``ds`` to a Zarr v3 store at ``path``.

    Parameters
    ----------
    ds : Dataset
        Panel to write; validated against the registry first.
    path : path-like
        Store directory.
    mode : {"w-", "w", "append", "update"}
        ``"w-"`` create (error if present), ``"w"`` replace (a whole store
        atomically; a group inside an existing store is rewritten in place and
        left marked incomplete if that fails), ``"append"`` add new dates after
        the stored ones (same variables, non-date coordinates and
        ``industry_names``; the stored group and variable attributes are kept,
        new group attributes added), ``"update"`` add or replace
        variables on the stored coordinates (replacements are staged beside
        the stored arrays and swapped in after the write: a failure changes
        nothing).
    group : str, optional
        Sub-group to write (e.g. ``"ff5_W"``); the root by default. It may not
        be named like a stored variable.
    chunks : mapping dim -> size, optional
        Zarr chunking (-1: the whole dim); default :func:`default_chunks` (date only). Variables
        added by ``"update"`` keep the stored ``date`` chunk (so appends stay aligned).
    consolidated : bool
        Opt in to consolidated metadata (not part of the Zarr v3 spec). A store
        that has it keeps it up to date through later appends, updates and
        group writes.
    progress : bool
        Show Dask's progress bar while writing.

    Returns
    -------
    Path of the store.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(
            "ds", f"expected a Dataset, got {type(ds).__name__}", "pass da.to_dataset(name=...)"
        )
    _check_chunks(chunks)
    path = Path(path)
    if group is not None:
        group = group.strip("/") or None  # "" and "/" are the root
    check_coords(ds, "the Dataset to store")
    ds = validate(ds, [], optional=[v for v in VARIABLES if v in ds.variables])
    ds = _prepare(ds)
    if chunks is not None:  # -1 or None: the whole dim, as in Dask
        chunks = {d: ds.sizes.get(d, 1) if c in (-1, None) else c for d, c in chunks.items()}
    if path.exists() and (group is not None or mode in ("append", "update")):
        consolidated = consolidated or _is_consolidated(path)  # keep it fresh
    if mode in ("w-", "w"):
        return _write_fresh(ds, path, mode, group, chunks, consolidated, progress)
    if mode == "append":
        return _append(ds, path, group, consolidated, progress)
    if mode == "update":
        return _update(ds, path, group, chunks, consolidated, progress)
    raise ValidationError("mode", f"unknown mode {mode!r}", "use 'w-', 'w', 'append' or 'update'")


def _blank_missing(a: np.ndarray) -> np.ndarray:
    """Text as an object array with '' for missing (None or NaN)."""
    a = np.asarray(a, dtype=object)
    return np.where(pd.isnull(a), "", a)


def _check_chunks(chunks: Any, dask_forms: bool = False) -> None:
    """A mapping dim -> positive int, -1 or None (the whole dim), or None; with
    ``dask_forms`` also what Dask takes ("auto", -1, tuples of sizes)."""

    def size(c: Any) -> bool:
        if c is None or (is_integer(c) and (c > 0 or c == -1)):
            return True
        if dask_forms and isinstance(c, tuple):
            return all(is_integer(k) and k > 0 for k in c)
        return dask_forms and c == "auto"

    whole = chunks is None or (dask_forms and size(chunks) and not isinstance(chunks, tuple))
    if not whole and not (isinstance(chunks, Mapping) and all(map(size, chunks.values()))):
        raise ValidationError(
            "chunks", f"got {chunks!r}", "pass a mapping dim -> positive size (-1: the whole dim)"
        )


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def _is_consolidated(path: Path) -> bool:
    if not _is_store(path):
        return False
    return zarr.open_group(str(path), mode="r").metadata.consolidated_metadata is not None


def _check_group_name(path: Path, group: str, mode: str) -> None:
    """Refuse a group path that runs into a stored array, or (``"w-"``) exists."""
    node = zarr.open_group(str(path), mode="r")
    parts = group.strip("/").split("/")
    for k, part in enumerate(parts):
        if part not in node:
            return
        node = node[part]
        if isinstance(node, zarr.Array):
            raise ValidationError(
                "group",
                f"{'/'.join(parts[: k + 1])!r} is a stored variable in {str(path)!r}",
                "choose another group name",
            )
    if mode == "w-":
        raise ValidationError(
            "group",
            f"group {group!r} already exists in {str(path)!r}",
            "pass mode='w' to replace it",
        )


def _write_fresh(ds, path, mode, group, chunks, consolidated, progress) -> Path:
    if path.exists() and not _is_store(path):
        raise ValidationError(
            "path",
            f"{str(path)!r} exists and is not a Zarr store",
            "choose another path, or remove it yourself",
        )
    if path.exists() and mode == "w-" and group is None:
        raise ValidationError(
            "path", f"store {str(path)!r} already exists", "pass mode='w' to replace it"
        )
    if path.exists() and group is not None:
        _check_group_name(path, group, mode)
    chunks = dict(default_chunks(ds) if chunks is None else chunks)
    ds = ds.drop_encoding()
    if any(isinstance(v.data, dask.array.Array) for v in ds.variables.values()):
        ds = ds.chunk({d: chunks.get(d, -1) for d in ds.dims})  # one Dask chunk per Zarr chunk
    if group is not None and path.exists():
        # A new group inside an existing store: written in place, marker last.
        _write(ds, path, mode="w", group=group, chunks=chunks, consolidated=consolidated,
               progress=progress, encoding=_encoding(ds, chunks))  # fmt: skip
        _set_marker(path, group, True, consolidated)
        return path
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write(ds, tmp, mode="w-", group=group, chunks=chunks, consolidated=consolidated,
               progress=progress, encoding=_encoding(ds, chunks))  # fmt: skip
        if group is not None:
            _set_marker(tmp, None, True, consolidated)
        _set_marker(tmp, group, True, consolidated)
        old = None
        if path.exists():
            if mode == "w-":  # another writer finished first: never replace its store
                raise ValidationError(
                    "path",
                    f"store {str(path)!r} was created by someone else during this write",
                    "pass mode='w' to replace it",
                )
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            path.rename(old)
        try:
            tmp.rename(path)
        except BaseException:
            if old is not None:  # put the previous store back
                old.rename(path)
            raise
        if old is not None:
            _remove_tree(old)
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    return path


def _append(ds, path, group, consolidated, progress) -> Path:
    old = open_store(path, group=group)
    if "date" not in ds.dims:
        raise ValidationError("date", "the Dataset to append has no 'date' dim", "append dates")
    if "date" not in old.dims:
        raise ValidationError(
            "date", "the stored group has no 'date' dim to append to", "use mode='update'"
        )
    n_old = old.sizes["date"]
    if n_old and ds.sizes["date"] and ds.indexes["date"][0] <= old.indexes["date"][-1]:
        last = old.indexes["date"][-1]
        raise ValidationError(
            "date",
            f"new dates start {ds.indexes['date'][0]:%Y-%m-%d}, not after the stored last date "
            f"{last:%Y-%m-%d} (overlap)",
            "append only dates after the stored ones (use .sel(date=slice(...)))",
        )
    if set(ds.data_vars) != set(old.data_vars):
        extra, missing = (
            set(ds.data_vars) - set(old.data_vars),
            set(old.data_vars) - set(ds.data_vars),
        )
        raise ValidationError(
            "data_vars",
            f"variables differ from the store's: extra {sorted(extra)}, missing {sorted(missing)}",
            "append the same variables, or use mode='update' to add variables",
        )
    for dim in ds.dims:
        if dim != "date" and dim in old.indexes and not ds.indexes[dim].equals(old.indexes[dim]):
            raise ValidationError(
                dim,
                "coordinate conflicts with the stored one",
                f"reindex the new data to the stored {dim} labels (ds.reindex({dim}=stored.{dim}))",
            )
    static = [n for n, v in ds.data_vars.items() if "date" not in v.dims]
    for name in static:
        if ds[name].dims != old[name].dims or not ds[name].load().equals(old[name].load()):
            raise ValidationError(
                name, "has no date dim and differs from the stored values", "keep it unchanged"
            )
    for name, var in ds.data_vars.items():
        if var.dims != old[name].dims:
            raise ValidationError(
                name, f"has dims {var.dims}, the store has {old[name].dims}", "transpose to match"
            )
        names = var.attrs.get("industry_names")
        if names is not None and list(names) != list(old[name].attrs.get("industry_names", [])):
            raise ValidationError(
                name,
                "attrs['industry_names'] differ from the stored ones, so the new dates' codes "
                "would name other industries",
                "recode the new dates to the stored industry_names",
            )
    if ds.sizes["date"] == 0:
        return path  # nothing to append
    new = ds.drop_vars(static)
    for name in [n for n, v in new.variables.items() if _is_text(v.dtype) and n not in new.dims]:
        # missing text as '' (as a fresh write stores it; an append would write 'nan'/'None')
        data = new[name].data
        if isinstance(data, dask.array.Array):
            data = data.map_blocks(_blank_missing, dtype=object)
        else:
            data = _blank_missing(data)
        new[name] = new[name].copy(data=data)
    # writing replaces the group's attrs: the stored ones are kept, new keys added
    new.attrs = {**new.attrs, **old.attrs}
    root = zarr.open_group(str(path), path=group or "", mode="r+")
    # every stored array along date (data, the date index, other date coordinates)
    date_arrays = [n for n in old.variables if "date" in old[n].dims]
    c = stored_date_chunk(path, group)
    first = (c - n_old % c) % c or c
    sizes = [first] + [c] * ((new.sizes["date"] - first + c - 1) // c)
    sizes[-1] -= sum(sizes) - new.sizes["date"]
    sizes = [s for s in sizes if s > 0]
    new = new.chunk({"date": tuple(sizes)})
    for name, var in new.data_vars.items():  # other dims: one Dask chunk per stored chunk
        stored = dict(zip(var.dims, root[name].chunks, strict=True))
        new[name] = var.chunk({d: c for d, c in stored.items() if d != "date"})
    _set_marker(path, group, False, consolidated)
    try:
        _write(new, path, mode="a", group=group, chunks={}, consolidated=consolidated,
               progress=progress, append_dim="date")  # fmt: skip
    except BaseException:
        for name in date_arrays:  # roll back to the stored length
            arr = root[name]
            axis = old[name].dims.index("date")
            shape = list(arr.shape)
            shape[axis] = n_old
            arr.resize(tuple(shape))
        root.attrs.put(old.attrs)  # the stored attrs, not the appended ones
        _set_marker(path, group, True, consolidated)
        raise
    _set_marker(path, group, True, consolidated)
    return path


def _update(ds, path, group, chunks, consolidated, progress) -> Path:
    old = open_store(path, group=group)
    for dim in ds.dims:
        if dim in old.indexes and not ds.indexes[dim].equals(old.indexes[dim]):
            raise ValidationError(
                dim,
                "coordinate differs from the stored one",
                f"reindex to the stored {dim} labels, or write to another group",
            )
    replaced = [n for n in ds.data_vars if n in old.data_vars]
    added = [n for n in ds.data_vars if n not in old.data_vars]
    root = zarr.open_group(str(path), path=group or "", mode="r+")
    for n in added:
        if n in root:
            raise ValidationError(
                n, f"already names a group or coordinate in {str(path)!r}", "rename the variable"
            )
    for n in replaced:
        if ds[n].dims != old[n].dims:
            raise ValidationError(
                n, f"has dims {ds[n].dims}, the store has {old[n].dims}", "transpose or rename"
            )
        text_new, text_old = _is_text(ds[n].dtype), _is_text(old[n].dtype)
        if text_new != text_old or (
            not text_old and not np.can_cast(ds[n].dtype, old[n].dtype, casting="safe")
        ):
            raise ValidationError(
                n,
                f"has dtype {ds[n].dtype}, which the stored {old[n].dtype} cannot hold exactly",
                f"cast it first (.astype({str(old[n].dtype)!r})) if that is intended, or store "
                "it under a new name",
            )
    chunks = dict(default_chunks(ds) if chunks is None else chunks)
    if "date" in root:  # added variables keep the stored date chunk: appends stay aligned
        chunks["date"] = stored_date_chunk(path, group)
    payload = ds.drop_vars([c for c in ds.coords if c in old.coords])
    new_coords = [c for c in payload.coords if c not in old.variables]
    for c in new_coords:
        if c in root:
            raise ValidationError(
                c, f"already names a group in {str(path)!r}", "rename the coordinate or dim"
            )
        if any(c in payload[n].coords for n in replaced):
            raise ValidationError(
                c,
                "is a new coordinate on a replaced variable",
                "replace the variable without it, or add it as a variable of its own",
            )
    created = added + new_coords
    payload.attrs = {**old.attrs, **payload.attrs}  # writing replaces the group's attrs
    enc = {k: v for k, v in _encoding(payload, chunks).items() if k in added}
    for n in added + replaced:  # one Dask chunk per Zarr chunk (the stored one if replaced)
        if isinstance(payload[n].data, dask.array.Array):
            target = root[n].chunks if n in replaced else enc[n].get("chunks", ())
            payload[n] = payload[n].chunk(dict(zip(payload[n].dims, target, strict=True)))
    # Replaced variables are written beside the stored ones under staging names and
    # swapped in only once every write has finished: a failure leaves them untouched.
    tag = uuid.uuid4().hex[:8]
    staged = {n: f"{n}.staged-{tag}" for n in replaced}
    stage = payload[replaced].rename(staged)
    for n in replaced:  # the stored variable's attrs, updated with the new ones
        stage[staged[n]].attrs = {**old[n].attrs, **payload[n].attrs}
    stage_enc = {  # the stored chunks and dtype (strings: xarray's own encoding of missing)
        staged[n]: {**_encoding(payload[[n]], chunks).get(n, {}), "chunks": root[n].chunks,
                    **({} if _is_text(old[n].dtype) else {"dtype": root[n].dtype})}
        for n in replaced
    }  # fmt: skip
    group_dir = path.joinpath(*(group or "").split("/"))
    stored_attrs = dict(root.attrs)  # put back if anything fails
    _set_marker(path, group, False, consolidated)
    try:
        if added:
            _write(payload[added], path, mode="a", group=group, chunks=chunks,
                   consolidated=consolidated, progress=progress, encoding=enc)  # fmt: skip
        if replaced:
            _write(stage, path, mode="a", group=group, chunks=chunks,
                   consolidated=consolidated, progress=progress, encoding=stage_enc)  # fmt: skip
        # non-index coordinates stay attached (they are not rewritten); the group is
        # reopened without consolidated metadata, which does not list the staged arrays
        fresh = zarr.open_group(str(path), path=group or "", mode="r+", use_consolidated=False)
        for n in replaced:
            if "coordinates" in fresh[n].attrs:
                fresh[staged[n]].attrs.update({"coordinates": fresh[n].attrs["coordinates"]})
        _swap(group_dir, staged, tag)
    except BaseException:
        for n in created + list(staged.values()):  # arrays and coordinates this call made
            with contextlib.suppress(KeyError):
                del root[n]
            _remove_tree(group_dir / n)
        root.attrs.put({**stored_attrs, MARKER: False})  # set again only if whole:
        if all((group_dir / n).is_dir() for n in replaced):  # the stored arrays are in place
            _set_marker(path, group, True, consolidated)
        raise
    for n in replaced:
        _remove_tree(group_dir / f"{n}.replaced-{tag}")
    if replaced:  # group attrs (a write of staged arrays keeps them, merged above)
        root.attrs.update(payload.attrs)
    _set_marker(path, group, True, consolidated)
    return path


def _swap(group_dir: Path, staged: Mapping[str, str], tag: str) -> None:
    """Move every staged array onto its stored name, all or nothing.

    The stored arrays are first renamed to ``<name>.replaced-<tag>``, then the
    staged ones into place; on an error every rename done so far is undone (the
    stored arrays are back under their names), and the error propagates.
    """
    done: list[tuple[Path, Path]] = []
    try:
        for n in staged:
            done.append((group_dir / n, group_dir / f"{n}.replaced-{tag}"))
            done[-1][0].rename(done[-1][1])
        for n, name in staged.items():
            done.append((group_dir / name, group_dir / n))
            done[-1][0].rename(done[-1][1])
    except BaseException:
        for src, dst in reversed(done):
            if dst.exists():
                dst.rename(src)
        raise


def open_store(
    path: str | os.PathLike,
    *,
    group: str | None = None,
    chunks: Mapping[str, int] | Literal["store"] | None = "store",
) -> xr.Dataset:
    """Open a store written by :func:`to_store`, lazily with Dask.

    Parameters
    ----------
    path : path-like
        Store directory.
    group : str, optional
        Sub-group to open (root by default).
    chunks : "store", mapping or None
        ``"store"`` uses the stored chunks as Dask chunks; a mapping rechunks;
        ``None`` loads NumPy arrays lazily without Dask.

    Raises
    ------
    ValidationError
        If the path holds no store or group.
    IncompleteStoreError
        If the group's last write did not finish.
    """
    if not (isinstance(chunks, str) and chunks == "store"):
        _check_chunks(chunks, dask_forms=True)
    path = _existing(path)
    if not _is_store(path):
        raise ValidationError("path", f"{str(path)!r} is not a Zarr store", "check the path")
    try:
        grp = zarr.open_group(str(path), path=group or "", mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError) as err:
        raise ValidationError(
            "group", f"no group {group!r} in {str(path)!r}", "list groups with `hsr-xr info`"
        ) from err
    if not grp.attrs.get(MARKER, False):
        raise IncompleteStoreError(
            str(path) + (f"/{group}" if group else ""),
            "its last write did not complete, so it may hold partial data",
            "rewrite the store (or the group) from its source with to_store(..., mode='w')",
        )
    root = zarr.open_group(str(path), mode="r")
    ds = xr.open_zarr(
        str(path),
        group=group,
        zarr_format=3,
        consolidated=root.metadata.consolidated_metadata is not None,
        chunks={} if chunks == "store" else chunks,
    )
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in (MARKER, FORMAT)}
    return ds


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValidationError("path", f"no store at {str(path)!r}", "check the path")
    return path


def stored_date_chunk(path: str | os.PathLike, group: str | None = None) -> int | None:
    """Length of the stored ``date`` chunks of a group (None if it has no ``date``)."""
    grp = zarr.open_group(str(_existing(path)), path=group or "", mode="r")
    return int(grp["date"].chunks[0]) if "date" in grp else None


def mark_incomplete(path: str | os.PathLike, group: str | None = None) -> None:
    """Clear a group's completeness marker, e.g. when a job that writes it in several
    steps fails half-way: :func:`open_store` then refuses it until it is rewritten."""
    path = _existing(path)
    _set_marker(path, group, False, _is_consolidated(path))


def store_groups(path: str | os.PathLike) -> list[str]:
    """Names of the Dataset groups under the store root (excluding the root)."""
    path = _existing(path)
    if not _is_store(path):
        raise ValidationError("path", f"{str(path)!r} is not a Zarr store", "check the path")
    root = zarr.open_group(str(path), mode="r")
    # Dataset groups carry the format attribute; bare parents of nested groups do not
    members = root.members(max_depth=None)
    return sorted(n for n, g in members if isinstance(g, zarr.Group) and FORMAT in g.attrs)
