"""Sums with more than keir.kernels.WIDEST_OUTPUT output components run as kernels of column blocks
(keir.runtime.column_blocks.ColumnBlockKernel): the results are those of a dense float64 reference, over i and over j,
with a summation scheme, block-sparse ranges and torch gradients (whose reductions are as wide)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import keir.numpy as kn
import keir.torch as kt
from keir import kernels
from keir.runtime.column_blocks import ColumnBlockKernel

COLUMNS = kernels.WIDEST_OUTPUT * 2 + 44  # blocks of 128, 128 and 44


def _dense(x, y, b, axis):
    k = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    return k @ b if axis == 1 else k.T @ b


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("options", [{}, {"sum_scheme": "kahan_scheme"}])
def test_wide_sums_run_in_column_blocks_and_match_a_dense_reference(axis, options):
    rng = np.random.default_rng(1)
    x, y = rng.random((70, 3)), rng.random((50, 3))
    b = rng.standard_normal((50 if axis == 1 else 70, COLUMNS))
    weights = kn.Vj(b) if axis == 1 else kn.Vi(b)
    reduction = ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * weights).sum(axis=axis, call=False, **options)
    assert isinstance(kernels.cpu_kernel(reduction.root, reduction.dtype), ColumnBlockKernel)
    got = reduction()
    assert got.shape == (70 if axis == 1 else 50, COLUMNS)
    np.testing.assert_allclose(got, _dense(x, y, b, axis), rtol=1e-12, atol=1e-12)


def test_a_sum_of_at_most_the_widest_output_is_one_kernel():
    x = np.ones((4, kernels.WIDEST_OUTPUT))
    reduction = (kn.Vi(x) * kn.Vj(x)).sum(axis=1, call=False)
    assert not isinstance(kernels.cpu_kernel(reduction.root, reduction.dtype), ColumnBlockKernel)


def test_wide_sums_with_ranges_and_gradients():
    rng = np.random.default_rng(2)
    x, y = rng.random((40, 3)), rng.random((30, 3))
    b = rng.standard_normal((30, COLUMNS))
    ranges = tuple(np.array(a, dtype=np.int64) for a in (
        [[0, 20], [20, 40]], [1, 2], [[0, 15], [15, 30]], [[0, 15], [15, 30]], [1, 2], [[0, 20], [20, 40]]))
    # rows 0..19 see columns 0..14, rows 20..39 columns 15..29 (the two blocks of the diagonal)
    mask = np.zeros((40, 30))
    mask[:20, :15] = mask[20:, 15:] = 1
    k = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) * mask
    got = ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * kn.Vj(b)).sum(axis=1, ranges=ranges)
    np.testing.assert_allclose(got, k @ b, rtol=1e-12, atol=1e-12)

    xt, bt = torch.tensor(x, requires_grad=True), torch.tensor(b, requires_grad=True)
    out = ((-kt.Vi(xt).sqdist(kt.Vj(torch.tensor(y)))).exp() * kt.Vj(bt)).sum(axis=1)
    weights = torch.tensor(rng.standard_normal((40, COLUMNS)))
    grad_x, grad_b = torch.autograd.grad((out * weights).sum(), [xt, bt])
    xr, br = torch.tensor(x, requires_grad=True), torch.tensor(b, requires_grad=True)
    dense = torch.exp(-((xr[:, None, :] - torch.tensor(y)[None]) ** 2).sum(-1)) @ br
    want_x, want_b = torch.autograd.grad((dense * weights).sum(), [xr, br])
    torch.testing.assert_close(grad_x, want_x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_b, want_b, rtol=1e-10, atol=1e-10)
