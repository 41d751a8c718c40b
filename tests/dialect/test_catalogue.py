"""The op catalogue's conformance test: every op that computes, checked end to end from its record alone.

For every record with a lowering (the others state what lowers them instead):
- its formula, written by `str()` (KeOps' syntax, from the record's KeOps name), is read back by Genred and
  run on the CPU in float64 against the record's NumPy reference, summed over j;
- the gradients with respect to every operand (torch autograd through keir's gradient reductions, which the
  record's VJP rule builds) match central finite differences of the reference;
- with each operand in turn replaced by constants of many magnitudes and spellings (folded by keir-simplify
  where the record folds, or written as MLIR literals), it matches the reference;
- its LazyTensor method, where the record names one, exists and builds the op.
tests/compiler/lowering/test_gpu_ptx.py assembles a kernel of every record with `ptxas`, and
tests/compiler/lowering/test_mathlib.py measures the accuracy of the routines the lowerings call. A new op cannot
land without passing them.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from keir.dialect.catalogue import complex as complex_family
from keir.dialect.node import make, var
from keir.dialect.ops import OPS
from keir.formula_parser import format_formula
from keir.numpy import LazyTensor, Vi, Vj

torch = pytest.importorskip("torch", reason="the gradients are checked through keir.torch (torch not installed)")
from keir.torch import Genred  # noqa: E402

ATTRS = {"exponent": 3, "digits": 1, "index": 1, "start": 1, "length": 2, "dim": 5}
OWN_ATTRS = {"complex_sum_t": {"dim": 4}}  # where an op needs other values than ATTRS'
# complex ops take interleaved (re, im) pairs: an even dimension; complex_sum_t spreads a complex scalar
COMPLEX = {op.name for op in complex_family.OPS}
COMPUTING = [name for name, op in OPS.items() if op.lower is not None and name != "constant"]
CATEGORIES = ("i", "j", "p")
M, N, D = 4, 5, 3
# constants of many magnitudes and spellings; trigonometric lowerings promise accuracy only up to |x| = 2**20
# (README: accuracy of the elementary functions)
CONSTANTS = (0.0, -0.0, 1e-300, 3e-07, 1e-5, 0.7, -2.5, 1e5, 1e20, -1e20)
_TRIGONOMETRIC = {"sin", "cos", "sinxdivx", "complex_exp", "complex_exp1j"}


def _attrs(name: str) -> dict:
    return {a: OWN_ATTRS.get(name, ATTRS)[a] for a in OPS[name].attrs}


def _node(name: str, operands: list):
    return make(name, *operands, **_attrs(name))


def _operand_dim(name: str) -> int:
    if name == "one_hot":
        return 1
    if name == "complex_sum_t":
        return 2
    return D + 1 if name in COMPLEX and name not in ("complex_exp1j", "real2complex", "imag2complex") else D


def _variables(name: str) -> list:
    return [var(k, CATEGORIES[k], _operand_dim(name)) for k in range(OPS[name].arity)]


def _samples(name: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = OPS[name].domain
    shapes = {"i": (M, _operand_dim(name)), "j": (N, _operand_dim(name)), "p": (_operand_dim(name),)}
    return [rng.uniform(lo, hi, shapes[CATEGORIES[k]]) for k in range(OPS[name].arity)]


def _reference_sum(name: str, arrays: list[np.ndarray], used: set[str] = frozenset("ijp")) -> np.ndarray:
    """sum over j of the record's reference on (x_i, y_j, p); a formula without an i- or j-variable has M or
    N = 1 (as in pykeops)."""
    m, n = (M if "i" in used else 1), (N if "j" in used else 1)
    broadcast = {"i": lambda a: a[:, None, :], "j": lambda a: a[None, :, :], "p": lambda a: a[None, None, :]}
    operands = [np.broadcast_to(broadcast[CATEGORIES[k]](a), (m, n, a.shape[-1])) for k, a in enumerate(arrays)]
    with np.errstate(all="ignore"):
        value = OPS[name].reference(*operands, **_attrs(name))
    return np.broadcast_to(value, (m, n, value.shape[-1])).sum(1)


def _run(text: str, arrays: list, grad: bool = False):
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]
    out = Genred(text, [], reduction_op="Sum", axis=1)(*tensors, backend="CPU")
    return out, tensors


@pytest.mark.parametrize("name", COMPUTING)
def test_str_reads_back_and_matches_the_reference(name):
    text = format_formula(_node(name, _variables(name)))
    arrays = _samples(name, seed=len(name))
    out, _ = _run(text, arrays)
    used = set(CATEGORIES[: OPS[name].arity])
    np.testing.assert_allclose(out.numpy(), _reference_sum(name, arrays, used), rtol=1e-12, atol=1e-12, err_msg=text)


@pytest.mark.parametrize("name", COMPUTING)
def test_gradients_match_finite_differences(name):
    text = format_formula(_node(name, _variables(name)))
    arrays = _samples(name, seed=len(name) + 1)
    used = set(CATEGORIES[: OPS[name].arity])
    out, tensors = _run(text, arrays, grad=True)
    cotangent = np.random.default_rng(0).uniform(-1, 1, out.shape)
    out.backward(torch.tensor(cotangent))
    for k, (array, tensor) in enumerate(zip(arrays, tensors)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            h = 1e-6 * max(1.0, abs(array[index]))
            shifted = [a.copy() for a in arrays]
            shifted[k][index] += h
            up = (_reference_sum(name, shifted, used) * cotangent).sum()
            shifted[k][index] -= 2 * h
            down = (_reference_sum(name, shifted, used) * cotangent).sum()
            numeric[index] = (up - down) / (2 * h)
        got = np.zeros_like(array) if tensor.grad is None else tensor.grad.numpy()  # None: nothing flows back
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6, err_msg=f"d/d operand {k} of {text}")


@pytest.mark.parametrize("name", COMPUTING)
def test_constants_of_every_magnitude_in_each_operand(name):
    record = OPS[name]
    dim = _operand_dim(name)
    constants = [c for c in CONSTANTS if name not in _TRIGONOMETRIC or abs(c) <= 2.0**20]
    arrays = _samples(name, seed=3)
    width = 1 if record.elementwise else dim  # a constant is a scalar; an op over components gets it in each
    for slot in range(record.arity):
        rest = [k for k in range(record.arity) if k != slot]
        nodes, expected = [], []
        for c in constants:
            operands = _variables(name)
            literal = make("constant", value=c)
            operands[slot] = literal if width == 1 else functools.reduce(lambda a, b: make("concat", a, b),
                                                                         [literal] * width)
            nodes.append(_node(name, operands))
            given = list(arrays)
            given[slot] = np.full((1, width) if CATEGORIES[slot] != "p" else (width,), c)
            expected.append(_reference_sum(name, given, {CATEGORIES[k] for k in rest}))
        # one kernel per operand: the op at every constant, side by side
        out, _ = _run(format_formula(functools.reduce(lambda a, b: make("concat", a, b), nodes)),
                      arrays[: max(rest) + 1] if rest else [])
        columns = np.cumsum([0] + [node.dim for node in nodes])
        for c, node, want, start, stop in zip(constants, nodes, expected, columns, columns[1:]):
            np.testing.assert_allclose(out.numpy()[:, start:stop], want, rtol=1e-12, atol=1e-300, equal_nan=True,
                                       err_msg=f"{format_formula(node)} with operand {slot} = {c!r}")


@pytest.mark.parametrize("name", [name for name in COMPUTING if OPS[name].method])
def test_the_lazytensor_method_builds_the_op(name):
    record = OPS[name]
    method = getattr(LazyTensor, record.method)
    rng = np.random.default_rng(0)
    operands = [Vi(rng.random((M, _operand_dim(name)))), *(Vj(rng.random((N, _operand_dim(name))))
                                                           for _ in range(record.arity - 1))]
    built = method(*operands, *_attrs(name).values())
    assert built.node.op == name, f"LazyTensor.{record.method} built keir.{built.node.op}, not keir.{name}"
    assert dict(built.node.attrs) == _attrs(name)


def test_every_op_states_how_it_is_lowered():
    for name, op in OPS.items():
        assert (op.lower is None) != (op.lowered_by is None), name
    assert {"var", "reduce", "grad", "laplacian"} <= {name for name, op in OPS.items() if op.lower is None}


# Half precision (keir.dtypes): the op computed in float32 from half inputs and rounded to the half dtype at
# the end; the bound is that rounding (half an ulp) plus float32 arithmetic (1e-5 of the largest value).
HALF_ULP = {"float16": 2.0**-11, "bfloat16": 2.0**-8}


@pytest.mark.parametrize("name", COMPUTING)
@pytest.mark.parametrize("half", sorted(HALF_ULP))
def test_half_precision_within_its_rounding(half, name):
    dtype = getattr(torch, half)
    rounded = [torch.tensor(a).to(dtype) for a in _samples(name, seed=5)]  # the inputs, in half precision
    used = set(CATEGORIES[: OPS[name].arity])
    text = format_formula(_node(name, _variables(name)))
    out = Genred(text, [], reduction_op="Sum", axis=1)(*rounded, backend="CPU")
    want = _reference_sum(name, [a.double().numpy() for a in rounded], used)
    assert out.dtype == dtype
    error = np.abs(out.double().numpy() - want)
    bound = HALF_ULP[half] * np.abs(want) + 1e-5 * np.abs(want).max()
    assert np.all(error <= bound), f"{text} in {half}: error / bound = {np.max(error / bound):.3g}"
