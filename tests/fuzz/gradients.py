"""First and second derivatives of a reduction (torch API) against torch autograd on the dense float64 form.

Each variable enters the dense formula as its own leaf broadcast over all (i, j) pairs, so autograd gives the
per-pair contributions: summed they are the gradient. The tolerance is relative to two scales:
  - the sum of the per-pair contributions in absolute value (contributions of both signs can cancel);
  - the magnitude of everything the derivative is computed from: the same backward sweep with every local
    derivative and cotangent taken in absolute value (`magnitudes`), the condition-number bound of the
    rounding of any implementation. Where terms cancel exactly -- the derivative of x / x, of normalize(x)
    for a 1-vector, a second derivative of a log-sum-exp over one term -- the true derivative is 0 and a
    correct result is rounding noise of that size, which the first scale (0) would call wrong.
The fuzzer only checks well-conditioned cases (forward terms known to ~1e-9).
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
# A derivative may differ from the float64 reference by ROUNDING unit roundoffs of the case's dtype times its
# magnitudes: the roundings along one path of the sweep and in sums of up to ~10^3 pairs.
ROUNDING = 2.0**14
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
    if kind == "logsumexp_weight":  # operands broadcast first: see magnitudes()
        e, w = torch.broadcast_tensors(torch.exp(terms - m), weight)
        return (m + torch.log((e * w).sum(-2, keepdim=True))).squeeze(-2)
    if kind == "sumsoftmaxweight":
        e, w = torch.broadcast_tensors(torch.exp(terms - m), weight)
        return (e * w).sum(-2) / e.sum(-2)
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


def magnitudes(output: Tensor, leaves: list[Tensor]) -> list[Tensor]:
    """The backward sweep of `output` (a scalar) with every node's result taken in absolute value: the sum over
    the paths from output to each leaf of |the product of the local derivatives along it|, where autograd
    gives the sum of the signed products. Exact for graphs of elementwise ops on operands of one shape (the
    dense evaluator broadcasts operands before each op) and of sums, broadcasts, slices, concatenations and
    gathers, whose local derivatives are >= 0; that is what the dense reference is made of."""
    seen, stack, handles = set(), [output.grad_fn], []

    def absolute(grad_inputs: tuple, grad_outputs: tuple) -> tuple:
        return tuple(None if g is None else g.abs() for g in grad_inputs)

    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        handles.append(node.register_hook(absolute))
        stack.extend(next_node for next_node, _ in node.next_functions)
    try:
        found = torch.autograd.grad(output, leaves, retain_graph=True, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, found)]


def _compare(got: object, expected: Tensor, scale: Tensor, magnitude: Tensor, unit: float, shape: tuple,
             what: str) -> int:
    """got against expected, within RELATIVE of the scales (see the module docstring): `scale` the sum of the
    per-pair contributions in absolute value, `magnitude` the absolute backward sweep, `unit` the roundoff of
    the case's dtype."""
    expected_np = expected.detach().reshape(shape).numpy()
    scale_np = scale.detach().reshape(shape).numpy()
    magnitude_np = magnitude.detach().reshape(shape).numpy()
    got_np = np.zeros(shape) if got is None else as_numpy(got).astype(np.float64)
    if got_np.shape != tuple(shape):
        raise Mismatch(f"{what}: shape {got_np.shape}, expected {tuple(shape)}")
    known = np.isfinite(expected_np) & np.isfinite(scale_np) & ~np.isnan(magnitude_np)
    with np.errstate(invalid="ignore", over="ignore"):
        reference = scale_np + np.abs(expected_np) + (ROUNDING * unit / RELATIVE) * magnitude_np + 1e-300
        bad = known & ~(np.abs(got_np - expected_np) <= RELATIVE * reference)
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        with np.errstate(all="ignore"):
            ratios = np.where(bad, np.abs(got_np - expected_np) / reference, 0)
        relative = float(ratios.max()) if np.isfinite(ratios).all() else float("inf")
        raise Mismatch(f"{what}{list(at)}: got {got_np[at]!r}, expected {expected_np[at]!r} "
                       f"(scale {scale_np[at]:.3g}, magnitude {magnitude_np[at]:.3g}; {int(bad.sum())} of "
                       f"{bad.size} entries differ)", relative)
    return int(known.sum())


# The log-sum-exp family's derivatives go through the softmax weights exp(f - y), y the stored output: any
# implementation that keeps y (pykeops, keir, torch's own logsumexp backward) recomputes f - y with an absolute
# error of a few roundings of |f| + |y|, a relative error of the weights of about SOFTMAX_ROUNDINGS u (|f| + |y|),
# which the reference (exp(f - max f), exact) does not have. The magnitudes are scaled by it; past SOFTMAX_LIMIT
# the weights are not known at all and the derivatives are not compared.
SOFTMAX_KINDS = ("logsumexp", "logsumexp_weight", "sumsoftmaxweight")
SOFTMAX_ROUNDINGS = 16
SOFTMAX_LIMIT = 0.1


def _softmax_conditioning(kind: str, terms: Tensor, output: Tensor, unit: float) -> float:
    """The relative error of the softmax weights any log-sum-exp backward computes (0 for other kinds)."""
    if kind not in SOFTMAX_KINDS:
        return 0.0
    largest = float(terms.abs().nan_to_num(posinf=0.0).amax()) + float(output.abs().nan_to_num(posinf=0.0).amax())
    return SOFTMAX_ROUNDINGS * unit * largest


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
    terms, weight, _ = dense.evaluate_terms(case, bounds, EXACT)
    if kind in ("min", "max", "Kmin") and _near_tie(terms.value.detach(), int(k or 1)):
        return 0  # which term is the minimum is decided by rounding: the derivative is not defined by the data
    expected = _reference_reduction(kind, k, terms.value, None if weight is None else weight.value)
    if not bool(torch.isfinite(expected).all()):
        return 0  # e.g. the log of a negative weighted sum: the forward is NaN, no derivative to compare
    cotangent = dense.as_float64(namespace["cotangent"])
    loss = torch.mul(*torch.broadcast_tensors(expected, cotangent)).sum()
    order = case["grad"]["order"]
    unit = Precision.of(case["dtype"]).unit
    conditioning = _softmax_conditioning(kind, terms.value.detach(), expected.detach(), unit)
    if conditioning > SOFTMAX_LIMIT:
        return 0  # the softmax weights are not determined by a stored log-sum-exp: nothing to compare
    if loss.requires_grad:
        per_pair = torch.autograd.grad(loss, leaves, create_graph=order == 2, retain_graph=True, allow_unused=True)
        sizes = [size * (1 + conditioning / (ROUNDING * unit)) for size in magnitudes(loss, leaves)]
    else:  # a formula that folds to a constant (`x.exp().pow(0)`): every derivative is 0
        per_pair, sizes = [None] * len(leaves), [torch.zeros_like(leaf) for leaf in leaves]
    checked = 0
    grads = []
    for variable, leaf, g, size, got in zip(variables, leaves, per_pair, sizes, namespace["grads"]):
        g = torch.zeros_like(leaf) if g is None else g
        shape = tuple(namespace[array_name(variable)].shape)
        grad = _to_array(g, variable, case)
        grads.append(grad.reshape(shape))
        checked += _compare(got, grad, _to_array(g.abs(), variable, case), _to_array(size, variable, case), unit,
                            shape, f"grad[{variable['name']}]")
    if order == 2:
        cotangents2 = [dense.as_float64(c) for c in namespace["cotangents2"]]
        second = sum((g * c).sum() for g, c in zip(grads, cotangents2))
        if second.requires_grad:
            per_pair2 = torch.autograd.grad(second, leaves, retain_graph=True, allow_unused=True)
            sizes2 = [size * (1 + conditioning / (ROUNDING * unit)) for size in magnitudes(second, leaves)]
        else:
            per_pair2, sizes2 = [None] * len(leaves), [torch.zeros_like(leaf) for leaf in leaves]
        for variable, leaf, g, size, got in zip(variables, leaves, per_pair2, sizes2, namespace["grads2"]):
            g = torch.zeros_like(leaf) if g is None else g
            shape = tuple(namespace[array_name(variable)].shape)
            checked += _compare(got, _to_array(g, variable, case), _to_array(g.abs(), variable, case),
                                _to_array(size, variable, case), unit, shape, f"grad2[{variable['name']}]")
    return checked
