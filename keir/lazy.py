"""The symbolic LazyTensor shared by the NumPy and PyTorch front ends.

A LazyTensor is a formula node plus the arrays its variables stand for: variable k of the node is
`self.arrays[k]`, with category "i" (indexed by the output row i), "j" (summed over) or "p" (a parameter).
Nothing is computed until a reduction (`.sum(axis=...)`, `@`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from keir.dialect.node import Node, constant, make, substitute, var, variables
from keir.dialect.ops import DimensionError

SUPPORTED_DTYPES = ("float32", "float64")


class ArrayAdapter:
    """How a front end reads its arrays (NumPy or torch) and gives results back."""

    name = "numpy"

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, np.ndarray)

    def dtype_name(self, array: Any) -> str:
        return np.dtype(array.dtype).name

    def to_numpy(self, array: Any) -> np.ndarray:
        return array

    def result(self, out: np.ndarray, like: Any) -> Any:
        return out

    def as_array(self, obj: Any) -> Any:
        return np.asarray(obj)


class LazyTensor:
    """A symbolic formula over arrays. Build it with Vi/Vj/Pm or LazyTensor(array) (pykeops shapes)."""

    adapter: ClassVar[ArrayAdapter] = ArrayAdapter()
    __slots__ = ("node", "arrays", "categories", "dtype")
    __array_priority__ = 1000  # NumPy defers `array * lazy` to LazyTensor.__rmul__

    node: Node
    arrays: tuple[Any, ...]
    categories: tuple[str, ...]
    dtype: str | None

    def __init__(self, x: Any, axis: int | None = None):
        if isinstance(x, numbers.Real) and not isinstance(x, bool):
            self._set(constant(float(x)), (), (), None)
            return
        if not self.adapter.is_array(x):
            raise TypeError(f"LazyTensor needs a {self.adapter.name} array or a number, got {type(x).__name__}")
        shape = tuple(x.shape)
        if axis is not None:  # Vi / Vj: x is (M, D) or (N, D)
            if len(shape) != 2:
                raise ValueError(
                    f"{'Vi' if axis == 0 else 'Vj'} needs a 2D array of shape (rows, dim), got shape {shape}"
                )
            category, array = ("i" if axis == 0 else "j"), x
        elif len(shape) == 3 and shape[1] == 1 and shape[0] != 1:
            category, array = "i", x[:, 0, :]
        elif len(shape) == 3 and shape[0] == 1 and shape[1] != 1:
            category, array = "j", x[0, :, :]
        elif len(shape) == 1:
            category, array = "p", x
        else:
            raise ValueError(
                "LazyTensor needs an array of shape (M, 1, D) (an i-variable), (1, N, D) (a j-variable) or "
                f"(D,) (a parameter); got shape {shape}"
            )
        dtype = self.adapter.dtype_name(array)
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"keir works on float32 and float64 arrays, got {dtype}")
        dim = array.shape[-1]
        if dim == 0:
            raise ValueError(f"a variable needs at least one component, got shape {shape}")
        self._set(var(0, category, dim), (array,), (category,), dtype)

    @classmethod
    def parameter(cls, x: Any) -> LazyTensor:
        """Pm(x): x of shape (D,), or a Python number (a dimension-1 parameter that takes the formula's dtype)."""
        if isinstance(x, numbers.Real) and not isinstance(x, bool):
            return cls._new(var(0, "p", 1), (float(x),), ("p",), None)
        if not cls.adapter.is_array(x) or len(x.shape) != 1:
            raise ValueError(f"Pm needs a number or a 1D array of shape (D,), got {getattr(x, 'shape', x)!r}")
        return cls(x)

    def _set(self, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
        self.node, self.arrays, self.categories, self.dtype = node, arrays, categories, dtype
        return self

    @classmethod
    def _new(cls, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
        return object.__new__(cls)._set(node, arrays, categories, dtype)

    # building formulas ---------------------------------------------------------------------------------
    def _lift(self, other: Any) -> LazyTensor:
        if isinstance(other, LazyTensor):
            return other
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return self._new(constant(float(other)), (), (), None)
        raise TypeError(f"cannot combine a LazyTensor with {type(other).__name__}")

    def _combine(self, other: Any, build: Callable[[Node, Node], Node]) -> LazyTensor:
        other = self._lift(other)
        if self.dtype and other.dtype and self.dtype != other.dtype:
            raise TypeError(f"mixed dtypes in one formula: {self.dtype} and {other.dtype}")
        arrays, categories = list(self.arrays), list(self.categories)
        renumber: dict[Node, Node] = {}
        for k, (array, category) in enumerate(zip(other.arrays, other.categories)):
            for position, (mine, my_category) in enumerate(zip(arrays, categories)):
                if mine is array and my_category == category:
                    break
            else:
                position = len(arrays)
                arrays.append(array)
                categories.append(category)
            if position != k:
                leaf = [v for v in variables(other.node) if v.attr("index") == k][0]
                renumber[leaf] = var(position, category, leaf.dim)
        other_node = substitute(other.node, renumber) if renumber else other.node
        node = build(self.node, other_node)
        return self._new(node, tuple(arrays), tuple(categories), self.dtype or other.dtype)

    def _unary(self, op: str, **attrs: Any) -> LazyTensor:
        return self._new(make(op, self.node, **attrs), self.arrays, self.categories, self.dtype)

    def _binary(self, op: str, other: Any) -> LazyTensor:
        return self._combine(other, lambda a, b: make(op, a, b))

    def _rbinary(self, op: str, other: Any) -> LazyTensor:
        return self._lift(other)._combine(self, lambda a, b: make(op, a, b))

    def __add__(self, other: Any) -> LazyTensor:
        return self._binary("add", other)

    def __radd__(self, other: Any) -> LazyTensor:
        return self._rbinary("add", other)

    def __sub__(self, other: Any) -> LazyTensor:
        return self._binary("sub", other)

    def __rsub__(self, other: Any) -> LazyTensor:
        return self._rbinary("sub", other)

    def __mul__(self, other: Any) -> LazyTensor:
        return self._binary("mul", other)

    def __rmul__(self, other: Any) -> LazyTensor:
        return self._rbinary("mul", other)

    def __truediv__(self, other: Any) -> LazyTensor:
        return self._binary("div", other)

    def __rtruediv__(self, other: Any) -> LazyTensor:
        return self._rbinary("div", other)

    def __neg__(self) -> LazyTensor:
        return self._unary("neg")

    def __abs__(self) -> LazyTensor:
        return self._unary("abs")

    def __pow__(self, exponent: Any) -> LazyTensor:
        if isinstance(exponent, numbers.Integral) and not isinstance(exponent, bool):
            return self.square() if exponent == 2 else self._unary("pow", exponent=int(exponent))
        if exponent == 0.5:
            return self.sqrt()
        if exponent == -0.5:
            return self.rsqrt()
        if isinstance(exponent, numbers.Real) and float(exponent).is_integer():
            return self ** int(exponent)
        raise ValueError(f"keir.pow takes an integer exponent (or 0.5, -0.5), got {exponent!r}")

    def exp(self) -> LazyTensor:
        return self._unary("exp")

    def log(self) -> LazyTensor:
        return self._unary("log")

    def sqrt(self) -> LazyTensor:
        return self._unary("sqrt")

    def rsqrt(self) -> LazyTensor:
        return self._unary("rsqrt")

    def square(self) -> LazyTensor:
        return self._unary("square")

    def abs(self) -> LazyTensor:
        return self._unary("abs")

    def sqnorm2(self) -> LazyTensor:
        return self._unary("sqnorm2")

    def sqdist(self, other: Any) -> LazyTensor:
        return self._binary("sqdist", other)

    def dot(self, other: Any) -> LazyTensor:
        return self._binary("dot", other)

    def __or__(self, other: Any) -> LazyTensor:  # pykeops spells the scalar product (x | y)
        return self.dot(other)

    def elem(self, index: int) -> LazyTensor:
        return self._unary("elem", index=int(index))

    def extract(self, start: int, length: int) -> LazyTensor:
        return self._unary("extract", start=int(start), length=int(length))

    def concat(self, other: Any) -> LazyTensor:
        return self._binary("concat", other)

    def __getitem__(self, key: Any) -> LazyTensor:
        if isinstance(key, numbers.Integral):
            index = key + self.node.dim if key < 0 else key
            return self.elem(index)
        if isinstance(key, slice):
            start, stop, step = key.indices(self.node.dim)
            if step != 1 or stop <= start:
                raise DimensionError(f"a LazyTensor slice must be a non-empty range with step 1, got {key}")
            return self.extract(start, stop - start)
        raise TypeError(f"LazyTensor indices are integers or slices, got {type(key).__name__}")

    @property
    def ndim(self) -> int:
        return self.node.dim

    # reductions ---------------------------------------------------------------------------------------
    def sum(self, axis: int | None = None, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """With no axis: the sum of the components (a LazyTensor). With axis=0 (over i) or 1 (over j): the
        reduction, computed now, or a callable `Reduction` if call=False."""
        axis = dim if axis is None else axis
        if axis is None:
            return self._unary("sum")
        return self._reduce("sum", axis, call, options)

    def sum_reduction(self, axis: int = 1, call: bool = True, **options: Any) -> Any:
        return self._reduce("sum", axis, call, options)

    def __matmul__(self, other: Any) -> Any:
        """K @ b: the matrix-vector product sum_j K_ij b_j, b of shape (N,) or (N, D)."""
        from_vector = False
        if self.adapter.is_array(other):
            array = other
            if len(array.shape) == 1:
                array, from_vector = array[:, None], True
            other = type(self)(array, axis=1)
        elif not isinstance(other, LazyTensor):
            raise TypeError(f"K @ b needs an array b, got {type(other).__name__}")
        if self.node.dim != 1:
            raise DimensionError(f"K @ b needs a scalar kernel K (dimension 1), got dimension {self.node.dim}")
        out = (self * other).sum(axis=1)
        return out[:, 0] if from_vector else out

    def _reduce(self, kind: str, axis: int, call: bool, options: dict[str, Any]) -> Any:
        from keir.reduction import Reduction

        if axis not in (0, 1, -1, -2):
            raise ValueError(f"a reduction's axis is 0 (over i) or 1 (over j), got {axis}")
        reduction = Reduction(self, kind, axis % 2, **options)
        return reduction() if call else reduction

    def __repr__(self) -> str:
        return f"LazyTensor({self.node!r}, dim={self.node.dim})"
