"""Batched segment (group-by-code) reductions over the last axis.

Used wherever a cross-section is reduced by an integer code without building
dummy matrices: industry blocks of the regression's normal equations,
industry means, and Fama-French bucket sums.
"""

from __future__ import annotations

import numpy as np


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
    lead = values.shape[: values.ndim - extra]
    codes = np.broadcast_to(codes, lead)
    n_batch = int(np.prod(lead[:-1], dtype=np.int64))
    n_assets = lead[-1]
    flat_codes = codes.reshape(n_batch, n_assets)
    offsets = flat_codes + n_segments * np.arange(n_batch)[:, None]
    vals = values.reshape(n_batch, n_assets, -1)
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
