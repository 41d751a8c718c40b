"""The case's arrays as dense Bounds of shape (*batch, M or 1, N or 1, D), and the terms of the reduction."""

from __future__ import annotations

import numpy as np
import torch

from .constants import number_value
from .program import array_name
from .semantics import Bound, Evaluator, Precision

Tensor = torch.Tensor


def dense_shape(variable: dict, case: dict) -> tuple[int, ...]:
    """Where the variable's array sits in the dense (*batch, M, N, D) array (1 on the axes it does not vary)."""
    rows = {"i": (case["M"], 1), "j": (1, case["N"]), "p": (1, 1)}[variable["category"]]
    batch = variable.get("batch") or [1] * len(case["batch"])
    if variable["spelling"] != "LazyTensor":
        batch = [1] * len(case["batch"])
    return (*batch, *rows, variable["dim"])


def as_float64(array: object) -> Tensor:
    if isinstance(array, torch.Tensor):
        return array.detach().to(torch.float64).clone()
    return torch.from_numpy(np.array(array, dtype=np.float64))


def variable_bounds(case: dict, namespace: dict, precision: Precision) -> dict[str, Bound]:
    bounds = {}
    for variable in case["vars"]:
        if variable["spelling"] == "Pm_number":  # a number parameter takes the formula's dtype
            value = number_value(variable["number"])
            rounded = precision.round(value)
            error = 0.0 if rounded == value or value != value else abs(value - rounded)
            shape = (1,) * (len(case["batch"]) + 3)
            bounds[variable["name"]] = Bound(torch.full(shape, value, dtype=torch.float64),
                                             torch.full(shape, error, dtype=torch.float64))
            continue
        value = as_float64(namespace[array_name(variable)]).reshape(dense_shape(variable, case))
        bounds[variable["name"]] = Bound(value, torch.zeros_like(value))
    return bounds


def reduced_sizes(case: dict) -> tuple[int, int]:
    """(M, N) as pykeops sees them: a category without variables has size 1."""
    categories = {v["category"] for v in case["vars"]}
    return (case["M"] if "i" in categories else 1), (case["N"] if "j" in categories else 1)


def batch_shape(case: dict) -> tuple[int, ...]:
    shapes = [dense_shape(v, case)[:-3] for v in case["vars"]]
    return tuple(torch.broadcast_shapes(*shapes)) if shapes else ()


def as_terms(bound: Bound, case: dict) -> Bound:
    """The formula's Bound broadcast to (*batch, rows, n, D) with the reduced axis second last."""
    m, n = reduced_sizes(case)
    shape = (*batch_shape(case), m, n, bound.value.shape[-1])
    value, error = bound.value.expand(shape), bound.error.expand(shape)
    if case["reduction"]["axis"] == 0:
        value, error = value.transpose(-3, -2), error.transpose(-3, -2)
    return Bound(value, error)


def evaluate_terms(case: dict, variables: dict[str, Bound], precision: Precision) -> tuple[Bound, Bound | None, bool]:
    """(the terms, the weight if any, whether derivatives are meaningful: see Evaluator.derivatives_known)."""
    evaluate = Evaluator(variables, precision)
    terms = as_terms(evaluate(case["formula"]), case)
    weight = case["reduction"].get("weight")
    weight = as_terms(evaluate(weight), case) if weight is not None else None
    return terms, weight, evaluate.derivatives_known
