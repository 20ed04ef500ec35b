"""Segment sums (hsr_xr.kernels.segments) vs a plain loop, bincount and static-code paths."""

import numpy as np
import pytest

from hsr_xr.kernels.segments import SortedSegments, segment_sum, static_codes


def loop_sum(values, codes, n_segments):
    """Plain reference: (B, N[, P]) values, (B, N) codes -> (B, n_segments[, P])."""
    out = np.zeros((values.shape[0], n_segments, *values.shape[2:]))
    for b in range(values.shape[0]):
        for i in range(values.shape[1]):
            c = codes[b, i]
            if c >= 0:
                out[b, c] += np.nan_to_num(values[b, i], nan=0.0)
    return out


@pytest.mark.parametrize("trailing", [False, True])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("n_segments", [1, 5, 9])  # 9: segments without members
def test_segment_sum_matches_loop(trailing, static, n_segments):
    rng = np.random.default_rng(n_segments + 10 * trailing)
    b, n = 7, 40
    shape = (b, n, 3) if trailing else (b, n)
    values = rng.normal(size=shape)
    values[rng.random(shape) < 0.2] = np.nan
    k = min(n_segments, 6)
    codes = rng.integers(-1, k, size=n if static else (b, n))
    want = loop_sum(values, np.broadcast_to(codes, (b, n)), n_segments)
    got = segment_sum(values, codes, n_segments, trailing=trailing)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)
    if static:  # same sums as the bincount path on broadcast codes (up to summation order)
        general = segment_sum(values, np.broadcast_to(codes, (b, n)), n_segments, trailing=trailing)
        np.testing.assert_allclose(got, general, rtol=1e-14, atol=1e-14)


def test_sorted_plan_reorder_sum_sorted_and_empty_cases():
    rng = np.random.default_rng(0)
    codes = rng.integers(-2, 4, size=30)
    values = rng.normal(size=(5, 30, 2))
    plan = SortedSegments(codes, 6)
    want = loop_sum(values, np.broadcast_to(codes, (5, 30)), 6)
    np.testing.assert_allclose(plan.sum(values, axis=1), want, rtol=1e-14)
    np.testing.assert_allclose(
        plan.sum_sorted(plan.reorder(values, axis=1), axis=1), want, rtol=1e-14
    )
    # reorder is a permutation that puts the codes in order
    assert np.all(np.diff(codes[plan.order]) >= 0)
    none = SortedSegments(np.full(4, -1), 3)
    np.testing.assert_array_equal(none.sum(np.ones((2, 4))), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        SortedSegments(np.zeros((2, 3), dtype=int), 2)


def test_static_codes():
    c = np.array([0, 2, 1])
    np.testing.assert_array_equal(static_codes(np.tile(c, (4, 1))), c)
    np.testing.assert_array_equal(static_codes(c), c)
    assert static_codes(np.array([[0, 1], [1, 0]])) is None
