"""The symbolic LazyTensor shared by the NumPy and PyTorch front ends.

A LazyTensor is a formula node plus the arrays its variables stand for: variable k of the node is
`self.arrays[k]`, with category "i" (indexed by the output row i), "j" (summed over) or "p" (a parameter).
Nothing is computed until a reduction (`.sum(axis=...)`, `@`).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from keir.compiler.passes import keir_differentiate, keir_trace
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, interned, make, substitute, swap_i_j, var, variables
from keir.dialect.ops import OPS, DimensionError
from keir.formula_parser import carry_composite_names, format_formula, name_composite
from keir.reduction import Reduction, reject_ranges  # which loads the runtime (and llvmlite) with the API
from keir.symbolic import SymbolicVariable, symbolic_variable

SUPPORTED_DTYPES = ("float32", "float64")


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
        return functools.reduce(lambda a, b: make("concat", a, b), [constant(float(v)) for v in x]), (), (), None
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


def _concat_all(parts: list[LazyTensor]) -> LazyTensor:
    return functools.reduce(lambda a, b: a.concat(b), parts)


def _is_number(x: Any) -> bool:
    """A real number, not a bool. The exact-type test first: an ABC isinstance check costs a while."""
    return type(x) in (float, int) or (isinstance(x, numbers.Real) and not isinstance(x, bool))


def _axis(axis: int | None, dim: int | None) -> int | None:
    """pykeops' `dim` is an alias of `axis` (torch spells it dim, NumPy axis); dim wins when both are given."""
    return axis if dim is None else dim


def _positive(k: Any) -> int:
    if not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"K must be a positive integer, got {k!r}")
    return int(k)
# Composite ops of pykeops' surface, built from keir ops (the KeOps op each one mirrors is named) --------------
def _concat_nodes(parts: list[Node]) -> Node:
    return functools.reduce(lambda a, b: make("concat", a, b), parts)


def _bspline_node(knots: Node, x: Node, order: int) -> Node:
    """KeOps' BSpline(knots, x, order): the len(knots) - order - 1 B-spline basis functions of the given order
    at the scalar x, by Cox-de Boor's recursion as KeOps runs it. Order 0 is the indicator of
    t_j <= x < t_{j+1} (half-open: 0 at the last knot); each order combines neighbours with the ratios
    w_{a,b} = (x - t_a) / (t_b - t_a), taken as 0 unless t_a < t_b (repeated knots), so that
    B_i <- w_{i,i+k} B_i + (1 - w_{i+1,i+k+1}) B_{i+1}. The ratio's denominator is replaced by 1 where the
    ratio is not used, so that gradients never see a division by zero."""
    t = [make("elem", knots, index=j) for j in range(knots.dim)]
    one, zero, half = constant(1.0), constant(0.0), constant(0.5)
    basis = [make("mul", make("le", t[j], x), make("lt", x, t[j + 1])) for j in range(knots.dim - 1)]

    def ratio(a: int, b: int) -> Node:
        used = make("sub", make("lt", t[a], t[b]), half)  # >= 0 exactly where t_a < t_b (not for NaN)
        denominator = make("ifelse", used, make("sub", t[b], t[a]), one)
        return make("ifelse", used, make("div", make("sub", x, t[a]), denominator), zero)

    for k in range(1, order + 1):
        left = ratio(0, k)
        for i in range(knots.dim - 1 - k):
            right = ratio(i + 1, i + 1 + k)
            basis[i] = make("add", make("mul", left, basis[i]), make("mul", make("sub", one, right), basis[i + 1]))
            left = right
    return _concat_nodes(basis[: knots.dim - order - 1])


def _softdtw_sqdist_node(x: Node, y: Node, gamma: Node) -> Node:
    """KeOps' SoftDTW_SqDist(x, y, gamma): the soft-DTW discrepancy between the series x (length n = x.dim)
    and y (length m), with cost (x_i - y_j)^2, unrolled into the formula. r_{0,0} = c_{0,0}; along the first
    row and column only one predecessor exists, so r is a running sum there; elsewhere
    r_{i,j} = c_{i,j} + softmin(r_{i-1,j-1}, r_{i-1,j}, r_{i,j-1}), with
    softmin(a, b, c) = mu - gamma log(exp((mu - a)/gamma) + exp((mu - b)/gamma) + exp((mu - c)/gamma)),
    mu = min(a, b, c) (never overflows for gamma > 0). The result is r_{n-1,m-1}."""
    xs = [make("elem", x, index=i) for i in range(x.dim)]
    ys = [make("elem", y, index=j) for j in range(y.dim)]

    def cost(i: int, j: int) -> Node:
        return make("square", make("sub", xs[i], ys[j]))

    def softmin(diagonal: Node, left: Node, up: Node) -> Node:
        mu = make("min", _concat_nodes([diagonal, up, left]))
        terms = [make("exp", make("div", make("sub", mu, r), gamma)) for r in (diagonal, left, up)]
        total = make("add", make("add", terms[0], terms[1]), terms[2])
        return make("sub", mu, make("mul", gamma, make("log", total)))

    previous: list[Node] = []  # column j - 1: r_{i, j-1}
    for j in range(y.dim):
        column: list[Node] = []
        for i in range(x.dim):
            if i == 0 and j == 0:
                column.append(cost(0, 0))
            elif j == 0:
                column.append(make("add", cost(i, 0), column[i - 1]))
            elif i == 0:
                column.append(make("add", cost(0, j), previous[0]))
            else:
                column.append(make("add", cost(i, j), softmin(previous[i - 1], column[i - 1], previous[i])))
        previous = column
    return previous[-1]


def _difference_matrix_node(x: Node, y: Node) -> Node:
    """DifferenceMatrix(x, y): the n*m differences x_i - y_j, component j*n + i (n = x.dim, m = y.dim)."""
    return _concat_nodes([make("sub", x, make("elem", y, index=j)) for j in range(y.dim)])


_NUMPY_DTYPE_NAMES = {np.dtype(name): name for name in SUPPORTED_DTYPES}  # dtype.name is slow (µs)


class ArrayAdapter:
    """How a front end reads its arrays (NumPy or torch) and gives results back."""

    name = "numpy"

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, np.ndarray)

    def dtype_name(self, array: Any) -> str:
        return _NUMPY_DTYPE_NAMES.get(array.dtype) or np.dtype(array.dtype).name

    def to_numpy(self, array: Any) -> np.ndarray:
        return array

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
        """x: an array (pykeops shapes, or 2D with axis=0 / 1, or 0D / 1D: a parameter), a number, a list of
        numbers (a constant vector), or a triplet (index, dim, category) of integers: a symbolic variable."""
        if not self.adapter.is_array(x):
            self._set(*_non_array(x, axis, self.adapter.name))
            return
        shape = x.shape
        if len(shape) == 0:  # a 0D array is a parameter of dimension 1, as in pykeops
            x, shape = x.reshape(1), (1,)
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
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"keir works on float32 and float64 arrays, got {dtype}")
        dim = int(shape[-1])  # a plain int even where torch.compile traces with symbolic sizes
        if dim == 0:
            raise ValueError(f"a variable needs at least one component, got shape {tuple(shape)}")
        self._set(var(0, category, dim), (array,), (category,), dtype)

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
            return cls._new(var(0, "p", 1), (float(x),), ("p",), None)
        if isinstance(x, list):
            return cls(x)
        if not cls.adapter.is_array(x) or len(x.shape) > 1:
            raise ValueError(f"Pm needs a number or a 1D array of shape (D,), got {getattr(x, 'shape', x)!r}")
        return cls(x)

    def _set(self, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
        self.node, self.arrays, self.categories, self.dtype = node, arrays, categories, dtype
        return self

    @classmethod
    def _new(cls, node: Node, arrays: tuple, categories: tuple, dtype: str | None) -> LazyTensor:
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
            return self._new(constant(float(other)), (), (), None)
        if self.adapter.is_array(other) or isinstance(other, list):
            return type(self)(other)
        raise TypeError(f"cannot combine a LazyTensor with {type(other).__name__}")

    def _combine(self, other: Any, build: Callable[[Node, Node], Node]) -> LazyTensor:
        return self._combine_many([other], build)

    def _combine_many(self, others: list[Any], build: Callable[..., Node]) -> LazyTensor:
        """build(self.node, *other nodes) over the merged variable lists (see _merge)."""
        nodes, arrays, categories, dtype = self._merge(others)
        return self._new(build(*nodes), arrays, categories, dtype)

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
        return self._new(node, self.arrays, self.categories, self.dtype)

    def _binary(self, op: str, other: Any) -> LazyTensor:
        (mine, theirs), arrays, categories, dtype = self._merge((other,))
        return self._new(interned(op, (mine, theirs), ()), arrays, categories, dtype)

    def _rbinary(self, op: str, other: Any) -> LazyTensor:
        return self._lift(other)._binary(op, self)

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

    # elementwise functions (issue 7's op set) -----------------------------------------------------------
    def round(self, other: int = 0) -> LazyTensor:
        """Rounded to `other` decimals (pykeops' name for the number of digits)."""
        return self._unary("round", digits=int(other))

    def sinc(self) -> LazyTensor:
        """sin(pi x) / (pi x), 1 at 0."""
        return (math.pi * self).sinxdivx()

    def inv(self) -> LazyTensor:
        return 1.0 / self

    def power(self, other: Any) -> LazyTensor:
        return self**other

    pow = power

    def powf(self, exponent: Any) -> LazyTensor:
        """self ** exponent for a positive base and any (LazyTensor or number) exponent: exp(exponent log self)."""
        return (self._lift(exponent) * self.log()).exp()


    def mod(self, modulus: Any, offset: Any = 0) -> LazyTensor:
        """self - modulus * floor((self - offset) / modulus): values in [offset, offset + modulus)."""
        return self - modulus * ((self - offset) / modulus).floor()

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
    def norm2(self) -> LazyTensor:
        return self.sqnorm2().sqrt()

    def norm(self, dim: int = -1) -> LazyTensor:
        last = self._nbatch() + 2  # pykeops: the norm is over the last axis only, -1 or len(_shape) - 1
        if dim not in (-1, last):
            raise ValueError(f"norm reduces the vector dimension (dim=-1 or {last}), got dim={dim}")
        return self.norm2()

    def normalize(self) -> LazyTensor:
        return self * self.sqnorm2().rsqrt()

    def weightedsqnorm(self, other: Any) -> LazyTensor:
        """|self|^2 weighted by s = other: s of dimension 1 (s |x|^2), D (sum s_k x_k^2) or D*D (x^T S x)."""
        weight = self._lift(other)
        d, w = self.node.dim, weight.node.dim
        if w in (1, d):
            return (weight * self.square()).sum() if w == d else weight * self.sqnorm2()
        if w == d * d:
            return self | weight.matvecmult(self)
        raise DimensionError(f"weightedsqnorm: the weight has dimension {w}; expected 1, {d} or {d * d}")

    def weightedsqdist(self, g: Any, s: Any) -> LazyTensor:
        """|self - g|^2 weighted by s (see weightedsqnorm)."""
        return (self - g).weightedsqnorm(s)

    def matvecmult(self, other: Any) -> LazyTensor:
        """self is an n x m matrix (row-major, dimension n*m), other a vector of dimension m: the product, of
        dimension n."""
        vector = self._lift(other)
        m = vector.node.dim
        if self.node.dim % m:
            raise DimensionError(f"matvecmult: a matrix of dimension {self.node.dim} cannot multiply a vector of {m}")
        rows = [self.extract(r * m, m) | vector for r in range(self.node.dim // m)]
        return _concat_all(rows)

    def vecmatmult(self, other: Any) -> LazyTensor:
        """self has dimension n, other is an n x m matrix (row-major): self^T other, of dimension m."""
        matrix = self._lift(other)
        n = self.node.dim
        if matrix.node.dim % n:
            raise DimensionError(f"vecmatmult: a vector of dimension {n} cannot multiply a matrix of {matrix.node.dim}")
        m = matrix.node.dim // n
        terms = [self.elem(r) * matrix.extract(r * m, m) for r in range(n)]
        return functools.reduce(lambda a, b: a + b, terms)

    def tensorprod(self, other: Any) -> LazyTensor:
        """The outer product, row-major: dimension n*m."""
        other = self._lift(other)
        return _concat_all([self.elem(r) * other for r in range(self.node.dim)])

    def keops_tensordot(self, other: Any, dimfa: tuple, dimfb: tuple, contfa: tuple, contfb: tuple,
                        permute: tuple | None = None) -> LazyTensor:
        """numpy.tensordot of self (a tensor of shape dimfa, row-major) and other (shape dimfb) over the axes
        contfa of self and contfb of other. The kept axes (self's, then other's) come out in the order
        argsort(permute), as KeOps' TensorDot writes them (its output index of kept axis permute-sorted)."""
        other = self._lift(other)
        dimfa, dimfb, contfa, contfb = (tuple(int(v) for v in t) for t in (dimfa, dimfb, contfa, contfb))
        if int(np.prod(dimfa)) != self.node.dim or int(np.prod(dimfb)) != other.node.dim:
            raise DimensionError(f"keops_tensordot: shapes {dimfa} and {dimfb} do not match dimensions "
                                 f"{self.node.dim} and {other.node.dim}")
        if [dimfa[k] for k in contfa] != [dimfb[k] for k in contfb]:
            raise DimensionError(f"keops_tensordot: contracted axes {contfa} of {dimfa} and {contfb} of {dimfb} differ")
        keep_a = [k for k in range(len(dimfa)) if k not in contfa]
        keep_b = [k for k in range(len(dimfb)) if k not in contfb]
        kept = [dimfa[k] for k in keep_a] + [dimfb[k] for k in keep_b]
        order = list(range(len(kept))) if permute is None else [int(v) for v in np.argsort(permute)]
        if sorted(order) != list(range(len(kept))):
            raise DimensionError(f"keops_tensordot: permute {permute} is not a permutation of {len(kept)} axes")
        contracted = [dimfa[k] for k in contfa]
        outputs = []
        for out_index in np.ndindex(*[kept[k] for k in order]):
            kept_index = [0] * len(kept)
            for position, axis in enumerate(order):
                kept_index[axis] = out_index[position]
            terms = []
            for c_index in np.ndindex(*contracted):
                ia, ib = [0] * len(dimfa), [0] * len(dimfb)
                for k, v in zip(keep_a, kept_index[: len(keep_a)]):
                    ia[k] = v
                for k, v in zip(keep_b, kept_index[len(keep_a) :]):
                    ib[k] = v
                for ka, kb, v in zip(contfa, contfb, c_index):
                    ia[ka], ib[kb] = v, v
                flat_a = int(np.ravel_multi_index(ia, dimfa)) if dimfa else 0
                flat_b = int(np.ravel_multi_index(ib, dimfb)) if dimfb else 0
                terms.append(self.elem(flat_a) * other.elem(flat_b))
            outputs.append(functools.reduce(lambda a, b: a + b, terms))
        return _concat_all(outputs)

    def keops_kron(self, other: Any, dimfself: tuple, dimfother: tuple) -> LazyTensor:
        """The Kronecker product of self (a tensor of shape dimfself) and other (shape dimfother)."""
        other = self._lift(other)
        dimfa, dimfb = tuple(int(v) for v in dimfself), tuple(int(v) for v in dimfother)
        if len(dimfa) != len(dimfb) or int(np.prod(dimfa)) != self.node.dim or int(np.prod(dimfb)) != other.node.dim:
            raise DimensionError(f"keops_kron: shapes {dimfa} and {dimfb} do not match dimensions "
                                 f"{self.node.dim} and {other.node.dim}")
        shape = tuple(a * b for a, b in zip(dimfa, dimfb))
        outputs = []
        for index in np.ndindex(*shape):
            ia = [v // b for v, b in zip(index, dimfb)]
            ib = [v % b for v, b in zip(index, dimfb)]
            outputs.append(self.elem(int(np.ravel_multi_index(ia, dimfa))) *
                           other.elem(int(np.ravel_multi_index(ib, dimfb))))
        return _concat_all(outputs)

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

    def diff(self, other: LazyTensor, diffin: Any) -> LazyTensor:
        """KeOps' Diff: the differential of this formula with respect to the variable `other` (Vi, Vj or Pm),
        applied to `diffin` = e (of other's dimension): J e, of this formula's dimension (forward mode).

        Built as the transpose of the gradient: with u an auxiliary variable of this formula's dimension,
        J e = d/du <grad(self, other, u), e>, an expression linear in u whose derivative no longer holds u.
        The grads are expanded here (by keir-differentiate's expansion), so u never reaches a kernel and no
        array stands for it; the result is a plain formula, which can be reduced or differentiated again."""
        if not isinstance(other, LazyTensor) or other.node.op != "var":
            raise TypeError("LazyTensor.diff differentiates with respect to a variable (Vi, Vj or Pm)")
        (f, v, e), arrays, categories, dtype = self._merge([other, diffin])
        if e.dim != v.dim:
            raise DimensionError(f"diff: the direction has dimension {e.dim}, but the variable has dimension "
                                 f"{v.dim}")
        u = var(len(arrays), "p", f.dim)  # an index no variable of the formula has
        linear = make("dot", make("grad", f, v, u), e)
        node = keir_differentiate.expand(keir_trace.expand(make("grad", linear, u, constant(1.0))))
        assert u not in variables(node), "diff: the auxiliary variable did not vanish"
        return self._new(node, arrays, categories, dtype)

    def grad_matrix(self, other: LazyTensor) -> LazyTensor:
        """KeOps' GradMatrix: the transposed Jacobian of this formula (dimension n) with respect to the variable
        `other` (dimension m), flattened: component k*m + l is d self_k / d other_l, i.e. the gradients of
        self_0, self_1, ... one after the other (grads with one-hot cotangents)."""
        if not isinstance(other, LazyTensor) or other.node.op != "var":
            raise TypeError("LazyTensor.grad_matrix differentiates with respect to a variable (Vi, Vj or Pm)")
        n = self.node.dim
        basis = [1.0] if n == 1 else [[1.0 if k == l else 0.0 for l in range(n)] for k in range(n)]
        return _concat_all([self.grad(other, e) for e in basis])

    def factorize(self, other: Any) -> LazyTensor:
        """KeOps' Factorize(self, other): a code-generation hint (compute the subexpression `other` once) that
        does not change the value. keir's CSE and hoisting passes already compute every shared subexpression
        once, so this returns the same formula (with other's variables joined, as pykeops does)."""
        return self._combine(other, lambda formula, _: formula)

    def auto_factorize(self) -> LazyTensor:
        """KeOps' AutoFactorize: a code-generation hint that does not change the value; keir's CSE and hoisting
        passes already share subexpressions, so this returns the same formula."""
        return self._new(self.node, self.arrays, self.categories, self.dtype)

    def bspline(self, x: Any, k: int = 0) -> LazyTensor:
        """KeOps' BSpline: the vector of the D - k - 1 B-spline basis functions of order k for the knots
        self (dimension D), evaluated at the scalar x (dimension 1). As in KeOps, B_j of order 0 is 1 on
        [t_j, t_{j+1}) (so every function is 0 at the last knot), and ratios over repeated knots are 0.
        Differentiable (with respect to x and the knots, away from the knots)."""
        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            raise TypeError(f"bspline: the order k must be an integer, got {k!r}")
        if k < 0:
            raise ValueError(f"bspline: the order of a B-spline must be >= 0, got {k}")
        x = self._lift(x)
        if x.node.dim != 1:
            raise DimensionError(f"bspline: B-splines are sampled at scalar values, got x of dimension {x.node.dim}")
        if self.node.dim < k + 2:
            raise DimensionError(f"bspline: B-splines of order {k} need at least {k + 2} knots, got "
                                 f"{self.node.dim}")
        return self._combine(x, lambda knots, point: name_composite(_bspline_node(knots, point, int(k)), "BSpline",
                                                                    knots, point, int(k)))

    def softdtw_sqdist(self, other: Any, gamma: Any) -> LazyTensor:
        """KeOps' SoftDTW_SqDist: the soft-DTW discrepancy between the series self (dimension n) and other
        (dimension m), with squared differences as cost and smoothing gamma (a number or a LazyTensor of
        dimension 1, e.g. Pm(0.1)); a scalar. Computed as KeOps does (the min subtracted inside the
        log-sum-exp); gamma must be > 0 (gamma = 0 divides by zero, NaN, as in KeOps). Differentiable with
        respect to x, y and gamma."""
        gamma = self._lift(gamma)
        if gamma.node.dim != 1:
            raise DimensionError(f"softdtw_sqdist: gamma must be a scalar (dimension 1), got dimension "
                                 f"{gamma.node.dim}")
        return self._combine_many([other, gamma], lambda x, y, g: name_composite(
            _softdtw_sqdist_node(x, y, g), "SoftDTW_SqDist", x, y, g))

    def difference_matrix(self, other: Any) -> LazyTensor:
        """DifferenceMatrix (pykeops 2.3's difference_matrix): the n*m differences self_i - other_j, component
        j*n + i, n = self's dimension, m = other's."""
        return self._combine(other, lambda x, y: name_composite(_difference_matrix_node(x, y), "DifferenceMatrix",
                                                                x, y))

    @staticmethod
    def concatenate(tuple_of_lt: tuple, axis: int = -1) -> LazyTensor:
        """The concatenation of a tuple of LazyTensors along the vector dimension, the only axis LazyTensors
        concatenate on: axis is -1 or len(x._shape) - 1 for the first x."""
        if not isinstance(tuple_of_lt, tuple):
            raise ValueError("LazyTensor.concatenate is implemented on *tuples* of LazyTensors, got "
                             f"{type(tuple_of_lt).__name__}")
        if not tuple_of_lt:
            raise ValueError("LazyTensor.concatenate received an empty tuple of LazyTensors")
        first = tuple_of_lt[0]
        if not isinstance(first, LazyTensor):
            raise TypeError(f"LazyTensor.concatenate needs LazyTensors, got {type(first).__name__} first")
        last = len(first._shape) - 1
        if axis not in (-1, last):
            raise ValueError(f"LazyTensor only supports concatenation along the last axis (-1 or {last}), "
                             f"got axis={axis}")
        return functools.reduce(lambda a, b: a.concat(b), tuple_of_lt)

    @staticmethod
    def cat(tuple_of_lt: tuple, dim: int) -> LazyTensor:
        """torch's spelling of concatenate: the last dimension only."""
        return LazyTensor.concatenate(tuple_of_lt, dim)

    # pykeops' named arithmetic (what its operators call); rversion swaps the operands
    def addop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("add", other) if rversion else self._binary("add", other)

    def subop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("sub", other) if rversion else self._binary("sub", other)

    def mulop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("mul", other) if rversion else self._binary("mul", other)

    def divop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("div", other) if rversion else self._binary("div", other)

    def solve(self, other: Any, var: Any = None, call: bool = True, alpha: float = 1e-10, eps: float = 1e-6,
              max_iterations: int | None = None, **options: Any) -> Any:
        """The solution a of (alpha Id + K) a = other, K = self a symmetric scalar kernel matrix, or with
        `var` (a symbolic j-variable) the formula self, linear in var; by conjugate gradient (each step one
        keir reduction, with pykeops' reduction options: backend, dtype_acc, sum_scheme, ...); differentiable
        with torch. See keir.solve."""
        from keir.solve import solve

        return solve(self, other, var=var, call=call, alpha=alpha, eps=eps, max_iterations=max_iterations,
                     **options)

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

    is_complex: ClassVar[bool] = False  # keir's LazyTensors are real

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
        return len(self.batch_shape)

    def _nbatch(self) -> int:
        """nbatchdims, without broadcasting shapes when no variable has batch dimensions (the common case, on
        every reduction)."""
        for array, category in zip(self.arrays, self.categories):
            if not isinstance(array, float) and len(array.shape) > (1 if category == "p" else 2):
                return self.nbatchdims
        return 0

    @property
    def _shape(self) -> tuple[int, ...]:
        """(*batch, M, N, D): the virtual tensor's full shape; M (N) is 1 without i (j) variables."""
        rows = {c: a.shape[-2] for a, c in zip(self.arrays, self.categories) if c in ("i", "j")}
        return (*self.batch_shape, rows.get("i", 1), rows.get("j", 1), self.node.dim)

    @property
    def shape(self) -> tuple[int, ...]:
        """pykeops' shape: _shape without its last axis when D = 1 ((M, N) for a scalar kernel)."""
        shape = self._shape
        return shape[:-1] if shape[-1] == 1 else shape

    def dim(self) -> int:
        """The number of axes of the virtual tensor, len(_shape), as torch's Tensor.dim()."""
        return len(self._shape)

    def t(self) -> LazyTensor:
        """The transposed kernel matrix: i and j variables exchanged."""
        swapped = tuple({"i": "j", "j": "i"}.get(c, c) for c in self.categories)
        transposed = swap_i_j(self.node)
        carry_composite_names(self.node, swap_i_j)
        return self._new(transposed, self.arrays, swapped, self.dtype)

    @property
    def T(self) -> LazyTensor:  # noqa: N802 (pykeops' name)
        return self.t()

    def __str__(self) -> str:
        return f"KeOps LazyTensor\n    formula: {format_formula(self.node)}\n    shape: {self.shape}"

    # reductions ---------------------------------------------------------------------------------------
    # pykeops' axis rule: with nb batch dimensions the virtual tensor is (*batch, M, N, D); axis nb reduces
    # over i, nb + 1 over j, and -1 or nb + 2 (the last axis) is the vector dimension, which sum, min, max,
    # argmin and argmax reduce symbolically (a LazyTensor; their default). `dim` is an alias of `axis`.

    def sum(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """The sum over i or j (axis nb / nb + 1: computed now, or a callable `Reduction` if call=False), or
        over the vector's components (axis -1, the default: a LazyTensor)."""
        return self._vector_or_reduction("sum", _axis(axis, dim), call, options)

    def min(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """The minimum over i or j, or the smallest component (axis -1, the default)."""
        return self._vector_or_reduction("min", _axis(axis, dim), call, options)

    def max(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("max", _axis(axis, dim), call, options)

    def argmin(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("argmin", _axis(axis, dim), call, options)

    def argmax(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("argmax", _axis(axis, dim), call, options)

    # The reductions only: axis nb (over i) or nb + 1 (over j). pykeops requires the axis; keir takes j by
    # default.
    def sum_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("sum", _axis(axis, dim), call, options)

    def min_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("min", _axis(axis, dim), call, options)

    def max_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("max", _axis(axis, dim), call, options)

    def argmin_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        return self._reduce("argmin", _axis(axis, dim), call, options)

    def argmax_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        return self._reduce("argmax", _axis(axis, dim), call, options)

    def min_argmin(self, axis: int | None = None, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """(values, int64 indices) of the minimum over i or j."""
        return self._reduce("min_argmin", _axis(axis, dim), call, options)

    def max_argmax(self, axis: int | None = None, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._reduce("max_argmax", _axis(axis, dim), call, options)

    def Kmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
             **options: Any) -> Any:
        """The K smallest values over i or j, sorted: shape (rows, K), or (rows, K, D) for a vector formula."""
        return self._reduce("kmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def argKmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
                **options: Any) -> Any:
        """The int64 indices of the K smallest values (ties: smallest index first); -1 where N < K."""
        return self._reduce("argkmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def Kmin_argKmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
                     **options: Any) -> Any:
        return self._reduce("kmin_argkmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def logsumexp(self, axis: int | None = None, dim: int | None = None, weight: Any = None, call: bool = True,
                  **options: Any) -> Any:
        """log sum exp(f) over i or j, with an online maximum (never overflows); with `weight` g (a LazyTensor
        or array indexed like the reduced variable): log sum exp(f) g. pykeops also spells weight `other`."""
        weight = options.pop("other", None) if weight is None else weight
        if weight is None:
            return self._reduce("logsumexp", _axis(axis, dim), call, options)
        return self._weighted("logsumexp_weight", _axis(axis, dim), weight, call, options)

    def sumsoftmaxweight(self, weight: Any, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        """sum exp(f) g / sum exp(f) over i or j (a softmax-weighted sum), f scalar."""
        return self._weighted("sumsoftmaxweight", _axis(axis, dim), weight, call, options)

    def __min__(self, **kwargs: Any) -> Any:  # pykeops' aliases
        return self.min(**kwargs)

    def __max__(self, **kwargs: Any) -> Any:
        return self.max(**kwargs)

    Kmin_reduction = Kmin  # noqa: N815 (pykeops' names)
    argKmin_reduction = argKmin  # noqa: N815
    Kmin_argKmin_reduction = Kmin_argKmin  # noqa: N815
    min_argmin_reduction = min_argmin
    max_argmax_reduction = max_argmax
    logsumexp_reduction = logsumexp
    sumsoftmaxweight_reduction = sumsoftmaxweight

    def _weighted(self, kind: str, axis: int | None, weight: Any, call: bool, options: dict[str, Any]) -> Any:
        if self.node.dim != 1:
            raise DimensionError(f"{kind} needs a scalar formula (dimension 1), got dimension {self.node.dim}")
        index_axis = self._index_axis(axis, kind)
        if self.adapter.is_array(weight) and len(weight.shape) == 2:  # rows of the reduced variable
            weight = type(self)(weight, axis=index_axis)
        return self.concat(weight)._reduce(kind, axis, call, options)

    def _vector_or_reduction(self, kind: str, axis: int | None, call: bool, options: dict[str, Any]) -> Any:
        if axis == -1 or axis == self._nbatch() + 2:  # the vector dimension
            if options.pop("keepdim", True) is not True:  # the result is a LazyTensor of dimension 1
                raise ValueError(f"{kind} over the vector dimension keeps it (dimension 1): keepdim=False "
                                 "is not supported")
            return self._unary(kind)
        return self._reduce(kind, axis, call, options)

    def _index_axis(self, axis: int | None, kind: str) -> int:
        """0 (over i) or 1 (over j) from pykeops' axis, which counts the batch dimensions (None: over j)."""
        if axis is None:
            return 1
        batch = self._nbatch()
        if axis - batch not in (0, 1):
            raise ValueError(f"{kind}: a reduction's axis is {batch} (over i) or {batch + 1} (over j), got {axis}"
                             + (" (-1 is the vector dimension, which this reduction does not take)"
                                if axis == -1 else ""))
        return axis - batch

    def __matmul__(self, v: Any, **options: Any) -> Any:
        """K @ v: sum_j K_ij v_j for a scalar K; v of shape (N,) (the result has shape (M,)), (N, C), or with
        batch dimensions (..., N, C), as in pykeops. `K.__matmul__(v, backend=...)` passes options on."""
        if self.node.dim != 1:
            raise DimensionError(f"K @ b needs a scalar kernel K (dimension 1), got dimension {self.node.dim}")
        if isinstance(v, LazyTensor):
            product = self * v
            return product.sum(product._nbatch() + 1, **options)
        if not self.adapter.is_array(v):
            raise TypeError(f"K @ b needs an array b, got {type(v).__name__}")
        shape = tuple(v.shape)
        if len(shape) == 1:  # a vector: (1, N, 1), a j-variable of dimension 1
            columns = type(self)(v.reshape(1, shape[0], 1))
        else:  # (..., N, C) -> (..., 1, N, C): a j-variable, with the batch dimensions of v
            columns = type(self)(v.reshape(shape[:-2] + (1,) + shape[-2:]))
        product = self * columns
        out = product.sum(product._nbatch() + 1, **options)
        return out.reshape(-1) if len(shape) == 1 else out

    def matvec(self, v: Any) -> Any:
        """self @ v, for scipy.sparse.linalg.aslinearoperator(K) (with K.shape and K.dtype)."""
        return self @ v

    def rmatvec(self, v: Any) -> Any:
        """self.T @ v, the transposed product (scipy's rmatvec)."""
        return self.T @ v

    def _reduce(self, kind: str, axis: int | None, call: bool, options: dict[str, Any]) -> Any:
        index_axis = self._index_axis(axis, kind)
        options.pop("keepdim", None)  # a reduction's result is (*batch, rows, D) either way, as in pykeops
        reduction = Reduction(self, kind, index_axis, **options)
        return reduction() if call and not reduction.symbolic else reduction

    @property
    def ranges(self) -> None:
        """pykeops' block-sparse ranges: not supported yet (setting them raises rather than being ignored)."""
        return None

    @ranges.setter
    def ranges(self, value: Any) -> None:
        reject_ranges(value)

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


# The methods of the elementwise ops are made from their catalogue records; a method written in the class
# above (an op whose arguments need handling: round, one_hot, pow...) takes precedence.
for _record in OPS.values():
    if _record.method and _record.elementwise and not _record.attrs and _record.method not in vars(LazyTensor):
        setattr(LazyTensor, _record.method, _catalogue_method(_record))
LazyTensor.clampint = LazyTensor.clamp


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
