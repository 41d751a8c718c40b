"""PyTorch autograd for keir reductions, to any order.

A reduction over tensors that need a gradient runs as `KeirReduction.apply`. The forward runs the compiled
kernel. The backward builds, for each input that needs a gradient, the gradient reduction given by
`keir.dialect.derivatives.reduction_gradient` -- the reduction of a `keir.grad` of the formula, expanded by
the keir-differentiate pass when it compiles -- and runs it as an ordinary keir reduction of torch
tensors. That reduction goes through `KeirReduction.apply` in its turn, so a gradient is differentiable
again: `torch.autograd.grad(..., create_graph=True)` to any order, `torch.func.grad` of `torch.func.grad`.
Each gradient kernel is compiled once and cached like any other kernel.

`forward` takes no ctx and `setup_context` saves what `backward` and `jvp` need, which is what `torch.func`
asks of an autograd.Function. The two other torch.func rules:

- `vmap`: the batched dimension of each input becomes a leading batch dimension of the reduction (keir
  broadcasts batch dimensions as pykeops does), so a vmapped reduction is the same kernel, run per batch.
- `jvp` (forward mode): one keir reduction, the transpose of the VJP (`reduction_tangent`), whose formula
  keir-differentiate expands like any gradient; `jacfwd` and `hessian` are vmaps of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from keir.dialect import algebra
from keir.dialect.derivatives import SELECTING_ARG, reduction_gradient, reduction_tangent
from keir.dialect.node import Node, make, var, variables
from keir.dtypes import compute_dtype
from keir.reduction import Reduction

_is_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def needs_autograd(arrays: Sequence[Any]) -> bool:
    """Whether a reduction over these inputs must be recorded for autograd (or a torch.func transform)."""
    for a in arrays:  # a loop, not any(generator): this runs on every call
        if isinstance(a, torch.Tensor) and (a.requires_grad or _is_functorch_wrapped(a)):
            return True
    return False


def reduce(reduction: Reduction) -> torch.Tensor:
    """reduction() as a differentiable torch op."""
    return KeirReduction.apply(reduction, *reduction.lazy.arrays)


@dataclass(frozen=True)
class Plan:
    """What the backward needs to know about a reduction besides its input tensors."""

    root: Node  # the keir.reduce
    categories: tuple[str, ...]
    dtype: str
    threads: int | None
    lazy_type: type
    # sum_scheme and dtype_acc, which the gradient and tangent reductions (sums) keep
    sum_options: tuple[tuple[str, str], ...]
    # block-sparse ranges: a derivative reduction is over the same blocks (over i: their transposed half)
    ranges: tuple[Any, ...] | None = None
    precision: str = "sfu"  # the GPU's exp (keir.reduction.Reduction), kept by every derivative reduction

    @classmethod
    def of(cls, reduction: Reduction) -> Plan:
        lazy = reduction.lazy
        sum_options = tuple((k, v) for k, v in reduction.reduce_attrs.items() if k in ("sum_scheme", "dtype_acc"))
        # the real class: derivative reductions are of real components, even for a complex formula (whose
        # output only the user sees as complex)
        return cls(reduction.root, lazy.categories, lazy.dtype, reduction.threads, lazy.real_class, sum_options,
                   reduction.ranges, reduction.precision)

    def sum(self, formula: Node, arrays: list[Any], categories: list[str], axis: int) -> Reduction:
        """A sum reduction of formula over these arrays, with this reduction's dtype and options."""
        lazy = self.lazy_type.from_node(formula, tuple(arrays), tuple(categories), self.dtype)
        return Reduction(lazy, "sum", axis, self.threads, ranges=self.ranges, precision=self.precision,
                         **dict(self.sum_options))


class KeirReduction(torch.autograd.Function):
    @staticmethod
    def forward(reduction: Reduction, *inputs: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = reduction.compute(inputs)
        if isinstance(outputs, tuple):  # e.g. (values, indices)
            return tuple(_tensor(out) for out in outputs)
        return _tensor(outputs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        reduction, *arrays = inputs
        outputs = output if isinstance(output, tuple) else (output,)
        ctx.mark_non_differentiable(*(out for out in outputs if not out.is_floating_point()))
        ctx.plan = Plan.of(reduction)
        ctx.numbers = {k: a for k, a in enumerate(arrays) if not isinstance(a, torch.Tensor)}
        ctx.integer_outputs = len(outputs) - 1
        # the output too: rules such as logsumexp's use the output row's value
        saved = (*(a for a in arrays if isinstance(a, torch.Tensor)), outputs[0])
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, output = _saved(ctx, ctx.saved_tensors)
        grads: list[torch.Tensor | None] = [None]  # the Reduction argument
        for k, needed in enumerate(ctx.needs_input_grad[1:]):
            grads.append(input_gradient(ctx.plan, inputs, k, grad_outputs[0], output) if needed else None)
        return tuple(grads)

    @staticmethod
    def jvp(ctx: Any, _: None, *tangents: torch.Tensor | None) -> Any:
        inputs, output = _saved(ctx, ctx.saved_tensors)
        if not output.is_floating_point():  # indices only (argmin, argkmin): constant almost everywhere
            return None
        tangent = _output_tangent(ctx.plan, inputs, tangents, output)
        if ctx.integer_outputs:  # (values, indices): indices have no tangent
            return (tangent,) + (None,) * ctx.integer_outputs
        return tangent

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], reduction: Reduction, *inputs: Any) -> tuple[Any, Any]:
        output = reduction.over(_batched_first(reduction.lazy.categories, inputs, in_dims[1:]))()
        return output, (0,) * len(output) if isinstance(output, tuple) else 0


def _saved(ctx: Any, saved: tuple[torch.Tensor, ...]) -> tuple[list[Any], torch.Tensor]:
    """The reduction's inputs (numbers among them put back in place) and its first output."""
    *tensors, output = saved
    tensors = iter(tensors)
    count = len(ctx.plan.categories)
    return [ctx.numbers[k] if k in ctx.numbers else next(tensors) for k in range(count)], output


def _batched_first(categories: tuple[str, ...], inputs: tuple[Any, ...],
                   in_dims: tuple[int | None, ...]) -> list[Any]:
    """vmap's inputs with the vmapped dimension moved in front of each batched input's batch dimensions, and
    size-1 dimensions after it where the input has fewer batch dimensions than the others, so that keir's
    right-aligned broadcasting of batch dimensions lines the vmapped dimensions up."""

    def own_batch_dims(array: Any, category: str, vmapped: bool) -> int:
        return array.dim() - vmapped - (1 if category == "p" else 2) if isinstance(array, torch.Tensor) else 0

    depth = max(own_batch_dims(a, c, d is not None) for a, c, d in zip(inputs, categories, in_dims))
    moved = []
    for array, category, dim in zip(inputs, categories, in_dims):
        if dim is not None:
            array = array.movedim(dim, 0)
            padding = depth - own_batch_dims(array, category, True)
            array = array.reshape(array.shape[0], *(1,) * padding, *array.shape[1:])
        moved.append(array)
    return moved


@dataclass
class _Operands:
    """A derivative reduction's inputs: the forward's, then the variables it adds (cotangents, tangents...)."""

    arrays: list[Any]
    categories: list[str]

    def variable(self, array: Any, category: str) -> Node:
        """A new variable of this category holding `array`."""
        self.arrays.append(array)
        self.categories.append(category)
        return var(len(self.arrays) - 1, category, array.shape[-1])


def _output_tangent(plan: Plan, inputs: list[Any], tangents: tuple[torch.Tensor | None, ...],
                    output: torch.Tensor) -> torch.Tensor | None:
    """The tangent of the reduction's (first) output along the inputs' tangents, as one keir reduction of
    torch tensors (differentiable again, and vmappable); None where no input has a tangent."""
    output_category = "i" if plan.root.attr("axis") == 1 else "j"
    operands = _Operands(list(inputs), list(plan.categories))
    variable, arrays, categories = operands.variable, operands.arrays, operands.categories
    wrt = {var(k, plan.categories[k], inputs[k].shape[-1]): variable(t, plan.categories[k])
           for k, t in enumerate(tangents) if t is not None and isinstance(inputs[k], torch.Tensor)}
    if not wrt:
        return None
    selected = _selected_pairs(plan, inputs, variable) if plan.root.attr("kind") in SELECTING_ARG else None
    placeholder = variable(torch.zeros_like(output), output_category)  # vanishes from the expanded formula
    output_var = variable(output, output_category)
    tangent = reduction_tangent(plan.root, wrt, placeholder, output_var, selected)
    return plan.sum(tangent.args[0], arrays, categories, tangent.attr("axis"))()


def input_gradient(plan: Plan, inputs: list[Any], k: int, grad_output: torch.Tensor,
                    output: torch.Tensor) -> torch.Tensor:
    """The gradient of the reduction with respect to input k, contracted with grad_output, as a keir
    reduction of torch tensors (itself differentiable). Where it is zero (the gradient of x - x), zeros without
    a kernel, as torch and pykeops give: None would make torch.autograd.grad say the input is unused and leave
    `.grad` unset."""
    output_category = "i" if plan.root.attr("axis") == 1 else "j"
    operands = _Operands(list(inputs), list(plan.categories))
    variable, arrays, categories = operands.variable, operands.arrays, operands.categories
    wrt = var(k, plan.categories[k], inputs[k].shape[-1])
    cotangent = variable(grad_output, output_category)
    selected = _selected_pairs(plan, inputs, variable) if plan.root.attr("kind") in SELECTING_ARG else None
    output_var = var(len(arrays), output_category, output.shape[-1])
    gradient, sum_rows = reduction_gradient(plan.root, wrt, cotangent, output_var, selected)
    if output_var in variables(gradient):  # only then: else the output would get a (zero) gradient too
        variable(output, output_category)
    reduction = plan.sum(gradient.args[0], arrays, categories, gradient.attr("axis"))
    if reduction.is_zero:
        return torch.zeros_like(inputs[k])
    rows = reduction()
    # A parameter's gradient sums the rows (axis -2, before any batch axes' sum, which torch does itself when
    # it reduces a gradient to an input broadcast over batch dimensions).
    return rows.sum(-2) if sum_rows else rows


# Indices are compared as two float parts, j // 4096 and j % 4096: each is exact in float32 up to j = 2**36.
_INDEX_SPLIT = 4096


def _selected_pairs(plan: Plan, inputs: list[Any], variable: Callable[[Any, str], Node]) -> Node:
    """For a min or max reduction: the indicator of the pair each output component was taken from, per
    component, from the indices of the arg-reduction of the same formula (see SELECTING_ARG): exact where a
    comparison of the recomputed formula with the output is not."""
    axis = plan.root.attr("axis")
    output_category, reduced_category = ("i", "j") if axis == 1 else ("j", "i")
    detached = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in inputs)
    lazy = plan.lazy_type.from_node(plan.root.args[0], detached, plan.categories, plan.dtype)
    index = Reduction(lazy, SELECTING_ARG[plan.root.attr("kind")], axis, plan.threads, ranges=plan.ranges,
                      precision=plan.precision)()
    # the reduced axis' size; 1 when no variable is indexed by it (pykeops' rule for a missing size)
    size = next((a.shape[-2] for a, c in zip(inputs, plan.categories) if c == reduced_category), 1)
    dtype = getattr(torch, compute_dtype(plan.dtype))  # exact integers up to 2**24 (float16's stop at 2048)
    positions = torch.arange(size, device=index.device).reshape(*[1] * (index.dim() - 2), size, 1)
    matches = [
        make("eq", variable((index // _INDEX_SPLIT).to(dtype), output_category),
             variable((positions // _INDEX_SPLIT).to(dtype), reduced_category)),
        make("eq", variable((index % _INDEX_SPLIT).to(dtype), output_category),
             variable((positions % _INDEX_SPLIT).to(dtype), reduced_category)),
    ]
    return algebra.mul(*matches)


__all__ = ["KeirReduction", "needs_autograd", "reduce"]


def _tensor(out: Any) -> torch.Tensor:
    """A kernel's output as a tensor (the GPU backend already returns tensors)."""
    return out if isinstance(out, torch.Tensor) else torch.from_numpy(out)
