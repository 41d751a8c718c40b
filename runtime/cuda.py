"""Load PTX and launch keir kernels with the CUDA driver API (`cuda-bindings`, the optional extra keir[cuda]).

Only the NVIDIA driver is needed: cuModuleLoadData JIT-compiles the PTX for the device. Kernels run in the
device's primary context (the one PyTorch uses), so torch CUDA tensors go in and out by pointer, on the current
torch stream, without host copies; NumPy arrays are copied to the device and back. Every failing driver call
raises `KeirCudaError` naming the call. `cuda.bindings` is imported on first use, never by `import keir`.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keir.compiler.lower_gpu import BLOCK_SIZES, DEFAULT_SHARED_BYTES, LaunchConfig, launch_config
from keir.compiler.operands import Operand
from keir.runtime.block_sparse import BlockSparse

# At most this many column splits per launch (benchmarks/gpu_check.py sets 1 to time a launch without them).
MAX_SPLITS = 64


class KeirCudaError(RuntimeError):
    """A CUDA driver call failed; the message names the call and the driver's error."""


@functools.cache
def _driver() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError as error:
        raise ImportError(
            "keir's GPU backend needs the CUDA driver bindings: pip install 'keir[cuda]' (cuda-bindings)"
        ) from error
    return driver


def _call(name: str, *args: Any) -> Any:
    """driver.<name>(*args), raising KeirCudaError on failure; returns the call's outputs (None, one, or a tuple)."""
    driver = _driver()
    err, *values = getattr(driver, name)(*args)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise KeirCudaError(f"{name} failed: {_error_text(err)}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def _error_text(err: Any) -> str:
    driver = _driver()
    status, name = driver.cuGetErrorName(err)
    status2, text = driver.cuGetErrorString(err)
    if status != driver.CUresult.CUDA_SUCCESS or status2 != driver.CUresult.CUDA_SUCCESS:
        return f"CUresult {int(err)}"
    return f"{name.decode()} ({text.decode()})"


_init_lock = threading.Lock()
_initialized = False


def _init() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            _call("cuInit", 0)
            _initialized = True


@functools.cache
def cuda_available() -> bool:
    """True where cuda-bindings imports, the driver loads and there is at least one CUDA device."""
    try:
        _init()
        return _call("cuDeviceGetCount") > 0
    except Exception:  # no bindings, no libcuda, no device: all mean "no CUDA here"
        return False


@dataclass
class Device:
    """One CUDA device with its primary context retained (released at process exit by the driver)."""

    index: int
    handle: Any
    context: Any
    arch: str  # sm_XX
    name: str
    multiprocessors: int

    def activate(self) -> None:
        """Make the primary context current on this thread (the context PyTorch uses too)."""
        _call("cuCtxSetCurrent", self.context)


@functools.cache
def device(index: int = 0) -> Device:
    _init()
    count = _call("cuDeviceGetCount")
    if not 0 <= index < count:
        raise KeirCudaError(f"CUDA device {index} does not exist; this machine has {count}")
    driver = _driver()
    handle = _call("cuDeviceGet", index)
    attribute = driver.CUdevice_attribute
    major = _call("cuDeviceGetAttribute", attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle)
    minor = _call("cuDeviceGetAttribute", attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle)
    sms = _call("cuDeviceGetAttribute", attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, handle)
    name = _call("cuDeviceGetName", 256, handle).split(b"\0", 1)[0].decode()
    context = _call("cuDevicePrimaryCtxRetain", handle)
    return Device(index, handle, context, f"sm_{major}{minor}", name, sms)


@dataclass
class _Loaded:
    module: Any
    function: Any
    max_threads: int
    registers: int


@dataclass
class GpuKernel:
    """A kernel compiled to PTX; the same call as `CpuKernel`, on NumPy arrays or on torch CUDA tensors.

    Layout: every input row-major as the user gives it ((M, D), (N, D), (D,)); outputs (rows, float_width) of
    the kernel's dtype, then (rows, index_width) int64, those whose width is not 0."""

    ptx: str
    symbol: str
    arch: str
    operands: tuple[Operand, ...]
    float_width: int
    index_width: int
    axis: int
    dtype: np.dtype
    row_bytes: int  # workgroup memory per column of a tile
    block_sparse: bool = False  # compiled block-sparse: a call takes a BlockSparse schedule
    rows_per_thread: int = 1  # register blocking (keir.compiler.lower_gpu.rows_per_thread)
    j_split: bool = False  # the kernel can split its columns over grid y (keir.compiler.lower_gpu.j_splits)
    _loaded: dict[int, _Loaded] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _function(self, dev: Device) -> _Loaded:
        found = self._loaded.get(dev.index)
        if found is not None:
            return found
        if dev.arch != self.arch:
            raise KeirCudaError(
                f"this kernel was compiled for {self.arch}; device {dev.index} ({dev.name}) is {dev.arch}"
            )
        with self._lock:
            found = self._loaded.get(dev.index)
            if found is None:
                dev.activate()
                module = _call("cuModuleLoadData", self.ptx.encode() + b"\0")
                function = _call("cuModuleGetFunction", module, self.symbol.encode())
                attribute = _driver().CUfunction_attribute
                max_threads = _call("cuFuncGetAttribute", attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, function)
                registers = _call("cuFuncGetAttribute", attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, function)
                found = self._loaded[dev.index] = _Loaded(module, function, max_threads, registers)
        return found

    def registers(self, dev: Device) -> int:
        """Registers per thread of the kernel as the driver compiled it for `dev`."""
        return self._function(dev).registers

    def launch_config(self, rows: int, dev: Device) -> LaunchConfig:
        loaded = self._function(dev)
        return launch_config(rows, self.row_bytes, dev.multiprocessors, loaded.max_threads, DEFAULT_SHARED_BYTES,
                             self.rows_per_thread)

    def splits(self, rows: int, cols: int, dev: Device) -> int:
        """Column splits (grid y) for a launch: as many as it takes to give every multiprocessor two blocks,
        each split at least 8 tiles long; 1 where the rows fill the device or the kernel cannot split."""
        if not self.j_split:
            return 1
        config = self.launch_config(rows, dev)
        wanted = -(-2 * dev.multiprocessors // config.grid)
        splits = max(1, min(wanted, cols // (8 * config.tile), MAX_SPLITS))
        return -(-cols // _split_columns(cols, splits, config.tile))  # no split left empty

    def block_sparse_config(self, ranges: int, dev: Device) -> LaunchConfig:
        """One block per range, of the largest size the kernel allows (a range has at most that many rows)."""
        widest = self.launch_config(BLOCK_SIZES[0] * 2 * dev.multiprocessors, dev)
        return LaunchConfig(ranges, widest.block, widest.tile, widest.shared_bytes)

    def _schedule(self, schedule: BlockSparse | None, dev: Device) -> BlockSparse | None:
        if (schedule is not None) != self.block_sparse:  # a wrong signature would read past the arguments
            raise ValueError("a block-sparse kernel needs a schedule, a dense one takes none")
        return None if schedule is None else schedule.cut(self.block_sparse_config(1, dev).block)

    def _output_specs(self) -> list[tuple[int, np.dtype]]:
        return [(width, dtype) for width, dtype in ((self.float_width, self.dtype), (self.index_width, np.int64))
                if width]

    def _launch(self, dev: Device, buffers: list[tuple[int, int]], rows: int, cols: int, stream: int,
                ranges: int | None = None, splits: int = 1) -> None:
        """Launch on `stream`; buffers = (device address, elements) of each operand, then of each output (then of
        the block-sparse schedule's arrays, and `ranges` is the number of ranges: one block each). `splits`:
        grid y, the column splits of a j_split kernel (its output holds splits x rows partial rows)."""
        loaded = self._function(dev)
        config = self.launch_config(rows, dev)
        if ranges is not None:
            config = self.block_sparse_config(ranges, dev)
        # Each memref<?xT> argument is a descriptor (allocated, aligned, offset, size, stride), then the indices.
        words: list[int] = []
        for pointer, size in buffers:
            words += [pointer, pointer, 0, size, 1]
        words += [rows, cols, config.tile]
        if self.j_split:
            words.append(_split_columns(cols, splits, config.tile))
        values = np.array(words, dtype=np.uint64)
        slots = np.array([values.ctypes.data + 8 * k for k in range(len(words))], dtype=np.uint64)
        dev.activate()
        _call(
            "cuLaunchKernel", loaded.function, config.grid, splits, 1, config.block, 1, 1, config.shared_bytes,
            stream, slots.ctypes.data, 0,
        )

    # NumPy ---------------------------------------------------------------------------------------------------
    def __call__(self, arrays: list[Any], m: int, n: int, threads: int | None = None,
                 device_index: int | None = None, block_sparse: BlockSparse | None = None) -> list[Any]:
        """arrays[k] is the user's k-th variable ((M, D), (N, D) or (D,)): NumPy arrays, copied to the device
        `device_index` (default 0) and back, or torch CUDA tensors (see call_torch). m, n: the number of i and j
        indices. Returns the outputs, each (M, width) for axis 1 or (N, width) for axis 0: the floats (if any),
        then the int64 indices (if any). `threads` is the CPU kernel's option and is ignored. block_sparse: the
        schedule of a kernel compiled block-sparse."""
        if any(_is_torch_tensor(a) for a in arrays):
            return self.call_torch(arrays, m, n, block_sparse)
        rows, cols = (m, n) if self.axis == 1 else (n, m)
        if rows == 0:
            return [np.empty((rows, width), dtype=dtype) for width, dtype in self._output_specs()]
        dev = device(0 if device_index is None else device_index)
        splits = self.splits(rows, cols, dev)
        outputs = [np.empty((splits * rows, width), dtype=dtype) for width, dtype in self._output_specs()]
        schedule = self._schedule(block_sparse, dev)
        dev.activate()
        allocations: list[int] = []

        def allocate(nbytes: int) -> int:
            allocations.append(int(_call("cuMemAlloc", max(nbytes, 1))))
            return allocations[-1]

        try:
            buffers = []
            for operand in self.operands:
                array = np.ascontiguousarray(arrays[operand.index], dtype=self.dtype)
                pointer = allocate(array.nbytes)
                if array.nbytes:
                    _call("cuMemcpyHtoD", pointer, array.ctypes.data, array.nbytes)
                buffers.append((pointer, array.size))
            out_buffers = [(allocate(out.nbytes), out.size) for out in outputs]
            for array in _schedule_arrays(schedule):
                pointer = allocate(array.nbytes)
                if array.nbytes:
                    _call("cuMemcpyHtoD", pointer, array.ctypes.data, array.nbytes)
                out_buffers.append((pointer, array.size))
            self._launch(dev, buffers + out_buffers, rows, cols, 0, None if schedule is None else len(schedule.ranges),
                         splits)
            for out, (pointer, _) in zip(outputs, out_buffers):
                _call("cuMemcpyDtoH", out.ctypes.data, pointer, out.nbytes)  # waits for the launch
        except BaseException:
            for pointer in allocations:
                _driver().cuMemFree(pointer)  # best effort: the error being raised is the one to report
            raise
        for pointer in allocations:
            _call("cuMemFree", pointer)
        if schedule is not None and self.index_width:
            outputs[-1][schedule.empty_rows] = -1
        if splits > 1:  # the splits' partial sums, added
            return [out.reshape(splits, rows, -1).sum(axis=0) for out in outputs]
        return outputs

    # torch ---------------------------------------------------------------------------------------------------
    def call_torch(self, tensors: list[Any], m: int, n: int, block_sparse: BlockSparse | None = None) -> list[Any]:
        """torch CUDA tensors in and out, on their device and its current stream: no host copy, no sync.
        Inputs that are not contiguous are made so on the device; parameters given as Python numbers or NumPy
        arrays are copied to the device. Returns the outputs as torch tensors on that device."""
        import torch

        devices = {t.device for t in tensors if isinstance(t, torch.Tensor)}
        if len(devices) != 1 or next(iter(devices)).type != "cuda":
            raise ValueError(f"a GPU call needs all its tensors on one CUDA device, got {sorted(map(str, devices))}")
        where = devices.pop()
        torch_dtype = getattr(torch, self.dtype.name)
        dev = device(where.index if where.index is not None else torch.cuda.current_device())
        rows, cols = (m, n) if self.axis == 1 else (n, m)
        splits = self.splits(rows, cols, dev) if rows else 1
        outputs = [
            torch.empty((splits * rows, width), dtype=getattr(torch, np.dtype(dtype).name), device=where)
            for width, dtype in self._output_specs()
        ]
        if rows == 0:
            return outputs
        inputs = []
        for operand in self.operands:
            value = tensors[operand.index]
            if isinstance(value, torch.Tensor):
                if value.dtype != torch_dtype:
                    raise TypeError(f"input {operand.index} is {value.dtype}; this kernel takes {torch_dtype}")
                tensor = value.contiguous()
            else:  # a parameter given as a number or a NumPy array
                tensor = torch.as_tensor(np.asarray(value, dtype=self.dtype), device=where)
            inputs.append(tensor)
        schedule = self._schedule(block_sparse, dev)
        arrays = [torch.from_numpy(a).to(where) for a in _schedule_arrays(schedule)]
        stream = torch.cuda.current_stream(where).cuda_stream
        buffers = [(t.data_ptr(), t.numel()) for t in inputs + outputs + arrays]
        # The inputs may be freed once this returns: torch's caching allocator reuses memory in stream order.
        self._launch(dev, buffers, rows, cols, stream, None if schedule is None else len(schedule.ranges), splits)
        if schedule is not None and self.index_width:
            outputs[-1][torch.from_numpy(schedule.empty_rows).to(where)] = -1
        if splits > 1:  # the splits' partial sums, added (on the device, in stream order)
            return [out.reshape(splits, rows, -1).sum(dim=0) for out in outputs]
        return outputs


def _split_columns(cols: int, splits: int, tile: int) -> int:
    """Columns per split (%jchunk): whole tiles, enough for `splits` splits to cover `cols`."""
    return -(-cols // (splits * tile)) * tile


def _schedule_arrays(schedule: BlockSparse | None) -> list[np.ndarray]:
    """The block-sparse arguments, in the order of keir.compiler.operands.BLOCK_SPARSE."""
    return [] if schedule is None else [schedule.ranges, schedule.slices, schedule.redranges]


def _is_torch_tensor(value: Any) -> bool:
    torch = __import__("sys").modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
