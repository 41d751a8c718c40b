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


# pykeops' reduction options that solve passes on to each product by K
SOLVE_OPTIONS = ("backend", "device_id", "dtype_acc", "use_double_acc", "sum_scheme", "enable_chunks", "ranges")


class LinearOperator:
    """p -> K p for the solve: `(kernel * Vj(p)).sum(axis=1)`, or, with pykeops' `var=`, the kernel formula
    (linear in the symbolic j-variable `index`) reduced over j with p given for that variable."""

    def __init__(self, index: int | None, options: dict[str, Any]):
        self.index, self.options = index, options

    def __call__(self, kernel: Any, p: Any) -> Any:
        if self.index is None:
            return (kernel * type(kernel)(p, axis=1)).sum(axis=1, **self.options)
        reduction = kernel.sum(axis=kernel.nbatchdims + 1, call=False, **self.options)
        return reduction(*([None] * self.index), p)


def solve(kernel: Any, b: Any, var: Any = None, call: bool = True, alpha: float = 1e-10, eps: float = 1e-6,
          max_iterations: int | None = None, **options: Any) -> Any:
    """(alpha Id + K) a = b, pykeops' LazyTensor.solve. kernel: a scalar LazyTensor K(x_i, x_j) (symmetric,
    same points for i and j), or with `var` (a symbolic j-variable, `Vj(index, dim)`) a formula linear in
    var; b: an i-variable (Vi(b) / LazyTensor(b[:, None, :])) or an array of shape (M, D). options: pykeops'
    reduction options (SOLVE_OPTIONS), applied to every product by K."""
    from keir.symbolic import SymbolicVariable

    unknown = set(options) - set(SOLVE_OPTIONS)
    if unknown:
        raise TypeError(f"solve got unexpected option(s) {', '.join(sorted(unknown))}")
    if not call:
        raise ValueError("solve(call=False) (a callable for a symbolic right-hand side) is not supported: give b")
    lazy_type = type(kernel)
    if isinstance(b, lazy_type):
        if b.node.op != "var" or b.categories != ("i",) or isinstance(b.arrays[0], SymbolicVariable):
            raise ValueError("solve: b must be an i-variable (Vi(b) or LazyTensor(b[:, None, :])) or an array")
        b = b.arrays[0]
    index = None
    if var is not None:
        index = _unknown_index(kernel, var)
    elif kernel.node.dim != 1:
        raise ValueError(f"solve: the kernel must be scalar (dimension 1), got dimension {kernel.node.dim}")
    elif kernel.symbolic_variables:
        raise ValueError("solve: the kernel has symbolic variables; say which one is the unknown with var=")
    m, n = kernel.full_shape[-3:-1] if index is None else (kernel.full_shape[-3], kernel.full_shape[-3])
    if kernel.nbatchdims or m != n:
        raise ValueError(f"solve: the kernel matrix must be square and unbatched, got shape {kernel.full_shape}")
    if len(b.shape) != 2 or b.shape[0] != m:
        raise ValueError(f"solve: b must have shape ({m}, D), got {tuple(b.shape)}")
    if index is not None and b.shape[1] != var.node.dim:
        raise ValueError(f"solve: b has {b.shape[1]} columns, the unknown var has dimension {var.node.dim}")
    iterations = max_iterations if max_iterations is not None else 10 * m + 10
    return kernel.adapter.solve(kernel, LinearOperator(index, options), b, alpha, eps, iterations)


def _unknown_index(kernel: Any, var: Any) -> int:
    """The index of pykeops' `var`: a symbolic j-variable, the only symbolic variable of the kernel formula,
    of which the formula is a vector of var's dimension."""
    from keir.symbolic import SymbolicVariable

    if not (isinstance(var, type(kernel)) and var.node.op == "var" and isinstance(var.arrays[0], SymbolicVariable)
            and var.categories == ("j",)):
        raise ValueError("solve: var must be a symbolic j-variable, Vj(index, dim)")
    (index, dim, _), symbols = var.symbolic_variables[0], kernel.symbolic_variables
    if symbols != ((index, dim, 1),):
        raise ValueError(f"solve: the formula's only symbolic variable must be var {(index, dim, 1)}, got {symbols}")
    if kernel.node.dim != dim:
        raise ValueError(f"solve: a formula linear in var has var's dimension {dim}, got {kernel.node.dim}")
    return index


def solve_arrays(kernel: Any, operator: LinearOperator, b: Any, alpha: float, eps: float, iterations: int) -> Any:
    """(alpha Id + K) a = b by conjugate gradient, not recorded for autograd."""
    return conjugate_gradient(lambda p: operator(kernel, p) + alpha * p, b, eps, iterations)


def genred_solve_arrays(genred: Any, arrays: tuple, position: int, alpha: float, eps: float, iterations: int,
                        options: dict[str, Any]) -> Any:
    """KernelSolve: (alpha Id + K) a = arrays[position], K(v) = genred(arrays with v at `position`), by conjugate
    gradient, not recorded for autograd."""
    def matvec(v: Any) -> Any:
        return genred(*arrays[:position], v, *arrays[position + 1 :], **options) + alpha * v

    return conjugate_gradient(matvec, arrays[position], eps, iterations)
