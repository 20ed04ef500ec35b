"""Batched segment (group-by-code) reductions over the last axis.

Used wherever a cross-section is reduced by an integer code without building
dummy matrices: industry blocks of the regression's normal equations,
industry means, portfolio industry exposures.

Two paths, same sums: :func:`segment_sum` scatter-adds with ``np.bincount``
for codes that vary along the batch; codes shared by every row (the usual
``industry(asset)``) go through a :class:`SortedSegments` plan built once,
which sorts the assets by code so that each segment is a contiguous run and
the sums are one ``np.add.reduceat`` (no flat index arrays; about 10x faster
for many rows). Callers that sum several arrays can keep them in the plan's
order (:meth:`SortedSegments.reorder`) and use :meth:`SortedSegments.sum_sorted`.
"""

from __future__ import annotations

import numpy as np


def static_codes(codes: np.ndarray) -> np.ndarray | None:
    """The 1-D codes shared by every row of ``codes`` (B..., N), or None if they vary."""
    codes = np.asarray(codes)
    if codes.ndim <= 1:
        return codes.reshape(-1)
    flat = codes.reshape(-1, codes.shape[-1])
    return flat[0] if (flat == flat[:1]).all() else None


class SortedSegments:
    """Segment-sum plan for codes shared by every row, built once from 1-D codes.

    The assets are sorted by code (stable; excluded negative codes first), so
    each segment is one contiguous run and a sum over it is one
    ``np.add.reduceat`` in the original asset order (same values as
    :func:`segment_sum`).

    Parameters
    ----------
    codes : ndarray of int, shape (N,)
        Segment code per asset in ``0..n_segments-1``; negative codes are excluded.
    n_segments : int

    Attributes
    ----------
    order : ndarray of intp, shape (N,)
        Permutation putting the assets in code order (``a[..., order]``).
    """

    def __init__(self, codes: np.ndarray, n_segments: int) -> None:
        codes = np.asarray(codes)
        if codes.ndim != 1:
            raise ValueError(f"SortedSegments needs 1-D codes, got shape {codes.shape}")
        self.n_segments = int(n_segments)
        self.order = np.argsort(codes, kind="stable")
        sc = codes[self.order]
        self.n_excluded = int(np.count_nonzero(sc < 0))  # sorted first
        kept = sc[self.n_excluded :]
        self.starts = np.flatnonzero(np.r_[True, kept[1:] != kept[:-1]]) if kept.size else kept
        self.seg_codes = kept[self.starts]
        self.dense = self.seg_codes.size == self.n_segments  # every segment has members

    def reorder(self, a: np.ndarray, axis: int = -1) -> np.ndarray:
        """Copy of ``a`` with its asset axis ``axis`` in the plan's order."""
        return np.take(a, self.order, axis=axis)

    def sum_sorted(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        """Sums of ``values`` already in the plan's order along the asset axis ``axis``.

        Returns ``values``' shape with that axis replaced by ``n_segments``.
        NaN values are summed (not skipped).
        """
        axis = axis % values.ndim
        kept = values[(slice(None),) * axis + (slice(self.n_excluded, None),)]
        return self._reduce(kept, axis)

    def sum(self, values: np.ndarray, axis: int = -1, *, skipna: bool = False) -> np.ndarray:
        """Sums of ``values`` in the original asset order along ``axis``.

        Returns ``values``' shape with that axis replaced by ``n_segments``;
        ``skipna=True`` treats NaN values as absent.
        """
        values = np.asarray(values, dtype=float)
        axis = axis % values.ndim
        kept = np.take(values, self.order[self.n_excluded :], axis=axis)
        if skipna:
            np.copyto(kept, 0.0, where=np.isnan(kept))
        return self._reduce(kept, axis)

    def _reduce(self, kept: np.ndarray, axis: int) -> np.ndarray:
        """reduceat over the runs of ``kept`` (excluded assets already dropped)."""
        shape = list(kept.shape)
        shape[axis] = self.n_segments
        if not self.seg_codes.size:
            return np.zeros(shape)
        red = np.add.reduceat(kept, self.starts, axis=axis)
        if self.dense:
            return red
        out = np.zeros(shape)
        out[(slice(None),) * axis + (self.seg_codes,)] = red
        return out


def segment_sum(
    values: np.ndarray, codes: np.ndarray, n_segments: int, *, trailing: bool = False
) -> np.ndarray:
    """Sum ``values`` by ``codes`` along the asset axis, batched.

    Parameters
    ----------
    values : ndarray, shape (B..., N), or (B..., N, P) with ``trailing=True``
        Values to sum. NaN values are skipped (treated as absent).
    codes : ndarray of int, shape (B..., N) or broadcastable to it
        Segment code per asset in ``0..n_segments-1``; negative codes are excluded.
        1-D codes (shared by every row) use a :class:`SortedSegments` plan.
    n_segments : int
        Number of segments.
    trailing : bool
        Whether ``values`` has a trailing axis P of quantities summed separately.

    Returns
    -------
    ndarray, shape (B..., n_segments) or (B..., n_segments, P)
    """
    values = np.asarray(values, dtype=float)
    extra = int(trailing)
    if np.ndim(codes) == 1 and len(codes) == values.shape[values.ndim - 1 - extra]:
        plan = SortedSegments(codes, n_segments)
        return plan.sum(values, axis=-1 - extra, skipna=True)
    lead = values.shape[: values.ndim - extra]
    codes = np.broadcast_to(codes, lead)
    n_batch = int(np.prod(lead[:-1], dtype=np.int64))
    n_assets = lead[-1]
    flat_codes = codes.reshape(n_batch, n_assets)
    offsets = flat_codes + n_segments * np.arange(n_batch)[:, None]
    vals = values.reshape(n_batch, n_assets, values.shape[-1] if extra else 1)  # B may be 0
    out = np.empty((n_batch, n_segments, vals.shape[-1]))
    for p in range(vals.shape[-1]):
        v = vals[..., p]
        keep = (flat_codes >= 0) & ~np.isnan(v)
        out[..., p] = np.bincount(
            offsets[keep], weights=v[keep], minlength=n_batch * n_segments
        ).reshape(n_batch, n_segments)
    shape = (*lead[:-1], n_segments) + ((values.shape[-1],) if extra else ())
    return out.reshape(shape)


def segment_count(mask: np.ndarray, codes: np.ndarray, n_segments: int) -> np.ndarray:
    """Number of True entries of ``mask`` per segment, shape (B..., n_segments)."""
    return segment_sum(np.asarray(mask, dtype=float), codes, n_segments)
