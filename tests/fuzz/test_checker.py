"""The fuzzer's own checks, on synthetic terms (no keir): a correct answer passes, a wrong one is caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from . import reductions
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
