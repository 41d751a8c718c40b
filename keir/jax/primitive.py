"""`keir_reduce`, the JAX primitive of a keir reduction, with its rules: abstract evaluation (shapes from the
formula, nothing compiled at trace time), lowering to the XLA custom call of keir.jax.ffi, forward-mode
differentiation, transposition and batching.

- jvp: the tangent of the output is one more keir_reduce, the reduction of keir's tangent formula
  (`reduction_tangent`, the transpose of the VJP), over the primals, the output and the tangents.
- transpose: such a tangent reduction is a sum linear in its tangent inputs; its transpose with respect to
  one of them is keir's gradient reduction (`reduction_gradient`) contracted with the cotangent. So
  `jax.grad` = linearize (jvp) + transpose runs keir reductions only, and each of them has these rules in its
  turn: derivatives to any order, in forward and reverse mode.
- batching: the vmapped axes become leading batch dimensions of the reduction (keir broadcasts batch
  dimensions as pykeops does): the same kernel, run per batch entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from keir import lazy as numpy_lazy
from keir.dialect import algebra
from keir.dialect.derivatives import SELECTING_ARG, reduction_gradient, reduction_tangent
from keir.dialect.node import Node, make, var, variables
from keir.dialect.ops import reduction_output_widths
from keir.dtypes import compute_dtype
from keir.jax import ffi
from keir.reduction import Reduction


@dataclass(frozen=True)
class Spec:
    """What a keir_reduce computes besides its inputs: the keir.reduce node (formula, kind, axis, options),
    the category of each input, the dtype name, and the row counts given for a missing category."""

    root: Node
    categories: tuple[str, ...]
    dtype: str
    rows: tuple[tuple[str, int], ...] = ()

    @property
    def axis(self) -> int:
        return self.root.attr("axis")

    @property
    def kind(self) -> str:
        return self.root.attr("kind")

    @property
    def output_category(self) -> str:
        return "i" if self.axis == 1 else "j"

    def reduction(self, arrays: tuple) -> Reduction:
        """The keir Reduction of NumPy LazyTensors over `arrays` that this spec describes."""
        lazy = numpy_lazy.LazyTensor.from_node(self.root.args[0], arrays, self.categories, self.dtype)
        attrs = {k: v for k, v in self.root.attrs if k not in ("kind", "axis")}
        return Reduction(lazy, self.kind, self.axis, rows=dict(self.rows) or None, **attrs)


keir_reduce_p = Primitive("keir_reduce")
keir_reduce_p.multiple_results = True


def reduce(reduction: Reduction) -> Any:
    """reduction() (a Reduction of keir.jax LazyTensors) as a keir_reduce: an array, or (values, indices)."""
    lazy = reduction.lazy
    if reduction.ranges is not None:
        raise ValueError("keir.jax does not take block-sparse ranges")
    computed = compute_dtype(lazy.dtype)  # half inputs are float32 already (keir.dtypes): Reduction rounds
    arrays = [jnp.full((1,), a, dtype=jnp.dtype(computed)) if isinstance(a, float) else a for a in lazy.arrays]
    spec = Spec(reduction.root, lazy.categories, computed, tuple(sorted((reduction.rows or {}).items())))
    outputs = keir_reduce_p.bind(*arrays, spec=spec)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _batch_shape(shapes: list[tuple[int, ...]], categories: tuple[str, ...]) -> tuple[int, ...]:
    own = [shape[: len(shape) - (1 if c == "p" else 2)] for shape, c in zip(shapes, categories)]
    try:
        return np.broadcast_shapes(*own) if own else ()
    except ValueError:
        raise ValueError(f"keir: the batch dimensions of the inputs do not broadcast: {own}") from None


def _abstract_eval(*avals: Any, spec: Spec) -> list[jax.core.ShapedArray]:
    if len(avals) != len(spec.categories):
        raise TypeError(f"keir_reduce takes {len(spec.categories)} arrays, got {len(avals)}")
    for aval, category in zip(avals, spec.categories):
        if aval.dtype != jnp.dtype(spec.dtype):
            raise TypeError(f"keir: the formula is {spec.dtype}, an input is {aval.dtype}")
        if aval.ndim < (1 if category == "p" else 2):
            raise ValueError(f"keir: a {category}-variable needs {'1' if category == 'p' else '2'} dimensions or "
                             f"more, got shape {aval.shape}")
    shapes = [tuple(a.shape) for a in avals]
    batch = _batch_shape(shapes, spec.categories)
    sizes = {shape[-2] for shape, c in zip(shapes, spec.categories) if c == spec.output_category}
    if len(sizes) > 1:
        raise ValueError(f"keir: the {spec.output_category}-variables have different lengths {sorted(sizes)}")
    rows = sizes.pop() if sizes else dict(spec.rows).get(spec.output_category, 1)
    dim, k = spec.root.args[0].dim, dict(spec.root.attrs).get("k")
    floats, indices = reduction_output_widths(spec.kind, dim, k or 1)

    def shape(width: int) -> tuple[int, ...]:
        return (*batch, rows, k, dim) if k is not None and dim > 1 else (*batch, rows, width)

    outputs = []
    if floats:
        outputs.append(jax.core.ShapedArray(shape(floats), jnp.dtype(spec.dtype)))
    if indices:
        outputs.append(jax.core.ShapedArray(shape(indices), jnp.dtype(jnp.int64 if jax.config.jax_enable_x64
                                                                      else jnp.int32)))
    return outputs


keir_reduce_p.def_abstract_eval(_abstract_eval)


def _runner(spec: Spec) -> ffi.Runner:
    def run(arguments: list[np.ndarray], results: list[np.ndarray]) -> None:
        outputs = spec.reduction(tuple(arguments)).compute(arguments)
        for result, output in zip(results, outputs if isinstance(outputs, tuple) else (outputs,)):
            np.copyto(result, output, casting="unsafe")  # int64 indices into int32 where x64 is off

    return run


def _ffi_call(*arrays: Any, spec: Spec) -> list[Any]:
    ffi.register_target()
    reduction_id = ffi.register(spec, _runner(spec))
    avals = _abstract_eval(*(jax.core.ShapedArray(a.shape, a.dtype) for a in arrays), spec=spec)
    results = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals]
    return list(jax.ffi.ffi_call(ffi.TARGET, results)(*arrays, reduction=np.int64(reduction_id)))


keir_reduce_p.def_impl(_ffi_call)
mlir.register_lowering(keir_reduce_p, mlir.lower_fun(_ffi_call, multiple_results=True), platform="cpu")


# ---- forward mode ------------------------------------------------------------------------------------------------

class _Operands:
    """A derivative reduction's inputs: the forward's, then the variables it adds (tangents, cotangents...)."""

    def __init__(self, arrays: list[Any], categories: tuple[str, ...]):
        self.arrays, self.categories = list(arrays), list(categories)

    def variable(self, array: Any, category: str) -> Node:
        self.arrays.append(array)
        self.categories.append(category)
        return var(len(self.arrays) - 1, category, array.shape[-1])

    def sum(self, reduction: Node, spec: Spec) -> tuple[Spec, list[Any]]:
        """The spec of a sum reduction over these operands, with spec's dtype, row counts and sum options."""
        options = {k: v for k, v in spec.root.attrs if k in ("sum_scheme", "dtype_acc")}
        root = make("reduce", reduction.args[0], kind="sum", axis=reduction.attr("axis"), **options)
        return Spec(root, tuple(self.categories), spec.dtype, spec.rows), self.arrays


def _jvp(primals: list[Any], tangents: list[Any], *, spec: Spec) -> tuple[list[Any], list[Any]]:
    outputs = keir_reduce_p.bind(*primals, spec=spec)
    output = outputs[0]
    zeros = [ad.Zero.from_primal_value(out) for out in outputs[1:]]  # indices have no tangent
    if not jnp.issubdtype(output.dtype, jnp.floating):  # arg-reductions: piecewise constant
        return outputs, [ad.Zero.from_primal_value(out) for out in outputs]
    operands = _Operands(primals, spec.categories)
    wrt = {var(k, c, primals[k].shape[-1]): operands.variable(t, c)
           for k, (t, c) in enumerate(zip(tangents, spec.categories)) if type(t) is not ad.Zero}
    if not wrt:
        return outputs, [ad.Zero.from_primal_value(out) for out in outputs]
    selected = _selected_pairs(spec, primals, operands) if spec.kind in SELECTING_ARG else None
    placeholder = operands.variable(jnp.zeros_like(output), spec.output_category)  # gone once expanded
    output_var = operands.variable(output, spec.output_category)
    tangent_spec, arrays = operands.sum(reduction_tangent(spec.root, wrt, placeholder, output_var, selected), spec)
    (tangent,) = keir_reduce_p.bind(*arrays, spec=tangent_spec)
    return outputs, [tangent, *zeros]


ad.primitive_jvps[keir_reduce_p] = _jvp


# Indices are compared as two float parts, j // 4096 and j % 4096: each is exact in float32 up to j = 2**36.
_INDEX_SPLIT = 4096


def _selected_pairs(spec: Spec, primals: list[Any], operands: _Operands) -> Node:
    """For a min or max reduction: the indicator of the pair each output component was taken from (from the
    indices of the arg-reduction of the same formula), as keir.autograd builds it for torch."""
    reduced = "j" if spec.axis == 1 else "i"
    root = make("reduce", spec.root.args[0], kind=SELECTING_ARG[spec.kind], axis=spec.axis)
    (index,) = keir_reduce_p.bind(*map(jax.lax.stop_gradient, primals), spec=Spec(root, spec.categories, spec.dtype,
                                                                                  spec.rows))
    size = next((a.shape[-2] for a, c in zip(primals, spec.categories) if c == reduced), 1)
    dtype = jnp.dtype(spec.dtype)
    positions = jnp.arange(size).reshape(*[1] * (index.ndim - 2), size, 1)
    matches = [make("eq", operands.variable((index // _INDEX_SPLIT).astype(dtype), spec.output_category),
                    operands.variable((positions // _INDEX_SPLIT).astype(dtype), reduced)),
               make("eq", operands.variable((index % _INDEX_SPLIT).astype(dtype), spec.output_category),
                    operands.variable((positions % _INDEX_SPLIT).astype(dtype), reduced))]
    return algebra.mul(*matches)


# ---- reverse mode: the transpose of a tangent reduction ----------------------------------------------------------

def _transpose(cotangents: list[Any], *args: Any, spec: Spec) -> list[Any]:
    cotangent = cotangents[0]
    linear = [k for k, a in enumerate(args) if ad.is_undefined_primal(a)]
    if spec.kind != "sum" or len(cotangents) != 1:
        raise TypeError(f"keir: a {spec.kind} reduction is not linear in its inputs, it has no transpose")
    if type(cotangent) is ad.Zero:
        return [None] * len(args)
    # The sum is linear in the undefined inputs: its gradient does not depend on their values.
    inputs = [jnp.zeros(a.aval.shape, a.aval.dtype) if ad.is_undefined_primal(a) else a for a in args]
    gradients: list[Any] = [None] * len(args)
    for k in linear:
        gradients[k] = _input_gradient(spec, inputs, k, cotangent)
    return gradients


def _input_gradient(spec: Spec, inputs: list[Any], k: int, cotangent: Any) -> Any:
    """The gradient of the sum reduction with respect to input k, contracted with the cotangent: a keir
    reduction, summed over the rows for a parameter and over the batch dimensions the input was broadcast along."""
    operands = _Operands(inputs, spec.categories)
    wrt = var(k, spec.categories[k], inputs[k].shape[-1])
    cotangent_var = operands.variable(cotangent, spec.output_category)
    output_var = var(len(operands.arrays), spec.output_category, spec.root.dim)  # a sum's gradient never uses it
    gradient, sum_rows = reduction_gradient(spec.root, wrt, cotangent_var, output_var)
    if output_var in variables(gradient):
        raise ValueError("keir: the gradient of a sum depends on its output")
    gradient_spec, arrays = operands.sum(gradient, spec)
    shape = inputs[k].shape
    if gradient_spec.reduction(tuple(arrays)).is_zero:  # reads the shapes only
        return jnp.zeros(shape, inputs[k].dtype)
    (rows,) = keir_reduce_p.bind(*arrays, spec=gradient_spec)
    return _sum_to_shape(rows.sum(-2) if sum_rows else rows, shape)


def _sum_to_shape(array: Any, shape: tuple[int, ...]) -> Any:
    """array summed over the leading dimensions, and the size-1 ones, that broadcasting added to `shape`."""
    extra = array.ndim - len(shape)
    array = array.sum(axis=tuple(range(extra))) if extra else array
    ones = tuple(d for d, size in enumerate(shape) if size == 1 and array.shape[d] != 1)
    return array.sum(axis=ones, keepdims=True) if ones else array


ad.primitive_transposes[keir_reduce_p] = _transpose


# ---- vmap --------------------------------------------------------------------------------------------------------

def _batch(arrays: tuple, dims: tuple, *, spec: Spec) -> tuple[list[Any], list[int]]:
    """The vmapped axis of each batched input moved in front of its batch dimensions, with size-1 dimensions
    after it where it has fewer batch dimensions than the others, so that keir's right-aligned broadcasting
    lines the vmapped axes up; the outputs are batched along axis 0."""

    def own_batch_dims(array: Any, category: str, vmapped: bool) -> int:
        return array.ndim - vmapped - (1 if category == "p" else 2)

    depth = max(own_batch_dims(a, c, d is not None) for a, c, d in zip(arrays, spec.categories, dims))
    moved = []
    for array, category, dim in zip(arrays, spec.categories, dims):
        if dim is not None:
            array = jnp.moveaxis(array, dim, 0)
            padding = depth - own_batch_dims(array, category, True)
            array = array.reshape(array.shape[0], *(1,) * padding, *array.shape[1:])
        moved.append(array)
    outputs = keir_reduce_p.bind(*moved, spec=spec)
    return outputs, [0] * len(outputs)


batching.primitive_batchers[keir_reduce_p] = _batch

