"""The symbolic LazyTensor shared by the NumPy and PyTorch front ends.

A LazyTensor is a formula node plus the arrays its variables stand for: variable k of the node is
`self.arrays[k]`, with category "i" (indexed by the output row i), "j" (summed over) or "p" (a parameter).
Nothing is computed until a reduction (`.sum(axis=...)`, `@`).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, constant_vector, interned, make, substitute, swap_i_j, var
from keir.dialect.ops import OPS, DimensionError
from keir.dtypes import HALF_DTYPES, check_supported
from keir.formula_parser import carry_composite_names, format_formula
from keir.lazy_complex import ComplexFormulas, interleaved_constant, is_complex_number, refuse
from keir.lazy_composites import Composites
from keir.lazy_reductions import Reductions
from keir.ranges import swap_axes
from keir.symbolic import SymbolicVariable, symbolic_variable


def _pykeops_variable(x: Any, shape: tuple[int, ...]) -> tuple[str | None, Any]:
    """(category, array without its singleton axis): i-variables become (*batch, M, D), j-variables
    (*batch, N, D), parameters (*batch, D)."""
    rows, cols = shape[-3], shape[-2]
    if cols == 1 and rows != 1:
        return "i", x[..., :, 0, :]
    if rows == 1 and cols != 1:
        return "j", x[..., 0, :, :]
    if rows == 1 and cols == 1:
        return "p", x[..., 0, 0, :]
    return None, x


def _non_array(x: Any, axis: int | None, front: str) -> tuple[Node, tuple, tuple, str | None]:
    """(node, arrays, categories, dtype) of a LazyTensor made from a number, a list of numbers or a symbolic
    variable's (index, dim, category) triplet."""
    if isinstance(x, tuple):
        if axis is not None:
            raise ValueError("LazyTensor((index, dim, category)) takes no axis")
        if len(x) != 3:
            raise ValueError(f"LazyTensor(tuple) is a symbolic variable (index, dim, category), got {x!r}")
        variable = symbolic_variable(*x)
        return var(0, variable.category, variable.dim), (variable,), (variable.category,), None
    if _is_number(x):
        return constant(float(x)), (), (), None
    if isinstance(x, list) and x and all(_is_number(v) for v in x):
        # pykeops makes a parameter of the formula's dtype; constants compute the same values
        return constant_vector([float(v) for v in x]), (), (), None
    raise TypeError(f"LazyTensor needs a {front} array, a number, a list of numbers or (index, dim, category), "
                    f"got {type(x).__name__}")


def _renumbered(lazy: LazyTensor, arrays: tuple, categories: tuple) -> tuple[Node, tuple, tuple]:
    """lazy's node with its variables renumbered to their positions in (arrays, categories), extended with
    the variables that are not there yet; and the extended lists."""
    renumber: dict[Node, Node] = {}
    for k, array in enumerate(lazy.arrays):
        category = lazy.categories[k]
        position = _position(array, category, arrays, categories)
        if position == len(arrays):
            arrays += (array,)
            categories += (category,)
        if position != k:
            dim = 1 if isinstance(array, float) else int(array.shape[-1])
            renumber[var(k, category, dim)] = var(position, category, dim)
    node = lazy.node
    if not renumber:
        return node, arrays, categories
    if node.op == "var":  # a bare variable (Vi(x), Vj(y)) is just renamed
        return renumber.get(node, node), arrays, categories
    return _substituted(node, tuple(renumber.items())), arrays, categories


@functools.lru_cache(maxsize=1024)
def _substituted(node: Node, renaming: tuple[tuple[Node, Node], ...]) -> Node:
    """substitute(), remembered: rebuilding a formula renames the variables of the same subformulas each time."""
    mapping = dict(renaming)
    renamed = substitute(node, mapping)  # first: it holds the images that carry_composite_names names weakly
    carry_composite_names(node, lambda part: substitute(part, mapping))
    return renamed


def _position(array: Any, category: str, arrays: tuple, categories: tuple) -> int:
    """The index of `array` under `category` in the variable list, len(arrays) if it is not there."""
    for position, mine in enumerate(arrays):
        if mine is array and categories[position] == category:
            return position
    return len(arrays)


def _merged_dtype(mine: str | None, other: str | None) -> str | None:
    if other is None or other == mine:
        return mine
    if mine is not None:
        raise TypeError(f"mixed dtypes in one formula: {mine} and {other}")
    return other


def _is_number(x: Any) -> bool:
    """A real number, not a bool. The exact-type test first: an ABC isinstance check costs a while."""
    return type(x) in (float, int) or (isinstance(x, numbers.Real) and not isinstance(x, bool))


_NUMPY_DTYPE_NAMES = {np.dtype(name): name for name in ("float32", "float64", "float16")}  # dtype.name: slow (µs)
_NUMPY_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}
_REAL_TYPES = (float, int)  # operands that are certainly not complex, tested first (the common case)


class ArrayAdapter:
    """How a front end reads its arrays (NumPy or torch) and gives results back."""

    name = "numpy"

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, np.ndarray)

    def dtype_name(self, array: Any) -> str:
        return _NUMPY_DTYPE_NAMES.get(array.dtype) or np.dtype(array.dtype).name

    def to_numpy(self, array: Any) -> np.ndarray:
        return array

    def is_complex_array(self, array: Any) -> bool:
        return array.dtype.kind == "c"

    def real_view(self, array: Any) -> Any:
        """A complex array (..., D) as its interleaved real components (..., 2D), sharing memory if it can."""
        return np.ascontiguousarray(array).view(array.real.dtype)

    def complex_view(self, out: Any) -> Any:
        """A real result (..., 2D) of interleaved pairs as complex numbers (..., D)."""
        return np.ascontiguousarray(out).view(_NUMPY_COMPLEX[out.dtype])

    def to_float32(self, array: Any) -> Any:
        """A half-precision array as the float32 array it is computed in."""
        return array.astype(np.float32)

    def rounded(self, out: Any, dtype: str) -> Any:
        """A float32 result rounded to the half dtype `dtype` (bfloat16: ml_dtypes', which made the input);
        indices stay int64."""
        return out.astype(np.dtype(dtype)) if out.dtype.kind == "f" else out

    def numpy_inputs(self, arrays: tuple, dtype: np.dtype) -> list[np.ndarray]:
        """A reduction's inputs as NumPy arrays, a number parameter as a 1-element array of the formula's dtype."""
        return [np.array([a], dtype=dtype) if isinstance(a, float) else self.to_numpy(a) for a in arrays]

    def on_cuda(self, arrays: tuple) -> bool:
        """Whether any of these inputs (arrays of this front end, or numbers) lives on a CUDA device."""
        return False

    def cuda_device(self, arrays: tuple) -> int | None:
        """The index of the CUDA device the inputs live on, None if none does."""
        return None

    def device_inputs(self, arrays: tuple) -> list[Any]:
        """The inputs of a GPU kernel when they live on the device (a number parameter joins them there)."""
        raise TypeError("NumPy arrays never live on a CUDA device")

    def stack(self, parts: list[Any]) -> Any:
        """The outputs of the batch entries of a reduction as one array."""
        return np.stack(parts)

    def needs_autograd(self, arrays: tuple) -> bool:
        """Whether a reduction over these inputs must be recorded for autograd."""
        return False

    def tracing(self, arrays: tuple) -> bool:
        """Whether a compiler of this front end (torch.compile, torch.export) traces the call instead of
        running it."""
        return False
    def result(self, out: np.ndarray, like: Any) -> Any:
        return out

    def as_array(self, obj: Any) -> Any:
        return np.asarray(obj)

    # A front end whose arrays can need autograd or be traced also gives `differentiable(reduction)` and
    # `traced(reduction)`, which Reduction calls then (keir.torch's adapter: keir.autograd, keir.torch_ops).

    def solve(self, kernel: Any, operator: Any, b: Any, alpha: float, eps: float, iterations: int) -> Any:
        """LazyTensor.solve's conjugate gradient (keir.solve); the torch adapter's is differentiable."""
        from keir.solve import solve_arrays

        return solve_arrays(kernel, operator, b, alpha, eps, iterations)

    def genred_solve(self, genred: Any, arrays: tuple, position: int, alpha: float, eps: float, iterations: int,
                     options: dict[str, Any]) -> Any:
        """KernelSolve's conjugate gradient (keir.solve); the torch adapter's is differentiable."""
        from keir.solve import genred_solve_arrays

        return genred_solve_arrays(genred, arrays, position, alpha, eps, iterations, options)


class LazyTensor(Reductions, Composites):
    """A symbolic formula over arrays. Build it with Vi/Vj/Pm or LazyTensor(array) (pykeops shapes)."""

    adapter: ClassVar[ArrayAdapter] = ArrayAdapter()
    # The front end's real and complex LazyTensor classes (set where each front end defines them)
    real_class: ClassVar[type]
    complex_class: ClassVar[type]
    matmul_kernel_dim: ClassVar[int] = 1  # K @ b takes a scalar kernel
    # _ranges: pykeops' block-sparse ranges (the `ranges` property), unset on most LazyTensors
    __slots__ = ("node", "arrays", "categories", "dtype", "_ranges")
    __array_priority__ = 1000  # NumPy defers `array * lazy` to LazyTensor.__rmul__

    node: Node
    arrays: tuple[Any, ...]
    categories: tuple[str, ...]
    dtype: str | None

    def __init__(self, x: Any, axis: int | None = None):
        """x: an array (pykeops shapes, or 2D with axis=0 / 1, or 0D / 1D: a parameter), a number, a list of
        numbers (a constant vector), or a triplet (index, dim, category) of integers: a symbolic variable.
        A complex array or number makes a complex LazyTensor (pykeops' ComplexLazyTensor)."""
        if not self.adapter.is_array(x):
            if is_complex_number(x) or (isinstance(x, list) and any(is_complex_number(v) for v in x)):
                self._set(interleaved_constant(x if isinstance(x, list) else [x]), (), (), None)
                self.__class__ = self.complex_class
                return
            if self.is_complex:
                raise TypeError(f"ComplexLazyTensor takes complex arrays or numbers, got {type(x).__name__}")
            self._set(*_non_array(x, axis, self.adapter.name))
            return
        shape = x.shape
        if len(shape) == 0:  # a 0D array is a parameter of dimension 1, as in pykeops
            x, shape = x.reshape(1), (1,)
        complex_input = self.adapter.is_complex_array(x)
        if complex_input:  # its interleaved (re, im) components: the last axis doubles
            x = self.adapter.real_view(x)
            shape = x.shape
        elif self.is_complex:
            raise TypeError("ComplexLazyTensor takes complex arrays or numbers; make a real LazyTensor complex with "
                            ".real2complex() or .imag2complex()")
        category, array = None, x
        if axis in (0, 1):  # Vi / Vj: x is (M, D) or (N, D)
            if len(shape) != 2:
                raise ValueError(
                    f"{'Vi' if axis == 0 else 'Vj'} needs a 2D array of shape (rows, dim), got shape {tuple(shape)}"
                )
            category = "i" if axis == 0 else "j"
        elif axis not in (None, 2):
            raise ValueError(f"axis is 0 (i), 1 (j) or 2 (a parameter), got {axis!r}")
        elif len(shape) == 1:
            category = "p"
        elif len(shape) >= 3 and axis is None:  # pykeops shapes, with optional batch dimensions in front
            category, array = _pykeops_variable(x, tuple(shape))
        if category is None:
            raise ValueError(
                "LazyTensor needs an array of shape (..., M, 1, D) (an i-variable), (..., 1, N, D) (a j-variable), "
                f"(..., 1, 1, D) or (D,) (a parameter), where ... are batch dimensions; got shape {tuple(shape)}"
            )
        dtype = self.adapter.dtype_name(array)
        check_supported(dtype)
        if dtype in HALF_DTYPES:  # computed in float32 (keir.dtypes)
            array = self.adapter.to_float32(array)
        dim = int(shape[-1])  # a plain int even where torch.compile traces with symbolic sizes
        if dim == 0:
            raise ValueError(f"a variable needs at least one component, got shape {tuple(shape)}")
        self._set(var(0, category, dim), (array,), (category,), dtype)
        if complex_input:
            self.__class__ = self.complex_class

    @classmethod
    def variable(cls, x: Any, dim: int | None, category: int) -> LazyTensor:
        """Vi / Vj / Pm: an array (category 0: i, 1: j, 2: a parameter), or with `dim`, the symbolic variable
        of index x (pykeops' Vi(0, 3))."""
        if dim is not None:
            return cls((x, dim, category))
        if category == 2:
            return cls.parameter(x)
        return cls(x, axis=category)

    @classmethod
    def parameter(cls, x: Any) -> LazyTensor:
        """Pm(x): x of shape (D,), or a Python number (a dimension-1 parameter that takes the formula's dtype)."""
        if _is_number(x):
            return cls.from_node(var(0, "p", 1), (float(x),), ("p",), None)
        if isinstance(x, list):
            return cls(x)
        if not cls.adapter.is_array(x) or len(x.shape) > 1:
            raise ValueError(f"Pm needs a number or a 1D array of shape (D,), got {getattr(x, 'shape', x)!r}")
        return cls(x)

    def _set(self, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
        self.node, self.arrays, self.categories, self.dtype = node, arrays, categories, dtype
        return self

    @classmethod
    def from_node(cls, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
        """The LazyTensor of formula `node` over `arrays` (variable k of the formula is arrays[k], of category
        categories[k]), built without checks: the constructor that the rest of keir uses."""
        self = object.__new__(cls)
        self.node, self.arrays, self.categories, self.dtype = node, arrays, categories, dtype
        return self

    # building formulas ---------------------------------------------------------------------------------
    def _lift(self, other: Any) -> LazyTensor:
        """other as a LazyTensor, converted as LazyTensor(other) does: a number, a list of numbers, or an array
        of this front end (0D / 1D: a parameter, pykeops shapes: a variable)."""
        if isinstance(other, LazyTensor):
            return other
        if _is_number(other):
            return self.real_class.from_node(constant(float(other)), (), (), None)
        if self.adapter.is_array(other) or isinstance(other, list) or is_complex_number(other):
            return self.real_class(other)  # complex for complex arrays and numbers
        raise TypeError(f"cannot combine a LazyTensor with {type(other).__name__}")

    def _complex_operand(self, other: Any) -> Any:
        """other as a complex LazyTensor if it is complex (a complex LazyTensor, number or array), else None:
        a real formula meeting a complex operand becomes complex (pykeops' rule)."""
        if isinstance(other, LazyTensor):
            return other if other.is_complex else None
        if is_complex_number(other) or (self.adapter.is_array(other) and self.adapter.is_complex_array(other)):
            return self.real_class(other)
        return None

    def op(self, name: str, *others: Any, **attrs: Any) -> LazyTensor:
        """The catalogue op `name` (keir.dialect.catalogue) on self and `others` (LazyTensors, numbers or arrays,
        converted as LazyTensor(other) does), its attributes as keywords: x.op("elem", index=1) is x[1]. Every
        op by its name, including those without a method of their own; variables, constants and reductions are
        made by LazyTensor(...), numbers and the reduction methods instead."""
        if name in ("var", "constant", "reduce"):
            raise ValueError(f"LazyTensor.op builds formula ops, not keir.{name} (use LazyTensor(...), a number or "
                             "a reduction method)")
        return self._combine_many(list(others), lambda *nodes: make(name, *nodes, **attrs))

    def combine(self, build: Callable[..., Node], *others: Any) -> LazyTensor:
        """The formula build(self.node, *other nodes), over the variables of self and others (LazyTensors, numbers
        or arrays, converted as LazyTensor(other) does): a composite of catalogue ops, such as KeOps'
        ComplexAdd (keir.dialect.catalogue.complex.COMPOSITES), on formulas."""
        return self._combine_many(list(others), build)

    def _combine(self, other: Any, build: Callable[[Node, Node], Node]) -> LazyTensor:
        return self._combine_many([other], build)

    def _combine_many(self, others: list[Any], build: Callable[..., Node]) -> LazyTensor:
        """build(self.node, *other nodes) over the merged variable lists (see _merge)."""
        nodes, arrays, categories, dtype = self._merge(others)
        return self._ranged(self.from_node(build(*nodes), arrays, categories, dtype), others)

    def _ranged(self, result: LazyTensor, others: Any = ()) -> LazyTensor:
        """result, with the block-sparse ranges of self and of the LazyTensors among others (which must agree),
        as pykeops carries them from operands to results."""
        ranges = getattr(self, "_ranges", None)
        for other in others:
            theirs = getattr(other, "_ranges", None) if isinstance(other, LazyTensor) else None
            if theirs is not None and ranges is not None and theirs is not ranges and not all(
                    a.shape == b.shape and np.array_equal(a, b) for a, b in zip(ranges, theirs)):
                raise ValueError("cannot combine LazyTensors with different block-sparse ranges")
            ranges = ranges if theirs is None else theirs
        if ranges is not None:
            result._ranges = ranges
        return result

    def _merge(self, others: Any) -> tuple[list[Node], tuple, tuple, str | None]:
        """The nodes of self and of others over one variable list: an array used by several operands under the
        same category is one variable, and the others' variables are renumbered to match."""
        arrays, categories, dtype = self.arrays, self.categories, self.dtype
        nodes = [self.node]
        for other in others:
            if not isinstance(other, LazyTensor):
                if _is_number(other):  # a constant, no variables (the common case, kept fast)
                    nodes.append(constant(float(other)))
                    continue
                other = self._lift(other)
            dtype = _merged_dtype(dtype, other.dtype)
            if other.arrays:
                node, arrays, categories = _renumbered(other, arrays, categories)
                nodes.append(node)
            else:
                nodes.append(other.node)
        return nodes, arrays, categories, dtype

    def _unary(self, op: str, **attrs: Any) -> LazyTensor:
        node = make(op, self.node, **attrs) if attrs else interned(op, (self.node,), ())
        return self._ranged(self.from_node(node, self.arrays, self.categories, self.dtype))

    def _binary(self, op: str, other: Any) -> LazyTensor:
        (mine, theirs), arrays, categories, dtype = self._merge((other,))
        return self._ranged(self.from_node(interned(op, (mine, theirs), ()), arrays, categories, dtype), (other,))

    def _rbinary(self, op: str, other: Any) -> LazyTensor:
        return self._lift(other)._binary(op, self)

    def _arithmetic(self, op: str, other: Any, complex_method: str, reflected: bool = False) -> LazyTensor:
        """self op other (other op self if reflected); with a complex operand z, z's `complex_method` does it
        (pykeops' rule: the real operand is made complex)."""
        if type(other) not in _REAL_TYPES and (z := self._complex_operand(other)) is not None:
            return getattr(z, complex_method)(self)
        return self._rbinary(op, other) if reflected else self._binary(op, other)

    def __add__(self, other: Any) -> LazyTensor:
        return self._arithmetic("add", other, "__radd__")

    def __radd__(self, other: Any) -> LazyTensor:
        return self._arithmetic("add", other, "__add__", reflected=True)

    def __sub__(self, other: Any) -> LazyTensor:
        return self._arithmetic("sub", other, "__rsub__")

    def __rsub__(self, other: Any) -> LazyTensor:
        return self._arithmetic("sub", other, "__sub__", reflected=True)

    def __mul__(self, other: Any) -> LazyTensor:
        return self._arithmetic("mul", other, "__rmul__")

    def __rmul__(self, other: Any) -> LazyTensor:
        return self._arithmetic("mul", other, "__mul__", reflected=True)

    def __truediv__(self, other: Any) -> LazyTensor:
        return self._arithmetic("div", other, "__rtruediv__")

    def __rtruediv__(self, other: Any) -> LazyTensor:
        return self._arithmetic("div", other, "__truediv__", reflected=True)

    def __neg__(self) -> LazyTensor:
        return self._unary("neg")

    def __abs__(self) -> LazyTensor:
        return self._unary("abs")

    def __pow__(self, exponent: Any) -> LazyTensor:
        """As pykeops: an integer n is Pow (2: Square), 0.5 Sqrt, -0.5 Rsqrt, any other number or a LazyTensor
        (or array) Powf, x ** y = exp(y log x). An integer-valued float takes the integer route: the same
        values as C's powf, which pykeops' Powf computes (finite for a negative base)."""
        if isinstance(exponent, numbers.Integral) and not isinstance(exponent, bool):
            return self.square() if exponent == 2 else self._unary("pow", exponent=int(exponent))
        if _is_number(exponent):
            if exponent == 0.5:
                return self.sqrt()
            if exponent == -0.5:
                return self.rsqrt()
            if float(exponent).is_integer():
                return self ** int(exponent)
            return self.powf(float(exponent))
        if isinstance(exponent, (LazyTensor, list)) or self.adapter.is_array(exponent):
            exponent = self._lift(exponent)
            if exponent.node.dim not in (1, self.node.dim):
                raise DimensionError(f"the exponent has dimension {exponent.node.dim}; expected 1 or "
                                     f"{self.node.dim} (the base's)")
            return self.powf(exponent)
        raise ValueError(f"the exponent must be a number or a LazyTensor, got {type(exponent).__name__}")

    def sqnorm2(self) -> LazyTensor:
        return self._unary("sqnorm2")

    # complex numbers from real formulas -------------------------------------------------------------------
    def _complex_result(self, op: str) -> LazyTensor:
        result = self.complex_class.from_node(make(op, self.node), self.arrays, self.categories, self.dtype)
        return self._ranged(result)

    def real2complex(self) -> LazyTensor:
        """self as complex numbers with zero imaginary parts (KeOps' Real2Complex)."""
        return self._complex_result("real2complex")

    def imag2complex(self) -> LazyTensor:
        """i self: complex numbers with zero real parts (KeOps' Imag2Complex)."""
        return self._complex_result("imag2complex")

    def exp1j(self) -> LazyTensor:
        """exp(i self) = cos(self) + i sin(self) (KeOps' ComplexExp1j)."""
        return self._complex_result("complex_exp1j")

    # elementwise functions (issue 7's op set) -----------------------------------------------------------
    def round(self, other: int = 0) -> LazyTensor:
        """Rounded to `other` decimals (pykeops' name for the number of digits)."""
        return self._unary("round", digits=int(other))

    def one_hot(self, D: int) -> LazyTensor:  # noqa: N803 (pykeops' name)
        return self._unary("one_hot", dim=int(D))

    def __lt__(self, other: Any) -> LazyTensor:
        return self._binary("lt", other)

    def __le__(self, other: Any) -> LazyTensor:
        return self._binary("le", other)

    def __gt__(self, other: Any) -> LazyTensor:
        return self._binary("gt", other)

    def __ge__(self, other: Any) -> LazyTensor:
        return self._binary("ge", other)

    def __eq__(self, other: Any) -> LazyTensor:  # type: ignore[override]  # elementwise, as in pykeops
        return self._binary("eq", other)

    def __ne__(self, other: Any) -> LazyTensor:  # type: ignore[override]
        return self._binary("ne", other)

    __hash__ = object.__hash__

    # norms and small linear algebra, built from the ops above --------------------------------------------
    def _ternary(self, op: str, second: Any, third: Any) -> LazyTensor:
        return self._combine_many([second, third], lambda a, b, c: make(op, a, b, c))

    def sqdist(self, other: Any) -> LazyTensor:
        return self._binary("sqdist", other)

    def dot(self, other: Any) -> LazyTensor:
        return self._binary("dot", other)

    def __or__(self, other: Any) -> LazyTensor:  # pykeops spells the scalar product (x | y)
        return self.dot(other)

    def __ror__(self, other: Any) -> LazyTensor:
        """y | x for y not a LazyTensor (a list of numbers, an array, a number): the scalar product (y | x)."""
        return self._rbinary("dot", other)

    def elem(self, i: int) -> LazyTensor:
        return self._unary("elem", index=int(i))

    def extract(self, i: int, d: int) -> LazyTensor:
        """Components i .. i + d - 1."""
        return self._unary("extract", start=int(i), length=int(d))

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

    def grad(self, other: LazyTensor, gradin: Any) -> LazyTensor:
        """The gradient of this formula with respect to the variable `other` (a Vi, Vj or Pm), contracted
        with `gradin` = e (a LazyTensor of this formula's dimension): e . d self / d other, of other's dimension.
        Symbolic (a keir.grad op, expanded by the keir-differentiate pass), so it can be reduced or
        differentiated again."""
        if not isinstance(other, LazyTensor) or other.node.op != "var":
            raise TypeError("LazyTensor.grad differentiates with respect to a variable (Vi, Vj or Pm)")
        renumbered: list[Node] = []

        def keep(formula: Node, variable: Node) -> Node:
            renumbered.append(variable)
            return formula

        with_other = self._combine(other, keep)
        return with_other._combine(gradin, lambda formula, e_node: make("grad", formula, renumbered[0], e_node))

    def _with_respect_to(self, other: LazyTensor, op: str) -> LazyTensor:
        """make(op, self, other) for a variable `other` (a keir derivative request, expanded by keir-trace)."""
        if not isinstance(other, LazyTensor) or other.node.op != "var":
            raise TypeError(f"LazyTensor.{op} is taken with respect to a variable (Vi, Vj or Pm)")
        return self._combine(other, lambda formula, variable: make(op, formula, variable))

    def laplacian(self, var: LazyTensor) -> LazyTensor:
        """The Laplacian sum_k d^2 self / dx_k^2 of this scalar formula with respect to the variable x, computed
        symbolically (a trace pushed through the formula, never the Hessian): as fast as a hand-written one."""
        return self._with_respect_to(var, "laplacian")

    def divergence(self, var: LazyTensor) -> LazyTensor:
        """sum_k d self_k / dx_k (x = var), for a formula of x's dimension."""
        return self._with_respect_to(var, "divergence")

    def trace_operator(self, var: LazyTensor) -> LazyTensor:
        """The trace of the linear map v -> self (self must be linear in the variable v = var, of v's
        dimension)."""
        return self._with_respect_to(var, "trace")

    @property
    def ndim(self) -> int:
        """The formula's vector dimension D (pykeops' ndim)."""
        return self.node.dim

    @property
    def formula(self) -> str:
        """The formula in KeOps' syntax, variables numbered as in this LazyTensor (as str() shows it)."""
        return format_formula(self.node)

    @property
    def variables(self) -> tuple[Any, ...]:
        """The arrays (and number parameters) the formula's variables stand for, in index order; symbolic
        variables are in symbolic_variables."""
        return tuple(a for a in self.arrays if not isinstance(a, SymbolicVariable))

    @property
    def symbolic_variables(self) -> tuple[tuple[int, int, int], ...]:
        """The symbolic variables (Vi(0, 3), ...) as pykeops' (index, dim, category) triplets, category 0 (i),
        1 (j) or 2 (a parameter)."""
        return tuple((a.index, a.dim, "ijp".index(a.category)) for a in self.arrays
                     if isinstance(a, SymbolicVariable))

    @property
    def ni(self) -> int | None:
        """M, the number of i rows; None without i variables (pykeops)."""
        return next((a.shape[-2] for a, c in zip(self.arrays, self.categories) if c == "i"), None)

    @property
    def nj(self) -> int | None:
        """N, the number of j columns; None without j variables (pykeops)."""
        return next((a.shape[-2] for a, c in zip(self.arrays, self.categories) if c == "j"), None)

    @property
    def batchdims(self) -> tuple[int, ...] | None:
        """The broadcast batch dimensions, None without any (pykeops)."""
        return self.batch_shape or None

    is_complex: ClassVar[bool] = False  # a real formula (ComplexLazyTensor: True)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The broadcast batch dimensions of the variables (() without batch dimensions)."""
        shapes = [tuple(a.shape[: -1 if c == "p" else -2]) for a, c in zip(self.arrays, self.categories)
                  if not isinstance(a, float)]
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"the batch dimensions of the variables do not broadcast: {shapes}") from None

    @property
    def nbatchdims(self) -> int:
        """The number of batch dimensions (pykeops). Without broadcasting shapes when no variable has batch
        dimensions: the common case, asked on every reduction."""
        for array, category in zip(self.arrays, self.categories):
            if not isinstance(array, float) and len(array.shape) > (1 if category == "p" else 2):
                return len(self.batch_shape)
        return 0

    @property
    def full_shape(self) -> tuple[int, ...]:
        """(*batch, M, N, D): the virtual tensor's full shape; M (N) is 1 without i (j) variables."""
        rows = {c: a.shape[-2] for a, c in zip(self.arrays, self.categories) if c in ("i", "j")}
        return (*self.batch_shape, rows.get("i", 1), rows.get("j", 1), self.node.dim)

    @property
    def shape(self) -> tuple[int, ...]:
        """pykeops' shape: full_shape without its last axis when D = 1 ((M, N) for a scalar kernel)."""
        shape = self.full_shape
        return shape[:-1] if shape[-1] == 1 else shape

    def dim(self) -> int:
        """The number of axes of the virtual tensor, len(full_shape), as torch's Tensor.dim()."""
        return len(self.full_shape)

    def t(self) -> LazyTensor:
        """The transposed kernel matrix: i and j variables exchanged."""
        swapped = tuple({"i": "j", "j": "i"}.get(c, c) for c in self.categories)
        transposed = swap_i_j(self.node)
        carry_composite_names(self.node, swap_i_j)
        result = self.from_node(transposed, self.arrays, swapped, self.dtype)
        ranges = getattr(self, "_ranges", None)
        if ranges is not None:
            result._ranges = swap_axes(ranges)
        return result

    @property
    def T(self) -> LazyTensor:  # noqa: N802 (pykeops' name)
        return self.t()

    def __str__(self) -> str:
        return f"KeOps LazyTensor\n    formula: {format_formula(self.node)}\n    shape: {self.shape}"

    # reductions ---------------------------------------------------------------------------------------
    # pykeops' axis rule: with nb batch dimensions the virtual tensor is (*batch, M, N, D); axis nb reduces
    # over i, nb + 1 over j, and -1 or nb + 2 (the last axis) is the vector dimension, which sum, min, max,
    # argmin and argmax reduce symbolically (a LazyTensor; their default). `dim` is an alias of `axis`.

    def __repr__(self) -> str:
        return f"LazyTensor({self.node!r}, dim={self.node.dim})"


def _catalogue_method(record: Op) -> Callable[..., LazyTensor]:
    """The LazyTensor method of an elementwise op without attributes: self is its first operand."""
    name = record.name
    if record.arity == 1:
        def method(self: LazyTensor) -> LazyTensor:
            return self._unary(name)
    elif record.arity == 2:
        def method(self: LazyTensor, other: Any) -> LazyTensor:
            return self._binary(name, other)
    else:
        def method(self: LazyTensor, other1: Any, other2: Any) -> LazyTensor:
            return self._ternary(name, other1, other2)
    method.__name__ = method.__qualname__ = record.method
    method.__doc__ = f"keir.{name}: {record.doc}" + (f" (KeOps: {record.keops})" if record.keops else "")
    return method


# The methods of the elementwise ops are made from their catalogue records; a method written in the classes
# above (an op whose arguments need handling: round, one_hot, pow...) takes precedence.
for _record in OPS.values():
    if _record.method and _record.elementwise and not _record.attrs and not hasattr(LazyTensor, _record.method):
        setattr(LazyTensor, _record.method, _catalogue_method(_record))
LazyTensor.clampint = LazyTensor.clamp
# Elementwise real functions have no complex meaning on interleaved components (exp and abs have their own).
refuse(sorted(r.method for r in OPS.values() if r.method and r.elementwise and r.method not in ("exp", "abs")))


class ComplexLazyTensor(ComplexFormulas, LazyTensor):
    """A formula of complex values (pykeops' ComplexLazyTensor): LazyTensor(complex array) makes one."""

    __slots__ = ()


LazyTensor.real_class = ComplexLazyTensor.real_class = LazyTensor
LazyTensor.complex_class = ComplexLazyTensor.complex_class = ComplexLazyTensor


def variable_constructors(cls: type[LazyTensor], module: str) -> tuple[Callable[..., LazyTensor], ...]:
    """pykeops' Vi, Vj and Pm for a front end's LazyTensor class, as functions of that front end's module."""

    def Vi(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802 (pykeops' name)
        """An i-indexed variable: x has shape (M, D); or Vi(index, dim), a symbolic variable given at call time."""
        return cls.variable(x, dim, 0)

    def Vj(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802
        """A j-indexed variable: x has shape (N, D); or Vj(index, dim), a symbolic variable."""
        return cls.variable(x, dim, 1)

    def Pm(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802
        """A parameter: x has shape (D,), or is a number or a list of numbers; or Pm(index, dim), a symbolic one."""
        return cls.variable(x, dim, 2)

    for function in (Vi, Vj, Pm):
        function.__module__, function.__qualname__ = module, function.__name__
    return Vi, Vj, Pm
