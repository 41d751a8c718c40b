"""Complex arithmetic on real vectors, as KeOps does it: a complex vector of dimension D is a real vector of
dimension 2D holding interleaved (real, imaginary) pairs. These are the ops of KeOps' complex formula
language that are not spelled by other ops; ComplexAdd, ComplexSubtract, ComplexDivide, ComplexAbs and
ComplexAngle are built from them and the real ops (the composites below), ComplexRealScal is a plain product.

A complex scalar (dimension 2) broadcasts against a complex vector in ComplexMult, as in KeOps. Gradients
follow the real view: the cotangent of a complex value is the pair (dL/d re, dL/d im), which is torch's
convention for complex gradients (the conjugate Wirtinger derivative of a real loss, times 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.dialect.catalogue.lowering import tree_sum
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, make
from keir.dialect.ops import DimensionError


def as_complex(a: np.ndarray) -> np.ndarray:
    """Interleaved (re, im) components on the last axis, as complex numbers."""
    return a[..., 0::2] + 1j * a[..., 1::2]


def as_interleaved(z: np.ndarray) -> np.ndarray:
    """Complex numbers on the last axis, as interleaved (re, im) components."""
    z = np.asarray(z, dtype=complex)
    out = np.empty(z.shape[:-1] + (2 * z.shape[-1],))
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


def _check_even(name: str, dim: int) -> None:
    if dim % 2:
        raise DimensionError(f"keir.{name}: a complex operand has an even dimension (interleaved re, im pairs), "
                             f"got dimension {dim}")


def _halved(name: str) -> Any:
    def rule(dims: tuple[int, ...], attrs: Any) -> int:
        _check_even(name, dims[0])
        return dims[0] // 2

    return rule


def _doubled(dims: tuple[int, ...], attrs: Any) -> int:
    return 2 * dims[0]


def _even_same(name: str) -> Any:
    def rule(dims: tuple[int, ...], attrs: Any) -> int:
        _check_even(name, dims[0])
        return dims[0]

    return rule


def _mult_dim(dims: tuple[int, ...], attrs: Any) -> int:
    a, b = dims
    _check_even("complex_mult", a)
    _check_even("complex_mult", b)
    if a == b or b == 2:
        return a
    if a == 2:
        return b
    raise DimensionError(f"keir.complex_mult: complex operands of {a // 2} and {b // 2} components; they must be "
                         "equal or one of them must be a complex scalar")


def _complex_sum_dim(dims: tuple[int, ...], attrs: Any) -> int:
    _check_even("complex_sum", dims[0])
    return 2


def _complex_sum_t_dim(dims: tuple[int, ...], attrs: Any) -> int:
    if dims[0] != 2:
        raise DimensionError(f"keir.complex_sum_t: the operand is a complex scalar (dimension 2), got dimension "
                             f"{dims[0]}")
    size = attrs["dim"]
    if not isinstance(size, int) or size < 2 or size % 2:
        raise DimensionError(f"keir.complex_sum_t: dim must be a positive even integer, got {size!r}")
    return size


# ---- derivative rules ------------------------------------------------------------------------------------------


def conj(a: Node) -> Node:
    return make("conj", a)


def mult(a: Node, b: Node) -> Node:
    return make("complex_mult", a, b)


def spread(scalar: Node, dim: int) -> Node:
    """A complex scalar at dimension dim (a complex vector of dim // 2 equal components), or itself."""
    return scalar if scalar.dim == dim else make("complex_sum_t", scalar, dim=dim)


def _unspread(contribution: Node, operand: Node) -> Node:
    """A complex scalar operand was broadcast: its cotangent is the complex sum of the components'."""
    return contribution if contribution.dim == operand.dim else make("complex_sum", contribution)


def _mult_vjp(y: Node, e: Node) -> tuple[Node, Node]:
    a, b = y.args
    return _unspread(mult(conj(b), e), a), _unspread(mult(conj(a), e), b)


def _square_abs_vjp(y: Node, e: Node) -> tuple[Node]:
    (a,) = y.args  # d(re^2 + im^2) = 2 (re, im): each cotangent component goes to both parts of its pair
    both = make("add", make("real2complex", e), make("imag2complex", e))
    return (make("mul", make("mul", constant(2.0), a), both),)


# ---- KeOps' complex functions that are composites --------------------------------------------------------------


def _componentwise(op: str) -> Any:
    """ComplexAdd / ComplexSubtract: the real op on the components, a complex scalar spread first."""
    def build(a: Node, b: Node) -> Node:
        dim = max(a.dim, b.dim)
        return make(op, spread(a, dim), spread(b, dim))

    return build


add, subtract = _componentwise("add"), _componentwise("sub")


def divide(a: Node, b: Node) -> Node:
    """ComplexDivide, as KeOps: a conj(b) / |b|^2."""
    scale = make("real2complex", make("div", constant(1.0), make("complex_square_abs", b)))
    return make("complex_mult", scale, mult(a, conj(b)))


def modulus(a: Node) -> Node:
    """ComplexAbs."""
    return make("sqrt", make("complex_square_abs", a))


def angle(a: Node) -> Node:
    """ComplexAngle: atan2(im, re)."""
    return make("atan2", make("complex_imag", a), make("complex_real", a))


# Composites by KeOps name, for Genred
COMPOSITES = {"ComplexAdd": add, "ComplexSubtract": subtract, "ComplexDivide": divide, "ComplexAbs": modulus,
              "ComplexAngle": angle, "ComplexRealScal": lambda a, b: make("mul", a, b)}


# ---- lowerings (components: [re0, im0, re1, im1, ...]) -----------------------------------------------------------


def _pairs(xs: list[str]) -> list[tuple[str, str]]:
    return list(zip(xs[0::2], xs[1::2]))


def _product(b: Any, p: tuple[str, str], q: tuple[str, str]) -> list[str]:
    (a, c), (d, f) = p, q  # (a + ic)(d + if) = (ad - cf) + i(af + cd)
    return [b.fma(a, d, b.neg(b.mul(c, f))), b.fma(a, f, b.mul(c, d))]


def _lower_mult(b: Any, node: Node, operands: list[list[str]]) -> list[str]:
    x, y = (_pairs(xs) for xs in operands)
    count = max(len(x), len(y))
    x, y = x * (count if len(x) == 1 else 1), y * (count if len(y) == 1 else 1)
    return [part for p, q in zip(x, y) for part in _product(b, p, q)]


def _lower_exp(b: Any, node: Node, operands: list[list[str]]) -> list[str]:
    out = []
    for re, im in _pairs(operands[0]):
        modulus = b.routine("exp", re)
        out += [b.mul(modulus, b.routine("cos", im)), b.mul(modulus, b.routine("sin", im))]
    return out


def _lower_exp1j(b: Any, node: Node, operands: list[list[str]]) -> list[str]:
    return [part for x in operands[0] for part in (b.routine("cos", x), b.routine("sin", x))]


def _lower_sum(b: Any, node: Node, operands: list[list[str]]) -> list[str]:
    xs = operands[0]
    return [tree_sum(b, list(xs[0::2])), tree_sum(b, list(xs[1::2]))]


OPS = [
    Op("complex_mult", ("x", "y"), _mult_dim, "the complex product of a and b (a complex scalar broadcasts)",
       commutative=True, keops="ComplexMult", reference=lambda a, b: as_interleaved(as_complex(a) * as_complex(b)),
       vjp=_mult_vjp, lower=_lower_mult),
    Op("conj", ("x",), _even_same("conj"), "the complex conjugate of a", keops="Conj",
       reference=lambda a: as_interleaved(np.conj(as_complex(a))), vjp=lambda y, e: (conj(e),),
       lower=lambda b, node, xs: [v if k % 2 == 0 else b.neg(v) for k, v in enumerate(xs[0])]),
    Op("complex_exp", ("x",), _even_same("complex_exp"), "the complex exponential of a", keops="ComplexExp",
       reference=lambda a: as_interleaved(np.exp(as_complex(a))), vjp=lambda y, e: (mult(conj(y), e),),
       lower=_lower_exp),
    Op("complex_exp1j", ("x",), _doubled, "exp(i a) = (cos a, sin a) of a real a", keops="ComplexExp1j",
       reference=lambda a: as_interleaved(np.exp(1j * a)),
       vjp=lambda y, e: (make("complex_imag", mult(conj(y), e)),), lower=_lower_exp1j),
    Op("complex_real", ("x",), _halved("complex_real"), "the real parts of a", keops="ComplexReal",
       reference=lambda a: a[..., 0::2], vjp=lambda y, e: (make("real2complex", e),),
       lower=lambda b, node, xs: list(xs[0][0::2])),
    Op("complex_imag", ("x",), _halved("complex_imag"), "the imaginary parts of a", keops="ComplexImag",
       reference=lambda a: a[..., 1::2], vjp=lambda y, e: (make("imag2complex", e),),
       lower=lambda b, node, xs: list(xs[0][1::2])),
    Op("real2complex", ("x",), _doubled, "the real a as complex numbers (a + 0i)", keops="Real2Complex",
       reference=lambda a: as_interleaved(a + 0j), vjp=lambda y, e: (make("complex_real", e),),
       lower=lambda b, node, xs: [part for x in xs[0] for part in (x, b.const(0.0))]),
    Op("imag2complex", ("x",), _doubled, "the real a as imaginary numbers (0 + ai)", keops="Imag2Complex",
       reference=lambda a: as_interleaved(1j * a), vjp=lambda y, e: (make("complex_imag", e),),
       lower=lambda b, node, xs: [part for x in xs[0] for part in (b.const(0.0), x)]),
    Op("complex_sum", ("x",), _complex_sum_dim, "the sum of a's complex components, a complex scalar",
       keops="ComplexSum", reference=lambda a: as_interleaved(as_complex(a).sum(-1, keepdims=True)),
       vjp=lambda y, e: (spread(e, y.args[0].dim),), lower=_lower_sum),
    Op("complex_sum_t", ("x",), _complex_sum_t_dim, "the complex scalar a repeated as dim / 2 components",
       attrs=("dim",), keops="ComplexSumT", reference=lambda a, dim: np.tile(a, dim // 2),
       vjp=lambda y, e: (make("complex_sum", e),),
       lower=lambda b, node, xs: list(xs[0]) * (node.attr("dim") // 2)),
    Op("complex_square_abs", ("x",), _halved("complex_square_abs"), "|a|^2 of each complex component of a",
       keops="ComplexSquareAbs", reference=lambda a: np.abs(as_complex(a)) ** 2, vjp=_square_abs_vjp,
       lower=lambda b, node, xs: [b.fma(re, re, b.mul(im, im)) for re, im in _pairs(xs[0])]),
]
