"""The differentiable torch form of keir.solve (the adjoint method; see keir.solve)."""

from __future__ import annotations

from typing import Any

import torch

from keir.solve import genred_solve_arrays, solve_arrays


class _KernelSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, kernel: Any, operator: Any, alpha: float, eps: float, iterations: int, b: torch.Tensor,
                *tensors: Any) -> torch.Tensor:
        detached = _with_arrays(kernel, [t.detach() if isinstance(t, torch.Tensor) else t for t in tensors])
        a = solve_arrays(detached, operator, b.detach(), alpha, eps, iterations)
        ctx.kernel, ctx.operator, ctx.alpha, ctx.eps, ctx.iterations = kernel, operator, alpha, eps, iterations
        ctx.save_for_backward(a, *(t for t in tensors if isinstance(t, torch.Tensor)))
        ctx.numbers = {k: t for k, t in enumerate(tensors) if not isinstance(t, torch.Tensor)}
        return a

    @staticmethod
    def backward(ctx: Any, grad_a: torch.Tensor) -> tuple[Any, ...]:
        a, *saved = ctx.saved_tensors
        saved = iter(saved)
        tensors = [ctx.numbers[k] if k in ctx.numbers else next(saved) for k in range(len(ctx.kernel.arrays))]
        detached = _with_arrays(ctx.kernel, [t.detach() if isinstance(t, torch.Tensor) else t for t in tensors])
        lam = solve_arrays(detached, ctx.operator, grad_a.detach(), ctx.alpha, ctx.eps, ctx.iterations)
        wanted = [k for k, t in enumerate(tensors) if isinstance(t, torch.Tensor) and ctx.needs_input_grad[6 + k]]
        grads: list[Any] = [None] * len(tensors)
        if wanted:
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(k in wanted) if isinstance(t, torch.Tensor) else t
                          for k, t in enumerate(tensors)]
                kernel = _with_arrays(ctx.kernel, leaves)
                ka = ctx.operator(kernel, a.detach())
                found = torch.autograd.grad(-(lam * ka).sum(), [leaves[k] for k in wanted], allow_unused=True)
            for k, g in zip(wanted, found):
                grads[k] = g
        return (None, None, None, None, None, lam, *grads)


def _with_arrays(kernel: Any, arrays: list[Any]) -> Any:
    return kernel.from_node(kernel.node, tuple(arrays), kernel.categories, kernel.dtype)


def differentiable_solve(kernel: Any, operator: Any, b: torch.Tensor, alpha: float, eps: float,
                         iterations: int) -> torch.Tensor:
    return _KernelSolve.apply(kernel, operator, alpha, eps, iterations, b, *kernel.arrays)


class _GenredSolve(torch.autograd.Function):
    """KernelSolve with torch: the same adjoint method as _KernelSolve, K given by a Genred linear in one
    argument (`position`); the gradient of -lambda^T K(a) reaches every other argument through keir's own
    differentiable reductions."""

    @staticmethod
    def forward(ctx: Any, genred: Any, position: int, alpha: float, eps: float, iterations: int,
                options: dict[str, Any], *arrays: torch.Tensor) -> torch.Tensor:
        detached = tuple(a.detach() for a in arrays)
        a = genred_solve_arrays(genred, detached, position, alpha, eps, iterations, options)
        ctx.genred, ctx.position, ctx.alpha, ctx.eps, ctx.iterations, ctx.options = (
            genred, position, alpha, eps, iterations, options)
        ctx.save_for_backward(a, *arrays)
        return a

    @staticmethod
    def backward(ctx: Any, grad_a: torch.Tensor) -> tuple[Any, ...]:
        a, *arrays = ctx.saved_tensors
        detached = tuple(t.detach() for t in arrays)
        lam = genred_solve_arrays(ctx.genred, (*detached[: ctx.position], grad_a.detach(),
                                                *detached[ctx.position + 1 :]),
                                   ctx.position, ctx.alpha, ctx.eps, ctx.iterations, ctx.options)
        needs = ctx.needs_input_grad[6:]
        wanted = [k for k in range(len(arrays)) if needs[k] and k != ctx.position]
        grads: list[Any] = [None] * len(arrays)
        if wanted:
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(k in wanted) for k, t in enumerate(arrays)]
                leaves[ctx.position] = a.detach()
                ka = ctx.genred(*leaves, **ctx.options)
                found = torch.autograd.grad(-(lam * ka).sum(), [leaves[k] for k in wanted], allow_unused=True)
            for k, g in zip(wanted, found):
                grads[k] = g
        if needs[ctx.position]:
            grads[ctx.position] = lam
        return (None, None, None, None, None, None, *grads)


def differentiable_genred_solve(genred: Any, arrays: tuple, position: int, alpha: float, eps: float,
                                iterations: int, options: dict[str, Any]) -> torch.Tensor:
    return _GenredSolve.apply(genred, position, alpha, eps, iterations, options, *arrays)
