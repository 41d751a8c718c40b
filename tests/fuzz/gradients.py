"""First and second derivatives of a reduction (torch API) against torch autograd on the dense float64 form.

Each variable enters the dense formula as its own leaf broadcast over all (i, j) pairs, so autograd gives the
per-pair contributions: summed they are the gradient, summed in absolute value they give the scale the
tolerance is relative to (a sum of contributions of both signs can cancel; a correct float64 result is within
~1e-16 * that scale times the conditioning, and the fuzzer only checks well-conditioned cases).
"""

from __future__ import annotations

import numpy as np
import torch

from . import dense
from .program import array_name
from .reductions import Mismatch, as_numpy
from .semantics import Bound, Precision

Tensor = torch.Tensor
RELATIVE = 1e-6
EXACT = Precision(0.0, float("inf"), 0.0)  # no error tracking: values only, differentiable


def _reference_reduction(kind: str, k: int | None, terms: Tensor, weight: Tensor | None) -> Tensor:
    """pykeops' reductions on the dense terms (*, rows, n, D), differentiable; min/max route to the first argmin."""
    if kind == "sum":
        return terms.sum(-2)
    if kind in ("min", "max"):
        index = (terms if kind == "min" else -terms).argmin(-2, keepdim=True)
        return terms.gather(-2, index).squeeze(-2)
    if kind == "Kmin":
        values = torch.topk(terms, int(k or 1), dim=-2, largest=False, sorted=True).values
        return values.squeeze(-1) if values.shape[-1] == 1 else values
    m = terms.detach().amax(-2, keepdim=True)
    if kind == "logsumexp":
        return (m + torch.log(torch.exp(terms - m).sum(-2, keepdim=True))).squeeze(-2)
    assert weight is not None
    if kind == "logsumexp_weight":
        return (m + torch.log((torch.exp(terms - m) * weight).sum(-2, keepdim=True))).squeeze(-2)
    if kind == "sumsoftmaxweight":
        e = torch.exp(terms - m)
        return (e * weight).sum(-2) / e.sum(-2)
    raise ValueError(f"the fuzzer has no reference for reduction kind {kind!r}")


def _to_array(per_pair: Tensor, variable: dict, case: dict) -> Tensor:
    """Per-pair contributions summed back to the shape of the variable's array."""
    target = dense.dense_shape(variable, case)
    extra = per_pair.dim() - len(target)
    g = per_pair.sum(dim=tuple(range(extra))) if extra > 0 else per_pair
    axes = tuple(d for d, size in enumerate(target) if size == 1 and g.shape[d] != 1)
    if axes:
        g = g.sum(dim=axes, keepdim=True)
    return g


def _compare(got: object, expected: Tensor, scale: Tensor, shape: tuple, what: str) -> int:
    expected_np = expected.detach().reshape(shape).numpy()
    scale_np = scale.detach().reshape(shape).numpy()
    got_np = np.zeros(shape) if got is None else as_numpy(got).astype(np.float64)
    if got_np.shape != tuple(shape):
        raise Mismatch(f"{what}: shape {got_np.shape}, expected {tuple(shape)}")
    known = np.isfinite(expected_np) & np.isfinite(scale_np)
    tolerance = RELATIVE * (scale_np + np.abs(expected_np)) + 1e-300
    with np.errstate(invalid="ignore"):
        bad = known & ~(np.abs(got_np - expected_np) <= tolerance)
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        with np.errstate(all="ignore"):
            ratios = np.where(bad, np.abs(got_np - expected_np) / (scale_np + 1e-300), 0)
        relative = float(ratios.max()) if np.isfinite(ratios).all() else float("inf")
        raise Mismatch(f"{what}{list(at)}: got {got_np[at]!r}, expected {expected_np[at]!r} "
                       f"(scale {scale_np[at]:.3g}; {int(bad.sum())} of {bad.size} entries differ)", relative)
    return int(known.sum())


def _near_tie(terms: Tensor, k: int) -> bool:
    ordered = torch.sort(terms, dim=-2).values
    if ordered.shape[-2] < 2:
        return False
    gaps = (ordered[..., 1:, :] - ordered[..., :-1, :]).abs()[..., : k + 1, :]
    scale = ordered.abs()[..., : k + 1, :] + 1
    return bool((gaps <= 1e-7 * scale[..., : gaps.shape[-2], :]).any())


def well_conditioned(terms: Bound) -> bool:
    """Forward terms known to ~1e-9 relative in float64: the derivatives are then meaningful to RELATIVE."""
    e, v = terms.error, terms.value
    return bool(torch.isfinite(v).all()) and bool((e <= 1e-9 * (v.abs() + 1)).all())


def check(case: dict, namespace: dict) -> int:
    """Raises Mismatch where keir's first (and second) derivatives differ; returns the number of entries checked."""
    reduction = case["reduction"]
    kind, k = reduction["kind"], reduction.get("k")
    m, n = dense.reduced_sizes(case)
    if k is not None and k > (n if reduction["axis"] == 1 else m):
        return 0
    variables = [v for v in case["vars"] if v["spelling"] != "Pm_number"]
    full = (*dense.batch_shape(case), m, n)
    leaves, bounds = [], {}
    for variable in case["vars"]:
        if variable["spelling"] == "Pm_number":
            continue
        value = dense.as_float64(namespace[array_name(variable)]).reshape(dense.dense_shape(variable, case))
        leaf = value.expand(*full, variable["dim"]).clone().requires_grad_()
        leaves.append(leaf)
        bounds[variable["name"]] = Bound(leaf, torch.zeros_like(leaf))
    for variable in case["vars"]:
        if variable["spelling"] == "Pm_number":
            bounds[variable["name"]] = dense.variable_bounds({**case, "vars": [variable]}, namespace, EXACT)[
                variable["name"]]
    terms, weight = dense.evaluate_terms(case, bounds, EXACT)
    if kind in ("min", "max", "Kmin") and _near_tie(terms.value.detach(), int(k or 1)):
        return 0  # which term is the minimum is decided by rounding: the derivative is not defined by the data
    expected = _reference_reduction(kind, k, terms.value, None if weight is None else weight.value)
    if not bool(torch.isfinite(expected).all()):
        return 0  # e.g. the log of a negative weighted sum: the forward is NaN, no derivative to compare
    cotangent = dense.as_float64(namespace["cotangent"])
    loss = (expected * cotangent).sum()
    order = case["grad"]["order"]
    per_pair = torch.autograd.grad(loss, leaves, create_graph=order == 2, allow_unused=True)
    checked = 0
    grads = []
    for variable, leaf, g, got in zip(variables, leaves, per_pair, namespace["grads"]):
        g = torch.zeros_like(leaf) if g is None else g
        shape = tuple(namespace[array_name(variable)].shape)
        grad = _to_array(g, variable, case)
        grads.append(grad.reshape(shape))
        checked += _compare(got, grad, _to_array(g.abs(), variable, case), shape, f"grad[{variable['name']}]")
    if order == 2:
        cotangents2 = [dense.as_float64(c) for c in namespace["cotangents2"]]
        second = sum((g * c).sum() for g, c in zip(grads, cotangents2))
        per_pair2 = torch.autograd.grad(second, leaves, allow_unused=True) if second.requires_grad else \
            [None] * len(leaves)
        for variable, leaf, g, got in zip(variables, leaves, per_pair2, namespace["grads2"]):
            g = torch.zeros_like(leaf) if g is None else g
            shape = tuple(namespace[array_name(variable)].shape)
            checked += _compare(got, _to_array(g, variable, case), _to_array(g.abs(), variable, case), shape,
                                f"grad2[{variable['name']}]")
    return checked
