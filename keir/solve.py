"""K.solve(b): the solution a of (alpha Id + K) a = b by conjugate gradient, K a symmetric kernel matrix.

Each step multiplies by K with one keir reduction (compiled once, then cached). With torch tensors that need
gradients the solve is differentiable: the backward solves once more, with the incoming gradient g as the
right-hand side (lambda = (alpha Id + K)^-1 g, K being symmetric), gives lambda to b, and to the tensors inside
K the gradient of -lambda^T K a, itself a keir reduction — the same adjoint method as pykeops' KernelSolve.
"""

from __future__ import annotations

from typing import Any


def conjugate_gradient(matvec: Any, b: Any, eps: float, max_iterations: int) -> Any:
    """Solve matvec(a) = b for a symmetric positive definite operator; NumPy arrays or torch tensors, with one
    or several right-hand sides (columns, solved together as independent systems)."""
    a = 0 * b
    r = b - matvec(a) if max_iterations else b
    p = r
    rr = (r * r).sum(0)
    threshold = (eps**2) * (b * b).sum(0)
    for _ in range(max_iterations):
        if bool((rr <= threshold).all()):
            break
        kp = matvec(p)
        step = rr / (p * kp).sum(0)
        a = a + step * p
        r = r - step * kp
        rr_new = (r * r).sum(0)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return a


def solve(kernel: Any, b: Any, alpha: float = 1e-10, eps: float = 1e-6, max_iterations: int | None = None) -> Any:
    """(alpha Id + kernel) a = b. kernel: a scalar LazyTensor K(x_i, x_j) (symmetric, same points for i and
    j); b: an i-variable (Vi(b) / LazyTensor(b[:, None, :])) or an array of shape (M, D)."""
    lazy_type = type(kernel)
    if isinstance(b, lazy_type):
        if b.node.op != "var" or b.categories != ("i",):
            raise ValueError("solve: b must be an i-variable (Vi(b) or LazyTensor(b[:, None, :])) or an array")
        b = b.arrays[0]
    if kernel.node.dim != 1:
        raise ValueError(f"solve: the kernel must be scalar (dimension 1), got dimension {kernel.node.dim}")
    m, n = kernel._shape[-3:-1]
    if kernel.nbatchdims or m != n:
        raise ValueError(f"solve: the kernel matrix must be square and unbatched, got shape {kernel._shape}")
    if len(b.shape) != 2 or b.shape[0] != m:
        raise ValueError(f"solve: b must have shape ({m}, D), got {tuple(b.shape)}")
    iterations = max_iterations if max_iterations is not None else 10 * m + 10
    if kernel.adapter.name == "torch":
        from keir.solve_torch import differentiable_solve

        return differentiable_solve(kernel, b, alpha, eps, iterations)
    return _solve_arrays(kernel, b, alpha, eps, iterations)


def _solve_arrays(kernel: Any, b: Any, alpha: float, eps: float, iterations: int) -> Any:
    lazy_type = type(kernel)

    def matvec(p: Any) -> Any:
        return (kernel * lazy_type(p, axis=1)).sum(axis=1) + alpha * p

    return conjugate_gradient(matvec, b, eps, iterations)


def genred_solve(genred: Any, arrays: tuple, position: int, alpha: float, eps: float, iterations: int,
                 options: dict[str, Any]) -> Any:
    """KernelSolve: (alpha Id + K) a = arrays[position], K(v) = genred(arrays with v at `position`)."""
    if any(type(a).__module__.startswith("torch") for a in arrays):
        from keir.solve_torch import differentiable_genred_solve

        return differentiable_genred_solve(genred, arrays, position, alpha, eps, iterations, options)
    return _genred_solve_arrays(genred, arrays, position, alpha, eps, iterations, options)


def _genred_solve_arrays(genred: Any, arrays: tuple, position: int, alpha: float, eps: float, iterations: int,
                         options: dict[str, Any]) -> Any:
    def matvec(v: Any) -> Any:
        return genred(*arrays[:position], v, *arrays[position + 1 :], **options) + alpha * v

    return conjugate_gradient(matvec, arrays[position], eps, iterations)
