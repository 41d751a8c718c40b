"""device_ids=[...]: one piece per device, launched from threads, merged; on the CPU (no GPU here) the same
shard-and-merge path that GPUs take, cut by rows or by the reduced axis, with torch gradients."""

import numpy as np
import pytest
import torch

from keir import devices
from keir.numpy import Vi, Vj
from keir.torch import Vi as TorchVi
from keir.torch import Vj as TorchVj

rng0 = np.random.default_rng(5)
X, Y, B = rng0.standard_normal((13, 3)), rng0.standard_normal((21, 3)), rng0.standard_normal((21, 2))


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


REDUCTIONS = {
    "sum": lambda: ((-Vi(X).sqdist(Vj(Y))).exp() * Vj(B)).sum(axis=1, call=False),
    "argmin": lambda: Vi(X).sqdist(Vj(Y)).argmin(axis=1, call=False),
    "kmin_argkmin vector": lambda: (Vi(X) - Vj(Y)).Kmin_argKmin(3, axis=1, call=False),
    "logsumexp over i": lambda: (-Vi(X).sqdist(Vj(Y))).logsumexp(axis=0, call=False),
    "sumsoftmaxweight": lambda: (-Vi(X).sqdist(Vj(Y))).sumsoftmaxweight(Vj(B), axis=1, call=False),
}


@pytest.mark.parametrize("split", ["rows", "reduced"])
@pytest.mark.parametrize("ids", [[0, 1], [0, 1, 2, 3]])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_pieces_on_devices_equal_one_call(name, ids, split):
    reduction = REDUCTIONS[name]()
    for got, expected in zip(_tuple(devices.reduce_on_devices(reduction, ids, split)), _tuple(reduction())):
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_the_device_ids_option_of_a_reduction():
    expected = ((-Vi(X).sqdist(Vj(Y))).exp() * Vj(B)).sum(axis=1)
    got = ((-Vi(X).sqdist(Vj(Y))).exp() * Vj(B)).sum(axis=1, device_ids=[0, 1])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    few_rows = X[:3]  # auto: too few rows to give each device its share, so the reduced axis is cut
    np.testing.assert_allclose(Vi(few_rows).sqdist(Vj(Y)).min(axis=1, device_ids=[0, 1, 2]),
                               Vi(few_rows).sqdist(Vj(Y)).min(axis=1), rtol=1e-12)


@pytest.mark.parametrize("split", ["rows", "reduced"])
def test_torch_gradients_through_the_pieces(split):
    tensors = [torch.tensor(a, requires_grad=True) for a in (X, Y, B)]

    def gradients(sharded):
        x, y, b = tensors
        reduction = ((-TorchVi(x).sqdist(TorchVj(y))).exp() * TorchVj(b)).sum(axis=1, call=False)
        out = devices.reduce_on_devices(reduction, [0, 1, 2], split) if sharded else reduction()
        weights = torch.tensor(np.random.default_rng(0).standard_normal(tuple(out.shape)))
        return torch.autograd.grad((out * weights).sum(), tensors)

    for got, expected in zip(gradients(True), gradients(False)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)


def test_bad_device_ids_are_refused_by_name():
    reduction = REDUCTIONS["sum"]()
    for bad in ([], [0, 0], [-1], [0.5]):
        with pytest.raises(ValueError, match="device"):
            devices.reduce_on_devices(reduction, bad)
    with pytest.raises(ValueError, match="split must be one of"):
        devices.reduce_on_devices(reduction, [0, 1], "columns")
