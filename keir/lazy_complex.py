"""Complex LazyTensors (pykeops' ComplexLazyTensor), as a mixin of a front end's LazyTensor class.

A complex formula is a real formula whose components are interleaved (re, im) pairs, as in KeOps: a complex
array of shape (..., D) enters as its real view (..., 2D), the ops are the complex ops of the catalogue
(keir.dialect.catalogue.complex) and the real ones, and a reduction's real output (rows, 2D) is viewed back as
complex (rows, D). So both backends, the cache, batching and autograd serve complex formulas unchanged; torch's
gradients of complex inputs come from torch's own view_as_real / view_as_complex, with torch's conventions.

pykeops' rules for mixing (ComplexGenericLazyTensor): a real operand of dimension 1 scales a complex one
(ComplexRealScal: a plain product), any other real operand is made complex first (Real2Complex), and a complex
scalar broadcasts against a complex vector. Operations with no complex meaning (log, comparisons, min, ...)
raise TypeError instead of computing on the interleaved components.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

from keir.dialect.catalogue import complex as C
from keir.dialect.node import Node, constant_vector, make

# LazyTensor methods with no complex meaning, refused on complex LazyTensors (the elementwise catalogue methods
# are added by keir.lazy, which knows them).
REAL_ONLY = (
    "__pow__", "__lt__", "__le__", "__gt__", "__ge__", "sqdist", "dot", "__or__", "__ror__", "sqnorm2", "norm2",
    "normalize", "min", "max", "argmin", "argmax", "min_reduction", "max_reduction", "argmin_reduction",
    "argmax_reduction", "min_argmin", "max_argmax", "Kmin", "argKmin", "Kmin_argKmin", "logsumexp",
    "sumsoftmaxweight", "laplacian", "divergence", "trace_operator", "solve", "weightedsqnorm", "weightedsqdist",
    "round", "one_hot", "powf", "power", "inv", "sinc", "clamp",
)


def is_complex_number(x: Any) -> bool:
    """A Python or NumPy complex number (not a real one). Exact types first: an ABC isinstance check is slow."""
    if type(x) is complex:
        return True
    if type(x) in (float, int):
        return False
    return isinstance(x, numbers.Complex) and not isinstance(x, numbers.Real)


def interleaved_constant(values: list) -> Node:
    """The constant vector (re0, im0, re1, im1, ...) of complex numbers."""
    return constant_vector([part for v in values for part in (complex(v).real, complex(v).imag)])


class ComplexFormulas:
    """The complex side of a front end's LazyTensor class: `class ComplexLazyTensor(ComplexFormulas,
    LazyTensor)` with `real_class` the front end's LazyTensor."""

    __slots__ = ()
    is_complex: ClassVar[bool] = True
    matmul_kernel_dim: ClassVar[int] = 2  # K @ b takes a complex scalar kernel

    # ---- operands -------------------------------------------------------------------------------------------
    def _complex(self, other: Any) -> Any:
        """other as a LazyTensor (converted as LazyTensor(other) does), and whether it is complex."""
        other = self._lift(other)
        return other, other.is_complex

    def _as_complex(self, other: Any) -> Any:
        lifted, is_complex = self._complex(other)
        return lifted if is_complex else lifted.real2complex()

    def _pairwise(self, other: Any, build: Any) -> Any:
        return self._combine(self._as_complex(other), build)

    # ---- arithmetic (pykeops' mulop, addop, subop, divop) ---------------------------------------------------
    def __add__(self, other: Any) -> Any:
        return self._pairwise(other, C.add)

    def __radd__(self, other: Any) -> Any:
        return self._pairwise(other, lambda a, b: C.add(b, a))

    def __sub__(self, other: Any) -> Any:
        return self._pairwise(other, C.subtract)

    def __rsub__(self, other: Any) -> Any:
        return self._pairwise(other, lambda a, b: C.subtract(b, a))

    def __mul__(self, other: Any) -> Any:
        lifted, is_complex = self._complex(other)
        if not is_complex and lifted.node.dim == 1:  # ComplexRealScal: a real scalar scales both parts
            return self._combine(lifted, lambda a, b: make("mul", a, b))
        return self._pairwise(lifted, C.mult)

    __rmul__ = __mul__  # commutative

    def __truediv__(self, other: Any) -> Any:
        lifted, is_complex = self._complex(other)
        if not is_complex and lifted.node.dim == 1:
            return self._combine(lifted, lambda a, b: make("div", a, b))
        return self._pairwise(lifted, C.divide)

    def __rtruediv__(self, other: Any) -> Any:
        return self._pairwise(other, lambda a, b: C.divide(b, a))

    # ---- complex functions ----------------------------------------------------------------------------------
    def exp(self) -> Any:
        return self._unary("complex_exp")

    def conj(self) -> Any:
        return self._unary("conj")

    @property
    def real(self) -> Any:
        return self._real_result(make("complex_real", self.node))

    @property
    def imag(self) -> Any:
        return self._real_result(make("complex_imag", self.node))

    def __abs__(self) -> Any:
        return self._real_result(C.modulus(self.node))

    abs = __abs__

    def sqabs(self) -> Any:
        """|z|^2 of each component (KeOps' ComplexSquareAbs)."""
        return self._real_result(make("complex_square_abs", self.node))

    def angle(self) -> Any:
        """The argument of each component, atan2(im, re) (KeOps' ComplexAngle)."""
        return self._real_result(C.angle(self.node))

    def sum(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """Over i or j (a reduction, viewed as complex), or over the complex components (axis -1: ComplexSum)."""
        axis = axis if dim is None else dim
        if axis == -1 or axis == self.nbatchdims + 2:
            return self._unary("complex_sum")
        return self._reduce("sum", axis, call, options)

    def real2complex(self) -> Any:
        raise TypeError("real2complex is for real LazyTensors; this one is complex")

    def imag2complex(self) -> Any:
        raise TypeError("imag2complex is for real LazyTensors; this one is complex")

    def exp1j(self) -> Any:
        raise TypeError("exp1j is for real LazyTensors; for a complex z use (1j * z).exp()")

    def _real_result(self, node: Node) -> Any:
        result = self.real_class.from_node(node, self.arrays, self.categories, self.dtype)
        return self._ranged(result)

    # ---- pykeops' shape of a complex LazyTensor: complex components ----------------------------------------------
    @property
    def full_shape(self) -> tuple[int, ...]:
        *rest, components = super().full_shape
        return (*rest, components // 2)

    def __repr__(self) -> str:
        return f"ComplexLazyTensor({self.node!r}, complex dim={self.node.dim // 2})"


def _refused(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{name} is not defined for complex LazyTensors; take .real, .imag, abs() or .angle() "
                        "first")

    method.__name__ = method.__qualname__ = name
    return method


def refuse(names: Any) -> None:
    """Make the LazyTensor methods `names` raise on complex LazyTensors."""
    for name in names:
        if name not in vars(ComplexFormulas):
            setattr(ComplexFormulas, name, _refused(name))


refuse(REAL_ONLY)
