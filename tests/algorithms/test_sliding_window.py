"""Every sliding-window-maximum method against an independent brute force."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.algorithms.sliding_window import METHODS, sliding_window_max, sliding_window_max_torch


def windows_max(values, k):
    """Reference independent of the module: numpy's strided windows."""
    return np.lib.stride_tricks.sliding_window_view(np.asarray(values), k).max(axis=1).tolist()


@st.composite
def array_and_window(draw, elements=st.integers(-50, 50)):
    values = draw(st.lists(elements, min_size=1, max_size=60))
    k = draw(st.integers(1, len(values)))
    return values, k


@pytest.mark.parametrize("method", METHODS)
def test_leetcode_examples(method):
    assert sliding_window_max([1, 3, -1, -3, 5, 3, 6, 7], 3, method=method) == [3, 3, 5, 5, 6, 7]
    assert sliding_window_max([1], 1, method=method) == [1]


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=150, deadline=None)
@given(case=array_and_window())
def test_matches_brute_force(method, case):
    values, k = case
    assert sliding_window_max(values, k, method=method) == windows_max(values, k)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=50, deadline=None)
@given(case=array_and_window(st.floats(-1e6, 1e6, allow_nan=False)))
def test_floats_and_ties(method, case):
    values, k = case
    assert sliding_window_max(values, k, method=method) == windows_max(values, k)


@pytest.mark.parametrize("method", METHODS)
def test_accepts_tuples_numpy_and_tensors(method):
    expected = [3, 3, 5, 5, 6, 7]
    source = [1, 3, -1, -3, 5, 3, 6, 7]
    assert sliding_window_max(tuple(source), 3, method=method) == expected
    assert sliding_window_max(np.array(source), 3, method=method) == expected
    assert sliding_window_max(torch.tensor(source), 3, method=method) == expected


@pytest.mark.parametrize("method", METHODS)
def test_k_equal_to_length_and_one(method):
    values = [4, -2, 9, 9, 0]
    assert sliding_window_max(values, len(values), method=method) == [9]
    assert sliding_window_max(values, 1, method=method) == values


@pytest.mark.parametrize(
    ("nums", "k", "method", "error", "match"),
    [
        ([1, 2, 3], 0, "deque", ValueError, "1 <= k <= len"),
        ([1, 2, 3], -1, "heap", ValueError, "got k=-1"),
        ([1, 2, 3], 4, "brute", ValueError, "1 <= k <= len\\(nums\\) = 3, got k=4"),
        ([], 1, "deque", ValueError, "must not be empty"),
        ([1, 2, 3], 2, "quick", ValueError, "method must be one of"),
        ([1, 2, 3], 2.0, "deque", TypeError, "k must be an int"),
        ([1, 2, 3], True, "deque", TypeError, "k must be an int"),
        ("123", 2, "deque", TypeError, "nums must be a sequence"),
        (5, 1, "deque", TypeError, "nums must be a sequence"),
    ],
)
def test_bad_input(nums, k, method, error, match):
    with pytest.raises(error, match=match):
        sliding_window_max(nums, k, method=method)


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    data=st.data(),
)
def test_torch_matches_unfold(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(1, shape[dim]))
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    x = torch.randint(-20, 20, shape, generator=generator)
    expected = x.unfold(dim, k, 1).amax(-1)  # torch's own windowing as the reference
    out = sliding_window_max_torch(x, k, dim=dim)
    assert out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8])
def test_torch_dtypes(dtype):
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 50, generator=generator) * 100).to(dtype)
    for k in (1, 7, 50):
        torch.testing.assert_close(sliding_window_max_torch(x, k), x.unfold(-1, k, 1).amax(-1), rtol=0, atol=0)


def test_torch_nan_propagates_like_max():
    x = torch.tensor([1.0, math.nan, 3.0, 0.0, 2.0, 5.0])
    out = sliding_window_max_torch(x, 2)
    expected = x.unfold(0, 2, 1).amax(-1)
    torch.testing.assert_close(out, expected, equal_nan=True)
    assert out.isnan().tolist() == [True, True, False, False, False]


def test_torch_agrees_with_list_method():
    x = torch.tensor([1, 3, -1, -3, 5, 3, 6, 7])
    assert sliding_window_max_torch(x, 3).tolist() == sliding_window_max(x.tolist(), 3) == [3, 3, 5, 5, 6, 7]


def test_torch_gradient_flows_to_the_maxima():
    x = torch.tensor([1.0, 3.0, -1.0, -3.0, 5.0], requires_grad=True)
    sliding_window_max_torch(x, 3).sum().backward()
    # windows: [1,3,-1] -> 3, [3,-1,-3] -> 3, [-1,-3,5] -> 5
    assert x.grad.tolist() == [0.0, 2.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("x", "k", "dim", "error", "match"),
    [
        ([1, 2, 3], 2, -1, TypeError, "x must be a torch.Tensor"),
        (torch.tensor(1.0), 1, -1, ValueError, "at least one dimension"),
        (torch.zeros(2, 3), 2, 2, ValueError, "dim must be in \\[-2, 1\\]"),
        (torch.zeros(2, 3), 4, -1, ValueError, "1 <= k <= x.shape\\[dim\\] = 3, got k=4"),
        (torch.zeros(2, 3), 0, 0, ValueError, "got k=0"),
        (torch.zeros(2, 0), 1, 1, ValueError, "must not be empty"),
        (torch.zeros(3, dtype=torch.complex64), 1, 0, TypeError, "real integer or floating"),
        (torch.zeros(3, dtype=torch.bool), 1, 0, TypeError, "real integer or floating"),
        (torch.zeros(3), 1.5, 0, TypeError, "k must be an int"),
    ],
)
def test_torch_bad_input(x, k, dim, error, match):
    with pytest.raises(error, match=match):
        sliding_window_max_torch(x, k, dim=dim)
