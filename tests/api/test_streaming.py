"""keir.streaming: reductions over memmapped files read in chunks that fit a memory budget equal one call on
the whole arrays; the chunk size follows the budget."""

import numpy as np
import pytest

from keir import streaming
from keir.numpy import Vi, Vj
from keir.streaming import StreamOptions

rng0 = np.random.default_rng(7)
X = rng0.standard_normal((6, 3)).astype(np.float32)
Y_DATA, B_DATA = rng0.standard_normal((1000, 3)).astype(np.float32), rng0.random((1000, 1)).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    mapped = []
    for name, data in (("y", Y_DATA), ("b", B_DATA)):
        data.tofile(tmp_path / f"{name}.f32")
        mapped.append(np.memmap(tmp_path / f"{name}.f32", dtype=np.float32, mode="r", shape=data.shape))
    return mapped


REDUCTIONS = {
    "sum": lambda y, b: ((-Vi(X).sqdist(Vj(y))).exp() * Vj(b)).sum(axis=1, call=False),
    "kmin_argkmin": lambda y, b: Vi(X).sqdist(Vj(y)).Kmin_argKmin(5, axis=1, call=False),
    "logsumexp_weight": lambda y, b: (-Vi(X).sqdist(Vj(y))).logsumexp(axis=1, weight=Vj(b), call=False),
    "sumsoftmaxweight": lambda y, b: (-Vi(X).sqdist(Vj(y))).sumsoftmaxweight(Vj(b), axis=1, call=False),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_chunks_of_memmaps_equal_one_call(name, files):
    reduction = REDUCTIONS[name](*files)
    budget = 3 * 16 * 100  # 100 rows of y and b (16 bytes a row; 12 without b), three copies each
    assert streaming.chunk_rows(reduction, budget) == (133 if name == "kmin_argkmin" else 100)
    got = streaming.reduce_in_chunks(reduction, StreamOptions(memory_budget_bytes=budget, progress=False))
    expected = REDUCTIONS[name](Y_DATA, B_DATA)()
    pairs = zip(*(r if isinstance(r, tuple) else (r,) for r in (got, expected)))
    for g, e in pairs:
        assert g.shape == e.shape
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=2e-6)


def test_a_budget_below_one_row_is_refused(files):
    with pytest.raises(ValueError, match="below one row"):
        streaming.chunk_rows(REDUCTIONS["sum"](*files), 10)


def test_torch_tensors_are_refused():
    torch = pytest.importorskip("torch")
    from keir.torch import Vi as TorchVi
    from keir.torch import Vj as TorchVj

    y = torch.tensor(Y_DATA)
    with pytest.raises(TypeError, match="NumPy arrays"):
        streaming.reduce_in_chunks(TorchVi(torch.tensor(X)).sqdist(TorchVj(y)).sum(axis=1, call=False))
