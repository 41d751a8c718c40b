"""The fuzzer's own checks, on synthetic terms (no keir): a correct answer passes, a wrong one is caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from . import gradients, reductions
from .reductions import Mismatch
from .semantics import Bound, Evaluator, Precision

F32 = Precision.of("float32")


def _terms(rows: int = 4, n: int = 6, d: int = 2, seed: int = 0) -> Bound:
    value = torch.from_numpy(np.random.default_rng(seed).standard_normal((rows, n, d)))
    return Bound(value, torch.zeros_like(value))


@pytest.mark.parametrize("kind", ["sum", "min", "max", "logsumexp"])
def test_correct_values_pass_and_perturbed_ones_fail(kind: str) -> None:
    terms = _terms(d=1 if kind == "logsumexp" else 2)
    exact = {"sum": terms.value.sum(-2), "min": terms.value.amin(-2), "max": terms.value.amax(-2),
             "logsumexp": torch.logsumexp(terms.value, -2)}[kind].numpy()
    assert reductions.check(kind, None, exact.astype(np.float32), terms, None, F32) > 0
    with pytest.raises(Mismatch):
        reductions.check(kind, None, exact * (1 + 1e-3), terms, None, F32)


def test_indices_are_checked_through_their_values() -> None:
    terms = _terms()
    best = terms.value.argmin(-2).numpy()
    assert reductions.check("argmin", None, best, terms, None, F32) > 0
    with pytest.raises(Mismatch):
        reductions.check("argmin", None, (best + 1) % 6, terms, None, F32)
    k_best = torch.sort(terms.value, -2).indices[..., :3, :].numpy()
    assert reductions.check("argKmin", 3, k_best, terms, None, F32) > 0
    with pytest.raises(Mismatch):
        reductions.check("argKmin", 3, k_best[..., ::-1, :].copy(), terms, None, F32)


def test_k_larger_than_n_pads_with_inf_and_minus_one() -> None:
    terms = _terms(n=2, d=1)
    values = torch.sort(terms.value, -2).values.numpy()[..., 0]
    padded = np.concatenate([values, np.full((4, 1), np.inf)], -1)
    assert reductions.check("Kmin", 3, padded, terms, None, F32) > 0
    with pytest.raises(Mismatch):
        reductions.check("Kmin", 3, np.concatenate([values, np.zeros((4, 1))], -1), terms, None, F32)


def test_discontinuities_within_rounding_are_not_compared() -> None:
    x = torch.tensor([[[[2.0 - 1e-12]], [[0.3]]]], dtype=torch.float64)
    evaluate = Evaluator({"x": Bound(x, torch.full_like(x, 1e-7))}, F32)
    floor = evaluate({"op": "floor", "args": [{"op": "var", "name": "x"}], "attrs": {}})
    assert torch.isinf(floor.error[0, 0]).item() or floor.error[0, 0].item() >= 1  # 1.999... or 2: either
    assert floor.error[0, 1].item() < 1e-6  # 0.3 is far from an integer


def test_nan_and_inf_are_compared_exactly() -> None:
    value = torch.tensor([[[np.inf], [1.0]], [[np.nan], [2.0]]], dtype=torch.float64)
    terms = Bound(value, torch.zeros_like(value))
    assert reductions.check("sum", None, np.array([[np.inf], [np.nan]]), terms, None, F32) == 2
    with pytest.raises(Mismatch):
        reductions.check("sum", None, np.array([[np.inf], [3.0]]), terms, None, F32)


# ---- gradients: rounding noise of an exactly cancelling derivative passes, a wrong derivative fails ------------
def _quotient_case() -> tuple[dict, dict]:
    """sum_j y_j * (x_i / x_i), float64: d/dx is 1/x - x/x^2, exactly 0, computed as rounding noise."""
    data = {"dist": "normal", "layout": "c", "readonly": False, "specials": []}
    case = {"seed": 0, "index": 0, "api": "torch", "dtype": "float64", "batch": [], "M": 5, "N": 3,
            "vars": [{"name": "x0", "category": "i", "dim": 1, "spelling": "V", "batch": [], "data": data},
                     {"name": "y1", "category": "j", "dim": 1, "spelling": "V", "batch": [], "data": data}],
            "formula": {"op": "mul", "attrs": {}, "args": [
                {"op": "var", "name": "y1"},
                {"op": "div", "attrs": {}, "args": [{"op": "var", "name": "x0"}, {"op": "var", "name": "x0"}]}]},
            "reduction": {"kind": "sum", "axis": 1, "spelling": 0, "options": {}}, "grad": {"order": 1}}
    rng = np.random.default_rng(3)
    x, y = torch.from_numpy(rng.uniform(0.3, 3, (5, 1))), torch.from_numpy(rng.standard_normal((3, 1)))
    cotangent = torch.from_numpy(rng.standard_normal((5, 1)))
    exact_y = torch.full((3, 1), float(cotangent.sum()))  # d/dy_j sum_i c_i y_j = sum_i c_i
    return case, {"a0": x, "a1": y, "cotangent": cotangent, "grads": (torch.zeros(5, 1), exact_y)}


def test_gradient_rounding_noise_passes_and_a_wrong_gradient_fails() -> None:
    case, namespace = _quotient_case()
    x, (zero, exact_y) = namespace["a0"], namespace["grads"]
    noise = 1e-15 * torch.sign(torch.randn(5, 1, generator=torch.Generator().manual_seed(0))) / x
    assert gradients.check(case, {**namespace, "grads": (noise, exact_y * (1 + 1e-12))}) == 8
    with pytest.raises(Mismatch, match=r"grad\[y1\]"):
        gradients.check(case, {**namespace, "grads": (noise, exact_y * 1.01)})
    with pytest.raises(Mismatch, match=r"grad\[x0\]"):  # beyond rounding of the terms (~1/x): wrong
        gradients.check(case, {**namespace, "grads": (zero + 1e-7, exact_y)})


def test_magnitudes_are_the_absolute_backward_sweep() -> None:
    """d/dx (x rsqrt(x x)) = rsqrt(x^2) - x^2 rsqrt(x^2)^3 = 0; its terms have magnitude 2 / |x|."""
    x = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    normalized = x * torch.rsqrt(x * x)
    cotangent = torch.tensor([1.0, -2.0], dtype=torch.float64)
    loss = (normalized * cotangent).sum()
    (signed,) = torch.autograd.grad(loss, [x], retain_graph=True)
    (size,) = gradients.magnitudes(loss, [x])
    assert signed.abs().max() < 1e-15
    torch.testing.assert_close(size, 2 * cotangent.abs() / x.abs().detach())
    (again,) = torch.autograd.grad(loss, [x])  # the hooks are gone: autograd's own answer again
    assert again.abs().max() < 1e-15


def test_derivatives_of_sin_at_arguments_known_only_roughly_are_not_compared() -> None:
    """sin'(u) at u = 1e20 in float64 (seed 14 case 223): u's own rounding is 1e4, so no derivative is defined by
    the data; at u = 3 it is."""
    f64 = Precision.of("float64")
    for u, known in ((3.0, True), (1e20, False)):
        value = torch.tensor([[[u]]], dtype=torch.float64)
        evaluate = Evaluator({"x": Bound(value, torch.zeros_like(value))}, f64)
        evaluate({"op": "sinxdivx", "args": [{"op": "var", "name": "x"}], "attrs": {}})
        assert evaluate.derivatives_known is known
