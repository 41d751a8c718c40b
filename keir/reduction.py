"""A reduction of a LazyTensor: validation of sizes, the compiled kernel, the call, and IR inspection."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from keir import kernels
from keir import ranges as block_sparse
from keir.compiler.mathlib import check_gpu_math
from keir.compiler.passes import keir_differentiate, keir_trace
from keir.compiler.pipeline import CompileOptions
from keir.dialect import algebra
from keir.dialect.node import Node, interned, make
from keir.dtypes import HALF_DTYPES, SUPPORTED_DTYPES, compute_dtype
from keir.symbolic import bind_symbolic, has_symbolic_variables

_DTYPES = {name: np.dtype(compute_dtype(name)) for name in SUPPORTED_DTYPES}  # the kernel's (keir.dtypes)
_BLOCK_SPARSE = CompileOptions(block_sparse=True)


BACKENDS = ("auto", "CPU", "GPU", "GPU_1D", "GPU_2D")  # pykeops' 1D / 2D GPU schemes are one GPU path here
# pykeops options that tune its code generation and do not change the result: accepted, nothing to do
_TUNING_OPTIONS = ("enable_chunks", "use_fast_math", "optional_flags", "keepdim")


class Reduction:
    """`Reduce_{axis} formula`, ready to run. Returned by `.sum(axis=..., call=False)`; call it to compute.
    A formula with symbolic variables (`Vi(0, 3)`, `LazyTensor((0, 3, 0))`) gives a Reduction that is called
    with their arrays, in the order of their indices: `(Vi(0, 3).sqdist(Vj(1, 3))).sum(axis=1)(x, y)`."""

    def __init__(self, lazy: Any, kind: str, axis: int, threads: int | None = None, out: Any = None,
                 backend: str = "auto", device_id: int = -1, ranges: Any = None, use_double_acc: bool = False,
                 rows: dict[str, int] | None = None, precision: str = "sfu", device_ids: Any = None,
                 **reduce_attrs: Any):
        """reduce_attrs: `k` (the K-min family), `sum_scheme`, `dtype_acc` — see keir.dialect.ops.
        out: an array to write the result into. backend: "auto" (the GPU for CUDA tensors, else the CPU),
        "CPU" or "GPU" ("GPU_1D", "GPU_2D" as in pykeops); device_id: the GPU to use (-1: the default one).
        rows: the number of rows ("i") or columns ("j") where the formula has no such variable (default 1,
        as in pykeops). ranges: pykeops' block-sparse 6-tuple (keir.ranges), the same for every batch entry.
        precision: the GPU's float32 exp — "sfu" (the special-function unit after an exact reduction, within
        2.5 ulp), "fast" (KeOps' -use_fast_math form), "ieee" (the CPU's polynomial, 1 ulp); the CPU always runs
        the polynomial. device_ids: several devices to share the work (keir.devices), e.g. [0, 1]."""
        self.ranges = block_sparse.as_ranges(ranges)
        check_gpu_math(precision)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
        for name in _TUNING_OPTIONS:
            reduce_attrs.pop(name, None)
        if use_double_acc:
            reduce_attrs.setdefault("dtype_acc", "float64")
        unknown = set(reduce_attrs) - {"k", "sum_scheme", "dtype_acc"}
        if unknown:
            raise TypeError(f"a reduction got unexpected option(s) {', '.join(sorted(unknown))}")
        self.backend, self.device_id, self.precision = backend, device_id, precision
        self.device_ids = None if device_ids is None else tuple(device_ids)
        self.lazy = lazy
        self.adapter = lazy.adapter
        self.axis = axis
        self.threads = threads
        self.out = out
        self.kind = kind
        self.rows = rows
        self.reduce_attrs = reduce_attrs
        if reduce_attrs:
            self.root = make("reduce", lazy.node, kind=kind, axis=axis, **reduce_attrs)
        else:  # the common case, with make()'s sorted attributes spelled out (sorting costs half a µs)
            self.root = interned("reduce", (lazy.node,), (("axis", axis), ("kind", kind)))
        self.k = reduce_attrs.get("k")
        self.dtype = _DTYPES.get(lazy.dtype)
        self.symbolic = has_symbolic_variables(lazy)
        if self.symbolic:  # sizes are known once the arrays are given
            self.sizes, self.batch_shape = {}, ()
            return
        self.sizes, batched = _sizes(lazy, rows)
        self.batch_shape = lazy.batch_shape if batched else ()

    @property
    def cpu_options(self) -> CompileOptions | None:
        """The CPU kernel's options (None: the defaults, the cheapest key); the CPU has no `precision`."""
        return _BLOCK_SPARSE if self.ranges is not None else None

    @property
    def gpu_compile_options(self) -> CompileOptions:
        """The GPU kernel's options (the target arch is added by keir.gpu_kernels)."""
        return CompileOptions(block_sparse=self.ranges is not None, gpu_math=self.precision)

    def compilation(self, options: CompileOptions | None = None):
        return kernels.compilation(self.root, self.dtype, options or self.cpu_options)

    def ir(self, stage: str = "keir") -> str:
        """The IR of this reduction at a stage: "keir", "opt", "loops", "llvm", "gpu" or "ptx" (for the
        device's architecture; sm_80 where there is no CUDA device)."""
        options = None
        if stage in ("gpu", "ptx"):
            from keir import gpu_kernels

            arch = gpu_kernels.default_arch(None if self.device_id < 0 else self.device_id)
            options = gpu_kernels.gpu_options(self.gpu_compile_options, arch)
        return self.compilation(options).stage(stage)

    def _on_gpu(self, arrays: Any) -> bool:
        """backend="auto" runs on the GPU when the inputs are CUDA tensors, on the CPU otherwise."""
        on_cuda = self.adapter.on_cuda(arrays)
        if self.backend == "CPU":
            if on_cuda:
                raise ValueError("backend='CPU' got CUDA tensors; move them to the CPU or use backend='GPU'")
            return False
        if self.backend == "GPU" or on_cuda:
            from keir.runtime.cuda import cuda_available

            if not cuda_available():
                raise RuntimeError("the GPU backend needs an NVIDIA driver, a CUDA device and cuda-bindings "
                                   "(pip install 'keir[cuda]')")
            return True
        return False

    def _kernel_and_inputs(self, arrays: Any) -> tuple[Any, list[Any]]:
        """The compiled kernel (CPU or GPU) and the inputs in the form it takes."""
        schedule = None
        if self.ranges is not None:
            rows, columns = (self.sizes["i"], self.sizes["j"])[:: 1 if self.axis == 1 else -1]
            schedule = block_sparse.schedule(self.ranges, self.axis, rows, columns)
        if not self._on_gpu(arrays):
            kernel = kernels.cpu_kernel(self.root, self.dtype, self.cpu_options)
            if schedule is not None:
                return ((lambda values, m, n, threads: kernel(values, m, n, threads, schedule)),
                        self.adapter.numpy_inputs(arrays, self.dtype))
            return kernel, self.adapter.numpy_inputs(arrays, self.dtype)
        from keir import gpu_kernels

        device = self.adapter.cuda_device(arrays)
        device = max(self.device_id, 0) if device is None else device
        gpu = gpu_kernels.gpu_kernel(self.root, self.dtype, self.gpu_compile_options, device_index=device)
        # arrays on the device stay there (adapter.device_inputs); others are copied to the device and back
        inputs = self.adapter.device_inputs(arrays) if self.adapter.on_cuda(arrays) else \
            self.adapter.numpy_inputs(arrays, self.dtype)
        return (lambda values, m, n, threads: gpu(values, m, n, device_index=device, block_sparse=schedule)), inputs

    def __call__(self, *arrays: Any, **call_options: Any) -> Any:
        """Compute. With symbolic variables: their arrays, in the order of their indices. call_options
        (backend, device_id, out, ranges, ...) override those the reduction was made with, as in pykeops."""
        if self.symbolic or arrays or call_options:
            return self._with(arrays, call_options)()
        arrays = self.lazy.arrays
        if self.adapter.tracing(arrays):  # torch.compile / torch.export: the keir::reduce operator in the graph
            if self.ranges is not None:
                raise ValueError("block-sparse ranges are not supported under torch.compile / torch.export yet")
            return self._output(self.adapter.traced(self))
        like = arrays[0] if arrays else None  # a formula of constants has no arrays: M = N = 1
        if self.kind == "sum" and self.is_zero:  # e.g. a vanishing second derivative: no kernel
            rows = self.sizes["i" if self.axis == 1 else "j"]
            zeros = np.zeros(self.batch_shape + (rows, self.root.dim), dtype=self.dtype)
            return self._output(self.adapter.result(zeros, like))
        if self.device_ids is not None:  # one piece per device, merged (keir.devices)
            from keir.devices import reduce_on_devices

            return self._output(reduce_on_devices(self, self.device_ids))
        if self.adapter.needs_autograd(arrays):
            return self._output(self.adapter.differentiable(self))
        return self.computed(arrays)

    def computed(self, arrays: Any) -> Any:
        """The result on `arrays` (this reduction's, or others of the same shapes, dtypes and devices), as the
        user gets it, without autograd."""
        like = arrays[0] if arrays else None  # a formula of constants has no arrays: M = N = 1
        out = self.compute(arrays)
        if isinstance(out, tuple):  # values and indices
            return self._output(tuple(self.adapter.result(part, like) for part in out))
        return self._output(self.adapter.result(out, like))

    def _output(self, result: Any) -> Any:
        """The result as the user gets it: complex numbers for a complex formula, values rounded to a half dtype
        (indices untouched), written into `out` if given."""
        if self.lazy.is_complex:
            result = self.adapter.complex_view(result)
        dtype = self.lazy.dtype
        if dtype in HALF_DTYPES:
            rounded = self.adapter.rounded
            result = tuple(rounded(part, dtype) for part in result) if isinstance(result, tuple) else \
                rounded(result, dtype)
        return self._into_out(result)

    def _with(self, arrays: tuple, call_options: dict[str, Any]) -> Reduction:
        """This reduction with its symbolic variables bound to `arrays` and the options updated."""
        if arrays and not self.symbolic:
            raise ValueError(f"this reduction has no symbolic variables: it takes no arrays, got {len(arrays)}")
        lazy = bind_symbolic(self.lazy, arrays) if self.symbolic else self.lazy
        options = {"threads": self.threads, "out": self.out, "backend": self.backend, "device_id": self.device_id,
                   "rows": self.rows, "ranges": self.ranges, "precision": self.precision, **self.reduce_attrs,
                   "device_ids": self.device_ids, **call_options}
        return Reduction(lazy, self.kind, self.axis, **options)

    def over(self, arrays: Any) -> Reduction:
        """The same reduction (formula, kind, options) over other arrays of the same categories: torch.func's
        rules run it on batched or tangent tensors. `out` is not carried over."""
        lazy = self.lazy.from_node(self.lazy.node, tuple(arrays), self.lazy.categories, self.lazy.dtype)
        return Reduction(lazy, self.kind, self.axis, threads=self.threads, backend=self.backend,
                         device_id=self.device_id, rows=self.rows, ranges=self.ranges, precision=self.precision,
                         **self.reduce_attrs)

    def _into_out(self, result: Any) -> Any:
        if self.out is None:
            return result
        if isinstance(result, tuple):  # refused rather than ignored
            raise ValueError(f"out= takes one array; a {self.kind} reduction returns {len(result)} (values, indices)")
        if tuple(self.out.shape) != tuple(result.shape):
            raise ValueError(f"out has shape {tuple(self.out.shape)}, the result has shape {tuple(result.shape)}")
        self.out[...] = result
        return self.out

    @property
    def is_zero(self) -> bool:
        """Whether the formula is zero once its derivatives are expanded (checked without compiling)."""
        return _is_zero(self.lazy.node)

    def compute(self, arrays: Any) -> np.ndarray:
        """Run the kernel on `arrays` (this reduction's inputs, or stand-ins of the same shapes)."""
        kernel, arrays = self._kernel_and_inputs(arrays)
        m, n = self.sizes["i"], self.sizes["j"]
        if not self.batch_shape:
            outputs = kernel(arrays, m, n, self.threads)
        else:  # one kernel call per batch index, each variable broadcast along the batch dimensions
            runs = [kernel(_batch_slices(arrays, self.lazy.categories, index), m, n, self.threads)
                    for index in np.ndindex(*self.batch_shape)]
            outputs = [self.adapter.stack([run[k] for run in runs]).reshape(self.batch_shape + tuple(runs[0][k].shape))
                       for k in range(len(runs[0]))]
        k, dim = self.k, self.lazy.node.dim
        if k is not None and dim > 1:  # rows hold K values per component: give (rows, K, D) as pykeops does
            outputs = [out.reshape(out.shape[:-1] + (dim, k)).swapaxes(-1, -2) for out in outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _sizes(lazy: Any, rows: dict[str, int] | None = None) -> tuple[dict[str, int], bool]:
    """({"i": M, "j": N}, whether any variable has batch dimensions), checking that the i variables agree on M
    and the j variables on N. A formula without i (j) variables has M = 1 (N = 1) as in pykeops, unless
    `rows` gives the size (Genred knows it from an alias the formula does not use). One pass over the
    variables: this runs on every call."""
    sizes: dict[str, int] = {}
    disagree = set()
    batched = False
    for array, category in zip(lazy.arrays, lazy.categories):
        if category == "p":
            batched = batched or (not isinstance(array, float) and len(array.shape) > 1)
            continue
        shape = array.shape
        if sizes.setdefault(category, shape[-2]) != shape[-2]:
            disagree.add(category)
        batched = batched or len(shape) > 2
    for category in ("i", "j"):
        if category not in sizes:
            sizes[category] = rows.get(category, 1) if rows else 1
        if category in disagree:
            shapes = [tuple(a.shape) for a, c in zip(lazy.arrays, lazy.categories) if c == category]
            name = "Vi" if category == "i" else "Vj"
            raise ValueError(f"the {name} variables of one formula must have the same length; got shapes {shapes}")
    return sizes, batched


@functools.lru_cache(maxsize=1024)
def _is_zero(formula: Node) -> bool:  # nodes are interned, so a formula is its own cache key
    # Laplacians first: a gradient of one (autograd's backward) differentiates its expansion.
    return algebra.is_zero(keir_differentiate.expand(keir_trace.expand(formula)))


def _batch_slices(arrays: list[np.ndarray], categories: tuple[str, ...], index: tuple[int, ...]) -> list[np.ndarray]:
    """Each array at batch position `index` (its own batch dimensions aligned to the right, size-1 broadcast)."""
    sliced = []
    for array, category in zip(arrays, categories):
        own = array.ndim - (1 if category == "p" else 2)
        position = tuple(0 if size == 1 else i for size, i in zip(array.shape[:own], index[len(index) - own :]))
        sliced.append(array[position])
    return sliced
