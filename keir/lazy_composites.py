"""LazyTensor's composite ops: pykeops' operations that keir builds from several keir ops (norms, weighted
distances, matrix products of vectors, Kronecker and tensor products, B-splines, soft-DTW, forward-mode
derivatives, concatenation), as a mixin of keir.lazy.LazyTensor (the KeOps op each one mirrors is named)."""

from __future__ import annotations

import functools
import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from keir.compiler.passes import keir_differentiate, keir_trace
from keir.dialect.node import Node, constant, make, var, variables
from keir.dialect.ops import DimensionError
from keir.formula_parser import name_composite

if TYPE_CHECKING:
    from keir.lazy import LazyTensor


def _concat_all(parts: list) -> Any:
    return functools.reduce(lambda a, b: a.concat(b), parts)


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



class Composites:
    __slots__ = ()

    def sinc(self) -> LazyTensor:
        """sin(pi x) / (pi x), 1 at 0."""
        return (math.pi * self).sinxdivx()

    def inv(self) -> LazyTensor:
        return 1.0 / self

    def power(self, other: Any) -> LazyTensor:
        return self**other

    pow = power

    def powf(self, exponent: Any) -> LazyTensor:
        """self ** exponent (a LazyTensor or a number) as C's powf, which KeOps' Powf calls: exp(exponent
        log |self|), negated for a negative base and an odd integer exponent, NaN for a negative finite base and
        a non-integer one; powf(x, 0) = powf(1, y) = powf(-1, +-inf) = 1, even for NaN."""
        y = self._lift(exponent)
        size = self.abs()
        magnitude = (y * size.log()).exp()
        integer = y.floor() == y  # 1.0 or 0.0; infinities count as integers, as in C
        odd = integer * ((y - 2 * (0.5 * y).floor()) == 1)
        negative = self < 0
        sign_bit = negative + (self == 0) * (1 / self < 0)  # -0 too: powf(-0, -1) = -inf
        signed = magnitude * (1 - 2 * (sign_bit * odd))
        undefined = negative * (1 - integer) * (size < math.inf)
        value = (-undefined).ifelse(signed, math.nan)
        one = ((y == 0) + (self == 1) + (self == -1) * (y.abs() == math.inf)).clamp(0, 1)
        return (-one).ifelse(value, 1.0)


    def mod(self, modulus: Any, offset: Any = 0) -> LazyTensor:
        """self - modulus * floor((self - offset) / modulus): values in [offset, offset + modulus).

        A literal modulus 0 gives NaN, as the formula does in IEEE arithmetic (and KeOps' Mod, C's fmod): written
        out, keir-simplify would fold the product with the literal 0 and return self."""
        if isinstance(modulus, numbers.Real) and not isinstance(modulus, bool) and modulus == 0:
            return (self - offset) * math.nan
        return self - modulus * ((self - offset) / modulus).floor()

    def norm2(self) -> LazyTensor:
        return self.sqnorm2().sqrt()

    def norm(self, dim: int = -1) -> LazyTensor:
        last = self.nbatchdims + 2  # pykeops: the norm is over the last axis only, -1 or len(full_shape) - 1
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

    def diff(self, other: LazyTensor, diffin: Any) -> LazyTensor:
        """KeOps' Diff: the differential of this formula with respect to the variable `other` (Vi, Vj or Pm),
        applied to `diffin` = e (of other's dimension): J e, of this formula's dimension (forward mode).

        Built as the transpose of the gradient: with u an auxiliary variable of this formula's dimension,
        J e = d/du <grad(self, other, u), e>, an expression linear in u whose derivative no longer holds u.
        The grads are expanded here (by keir-differentiate's expansion), so u never reaches a kernel and no
        array stands for it; the result is a plain formula, which can be reduced or differentiated again."""
        if not isinstance(other, Composites) or other.node.op != "var":
            raise TypeError("LazyTensor.diff differentiates with respect to a variable (Vi, Vj or Pm)")
        (f, v, e), arrays, categories, dtype = self._merge([other, diffin])
        if e.dim != v.dim:
            raise DimensionError(f"diff: the direction has dimension {e.dim}, but the variable has dimension "
                                 f"{v.dim}")
        u = var(len(arrays), "p", f.dim)  # an index no variable of the formula has
        linear = make("dot", make("grad", f, v, u), e)
        node = keir_differentiate.expand(keir_trace.expand(make("grad", linear, u, constant(1.0))))
        assert u not in variables(node), "diff: the auxiliary variable did not vanish"
        return self.from_node(node, arrays, categories, dtype)

    def grad_matrix(self, other: LazyTensor) -> LazyTensor:
        """KeOps' GradMatrix: the transposed Jacobian of this formula (dimension n) with respect to the variable
        `other` (dimension m), flattened: component k*m + l is d self_k / d other_l, i.e. the gradients of
        self_0, self_1, ... one after the other (grads with one-hot cotangents)."""
        if not isinstance(other, Composites) or other.node.op != "var":
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
        return self.from_node(self.node, self.arrays, self.categories, self.dtype)

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
        concatenate on: axis is -1 or len(x.full_shape) - 1 for the first x."""
        if not isinstance(tuple_of_lt, tuple):
            raise ValueError("LazyTensor.concatenate is implemented on *tuples* of LazyTensors, got "
                             f"{type(tuple_of_lt).__name__}")
        if not tuple_of_lt:
            raise ValueError("LazyTensor.concatenate received an empty tuple of LazyTensors")
        first = tuple_of_lt[0]
        if not isinstance(first, Composites):
            raise TypeError(f"LazyTensor.concatenate needs LazyTensors, got {type(first).__name__} first")
        last = len(first.full_shape) - 1
        if axis not in (-1, last):
            raise ValueError(f"LazyTensor only supports concatenation along the last axis (-1 or {last}), "
                             f"got axis={axis}")
        return functools.reduce(lambda a, b: a.concat(b), tuple_of_lt)

    @staticmethod
    def cat(tuple_of_lt: tuple, dim: int) -> LazyTensor:
        """torch's spelling of concatenate: the last dimension only."""
        return Composites.concatenate(tuple_of_lt, dim)

    # pykeops' named arithmetic (what its operators call); rversion swaps the operands
    def addop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("add", other) if rversion else self._binary("add", other)

    def subop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("sub", other) if rversion else self._binary("sub", other)

    def mulop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("mul", other) if rversion else self._binary("mul", other)

    def divop(self, other: Any, rversion: bool = False) -> LazyTensor:
        return self._rbinary("div", other) if rversion else self._binary("div", other)

