"""keir reductions as one torch operator, `keir::reduce`, so that `torch.compile(fullgraph=True)` and
`torch.export` put them in their graphs.

Eager torch runs a reduction through `keir.autograd.KeirReduction`, an autograd.Function that Dynamo cannot
trace (its forward runs compiled code on NumPy arrays). While torch traces (Dynamo, AOTAutograd, export),
`Reduction.__call__` calls this operator instead:

    keir::reduce(kernel: str, categories: str, rows_i: int, rows_j: int, inputs: Tensor[]) -> Tensor[]

`kernel` is the reduction as keir IR text (`compiler.emit`), the same canonical text that keys the artifact
cache: the graph holds a string constant, the formula is rebuilt from it (`compiler.importer`, once per
process and text), so an exported program carries its formulas with it. The fake implementation gives the
output shapes and dtypes from the formula and the input shapes, without compiling, and with symbolic sizes:
keir's kernels are size-generic, so a new M or N needs no new kernel and, with `dynamic=True`, no re-trace.
The backward (`_Reduce`) builds the same gradient reductions as the eager path
(`keir.autograd.input_gradient`), which call this op again, so they are differentiable in their turn
(torch.compile itself refuses a double backward in a compiled function).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensor

from keir.autograd import Plan, input_gradient
from keir.compiler.emit import emit_module
from keir.compiler.importer import parse_module
from keir.compiler.kernel import DTYPES, Kernel
from keir.dialect.node import Node
from keir.dialect.ops import reduction_output_widths
from keir.dtypes import compute_dtype
from keir.lazy import LazyTensor
from keir.reduction import Reduction

_traced_class: list[type] = []  # the LazyTensor class of the torch front end (make_traceable registers it)

_NAMES = {short: name for name, short in DTYPES.items()}  # "f32" -> "float32"


def tracing(arrays: tuple) -> bool:
    """Whether torch is tracing this call (torch.compile, AOTAutograd, torch.export) rather than running it:
    the inputs are fake or functional tensors then. Plain tensors are recognised first, by type: this runs on
    every call."""
    for a in arrays:
        kind = type(a)
        if kind is torch.Tensor or kind is float or kind is torch.nn.Parameter:
            continue
        if isinstance(a, (FakeTensor, FunctionalTensor)) or torch._is_functional_tensor(a):
            return True
    return torch.compiler.is_compiling()


def reduce(reduction: Any) -> Any:
    """reduction() through the operator: a tensor, or (values, indices)."""
    lazy = reduction.lazy
    like = next(a for a in lazy.arrays if isinstance(a, torch.Tensor))
    inputs = [torch.tensor([a], dtype=like.dtype, device=like.device) if isinstance(a, float) else a
              for a in lazy.arrays]
    rows = reduction.rows or {}
    outputs = torch.ops.keir.reduce(_kernel_text(reduction.root, compute_dtype(lazy.dtype)), "".join(lazy.categories),
                                    rows.get("i", -1), rows.get("j", -1), inputs)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


@torch.compiler.assume_constant_result
def _kernel_text(root: Node, dtype: str) -> str:
    """The reduction's IR text: computed when Dynamo traces, a constant of the graph."""
    return _text(root, dtype)


@functools.lru_cache(maxsize=1024)
def _text(root: Node, dtype: str) -> str:
    return emit_module([Kernel("keir_reduce", root, DTYPES[dtype])])


@functools.lru_cache(maxsize=1024)
def _kernel(text: str) -> Kernel:
    (kernel,) = parse_module(text)
    return kernel


def _reduction(text: str, categories: str, rows_i: int, rows_j: int, inputs: list[torch.Tensor]) -> Any:
    """The keir Reduction that the op's arguments describe."""
    kernel = _kernel(text)
    root = kernel.result
    lazy = _traced_class[0].from_node(root.args[0], tuple(inputs), tuple(categories), _NAMES[kernel.dtype])
    attrs = {k: v for k, v in root.attrs if k not in ("kind", "axis")}
    rows = {c: r for c, r in (("i", rows_i), ("j", rows_j)) if r >= 0} or None
    return Reduction(lazy, root.attr("kind"), root.attr("axis"), rows=rows, **attrs)


# The op is defined with torch.library.Library rather than torch.library.custom_op, and its autograd kernel is
# written here: custom_op's wrappers cost about 20 µs a call (measured: benchmarks/torch_compile.py), which is
# the whole budget of a compiled call's overhead; these cost about 3.
_LIBRARY = torch.library.Library("keir", "DEF")
_LIBRARY.define("reduce(str kernel, str categories, int rows_i, int rows_j, Tensor[] inputs) -> Tensor[]")


def _run(kernel: str, categories: str, rows_i: int, rows_j: int, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The op's computation (every backend: the Reduction picks the CPU or the GPU from the tensors)."""
    signature = tuple((t.shape, t.dtype, t.device) for t in inputs)
    template = _template(kernel, categories, rows_i, rows_j, signature)
    outputs = template.computed(inputs) if template is not None else \
        _reduction(kernel, categories, rows_i, rows_j, inputs)()
    return list(outputs) if isinstance(outputs, tuple) else [outputs]


@functools.lru_cache(maxsize=256)
def _template(kernel: str, categories: str, rows_i: int, rows_j: int, signature: tuple) -> Reduction | None:
    """The op's Reduction over stand-ins of the inputs' shapes, dtypes and devices (one element each, expanded),
    to run on the real inputs: a compiled graph calls the op again and again with such inputs, and building
    the Reduction cost more than its kernel at small sizes. None where the plain call does more than compute
    (a formula that vanishes)."""
    stand_ins = [torch.empty((1,) * len(shape), dtype=dtype, device=device).expand(shape)
                 for shape, dtype, device in signature]
    reduction = _reduction(kernel, categories, rows_i, rows_j, stand_ins)
    return None if (reduction.kind == "sum" and reduction.is_zero) else reduction


class _Reduce(torch.autograd.Function):
    """The op where an input requires grad: the forward below autograd, the backward keir's gradient reductions
    (`keir.autograd.input_gradient`), which are this op again."""

    @staticmethod
    def forward(kernel: str, categories: str, rows_i: int, rows_j: int, *inputs: torch.Tensor) -> tuple:
        with torch._C._AutoDispatchBelowAutograd():
            return tuple(torch.ops.keir.reduce.default(kernel, categories, rows_i, rows_j, list(inputs)))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        kernel, categories, rows_i, rows_j, *tensors = inputs
        ctx.arguments = (kernel, categories, rows_i, rows_j)
        ctx.mark_non_differentiable(*(o for o in output if not o.is_floating_point()))
        ctx.save_for_backward(*tensors, output[0])

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple:
        *tensors, output = ctx.saved_tensors
        untouched = (None,) * len(tensors)
        if grads[0] is None or not output.is_floating_point():
            return (None, None, None, None, *untouched)
        plan = Plan.of(_reduction(*ctx.arguments, list(tensors)))
        needed = ctx.needs_input_grad[4:]
        return (None, None, None, None, *(input_gradient(plan, list(tensors), k, grads[0], output) if need else None
                                           for k, need in enumerate(needed)))


def _autograd_kernel(kernel: str, categories: str, rows_i: int, rows_j: int,
                     inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return list(_Reduce.apply(kernel, categories, rows_i, rows_j, *inputs))
    if not tracing(inputs):  # real tensors (a compiled graph running): nothing below autograd to do
        return _run(kernel, categories, rows_i, rows_j, inputs)
    with torch._C._AutoDispatchBelowAutograd():  # fake or functional tensors: their own kernels
        return torch.ops.keir.reduce.default(kernel, categories, rows_i, rows_j, inputs)


_LIBRARY.impl("reduce", _run, "CompositeExplicitAutograd")
_LIBRARY.impl("reduce", _autograd_kernel, "Autograd")


@torch.library.register_fake("keir::reduce")
def _fake(kernel: str, categories: str, rows_i: int, rows_j: int,
          inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    root = _kernel(kernel).result
    axis, kind, k = root.attr("axis"), root.attr("kind"), dict(root.attrs).get("k")
    output_category = "i" if axis == 1 else "j"
    batch = torch.broadcast_shapes(*(a.shape[: a.dim() - (1 if c == "p" else 2)]
                                     for a, c in zip(inputs, categories)))
    sizes = [a.shape[-2] for a, c in zip(inputs, categories) if c == output_category]
    rows = sizes[0] if sizes else max((rows_i if output_category == "i" else rows_j), 1)
    dim = root.args[0].dim
    floats, indices = reduction_output_widths(kind, dim, k or 1)

    def shape(width: int) -> tuple:
        if k is not None and dim > 1:  # (rows, K, D), as Reduction.compute gives
            return (*batch, rows, k, dim)
        return (*batch, rows, width)

    dtype = inputs[0].dtype if inputs else torch.float32
    outputs = []
    if floats:
        outputs.append(inputs[0].new_empty(shape(floats), dtype=dtype))
    if indices:
        outputs.append(inputs[0].new_empty(shape(indices), dtype=torch.int64))
    return outputs


# ---- LazyTensor formulas inside torch.compile --------------------------------------------------------------------
# Dynamo cannot trace keir's formula building (hash-consed nodes, caches), and need not: a formula is built once
# per trace. So every LazyTensor method runs outside Dynamo, as `nonstrict_trace` functions (plain Python on
# fake tensors, which the reduction's operator records), LazyTensors cross into Dynamo as pytrees (their
# arrays are the leaves; the formula node, categories and dtype the context) and formula nodes as opaque value
# objects (constants of the graph, compared by identity: nodes are interned).

def _node_from_text(text: str) -> Node:
    return _kernel(text).result


def _node_fx_repr(node: Node) -> tuple[str, dict[str, Any]]:
    """How FX code rebuilds a node: from its keir IR text."""
    return f"keir_node({_text(node, 'float64')!r})", {"keir_node": _node_from_text}


def _register_node() -> None:
    from torch._library.opaque_object import is_opaque_type, register_opaque_type

    if not is_opaque_type(Node):
        Node.__fx_repr__ = _node_fx_repr
        register_opaque_type(Node, typ="value")


# pykeops-style code mixes LazyTensors with tensors: `K * torch.tensor([s])`, `K @ b`. Dynamo turns such a
# Python operator into the tensor function below, with the operands in this order (it swaps them, and
# for matmul calls `b.matmul(K)` for `K @ b`); eager torch calls the same __torch_function__ for `tensor * K`.
_OPERATORS = {
    torch.Tensor.__mul__: ("mul", False), torch.Tensor.__rmul__: ("mul", True), torch._C.TensorBase.mul: ("mul", False),
    torch.Tensor.__add__: ("add", False), torch.Tensor.__radd__: ("add", True), torch._C.TensorBase.add: ("add", False),
    torch.Tensor.__sub__: ("sub", False), torch.Tensor.__rsub__: ("sub", True), torch._C.TensorBase.sub: ("sub", False),
    torch.Tensor.__truediv__: ("truediv", False), torch.Tensor.__rtruediv__: ("truediv", True),
    torch.Tensor.__rdiv__: ("truediv", True), torch._C.TensorBase.div: ("truediv", False),
    torch.Tensor.__pow__: ("pow", False), torch.Tensor.__rpow__: ("pow", True), torch._C.TensorBase.pow: ("pow", False),
}


def torch_function(func: Any, args: tuple, kwargs: dict | None) -> Any:
    """A LazyTensor's __torch_function__: the arithmetic operators with a tensor operand; NotImplemented (a
    TypeError from torch) for anything else."""
    if kwargs or len(args) != 2:
        return NotImplemented
    if func is torch._C.TensorBase.matmul and torch.compiler.is_compiling() and isinstance(args[1], LazyTensor):
        return args[1].__matmul__(args[0])  # Dynamo's spelling of `K @ b` (eager `b @ K` raises: no __rmatmul__)
    operator = _OPERATORS.get(func)
    if operator is None:
        return NotImplemented
    name, reflected = operator
    left, right = (args[1], args[0]) if reflected else args
    if isinstance(left, LazyTensor):
        return getattr(left, f"__{name}__")(right)
    return getattr(right, f"__r{name}__")(left)


def make_traceable(cls: type) -> None:
    """Let torch.compile(fullgraph=True) trace code that builds and reduces `cls` (a LazyTensor class, real or
    complex; the operator rebuilds reductions with the real one: a complex output is viewed as complex outside)."""
    import torch.utils._pytree as pytree

    if not cls.is_complex:
        _traced_class[:] = [cls]
    _register_node()
    pytree.register_pytree_node(
        cls, lambda lazy: (list(lazy.arrays), (lazy.node, lazy.categories, lazy.dtype)),
        lambda arrays, context: cls.from_node(context[0], tuple(arrays), context[1], context[2]))
    for klass in cls.__mro__[:-1]:
        for name, method in vars(klass).items():
            public = not name.startswith("_") or (name.startswith("__") and name not in _NOT_WRAPPED)
            if public and callable(method) and not isinstance(method, (type, staticmethod, classmethod)):
                run_outside_dynamo(method)


def run_outside_dynamo(function: Any) -> None:
    """What torch._dynamo.nonstrict_trace(function) does, on the function itself rather than on a wrapper:
    a wrapper would add a call to every LazyTensor operation in eager code too."""
    from torch._dynamo import trace_rules

    trace_rules._allowed_callable_ids.add(id(function))
    trace_rules._nonstrict_trace_callable_ids.add(id(function))


# Dunders that must stay what they are: construction, attribute access, representation, the torch hook.
_NOT_WRAPPED = {"__init__", "__new__", "__getattribute__", "__getattr__", "__setattr__", "__delattr__",
                "__repr__", "__str__", "__init_subclass__", "__torch_function__", "__class_getitem__",
                "__subclasshook__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__sizeof__",
                "__format__", "__dir__", "__hash__", "__eq__", "__ne__", "__bool__", "__len__", "__iter__",
                "__slots__"}
