"""GPU backend.

Everywhere (ptxas tests skip where ptxas is not on PATH):
- the PTX of every formula of the op test matrix (tests/support/op_matrix.py), float32 and float64, reduced over
  i and over j, assembles with `ptxas` for sm_80 and sm_90; registers and shared memory per kernel are reported;
- so does a kernel for every op of the catalogue that has a lowering;
- the GPU lowering itself runs on the host (each row a block of one thread), behind a stand-in CUDA driver that
  checks the runtime's argument packing and memory traffic, and matches the CPU backend for every op and every
  reduction kind and accumulator option;
- the launch configuration, arch validation, the PTX cache, driver errors as KeirCudaError.
Where a CUDA driver and device are present: every matrix formula launches on the GPU and matches the CPU backend,
on NumPy arrays and on torch CUDA tensors."""

from __future__ import annotations

import ctypes
import enum
import math
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from support.block_sparse import dense_reduction, random_ranges
from support.op_matrix import OPS, REDUCTIONS

from keir import gpu_kernels, kernels
from keir import ranges as block_sparse
from keir.compiler import mathlib
from keir.compiler.codegen_gpu import nvptx_target, ptx_for
from keir.compiler.kernel import Kernel
from keir.compiler.lower_gpu import BLOCK_SIZES, DEFAULT_SHARED_BYTES, launch_config, lower_gpu, rows_per_thread
from keir.compiler.mlir_text import Builder, Names
from keir.compiler.pipeline import CompileOptions
from keir.dialect.catalogue import complex as complex_family
from keir.dialect.node import make, var
from keir.dialect.ops import OPS as OP_TABLE
from keir.kernels import column_block_roots
from keir.numpy import Pm, Vi, Vj
from keir.runtime import cuda
from keir.runtime.column_blocks import ColumnBlockKernel

ARCHS = ("sm_80", "sm_90")
DTYPES = {"f32": np.float32, "f64": np.float64}
PTXAS = shutil.which("ptxas")
needs_ptxas = pytest.mark.skipif(
    PTXAS is None, reason="ptxas is not on PATH (CUDA toolkit, or the nvidia-cuda-nvcc wheel)"
)
needs_cuda = pytest.mark.skipif(
    not cuda.cuda_available(), reason="no CUDA driver and device here (or cuda-bindings is not installed)"
)


def _data(m: int, n: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed + m + 7 * n)
    return (
        rng.uniform(0.5, 1.5, (m, 3)).astype(dtype),
        rng.uniform(0.5, 1.5, (n, 3)).astype(dtype),
        rng.uniform(0.5, 1.5, (n, 1)).astype(dtype),
        rng.uniform(0.5, 1.5, 3).astype(dtype),
    )


def _reduction(name: str, dtype, axis: int, m: int = 2, n: int = 3):
    """The matrix formula `name` on data of M = m, N = n: its keir.reduce node and its arrays by variable index."""
    formula = OPS[name][0](*(f(a) for f, a in zip((Vi, Vj, Vj, Pm), _data(m, n, dtype))))
    return make("reduce", formula.node, kind="sum", axis=axis), list(formula.arrays)


# Every op of the catalogue with a lowering, in one formula each (whether or not the op matrix has it yet):
# operands in [-1, 1] (x - y), positive ones where the record's domain is, attributes as below. The records
# without one say what lowers them instead (tests/dialect/test_catalogue.py checks that they do).
_OP_ATTRS = {"pow": {"exponent": 3}, "elem": {"index": 1}, "extract": {"start": 1, "length": 2},
             "round": {"digits": 2}, "one_hot": {"dim": 4}, "complex_sum_t": {"dim": 4}}
_COMPLEX_OPERANDS = {op.name for op in complex_family.OPS} - {"complex_exp1j", "real2complex", "imag2complex"}


def _op_formula(op: str):
    x, y, b, p = var(0, "i", 3), var(1, "j", 3), var(2, "j", 1), var(3, "p", 3)
    a = make("mul", x, y) if OP_TABLE[op].domain[0] >= 0 else make("sub", x, y)
    operands = {1: (a,), 2: (a, make("mul", y, p)), 3: (a, b, make("add", y, p))}[OP_TABLE[op].arity]
    if op == "one_hot":
        operands = (make("sum", a),)
    if op in _COMPLEX_OPERANDS:  # interleaved (re, im) pairs: an even dimension
        pairs = [make("concat", operand, make("sum", operand)) for operand in operands]
        operands = (make("complex_sum", pairs[0]),) if op == "complex_sum_t" else tuple(pairs)
    return make(op, *operands, **_OP_ATTRS.get(op, {}))


EVERY_OP = [name for name, op in OP_TABLE.items() if op.lower is not None and name != "constant"]


# ptxas ----------------------------------------------------------------------------------------------------------
_PTXAS_LINE = re.compile(r"Used (\d+) registers.*?(?:(\d+) bytes smem)?$", re.M)
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


@pytest.fixture(scope="module")
def ptxas_report(request):
    rows: list[str] = []
    yield rows
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not rows:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_sep("-", "ptxas -v: registers, static shared memory, spills per kernel")
        for row in rows:
            reporter.write_line(row)


def _ptxas(ptx: str, arch: str, tmp_path) -> str:
    source = tmp_path / f"kernel_{arch}.ptx"
    source.write_text(ptx)
    result = subprocess.run(
        [PTXAS, "-v", f"-arch={arch}", str(source), "-o", str(tmp_path / "kernel.cubin")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"ptxas -arch={arch} rejected the PTX:\n{result.stderr}"
    return result.stderr + result.stdout


@needs_ptxas
@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("axis", [0, 1], ids=["over_i", "over_j"])
@pytest.mark.parametrize("elem", sorted(DTYPES))
@pytest.mark.parametrize("arch", ARCHS)
def test_ptx_assembles(arch, elem, axis, name, tmp_path, ptxas_report):
    root, _ = _reduction(name, DTYPES[elem], axis)
    kernel = gpu_kernels.gpu_kernel_for_arch(root, DTYPES[elem], None, arch)
    assert f".target {arch}" in kernel.ptx and f".entry {kernel.symbol}(" in kernel.ptx
    info = _ptxas(kernel.ptx, arch, tmp_path)
    used = _PTXAS_LINE.search(info)
    spills = _SPILLS.search(info)
    assert used and spills, info
    dynamic = launch_config(10**6, kernel.row_bytes, multiprocessors=132).shared_bytes
    ptxas_report.append(
        f"{arch} {elem} {'over_i' if axis == 0 else 'over_j'} {name:<14} registers {used.group(1):>3}  "
        f"static smem {used.group(2) or 0} B + dynamic {dynamic:>4} B (256 threads)  spill stores {spills.group(1)} B"
    )
    if name == "gaussian":  # the benchmark kernel must stay in registers
        assert spills.group(1) == "0" and spills.group(2) == "0", info


@needs_ptxas
@pytest.mark.parametrize("arch,elem", [("sm_80", "f32"), ("sm_90", "f64")])
def test_every_dialect_op_assembles(arch, elem, tmp_path):
    """One gpu.module with a kernel per op of the op table (one MLIR run, one ptxas run); the formulas of the
    op test matrix above cover both float types on both archs."""
    from keir.compiler.codegen_gpu import gpu_to_ptx
    from keir.compiler.lower_gpu import gpu_module_text

    lowered = [
        lower_gpu(Kernel(f"{op}_{elem}", make("reduce", _op_formula(op), kind="sum", axis=1), elem))
        for op in EVERY_OP
    ]
    info = _ptxas(gpu_to_ptx(gpu_module_text(lowered), arch), arch, tmp_path)
    compiled = set(re.findall(r"Compiling entry function '(\w+)'", info))
    assert compiled == {k.symbol for k in lowered}
    assert len(EVERY_OP) >= 40  # the op table as of this test; it only grows


def test_ptx_targets_the_oldest_isa_that_knows_the_arch():
    root, _ = _reduction("gaussian", np.float32, 1)
    ptx80 = gpu_kernels.gpu_ptx(root, np.float32, arch="sm_80")
    ptx90 = gpu_kernels.gpu_ptx(root, np.float32, arch="sm_90")
    assert ".version 7.0" in ptx80 and ".version 7.8" in ptx90
    # barriers around the tiles, dynamic workgroup memory, and no call to any function (libdevice or other)
    assert "bar.sync" in ptx90 and ".extern .shared .align 16 .b8 __dynamic_shmem__0[];" in ptx90
    assert "call" not in ptx90
    assert "sqrt.approx" not in ptx_for(Kernel("k", _reduction("sqrt", np.float32, 1)[0], "f32"), "sm_90")


def test_ptx_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))
    root = make("reduce", make("mul", var(0, "i", 2), var(1, "j", 2)), kind="sum", axis=1)
    gpu_kernels.gpu_ptx(root, np.float64, arch="sm_90")
    stored = list(tmp_path.glob("*.ptx"))
    assert len(stored) == 1 and ".target sm_90" in stored[0].read_text()


def test_bad_arch_and_unsupported_kernels_are_python_errors():
    with pytest.raises(ValueError, match="unknown GPU architecture"):
        nvptx_target("sm_1000")
    with pytest.raises(ValueError, match="unknown GPU architecture"):
        nvptx_target("compute_90")
    assert nvptx_target("sm_90a").features == "+ptx80"
    with pytest.raises(ValueError, match="only a keir.reduce"):
        lower_gpu(Kernel("k", var(0, "i", 1), "f32"))


# launch configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 31, 10_000, 100_000, 1_000_000])
@pytest.mark.parametrize("per_thread", [1, 2, 8])
def test_launch_config_covers_every_row(rows, per_thread):
    config = launch_config(rows, row_bytes=16, multiprocessors=132, rows_per_thread=per_thread)
    per_block = config.block * per_thread
    assert config.block in BLOCK_SIZES and config.grid * per_block >= rows > (config.grid - 1) * per_block
    assert config.tile == config.block and config.shared_bytes == config.tile * 16


def test_register_blocking_rows_per_thread():
    """Rows per thread from the registers a row keeps (its i-variables and its reduction state, in 32-bit
    registers); one where a block is a range of rows (block-sparse)."""
    x, y, b = var(0, "i", 3), var(1, "j", 3), var(2, "j", 1)
    gaussian = make("mul", make("exp", make("neg", make("sqdist", x, y))), b)
    wide = make("sqdist", var(0, "i", 100), var(1, "j", 100))
    cases = [(make("reduce", gaussian, kind="sum", axis=1), "f32", 8),
             (make("reduce", gaussian, kind="sum", axis=1), "f64", 4),
             (make("reduce", make("sqdist", x, y), kind="argkmin", axis=1, k=10), "f32", 2),
             (make("reduce", wide, kind="sum", axis=1), "f32", 1)]
    for root, elem, expected in cases:
        assert rows_per_thread(root, elem) == expected
        assert lower_gpu(Kernel("k", root, elem)).rows_per_thread == expected
    assert rows_per_thread(cases[0][0], "f32", block_sparse=True) == 1


def test_launch_config_small_problems_use_smaller_blocks_to_fill_the_device():
    assert launch_config(10_000, 16, 132).block == 32
    assert launch_config(100_000, 16, 132).block == 256
    assert launch_config(100_000, 16, 132, max_threads=128).block == 128  # the kernel's register limit


def test_launch_config_wide_j_variables_shorten_the_tile():
    wide = launch_config(10**6, row_bytes=1000 * 4, multiprocessors=132)
    assert wide.tile == DEFAULT_SHARED_BYTES // 4000 < wide.block and wide.shared_bytes <= DEFAULT_SHARED_BYTES
    with pytest.raises(ValueError, match="bytes of workgroup memory"):
        launch_config(10, row_bytes=DEFAULT_SHARED_BYTES + 8, multiprocessors=132)


TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


def _relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), 1e-300))


# the GPU lowering, run on the host ----------------------------------------------------------------------------
def _host_emulation(lowered):
    """The gpu.func compiled for this CPU, running the launch's blocks one after the other and a block's threads
    one after the other, each thread copying whole tiles itself (so the barriers have nothing to wait for). What
    runs is the GPU lowering's own code (its indexing, tiling, block-sparse schedule, accumulators, stores); only
    the cooperative striding of the tile copy is not exercised. Called with the launch's grid and block last."""
    from keir.compiler.codegen import llvm_ir_to_object, loops_to_llvm_ir
    from keir.runtime.cpu_loader import load_symbol

    header, *body = lowered.func_text.splitlines()
    assert header.strip().startswith("gpu.func @") and body[-2:] == ["      gpu.return", "    }"]
    args = header[header.index("(") + 1 : header.rindex(") kernel")]
    replaced = {
        "gpu.thread_id x": "arith.addi %host_tid, %host0 : index",
        "gpu.block_dim x": "arith.addi %host_block, %host0 : index",
        "= %tid to": "= %host0 to", "step %bdim {": "step %host1 {",  # the tile copy: all of it, by each thread
    }
    lines = []
    for line in body[:-2]:
        if "gpu.barrier" in line or "gpu.block_id" in line or "gpu.dynamic_shared_memory" in line:
            continue
        if _EXP2.match(line):
            lines += _host_exp2(line, len(lines))
            continue
        for old, new in replaced.items():
            line = line.replace(old, new)
        lines.append(line.replace(", #gpu.address_space<workgroup>", ""))
    symbol = f"host_{lowered.symbol}"
    text = "\n".join(
        ["module {", f"func.func @{symbol}({args}, %smem: memref<?xi8>, %host_grid: index, %host_grid_y: index, "
         "%host_block: index) {",
         "  %host0 = arith.constant 0 : index", "  %host1 = arith.constant 1 : index",
         "  scf.for %split = %host0 to %host_grid_y step %host1 {",  # the column splits (grid y) of a j_split kernel
         "  scf.for %bid = %host0 to %host_grid step %host1 {",
         "  scf.for %host_tid = %host0 to %host_block step %host1 {", *lines, "  }", "  }", "  }", "  return", "}",
         "}"]
    )
    address = load_symbol(llvm_ir_to_object(loops_to_llvm_ir(text)), symbol)
    words = 5 * (_memrefs(lowered) + 1) + 6 + lowered.j_split
    return ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * words)(address)


_EXP2 = re.compile(r"^(\s*)(%\S+) = math\.exp2 (%\S+)(?: fastmath<afn>)? : f32$")


def _host_exp2(line: str, salt: int) -> list[str]:
    """The special-function unit's ex2.approx.f32 (GPU exp, keir.compiler.mathlib) on the host: 2**h as
    exp(h * ln 2) in float64 (keir's float64 exp, within 1e-15) rounded to float32, so within half an ulp and a
    hair of 2**h where the device's instruction is within NVIDIA's 2 ulp. SSA names are kept apart from the
    kernel's by a large counter."""
    indent, result, h = _EXP2.match(line).groups()
    b = Builder(Names(count=10**7 * (salt + 1)), "f64", None, indent=indent)
    wide = b.emit(f"arith.extf {h} : f32 to f64")
    power = mathlib.exp(b, b.mul(wide, b.const(math.log(2))))
    return [*b.lines, f"{indent}{result} = arith.truncf {power} : f64 to f32"]


def _memrefs(lowered) -> int:
    """The kernel's memref arguments: operands, outputs, the block-sparse schedule's three arrays."""
    return (len(lowered.operands) + (lowered.float_width > 0) + (lowered.index_width > 0)
            + 3 * lowered.block_sparse)


class _Result(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_IMAGE = 200


_DEVICE_ATTRIBUTES = {
    "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR": 9,
    "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR": 0,
    "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT": 132,
}
_FUNCTION_ATTRIBUTES = {"CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK": 1024, "CU_FUNC_ATTRIBUTE_NUM_REGS": 30}


class _StandInDriver:
    """cuda.bindings.driver's calls as keir uses them: host memory stands for device memory, and a launch reads
    the packed kernel parameters and runs the kernel's GPU lowering on the host (_host_emulation)."""

    CUresult = _Result
    CUdevice_attribute = SimpleNamespace(**{k: k for k in _DEVICE_ATTRIBUTES})
    CUfunction_attribute = SimpleNamespace(**{k: k for k in _FUNCTION_ATTRIBUTES})

    def __init__(self, fail_load=False):
        self.fail_load = fail_load
        self.memory: dict[int, np.ndarray] = {}
        self.launches: list[dict] = []
        self.kernels: dict[str, tuple] = {}  # symbol -> (lowered, host function)

    def cuInit(self, flags):
        return (_Result.CUDA_SUCCESS,)

    def cuDeviceGetCount(self):
        return (_Result.CUDA_SUCCESS, 1)

    def cuDeviceGet(self, index):
        return (_Result.CUDA_SUCCESS, index)

    def cuDeviceGetAttribute(self, attribute, handle):
        return (_Result.CUDA_SUCCESS, _DEVICE_ATTRIBUTES[attribute])

    def cuDeviceGetName(self, length, handle):
        return (_Result.CUDA_SUCCESS, b"stand-in H200\0\0\0")

    def cuDevicePrimaryCtxRetain(self, handle):
        return (_Result.CUDA_SUCCESS, "context")

    def cuCtxSetCurrent(self, context):
        return (_Result.CUDA_SUCCESS,)

    def cuModuleLoadData(self, image):
        assert image.endswith(b"\0") and b".entry" in image
        return (_Result.CUDA_ERROR_INVALID_IMAGE, None) if self.fail_load else (_Result.CUDA_SUCCESS, "module")

    def cuModuleGetFunction(self, module, name):
        return (_Result.CUDA_SUCCESS, name.decode())

    def cuFuncGetAttribute(self, attribute, function):
        return (_Result.CUDA_SUCCESS, _FUNCTION_ATTRIBUTES[attribute])

    def cuGetErrorName(self, err):
        return (_Result.CUDA_SUCCESS, _Result(err).name.encode())

    def cuGetErrorString(self, err):
        return (_Result.CUDA_SUCCESS, b"device kernel image is invalid")

    def cuMemAlloc(self, nbytes):
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self.memory[buffer.ctypes.data] = buffer
        return (_Result.CUDA_SUCCESS, buffer.ctypes.data)

    def cuMemFree(self, pointer):
        del self.memory[pointer]
        return (_Result.CUDA_SUCCESS,)

    def cuMemcpyHtoD(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)
        return (_Result.CUDA_SUCCESS,)

    def cuMemcpyDtoH(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)
        return (_Result.CUDA_SUCCESS,)

    def cuLaunchKernel(self, function, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        lowered, host = self.kernels[function]
        memrefs = _memrefs(lowered)
        slots = (ctypes.c_uint64 * (5 * memrefs + 3 + lowered.j_split)).from_address(params)
        words = [ctypes.c_uint64.from_address(slot).value for slot in slots]
        rows, cols, tile = words[5 * memrefs : 5 * memrefs + 3]
        self.launches.append(dict(grid=gx, splits=gy, block=bx, shared=shared, rows=rows, cols=cols, tile=tile))
        assert (gz, by, bz, extra) == (1, 1, 1, 0) and 1 <= tile <= bx and (gy == 1 or lowered.j_split)
        assert lowered.block_sparse or gx * bx * lowered.rows_per_thread >= rows
        if lowered.j_split:  # the splits cover the columns in whole tiles
            chunk = words[-1]
            assert chunk % tile == 0 and gy * chunk >= cols > (gy - 1) * chunk
        assert shared == tile * lowered.row_bytes
        for k in range(memrefs):  # (allocated, aligned, offset, size, stride) of host memory from cuMemAlloc
            pointer, aligned, offset, size, stride = words[5 * k : 5 * k + 5]
            assert pointer == aligned and pointer in self.memory and offset == 0 and stride == 1
        smem = np.zeros(max(shared, 1), dtype=np.uint8)
        host(*words, smem.ctypes.data, smem.ctypes.data, 0, smem.size, 1, gx, gy, bx)
        return (_Result.CUDA_SUCCESS,)


@pytest.fixture
def stand_in(monkeypatch):
    """Install a stand-in driver; returns kernel(root, dtype) -> the GpuKernel, launchable on it."""
    driver = _StandInDriver()
    monkeypatch.setattr(cuda, "_driver", lambda: driver)
    monkeypatch.setattr(cuda, "_initialized", False)
    monkeypatch.setattr(gpu_kernels, "_loaded", kernels.KernelTable())  # kernels loaded on the stand-in stay with it
    monkeypatch.setattr(gpu_kernels, "_column_blocks", {})
    cuda.device.cache_clear()

    def register(compiled, root, dtype, options) -> None:
        if isinstance(compiled, ColumnBlockKernel):  # a wide sum: the kernels of its column blocks
            for block, block_root in zip(compiled.blocks, column_block_roots(root, gpu_kernels.WIDEST_OUTPUT)):
                register(block, block_root, dtype, options)
        elif compiled.symbol not in driver.kernels:
            lowered = gpu_kernels.gpu_lowering(root, dtype, gpu_kernels.gpu_options(options, "sm_90"), compiled.symbol)
            driver.kernels[compiled.symbol] = (lowered, _host_emulation(lowered))

    def kernel(root, dtype, options=None):
        compiled = gpu_kernels.gpu_kernel(root, dtype, options)
        register(compiled, root, dtype, options)
        return compiled

    kernel.driver = driver
    yield kernel
    cuda.device.cache_clear()


def _check_against_cpu(kernel, root, arrays, m, n, dtype):
    got = kernel(root, dtype)(arrays, m, n)
    want = kernels.cpu_kernel(root, dtype)(arrays, m, n)
    assert [g.shape for g in got] == [w.shape for w in want] and [g.dtype for g in got] == [w.dtype for w in want]
    for g, w in zip(got, want):
        if w.dtype == np.int64:
            assert np.array_equal(g, w)
        else:
            assert _relative_error(g, w) < TOLERANCE[dtype]


# 300 x 70 makes several tiles and a partial one
@pytest.mark.parametrize("name,elem,axis", [(name, "f32", axis) for name in ("gaussian", "concat") for axis in (0, 1)])
def test_gpu_lowering_on_host_matches_cpu(stand_in, name, elem, axis):
    root, arrays = _reduction(name, DTYPES[elem], axis, m=300, n=70)
    _check_against_cpu(stand_in, root, arrays, 300, 70, DTYPES[elem])
    (launch,) = stand_in.driver.launches
    assert launch["rows"] == (300 if axis == 1 else 70) and launch["block"] == 32
    assert stand_in.driver.memory == {}  # every device buffer freed


@pytest.mark.parametrize("op", EVERY_OP)
def test_every_dialect_op_on_host_matches_cpu(stand_in, op):
    root = make("reduce", _op_formula(op), kind="sum", axis=1)
    _check_against_cpu(stand_in, root, list(_data(300, 70, np.float64)), 300, 70, np.float64)


@pytest.mark.parametrize("axis", [0, 1], ids=["over_i", "over_j"])
@pytest.mark.parametrize("kind,options", REDUCTIONS, ids=[f"{k}{''.join(map(str, o.values()))}" for k, o in REDUCTIONS])
def test_every_reduction_kind_on_host_matches_cpu(stand_in, kind, options, axis):
    x, y, b, p = _data(150, 90, np.float32)
    xi, yj = var(0, "i", 3), var(1, "j", 3)
    formula = make("sub", make("mul", xi, var(3, "p", 3)), yj)
    if kind in ("logsumexp_weight", "sumsoftmaxweight"):  # concat(f, weight)
        formula = make("concat", make("neg", make("sqdist", xi, yj)), make("mul", yj, var(2, "j", 1)))
    root = make("reduce", formula, kind=kind, axis=axis, **options)
    _check_against_cpu(stand_in, root, [x, y, b, p], 150, 90, np.float32)


@pytest.mark.parametrize("axis", [0, 1], ids=["over_i", "over_j"])
@pytest.mark.parametrize("kind,options", REDUCTIONS, ids=[f"{k}{''.join(map(str, o.values()))}" for k, o in REDUCTIONS])
def test_block_sparse_reductions_on_host_match_a_masked_dense_reference(stand_in, kind, options, axis):
    """A block per range of rows, over its j-intervals (tiles cut at their ends), against NumPy float64 on the kept
    pairs; rows no range covers get the reduction of no terms. (Gradients are sum reductions over the same
    ranges: tests/api/test_block_sparse.py checks them on the CPU.)"""
    rng = np.random.default_rng(8)
    m, n = 300, 170
    ranges, mask = random_ranges(rng, m, n)
    x, y = rng.standard_normal((m, 3)), rng.standard_normal((n, 3))
    weight = rng.random((n if axis == 1 else m, 1)) + 0.5
    f = make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3)))
    weighted = kind in ("logsumexp_weight", "sumsoftmaxweight")
    formula = make("concat", f, var(2, "j" if axis == 1 else "i", 1)) if weighted else f
    root = make("reduce", formula, kind=kind, axis=axis, **options)
    rows, columns = (m, n) if axis == 1 else (n, m)
    schedule = block_sparse.schedule(block_sparse.as_ranges(ranges), axis, rows, columns)
    got = stand_in(root, np.float64, CompileOptions(block_sparse=True))([x, y, weight], m, n, block_sparse=schedule)
    terms = -((x[:, None] - y[None]) ** 2).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = dense_reduction(kind, terms, mask, axis, k=options.get("k", 3), weight=weight)
    for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(g.astype(np.float64).reshape(w.shape), w, rtol=1e-12, atol=1e-12)
    (launch,) = stand_in.driver.launches
    assert launch["grid"] == len(schedule.ranges) and launch["block"] == BLOCK_SIZES[0]
    assert stand_in.driver.memory == {}


@pytest.mark.parametrize("wrt", ["x", "y"])
def test_block_sparse_gradients_on_host_match_torch_autograd(stand_in, wrt):
    """The gradient of a block-sparse Gaussian sum with respect to an i-variable (a reduction over j, the first
    half of the ranges) and a j-variable (over i, the transposed half), run as the GPU lowering on the host,
    against torch autograd of the masked dense float64 form."""
    torch = pytest.importorskip("torch")
    from keir.dialect.derivatives import reduction_gradient

    rng = np.random.default_rng(9)
    m, n = 200, 150
    ranges, mask = random_ranges(rng, m, n)
    x, y, b, g = (rng.standard_normal(shape) for shape in ((m, 3), (n, 3), (n, 2), (m, 2)))
    xi, yj, bj = var(0, "i", 3), var(1, "j", 3), var(2, "j", 2)
    root = make("reduce", make("mul", make("exp", make("neg", make("sqdist", xi, yj))), bj), kind="sum", axis=1)
    gradient, _ = reduction_gradient(root, xi if wrt == "x" else yj, var(3, "i", 2), var(4, "i", 2))
    axis = gradient.attr("axis")
    rows, columns = (m, n) if axis == 1 else (n, m)
    schedule = block_sparse.schedule(block_sparse.as_ranges(ranges), axis, rows, columns)
    (got,) = stand_in(gradient, np.float64, CompileOptions(block_sparse=True))(
        [x, y, b, g, np.zeros((m, 2))], m, n, block_sparse=schedule)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    kernel = torch.exp(-((tx[:, None] - ty[None]) ** 2).sum(-1)) * torch.tensor(mask)
    out = kernel @ torch.tensor(b)
    (want,) = torch.autograd.grad(out, [tx if wrt == "x" else ty], torch.tensor(g))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


@needs_ptxas
@pytest.mark.parametrize("kind", ["sum", "argkmin", "sumsoftmaxweight"])
def test_block_sparse_ptx_assembles(kind, tmp_path):
    formula = make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3)))
    if kind == "sumsoftmaxweight":
        formula = make("concat", formula, var(2, "j", 2))
    root = make("reduce", formula, kind=kind, axis=1, **({"k": 4} if kind == "argkmin" else {}))
    for arch in ("sm_80", "sm_90"):
        ptx = kernels.compilation(root, np.float32, CompileOptions(block_sparse=True, target=arch)).ptx
        assert "used 1 barriers" in _ptxas(ptx, arch, tmp_path)


def test_runtime_errors_name_the_driver_call(monkeypatch):
    driver = _StandInDriver(fail_load=True)
    monkeypatch.setattr(cuda, "_driver", lambda: driver)
    monkeypatch.setattr(cuda, "_initialized", False)
    monkeypatch.setattr(gpu_kernels, "_loaded", kernels.KernelTable())
    cuda.device.cache_clear()
    root, arrays = _reduction("mul", np.float32, 1)
    try:
        with pytest.raises(cuda.KeirCudaError, match=r"cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE"):
            gpu_kernels.gpu_kernel(root, np.float32)(arrays, 2, 3)
    finally:
        cuda.device.cache_clear()
    assert driver.memory == {}


def test_stand_in_uses_the_real_bindings_names():
    driver = pytest.importorskip("cuda.bindings.driver", reason="cuda-bindings (keir[cuda]) is not installed")
    for name in _DEVICE_ATTRIBUTES:
        assert hasattr(driver.CUdevice_attribute, name)
    for name in _FUNCTION_ATTRIBUTES:
        assert hasattr(driver.CUfunction_attribute, name)
    for name in [n for n in vars(_StandInDriver) if n.startswith("cu")]:
        assert hasattr(driver, name), name


# launches on a real device --------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("axis", [0, 1], ids=["over_i", "over_j"])
@pytest.mark.parametrize("elem", sorted(DTYPES))
def test_launch_matches_cpu(elem, axis, name):
    dtype = DTYPES[elem]
    for m, n in [(1, 1), (7, 300), (1000, 1234)]:
        root, arrays = _reduction(name, dtype, axis, m, n)
        (got,) = gpu_kernels.gpu_kernel(root, dtype)(arrays, m, n)
        (want,) = kernels.cpu_kernel(root, dtype)(arrays, m, n)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert _relative_error(got, want) < TOLERANCE[dtype], (m, n)


@needs_cuda
def test_launch_on_torch_cuda_tensors_stays_on_the_device():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    root, arrays = _reduction("gaussian", np.float32, 1, 500, 700)
    tensors = [torch.from_numpy(a).cuda() for a in arrays]
    (got,) = gpu_kernels.gpu_kernel(root, np.float32)(tensors, 500, 700)
    assert got.is_cuda and got.dtype == torch.float32
    (want,) = kernels.cpu_kernel(root, np.float32)(arrays, 500, 700)
    assert _relative_error(got.cpu().numpy(), want) < TOLERANCE[np.float32]


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in ulps of got's dtype at exact (subnormal ulps below the smallest normal); specials must
    match exactly."""
    info = np.finfo(got.dtype)
    with np.errstate(all="ignore"):
        _, exponent = np.frexp(np.abs(exact))
        ulp = np.ldexp(np.ones_like(exact), np.maximum(exponent - 1, info.minexp) - info.nmant)
        error = np.abs(got.astype(exact.dtype) - exact) / ulp
        rounded = exact.astype(got.dtype)
    special = ~np.isfinite(rounded) | ~np.isfinite(got)
    same = (got == rounded) | (np.isnan(got) & np.isnan(exact))
    error[special] = np.where(same, 0.0, np.inf)[special]
    return error


@pytest.mark.parametrize("gpu_math,dtype", [("sfu", np.float32), ("ieee", np.float32), ("sfu", np.float64)])
def test_gpu_exp_error_bound_on_host(stand_in, gpu_math, dtype):
    """The GPU's exp over its whole range (results normal, subnormal, 0 and inf; NaN, ±inf, ±0 in), against a
    wider reference: float32 with "sfu": the exact reduction adds at most half an ulp to ex2.approx's error (the
    host stands in for ex2.approx with a result within half an ulp and a hair, so 1 ulp in all here; NVIDIA's 2
    ulp for the instruction make the documented bound 2.5 ulp); "ieee" and float64 (always the polynomial, each
    thread branching between its normal-result and general paths) are the CPU's polynomial: 1 ulp."""
    top, edges = (89.0, [88.7228317, 88.7228394, -87.33654, -103.27893, -103.97208, 1.4e-45, 3e38, -3e38]) \
        if dtype == np.float32 else (715.0, [709.782712893384, 709.7827128933841, -708.3964185322641,
                                              -744.4400719213812, -745.1332191019412, 5e-324, 1e308, -1e308])
    grid = np.linspace(-top - 20 if dtype == np.float32 else -760.0, top, 200_001).astype(dtype)
    edges = np.array(edges + [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan], dtype=dtype)
    x = np.concatenate([grid, edges]).reshape(-1, 1)
    root = make("reduce", make("exp", var(0, "i", 1)), kind="sum", axis=1)
    (got,) = stand_in(root, dtype, CompileOptions(gpu_math=gpu_math))([x], x.shape[0], 1)
    with np.errstate(over="ignore"):
        exact = np.exp(x.astype(np.longdouble))
    errors = _ulps(got, exact)
    assert errors.max() <= 1.0, (x[errors.argmax()], got[errors.argmax()], exact[errors.argmax()])
    if dtype == np.float32:
        assert (got[x == np.float32(88.7228394)] == np.inf).all()
        assert np.isfinite(got[x == np.float32(88.7228317)]).all()


def test_gpu_math_options():
    """precision="ieee" keeps the polynomial; "sfu" and "fast" put exp on ex2.approx (fast: flush to zero,
    no reduction); anything else is refused."""
    root = make("reduce", make("exp", make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3)))), kind="sum", axis=1)
    kernel = Kernel("k", root, "f32")
    texts = {m: lower_gpu(kernel, gpu_math=m).text for m in mathlib.GPU_MATH}
    assert "math.exp2" not in texts["ieee"] and "math.exp2" in texts["sfu"] and "fastmath<afn>" in texts["fast"]
    assert "ex2.approx.f32" in ptx_for(kernel, "sm_90")
    with pytest.raises(ValueError, match="precision must be one of"):
        CompileOptions(gpu_math="exact")


@pytest.mark.parametrize("axis", [0, 1])
def test_wide_sums_run_in_column_blocks_on_host(stand_in, axis):
    """A Gaussian times B of 150 columns (more than keir.gpu_kernels.WIDEST_OUTPUT, which registers hold): the
    kernels of blocks of 64, 64 and 22 columns, side by side, against NumPy float64."""
    rng = np.random.default_rng(3)
    x, y, b = rng.random((70, 3)), rng.random((50, 3)), rng.standard_normal((50 if axis == 1 else 70, 150))
    weight = var(2, "j" if axis == 1 else "i", 150)
    root = make("reduce", make("mul", make("exp", make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3)))),
                               weight), kind="sum", axis=axis)
    compiled = stand_in(root, np.float64)
    assert isinstance(compiled, ColumnBlockKernel) and len(compiled.blocks) == 3
    (got,) = compiled([x, y, b], 70, 50)
    k = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(got, k @ b if axis == 1 else k.T @ b, rtol=1e-12, atol=1e-12)
    assert len(stand_in.driver.launches) == 3


@pytest.mark.parametrize("options,split", [({}, True), ({"sum_scheme": "block_sum"}, True),
                                           ({"sum_scheme": "kahan_scheme"}, False), ({"kind": "min"}, False)])
def test_few_rows_split_their_columns_over_blocks_on_host(stand_in, options, split):
    """40 rows, 5000 columns: one block of rows, so a plain sum splits the columns over grid y (each split whole
    tiles, at least 8 of them) and adds the partial sums; Kahan sums and the other kinds keep one split."""
    x, y, b = _data(40, 5000, np.float64)[:3]
    kind = options.pop("kind", "sum")
    formula = make("mul", make("exp", make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3)))), var(2, "j", 1))
    root = make("reduce", formula, kind=kind, axis=1, **options)
    _check_against_cpu(stand_in, root, [x, y, b], 40, 5000, np.float64)
    terms = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) * b[:, 0]  # dense float64, outside keir
    want = terms.sum(1, keepdims=True) if kind == "sum" else terms.min(1, keepdims=True)
    (got,) = stand_in(root, np.float64)([x, y, b], 40, 5000)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    launch = stand_in.driver.launches[0]
    assert (launch["splits"] > 1) == split, launch
    if split:  # one block of rows (32 threads), 132 multiprocessors: at most 5000 // (8 * 32) = 19 splits of
        # whole tiles, 288 columns each, so 18 of them
        assert (launch["grid"], launch["tile"], launch["splits"]) == (1, 32, 18)
