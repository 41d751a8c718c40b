"""Genred and the generic_* helpers: reductions written in KeOps' formula language.

    routine = Genred("Exp(-SqDist(x, y)) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], reduction_op="Sum", axis=1)
    out = routine(x, y, b)                      # arrays in the order of the aliases / variable indices

The formula is parsed by keir.formula_parser into LazyTensor operations on placeholder variables; a call
substitutes the arrays and runs the reduction, so Genred and LazyTensor share one implementation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from keir.dialect.catalogue import complex as complex_family
from keir.dialect.catalogue.record import ATTRIBUTE_TYPES, Op
from keir.dialect.node import var
from keir.dialect.ops import OPS
from keir.formula_parser import VariableSpec, parse_alias, parse_formula
from keir.lazy_reductions import REDUCTION_OPS
from keir.symbolic import SymbolicVariable, batch_dims, bind_symbolic, check_argument, has_symbolic_variables


def _sum_t(x: Any, dim: int) -> Any:
    """SumT(x, d): the scalar x repeated d times (the adjoint of Sum)."""
    return functools.reduce(lambda a, b: a.concat(b), [x] * dim)


def _placed(x: Any, start: int, dim: int) -> Any:
    """x placed at components start.. of a zero vector of dimension dim (ElemT, ExtractT)."""
    rest = dim - start - x.node.dim
    if start < 0 or rest < 0:
        raise ValueError(f"a vector of dimension {x.node.dim} does not fit at {start} in dimension {dim}")
    parts = [type(x)([0.0] * start)] if start else []
    parts.append(x)
    if rest:
        parts.append(type(x)([0.0] * rest))
    return functools.reduce(lambda a, b: a.concat(b), parts)


def _ints(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, list):
        raise TypeError(f"{where} needs a list of integers such as [2, 3], got {values!r}")
    return tuple(_integer(v, where) for v in values)


def _tensordot(a: Any, b: Any, dimfa: Any, dimfb: Any, contfa: Any, contfb: Any, permute: Any = None) -> Any:
    where = "TensorDot"
    extra = () if permute is None else (_ints(permute, where),)
    return a.keops_tensordot(b, _ints(dimfa, where), _ints(dimfb, where), _ints(contfa, where),
                             _ints(contfb, where), *extra)


# KeOps function name -> how to build it on LazyTensors (args: LazyTensors, Python numbers, lists of numbers).
# KeOps puts the weights first in WeightedSqNorm(s, x), WeightedSqDist(s, x, y) and the SqNorm* family.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Inv": lambda x: x.inv(), "Scalprod": lambda x, y: x | y,
    "Round": lambda x, d=0: x.round(_integer(d, "Round")),
    "Pow": lambda x, n: x ** _integer(n, "Pow"), "Powf": lambda x, y: x.powf(y),
    "IntInv": lambda n: 1.0 / _integer(n, "IntInv"),
    "SumT": lambda x, d: _sum_t(x, _integer(d, "SumT")),
    "Norm2": lambda x: x.norm2(), "Normalize": lambda x: x.normalize(),
    "WeightedSqNorm": lambda s, x: x.weightedsqnorm(s), "WeightedSqDist": lambda s, x, y: x.weightedsqdist(y, s),
    "SqNormIso": lambda s, x: x.weightedsqnorm(s), "SqNormDiag": lambda s, x: x.weightedsqnorm(s),
    "SymSqNorm": lambda a, x: x.weightedsqnorm(a),
    "ElemT": lambda x, d, k: _placed(x, _integer(k, "ElemT"), _integer(d, "ElemT")),  # ElemT(f, N, M): length N
    "ExtractT": lambda x, start, d: _placed(x, _integer(start, "ExtractT"), _integer(d, "ExtractT")),
    "ClampInt": lambda x, a, b: x.clamp(_integer(a, "ClampInt"), _integer(b, "ClampInt")),
    "Mod": lambda x, a, b=0: x.mod(a, b),
    "MatVecMult": lambda a, v: a.matvecmult(v), "VecMatMult": lambda v, a: v.vecmatmult(a),
    "TensorProd": lambda x, y: x.tensorprod(y),
    "Kron": lambda x, y, dimfx, dimfy: x.keops_kron(y, _ints(dimfx, "Kron"), _ints(dimfy, "Kron")),
    "TensorDot": _tensordot,
    "Grad": lambda f, x, e: f.grad(x, e), "Laplacian": lambda f, x: f.laplacian(x),
    "Divergence": lambda f, x: f.divergence(x), "TraceOperator": lambda f, v: f.trace_operator(v),
    "Diff": lambda f, x, e: f.diff(x, e), "GradMatrix": lambda f, v: f.grad_matrix(v),
    "Factorize": lambda f, g: f.factorize(g), "AutoFactorize": lambda f: f.auto_factorize(),
    "BSpline": lambda knots, x, k: knots.bspline(x, _integer(k, "BSpline")),
    "SoftDTW_SqDist": lambda x, y, gamma: x.softdtw_sqdist(y, gamma),
    "DifferenceMatrix": lambda x, y: x.difference_matrix(y),  # pykeops 2.3 emits it; keopscore lacks it
    "RatCst": lambda p, q: _integer(p, "RatCst") / _integer(q, "RatCst"),
    "DiffClampInt": lambda x, a, b: (x >= _integer(a, "DiffClampInt")) * (x <= _integer(b, "DiffClampInt")),
}


def _catalogue_function(record: Op) -> Callable[..., Any]:
    """KeOps' spelling of a catalogue op, Name(operands..., attributes...), as the op on LazyTensors."""
    def build(*args: Any) -> Any:
        if len(args) != record.arity + len(record.attrs):
            raise ValueError(f"{record.keops} takes {record.arity} formula(s)"
                             + (f" then {', '.join(record.attrs)}" if record.attrs else "") + f", got {len(args)}")
        first, *others = args[: record.arity]
        attrs = {name: _integer(value, record.keops) for name, value in zip(record.attrs, args[record.arity:])}
        return first.op(record.name, *others, **attrs)

    return build


# KeOps' complex functions that are composites of catalogue ops (on the interleaved (re, im) components)
for _name, _build in complex_family.COMPOSITES.items():
    FUNCTIONS[_name] = lambda first, *others, build=_build: first.combine(build, *others)
# Every catalogue op with a KeOps name reads back as itself (the hand-written entries above take precedence:
# KeOps functions keir builds from several ops, or whose arguments need handling).
for _record in OPS.values():
    if _record.keops and _record.keops not in FUNCTIONS and _record.arity and all(
            ATTRIBUTE_TYPES[a] is int for a in _record.attrs):
        FUNCTIONS[_record.keops] = _catalogue_function(_record)
# Functions whose first argument is a number, not a formula (the others lift a number there: Concat(0, x)).
_NUMBER_FIRST = ("IntInv", "RatCst", "Zero")

def _integer(value: Any, where: str) -> int:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    raise TypeError(f"{where} needs an integer constant here, got {value!r}")


class Genred:
    """A reduction compiled from a KeOps formula string (pykeops' Genred). Call it with the arrays."""

    lazy_class: type = None  # set by keir.numpy / keir.torch

    def __init__(self, formula: str, aliases: list[str], reduction_op: str = "Sum", axis: int = 0,
                 dtype: Any = None, opt_arg: int | None = None, formula2: str | None = None,
                 dtype_acc: str = "auto", use_double_acc: bool = False, sum_scheme: str = "auto",
                 cuda_type: Any = None, enable_chunks: bool = True, rec_multVar_highdim: Any = False,  # noqa: N803
                 use_fast_math: bool = True):
        """pykeops' arguments; `dtype` and `cuda_type` (taken from the arrays) and pykeops' code generation
        switches (enable_chunks, rec_multVar_highdim, use_fast_math) change nothing here. Any other keyword is
        a TypeError, as in pykeops."""
        self._arguments = (formula, list(aliases), reduction_op, axis, opt_arg, formula2, dtype_acc,
                           use_double_acc, sum_scheme)
        if reduction_op not in REDUCTION_OPS:
            raise ValueError(f"unknown reduction_op {reduction_op!r}; known: {', '.join(REDUCTION_OPS)}")
        if axis not in (0, 1):
            raise ValueError(f"axis is 0 (reduce over i) or 1 (reduce over j), got {axis!r}")
        self.reduction_op, self.axis = reduction_op, axis
        self.options: dict[str, Any] = {}
        kind = REDUCTION_OPS[reduction_op]
        self.opt_arg = None
        if kind.endswith("kmin"):
            if opt_arg is None:
                raise ValueError(f"reduction {reduction_op} needs opt_arg = K")
            self.opt_arg = _integer(opt_arg, "opt_arg")
        if use_double_acc:
            dtype_acc = "float64"
        if dtype_acc not in ("auto", None):
            self.options["dtype_acc"] = dtype_acc
        if sum_scheme not in ("auto", None):
            self.options["sum_scheme"] = sum_scheme
        self.variables: dict[int, SymbolicVariable] = {}
        names = {}
        for position, alias in enumerate(aliases):
            name, spec = parse_alias(alias, position)
            names[name] = self._variable(spec)
        self.lazy = self._parse(formula, names)
        self.weight = self._parse(formula2, names) if formula2 else None
        if kind == "sumsoftmaxweight" and self.weight is None:
            raise ValueError("SumSoftMaxWeight needs formula2, the weight")
        self.arity = max(self.variables, default=-1) + 1  # an index no alias or formula uses takes any array

    def __reduce__(self) -> tuple:
        """Pickled as its constructor's arguments (formula nodes are interned per process)."""
        return _rebuild, (type(self), self._arguments)

    def _variable(self, spec: VariableSpec) -> Any:
        known = self.variables.get(spec.index)
        variable = SymbolicVariable(spec.index, spec.category, spec.dim)
        if known is not None and known != variable:
            raise ValueError(f"variable {spec.index} is declared twice, as {known} and {variable}")
        # one object per index: LazyTensors merge variables by identity, so that Vi(0,3) written twice in a
        # formula is one kernel input, not two
        variable = self.variables.setdefault(spec.index, variable)
        return self.lazy_class.from_node(var(0, spec.category, spec.dim), (variable,), (spec.category,), None)

    def _parse(self, text: str, names: dict[str, Any]) -> Any:
        functions = {name: function if name in _NUMBER_FIRST else self._lifting_first(function)
                     for name, function in FUNCTIONS.items()}
        functions["Zero"] = lambda d: self.lazy_class([0.0] * _integer(d, "Zero"))
        lazy = parse_formula(text, functions, names, self._variable, lambda value: value)
        if not isinstance(lazy, self.lazy_class):
            lazy = self.lazy_class(lazy)  # a formula of constants: M = N = 1
        return lazy

    def _lifting_first(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """function, with a number as first argument made a constant LazyTensor (str() writes constant vectors
        as Concat(1, 0), and a formula may start with a number: Exp(2) * x)."""

        def lifted(*args: Any) -> Any:
            if args and isinstance(args[0], (int, float)):
                args = (self.lazy_class(float(args[0])), *args[1:])
            return function(*args)

        return lifted

    def __call__(self, *arrays: Any, backend: str = "auto", device_id: int = -1, ranges: Any = None,
                 out: Any = None) -> Any:
        if len(arrays) != self.arity:
            raise ValueError(f"this Genred takes {self.arity} arrays (one per variable index), got {len(arrays)}")
        batch = batch_dims(arrays, self.variables)
        for index, variable in self.variables.items():
            check_argument(index, arrays[index], variable, batch)
        options = {**self.options, "backend": backend, "device_id": device_id, "out": out,
                   "rows": self._rows(arrays), "ranges": ranges}
        lazy = self._bind(self.lazy, arrays)
        weight = None if self.weight is None else self._bind(self.weight, arrays)
        axis = self.axis + lazy.nbatchdims  # Genred's axis is 0 or 1; a LazyTensor's counts batch dimensions
        return lazy.reduction(self.reduction_op, other=weight, opt_arg=self.opt_arg, axis=axis, **options)

    def _rows(self, arrays: tuple) -> dict[str, int]:
        """M and N from every i- and j-argument, used or not by the formula (pykeops takes them from the
        arguments); a category with no argument has size 1."""
        rows = {}
        for index, variable in self.variables.items():
            if variable.category != "p":
                rows.setdefault(variable.category, arrays[index].shape[-2])
        return rows

    def _bind(self, lazy: Any, arrays: tuple) -> Any:
        if not has_symbolic_variables(lazy):  # constants only: the dtype of the arguments
            given = [a for a in arrays if lazy.adapter.is_array(a)]
            dtype = lazy.adapter.dtype_name(given[0]) if given else "float64"
            return lazy.from_node(lazy.node, lazy.arrays, lazy.categories, dtype)
        return bind_symbolic(lazy, arrays, count=self.arity)


def _rebuild(cls: type, arguments: tuple) -> Genred:
    formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc, use_double_acc, sum_scheme = arguments
    return cls(formula, aliases, reduction_op=reduction_op, axis=axis, opt_arg=opt_arg, formula2=formula2,
               dtype_acc=dtype_acc, use_double_acc=use_double_acc, sum_scheme=sum_scheme)


class KernelSolve:
    """pykeops' KernelSolve: `KernelSolve(formula, aliases, "b", axis=1)(*arrays, alpha=...)` solves
    (alpha Id + K) a = b for a, where K is the formula, linear in the variable `b`, summed over j (axis=1)
    or i (axis=0), and b is the argument of that alias. By conjugate gradient (K symmetric positive), each
    step one Genred call; with torch, differentiable by the adjoint method (see keir.solve)."""

    genred_class: type = None  # set by keir.numpy / keir.torch

    def __init__(self, formula: str, aliases: list[str], varinvalias: str, axis: int = 0, dtype: Any = None,
                 opt_arg: int | None = None, dtype_acc: str = "auto", use_double_acc: bool = False,
                 sum_scheme: str = "auto", cuda_type: Any = None, enable_chunks: bool = True,
                 rec_multVar_highdim: Any = None, use_fast_math: bool = True):  # noqa: N803
        """pykeops' arguments; dtype, cuda_type and the code generation switches change nothing here."""
        self.genred = self.genred_class(formula, aliases, reduction_op="Sum", axis=axis, dtype_acc=dtype_acc,
                                        use_double_acc=use_double_acc, sum_scheme=sum_scheme)
        positions = {parse_alias(alias, k)[0]: parse_alias(alias, k)[1] for k, alias in enumerate(aliases)}
        if varinvalias not in positions:
            raise ValueError(f"KernelSolve: {varinvalias!r} is not one of the aliases {list(positions)}")
        spec = positions[varinvalias]
        if spec.category != ("j" if axis == 1 else "i"):
            raise ValueError(f"KernelSolve: {varinvalias!r} must be indexed by the reduced index "
                             f"({'Vj' if axis == 1 else 'Vi'}), got a {spec.category}-variable")
        self.position = spec.index

    def __call__(self, *arrays: Any, backend: str = "auto", device_id: int = -1, alpha: float = 1e-10,
                 eps: float = 1e-6, ranges: Any = None, max_iterations: int | None = None) -> Any:
        b = arrays[self.position]
        iterations = max_iterations if max_iterations is not None else 10 * b.shape[0] + 10
        return self.genred.lazy_class.adapter.genred_solve(self.genred, arrays, self.position, alpha, eps, iterations,
                                                           {"backend": backend, "device_id": device_id,
                                                            "ranges": ranges})


def make_generic(genred: type) -> tuple[Callable[..., Genred], ...]:
    """generic_sum, generic_logsumexp, generic_argmin, generic_argkmin for a Genred class (numpy or torch).
    The output alias ("s = Vi(1)") says which index the result is indexed by, hence the axis reduced."""

    def axis_of(output: str) -> int:
        return 1 if parse_alias(output, 0)[1].category == "i" else 0

    def generic_sum(formula: str, output: str, *aliases: str, **options: Any) -> Genred:
        return genred(formula, list(aliases), reduction_op="Sum", axis=axis_of(output), **options)

    def generic_logsumexp(formula: str, output: str, *aliases: str, **options: Any) -> Genred:
        return genred(formula, list(aliases), reduction_op="LogSumExp", axis=axis_of(output), **options)

    def generic_argmin(formula: str, output: str, *aliases: str, **options: Any) -> Genred:
        return genred(formula, list(aliases), reduction_op="ArgMin", axis=axis_of(output), **options)

    def generic_argkmin(formula: str, output: str, K: int, *aliases: str, **options: Any) -> Genred:  # noqa: N803
        return genred(formula, list(aliases), reduction_op="ArgKMin", axis=axis_of(output), opt_arg=K, **options)

    return generic_sum, generic_logsumexp, generic_argmin, generic_argkmin
