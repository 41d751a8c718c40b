"""`make bench`: keir on the CPU, side by side with torch, NumPy, a C reference and (when installed) pykeops.

    .venv/bin/python benchmarks/cpu.py                  # every case, then overhead, compile time, underflow
    .venv/bin/python benchmarks/cpu.py --quick          # small sizes: a smoke test in seconds
    .venv/bin/python benchmarks/cpu.py --case gauss-d3-2e4 --case overhead

Every case is a reduction over j of a kernel of the squared distance d2 = |x_i - y_j|^2, in float32 and
float64, at one thread and at all cores. Each figure is (i, j) pairs per second, the best of repeated calls
taken in turns with the other backends of its row. The contenders:

- keir: the compiled reduction, `.sum(axis=1, call=False, threads=T)`, called again and again.
- torch chunked: torch.set_num_threads(T); blocks of 256 x 2048 pairs (the fastest block in a sweep on a
  2-core Zen 4), d2 from the expanded form |x|^2 + |y|^2 - 2 x.y (one addmm per block), the kernel in
  place, then a matrix product with b (a running logsumexp for the log-sum-exp case).
- NumPy chunked: the same blocks with NumPy. NumPy's ufuncs (exp included) are single-threaded, so at T
  threads T worker threads take i-blocks in turn, each calling a single-threaded BLAS.
- C -ffast-math: plain C loops (source below), built here with `gcc -O3 -march=native -ffast-math -fopenmp`;
  OpenMP over i for T threads. y is passed transposed (D, N), as keir's runtime transposes it, so that the j
  loop vectorises with contiguous loads; the transposition is inside the timed call for both.
- pykeops, when it is installed, at its own (OpenMP) thread count.

On the largest case, torch and NumPy would take minutes, so they run on the first rows of x only (marked †):
their cost is linear in the number of rows, so pairs/s measured on the subsample stands for the whole. The
same holds for any contender but keir whose single call would exceed a couple of seconds (measured from a
small probe call first), which keeps the run to minutes even when other processes load the machine.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# The NumPy contender runs its own worker threads; each must call a single-threaded BLAS (set before NumPy
# is first imported).
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    Budget,
    available_cores,
    cpu_description,
    interleaved_minimums,
    markdown_table,
    minimum_time,
    rate,
    relative_error,
    three_digits,
)

import keir.numpy  # noqa: E402

try:
    import torch
except ImportError:  # torch is an optional extra
    torch = None

GAMMA = 2.0  # the formulas divide by 0.5
BACKENDS = ("keir", "torch", "NumPy", "C", "pykeops")
NOT_YET = "n/a (not implemented yet)"


@dataclass(frozen=True)
class Case:
    name: str
    kernel: str  # "gauss": exp(-d2 / 0.5) b_j summed; "cauchy": b_j / (1 + d2) summed; "lse": logsumexp(-d2 / 0.5)
    dim: int
    size: int  # M = N
    quick_size: int

    @property
    def title(self) -> str:
        label = {"gauss": "Gaussian sum", "cauchy": "Cauchy sum", "lse": "log-sum-exp"}[self.kernel]
        return f"{label}, D={self.dim}"


CASES = (
    Case("gauss-d3", "gauss", 3, 10_000, 1_500),
    Case("gauss-d3-2e4", "gauss", 3, 20_000, 3_000),
    Case("gauss-d3-1e5", "gauss", 3, 100_000, 8_000),
    Case("gauss-d100", "gauss", 100, 10_000, 1_000),
    Case("lse-d3", "lse", 3, 10_000, 1_500),
    Case("cauchy-d3", "cauchy", 3, 10_000, 1_500),
)
EXTRAS = ("overhead", "compile", "underflow")
TARGET_CASE = "gauss-d3-2e4"  # the case of the done-criterion: float32, one thread


@dataclass(frozen=True)
class Data:
    x: np.ndarray  # (M, D)
    y: np.ndarray  # (N, D)
    b: np.ndarray  # (N, 1)

    def first_rows(self, rows: int) -> Data:
        return Data(self.x[:rows], self.y, self.b)


def make_data(case: Case, size: int, dtype: np.dtype) -> Data:
    """Points with unit variance spread over D components, so that d2 is about 2 and no kernel value
    underflows, whatever D."""
    rng = np.random.default_rng(0)
    scale = 1 / np.sqrt(case.dim)
    x = (rng.standard_normal((size, case.dim)) * scale).astype(dtype)
    y = (rng.standard_normal((size, case.dim)) * scale).astype(dtype)
    b = rng.random((size, 1)).astype(dtype)
    return Data(x, y, b)


# --- keir and pykeops: the formula, built with either library's Vi and Vj ----------------------------------
def formula(module, kernel: str, data: Data):
    """The LazyTensor of the case and the name of its reduction method."""
    d2 = module.Vi(data.x).sqdist(module.Vj(data.y))
    if kernel == "gauss":
        return (-d2 / 0.5).exp() * module.Vj(data.b), "sum"
    if kernel == "cauchy":
        return module.Vj(data.b) / (1 + d2), "sum"
    return -d2 / 0.5, "logsumexp"


def keir_call(case: Case, data: Data, threads: int) -> Callable[[], np.ndarray] | str:
    if case.kernel == "lse" and not hasattr(keir.numpy.LazyTensor, "logsumexp"):
        return NOT_YET
    lazy, reduction = formula(keir.numpy, case.kernel, data)
    return getattr(lazy, reduction)(axis=1, call=False, threads=threads)


def pykeops_call(case: Case, data: Data, threads: int) -> Callable[[], np.ndarray] | str:
    if importlib.util.find_spec("pykeops") is None:
        return "not installed"
    if threads != available_cores():
        return "n/a (no thread option)"
    import pykeops.numpy

    lazy, reduction = formula(pykeops.numpy, case.kernel, data)
    return lambda: getattr(lazy, reduction)(axis=1)


# --- torch and NumPy chunked ------------------------------------------------------------------------------
I_BLOCK, J_BLOCK = 256, 2048


def _block_scales(kernel: str) -> tuple[float, float]:
    """(s, c) such that the block s * d2 + c is the kernel's argument: -d2 / 0.5 for exp, 1 + d2 for 1/."""
    return (1.0, 1.0) if kernel == "cauchy" else (-GAMMA, 0.0)


def torch_chunked(kernel: str, x, y, b):
    s, c = _block_scales(kernel)
    row_terms = s * (x * x).sum(1, keepdim=True) + c
    col_terms = s * (y * y).sum(1)
    if kernel == "lse":
        out = torch.full((len(x), 1), -torch.inf, dtype=x.dtype)
    else:
        out = torch.zeros((len(x), 1), dtype=x.dtype)
    for i0 in range(0, len(x), I_BLOCK):
        xi, acc = x[i0 : i0 + I_BLOCK], out[i0 : i0 + I_BLOCK]
        for j0 in range(0, len(y), J_BLOCK):
            # s * d2 + c = s|y|^2 - 2s x.y + (s|x|^2 + c)
            block = torch.addmm(col_terms[j0 : j0 + J_BLOCK], xi, y[j0 : j0 + J_BLOCK].T, alpha=-2 * s)
            block.add_(row_terms[i0 : i0 + I_BLOCK])
            if kernel == "lse":
                torch.logaddexp(acc, torch.logsumexp(block, 1, keepdim=True), out=acc)
                continue
            block.exp_() if kernel == "gauss" else block.reciprocal_()
            acc.addmm_(block, b[j0 : j0 + J_BLOCK])
    return out


def torch_call(case: Case, data: Data, threads: int) -> Callable[[], object] | str:
    if torch is None:
        return "not installed"
    x, y, b = (torch.from_numpy(a) for a in (data.x, data.y, data.b))

    def call():
        torch.set_num_threads(threads)
        return torch_chunked(case.kernel, x, y, b)

    return call


def numpy_rows(kernel: str, x: np.ndarray, y: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = the reduction for the rows x (at most I_BLOCK of them), block after block of j."""
    s, c = _block_scales(kernel)
    row_terms = s * (x * x).sum(1, keepdims=True) + c
    col_terms = s * (y * y).sum(1)
    out[:] = -np.inf if kernel == "lse" else 0
    for j0 in range(0, len(y), J_BLOCK):
        block = x @ y[j0 : j0 + J_BLOCK].T
        block *= -2 * s
        block += col_terms[j0 : j0 + J_BLOCK]
        block += row_terms
        if kernel == "lse":
            top = block.max(axis=1, keepdims=True)
            block -= top
            np.exp(block, out=block)
            np.logaddexp(out, top + np.log(block.sum(axis=1, keepdims=True)), out=out)
            continue
        np.exp(block, out=block) if kernel == "gauss" else np.reciprocal(block, out=block)
        out += block @ b[j0 : j0 + J_BLOCK]


def numpy_call(case: Case, data: Data, threads: int) -> Callable[[], np.ndarray]:
    x, y, b = data.x, data.y, data.b
    starts = range(0, len(x), I_BLOCK)

    def call():
        out = np.empty((len(x), 1), dtype=x.dtype)

        def rows(i0: int) -> None:
            numpy_rows(case.kernel, x[i0 : i0 + I_BLOCK], y, b, out[i0 : i0 + I_BLOCK])

        if threads == 1:
            for i0 in starts:
                rows(i0)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(rows, starts))
        return out

    return call


# --- the C reference -------------------------------------------------------------------------------------
C_FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC")
# Linked in a second step, without -ffast-math: linking with it adds GCC's crtfastmath.o, whose constructor sets
# flush-to-zero and denormals-are-zero for the whole process when the library is loaded, and every later
# measurement (keir's underflow rows above all) would then run with subnormals flushed.
C_LINK_FLAGS = ("-shared", "-fopenmp")

# Written once with placeholder words, instantiated per element type (REAL, SFX, EXP, LOG, REAL_MAX) and,
# for the sums, per kernel (NAME, WEIGHT: the kernel as an expression of d2 and gamma).
C_BLOCK_HELPER = """
/* d2[j] = |x_i - y_(j0 + j)|^2 for j < count; yt points at column j0 of y transposed to (dim, n), so the
   j loop reads contiguous memory and vectorises. */
static inline __attribute__((always_inline)) void sqdist_block_SFX(
    const REAL *xi, const REAL *yt, long n, long count, long dim, REAL *d2) {
  for (long j = 0; j < count; j++) d2[j] = 0;
  for (long k = 0; k < dim; k++) {
    const REAL xk = xi[k], *yk = yt + k * n;
    for (long j = 0; j < count; j++) {
      const REAL e = xk - yk[j];
      d2[j] += e * e;
    }
  }
}
"""

C_SUM = """
/* out_i = sum_j WEIGHT b_j, d2 = |x_i - y_j|^2: the plain loop, for D = 3. */
void NAME_d3_SFX(const REAL *x, const REAL *yt, const REAL *b, REAL *out, long m, long n, REAL gamma,
                 int threads) {
  const REAL *y0 = yt, *y1 = yt + n, *y2 = yt + 2 * n;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < m; i++) {
    const REAL x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
    REAL acc = 0;
    for (long j = 0; j < n; j++) {
      const REAL e0 = x0 - y0[j], e1 = x1 - y1[j], e2 = x2 - y2[j];
      const REAL d2 = e0 * e0 + e1 * e1 + e2 * e2;
      acc += (WEIGHT) * b[j];
    }
    out[i] = acc;
  }
}

/* The same for any D, BLOCK columns at a time: the block's d2 first, then the weights. */
void NAME_SFX(const REAL *x, const REAL *yt, const REAL *b, REAL *out, long m, long n, long dim, REAL gamma,
              int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < m; i++) {
    REAL acc = 0, d2s[BLOCK];
    for (long j0 = 0; j0 < n; j0 += BLOCK) {
      const long count = n - j0 < BLOCK ? n - j0 : BLOCK;
      sqdist_block_SFX(x + i * dim, yt + j0, n, count, dim, d2s);
      for (long j = 0; j < count; j++) {
        const REAL d2 = d2s[j];
        acc += (WEIGHT) * b[j0 + j];
      }
    }
    out[i] = acc;
  }
}
"""

C_LSE = """
/* log sum_j exp(-gamma d2) for one row: per block, its maximum, then a running (max, sum) pair. */
static inline __attribute__((always_inline)) REAL lse_row_SFX(const REAL *xi, const REAL *yt, long n, long dim,
                                                              REAL gamma) {
  REAL top = -REAL_MAX, total = 0, v[BLOCK];
  for (long j0 = 0; j0 < n; j0 += BLOCK) {
    const long count = n - j0 < BLOCK ? n - j0 : BLOCK;
    sqdist_block_SFX(xi, yt + j0, n, count, dim, v);
    REAL block_top = -REAL_MAX;
    for (long j = 0; j < count; j++) {
      v[j] *= -gamma;
      block_top = v[j] > block_top ? v[j] : block_top;
    }
    if (block_top > top) {
      total *= EXP(top - block_top);
      top = block_top;
    }
    for (long j = 0; j < count; j++) total += EXP(v[j] - top);
  }
  return top + LOG(total);
}

void lse_SFX(const REAL *x, const REAL *yt, REAL *out, long m, long n, long dim, REAL gamma, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < m; i++)
    out[i] = dim == 3 ? lse_row_SFX(x + 3 * i, yt, n, 3, gamma) : lse_row_SFX(x + i * dim, yt, n, dim, gamma);
}
"""

C_TYPES = {
    "float32": {"REAL": "float", "SFX": "f32", "EXP": "expf", "LOG": "logf", "REAL_MAX": "FLT_MAX"},
    "float64": {"REAL": "double", "SFX": "f64", "EXP": "exp", "LOG": "log", "REAL_MAX": "DBL_MAX"},
}
C_WEIGHTS = {"gauss": "EXP(-gamma * d2)", "cauchy": "1 / (1 + d2)"}


def _instantiate(template: str, words: dict[str, str]) -> str:
    # Longest word first: REAL_MAX before REAL, WEIGHT (whose value holds EXP) before EXP.
    for word in sorted(words, key=len, reverse=True):
        template = template.replace(word, words[word])
    return template


def c_source() -> str:
    parts = ["#include <float.h>", "#include <math.h>", "enum { BLOCK = 256 };"]
    for types in C_TYPES.values():
        parts.append(_instantiate(C_BLOCK_HELPER, types))
        for name, weight in C_WEIGHTS.items():
            parts.append(_instantiate(C_SUM, {"NAME": name, "WEIGHT": weight, **types}))
        parts.append(_instantiate(C_LSE, types))
    return "\n".join(parts)


class CReference:
    """The C loops, compiled into a shared library in a temporary folder and loaded with ctypes."""

    def __init__(self, compiler: str, folder: Path):
        source, objects, library = folder / "reference.c", folder / "reference.o", folder / "reference.so"
        source.write_text(c_source())
        subprocess.run([compiler, *C_FLAGS, "-c", str(source), "-o", str(objects)], check=True, capture_output=True)
        subprocess.run([compiler, *C_LINK_FLAGS, str(objects), "-o", str(library), "-lm"], check=True,
                       capture_output=True)
        self.library = ctypes.CDLL(str(library))
        pointer, count = ctypes.c_void_p, ctypes.c_long
        for types in C_TYPES.values():
            sfx, real = types["SFX"], ctypes.c_float if types["REAL"] == "float" else ctypes.c_double
            for kernel in C_WEIGHTS:  # (x, yt, b, out, m, n, [dim,] gamma, threads)
                self.function(f"{kernel}_d3_{sfx}", [pointer] * 4 + [count] * 2 + [real, ctypes.c_int])
                self.function(f"{kernel}_{sfx}", [pointer] * 4 + [count] * 3 + [real, ctypes.c_int])
            self.function(f"lse_{sfx}", [pointer] * 3 + [count] * 3 + [real, ctypes.c_int])  # no b
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()
        vectorised = b"_ZGV" in library.read_bytes()  # glibc's libmvec: vector exp, as -ffast-math allows
        self.description = f"{version[0] if version else compiler}, `{' '.join([compiler, *C_FLAGS[:4]])}`; " + (
            "exp vectorised through glibc's libmvec" if vectorised else "exp not vectorised (scalar libm calls)"
        )

    def function(self, name: str, argtypes: list) -> Callable:
        function = getattr(self.library, name)
        function.argtypes, function.restype = argtypes, None
        return function

    def call(self, case: Case, data: Data, threads: int) -> Callable[[], np.ndarray]:
        sfx = C_TYPES[data.x.dtype.name]["SFX"]
        x, b = np.ascontiguousarray(data.x), np.ascontiguousarray(data.b)
        m, n = len(data.x), len(data.y)
        dims = [] if case.kernel != "lse" and case.dim == 3 else [case.dim]
        if case.kernel == "lse":
            function = getattr(self.library, f"lse_{sfx}")
        else:
            function = getattr(self.library, f"{case.kernel}{'_d3' if case.dim == 3 else ''}_{sfx}")

        def call():
            yt = np.ascontiguousarray(data.y.T)
            out = np.empty(m, dtype=x.dtype)
            weights = [] if case.kernel == "lse" else [b.ctypes.data]
            function(x.ctypes.data, yt.ctypes.data, *weights, out.ctypes.data, m, n, *dims, GAMMA, threads)
            return out

        return call


def build_c_reference(folder: Path) -> CReference | str:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return "no C compiler"
    try:
        return CReference(compiler, folder)
    except (subprocess.CalledProcessError, OSError) as error:
        detail = getattr(error, "stderr", b"") or b""
        return f"build failed: {' '.join(detail.decode(errors='replace').split())[:300] or error}"


# --- one row of the table --------------------------------------------------------------------------------
@dataclass
class Cell:
    rate: float | None = None  # 10^9 pairs per second
    note: str = ""  # why there is no rate
    subsampled: bool = False

    def text(self) -> str:
        if self.rate is None:
            return self.note
        return three_digits(self.rate) + ("†" if self.subsampled else "")


@dataclass
class Row:
    case: Case
    size: int
    dtype: str
    threads: int
    cells: dict[str, Cell]
    error: str  # keir's relative error against the C result (or torch's)

    def ratio(self, other: str) -> float | None:
        mine, theirs = self.cells["keir"].rate, self.cells[other].rate
        return None if mine is None or theirs is None else mine / theirs


def affordable_rows(make: Callable, case: Case, data: Data, threads: int, settings: Settings, name: str) -> int:
    """How many rows of x a contender other than keir runs on: all of them, unless one call would take more
    than settings.call_seconds (judged from a call on a few rows), or unless it is torch or NumPy and the
    case has more than settings.slow_pairs pairs."""
    size, cols = len(data.x), len(data.y)
    probe = max(1, min(size, int(settings.probe_pairs // cols)))
    call = make(case, data.first_rows(probe), threads)
    start = time.perf_counter()
    call()
    per_row = (time.perf_counter() - start) / probe
    rows = settings.call_seconds / per_row
    if name in ("torch", "NumPy"):
        rows = min(rows, settings.slow_pairs / cols)
    return max(probe, min(size, int(rows)))


def measure_row(case: Case, size: int, dtype: str, threads: int, c_ref: CReference | str, settings: Settings) -> Row:
    data = make_data(case, size, np.dtype(dtype))
    tiny = Data(data.x[:64], data.y[:64], data.b[:64])
    makers: dict[str, Callable] = {
        "keir": keir_call,
        "torch": torch_call,
        "NumPy": numpy_call,
        "C": "n/a" if isinstance(c_ref, str) else c_ref.call,
        "pykeops": pykeops_call,
    }
    cells: dict[str, Cell] = {}
    calls: dict[str, Callable[[], object]] = {}
    pairs: dict[str, int] = {}
    for name, make in makers.items():
        if isinstance(make, str):
            cells[name] = Cell(note=make)
            continue
        warm_up = make(case, tiny, threads)  # compiles keir's kernel
        if isinstance(warm_up, str):
            cells[name] = Cell(note=warm_up)
            continue
        warm_up()
        rows = size if name == "keir" else affordable_rows(make, case, data, threads, settings, name)
        calls[name] = make(case, data.first_rows(rows), threads)
        pairs[name] = rows * size
        cells[name] = Cell(subsampled=rows < size)
    budget = settings.target_budget if case.name == TARGET_CASE else settings.budget
    results: dict[str, object] = {}

    def keeping(name: str, call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            results[name] = call()

        return run

    seconds = interleaved_minimums({name: keeping(name, call) for name, call in calls.items()}, budget)
    for name, best in seconds.items():
        cells[name].rate = rate(pairs[name], best)
    error = ""
    if "keir" in results:
        reference = "C" if "C" in results else "torch" if "torch" in results else None
        if reference is not None:
            theirs = np.asarray(results[reference]).reshape(-1)
            mine = np.asarray(results["keir"]).reshape(-1)[: len(theirs)]
            error = f"{relative_error(mine, theirs):.1e}" + ("" if reference == "C" else " (vs torch)")
    return Row(case, size, dtype, threads, cells, error)


def size_text(size: int) -> str:
    """2e4 for 20000; 1500 as it is."""
    exponent = len(str(size)) - 1
    leading, rest = divmod(size, 10**exponent)
    return f"{leading}e{exponent}" if rest == 0 and exponent >= 3 else str(size)


def format_rows(rows: list[Row]) -> str:
    headers = ["case", "M = N", "dtype", "threads", *(f"{name}" for name in BACKENDS)]
    headers += ["keir/C", "keir/torch", "keir rel. err"]
    table = []
    for row in rows:
        ratios = [row.ratio(other) for other in ("C", "torch")]
        table.append(
            [row.case.title, size_text(row.size), row.dtype, str(row.threads)]
            + [row.cells[name].text() for name in BACKENDS]
            + ["" if r is None else f"{r:.2f}×" for r in ratios]
            + [row.error]
        )
    return markdown_table(headers, table, right_from=3)


def target_lines(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        goals = []
        if row.case.name == TARGET_CASE and row.dtype == "float32" and row.threads == 1:
            goals = [("C", 1.2), ("torch", 2.0)]
        if row.case.kernel == "gauss" and row.case.dim == 100:
            goals = [("torch", 1.0)]
        for other, goal in goals:
            ratio = row.ratio(other)
            what = f"{row.case.title}, M = N = {row.size}, {row.dtype}, {row.threads} thread(s): keir/{other}"
            shown = "not measured" if ratio is None else f"{ratio:.2f}×"
            lines.append(verdict(what, shown, f"≥ {goal:g}×", ratio is not None and ratio >= goal))
    return lines


def verdict(what: str, shown: str, target: str, met: bool) -> str:
    return f"- {what} = {shown} (target {target}): {'met' if met else 'MISSED'}"


# --- a Gaussian whose values underflow ---------------------------------------------------------------------
UNDERFLOW_SCALES = (1.0, 100.0, 1e4)
UNDERFLOW_GOAL = 1.2  # the most time a scale may take, relative to scale 1


def underflow_rows(settings: Settings) -> tuple[str, list[str]]:
    """sum_j exp(-scale * |x_i - y_j|^2) b_j, x and y uniform in [0, 1]^3, M = N = 5000, one thread: at scale
    1 no value underflows; at scale 100, in float32, 14 % of the values are subnormal or 0 (in 3 vectors of 16
    lanes out of 4); at 10^4 nearly all are 0 (in float64 too). keir keeps subnormals exact, so this measures
    exp's paths (keir.compiler.mathlib.exp) and the CPU's subnormal arithmetic. The scales are timed in turns."""
    size = 1500 if settings.quick else 5000
    rng = np.random.default_rng(0)
    table, lines = [], []
    for dtype in ("float32", "float64"):
        x, y = rng.random((size, 3)).astype(dtype), rng.random((size, 3)).astype(dtype)
        b = rng.random((size, 1)).astype(dtype)
        calls = {}
        for scale in UNDERFLOW_SCALES:
            lazy = (-keir.numpy.Vi(x).sqdist(keir.numpy.Vj(y)) * scale).exp() * keir.numpy.Vj(b)
            calls[scale] = lazy.sum(axis=1, call=False, threads=1)
            calls[scale]()  # compiles
        seconds = interleaved_minimums(calls, settings.target_budget)
        ratios = {scale: seconds[scale] / seconds[1.0] for scale in UNDERFLOW_SCALES}
        table.append([dtype] + [f"{seconds[s] * 1e3:.1f} ms ({ratios[s]:.2f}×)" for s in UNDERFLOW_SCALES])
        for scale in UNDERFLOW_SCALES[1:]:
            what = f"Gaussian sum, M = N = {size}, {dtype}, 1 thread, scale {scale:g} / scale 1"
            met = ratios[scale] <= UNDERFLOW_GOAL
            lines.append(verdict(what, f"{ratios[scale]:.2f}×", f"≤ {UNDERFLOW_GOAL:g}×", met))
    headers = ["dtype", *(f"scale {s:g}" for s in UNDERFLOW_SCALES)]
    text = (
        f"\n### Underflow: exp(-scale · |x_i − y_j|²) b_j summed, x, y uniform in [0, 1]³, M = N = {size}, "
        "1 thread\n\nTime of a call (best of repeated calls, in turns) and its ratio to scale 1.\n\n"
        + markdown_table(headers, table, right_from=1)
    )
    return text, lines


# --- per-call overhead and compile time ------------------------------------------------------------------
def per_call_overhead() -> list[str]:
    """Rebuild the Gaussian formula and call it on M = N = 100, the kernel already compiled (float32)."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((100, d)).astype(np.float32) for d in (3, 3, 1)]
    fronts = [("keir.numpy", arrays, 50.0)]
    if torch is not None:
        fronts.append(("keir.torch", [torch.from_numpy(a) for a in arrays], 100.0))
    lines = []
    for module_name, (x, y, b), goal in fronts:
        api = importlib.import_module(module_name)

        def build(api=api, x=x, y=y, b=b):
            return (-api.Vi(x).sqdist(api.Vj(y)) / 0.5).exp() * api.Vj(b)

        def whole(build=build):
            return build().sum(axis=1)

        whole()  # compiles (or loads) the kernel
        reduction = build().sum(axis=1, call=False)
        total, building, calling = (minimum_time(f, number=200, repeat=15) * 1e6 for f in (whole, build, reduction))
        what = (
            f"per-call overhead, {module_name} (alone: formula build {building:.1f} µs, call of a prebuilt "
            f"Reduction {calling:.1f} µs); build + reduce + call"
        )
        lines.append(verdict(what, f"{total:.1f} µs", f"< {goal:g} µs", total < goal))
    return lines


COMPILE_PROBE = textwrap.dedent(
    """
    import json, time
    start = time.perf_counter()
    import numpy as np
    import keir.numpy as kn
    imported = time.perf_counter()
    rng = np.random.default_rng(0)
    x, y, b = (rng.standard_normal((100, d)).astype(np.float32) for d in (3, 3, 1))
    begin = time.perf_counter()
    ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1)
    print(json.dumps({"import": imported - start, "first_call": time.perf_counter() - begin}))
    """
)


def _probe(cache: str) -> dict[str, float]:
    env = {**os.environ, "KEIR_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", COMPILE_PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_times(repeats: int) -> list[str]:
    """The Gaussian sum (float32) in fresh processes: first with an empty artifact cache, then with the
    artifact that process left. Best of `repeats` processes each."""
    cold, warm = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="keir-bench-cache-") as cache:
            cold.append(_probe(cache))
            warm.append(_probe(cache))
    best_cold = min(cold, key=lambda p: p["first_call"])
    best_warm = min(warm, key=lambda p: p["first_call"])
    imported = min(p["import"] for p in cold + warm) * 1e3
    cold_ms, warm_ms = best_cold["first_call"] * 1e3, best_warm["first_call"] * 1e3
    return [
        verdict(
            f"cold compile and first call, empty KEIR_CACHE_DIR (`import keir.numpy` before it: {imported:.0f} ms)",
            f"{cold_ms:.0f} ms",
            "< 500 ms",
            cold_ms < 500,
        ),
        verdict(
            "first call in a second process, artifact cached (after `import keir.numpy`)",
            f"{warm_ms:.1f} ms",
            "< 20 ms",
            warm_ms < 20,
        ),
    ]


# --- driver ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    quick: bool
    budget: Budget
    target_budget: Budget
    call_seconds: float  # the longest call a contender other than keir is given (else it runs on fewer rows)
    probe_pairs: float  # the size of the call that estimates its speed
    slow_pairs: float  # torch and NumPy run on at most this many pairs
    compile_repeats: int


def settings_for(quick: bool) -> Settings:
    if quick:
        return Settings(True, Budget(0.2, 1, 3), Budget(0.5, 2, 5), 0.3, 1e6, 2e7, 1)
    return Settings(False, Budget(1.0, 1, 7), Budget(4.0, 3, 12), 2.0, 1e7, 4e8, 3)


def main(argv: list[str] | None = None) -> None:
    names = [case.name for case in CASES] + list(EXTRAS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke test)")
    parser.add_argument(
        "--case",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this case (repeatable): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    chosen = args.case or names
    settings = settings_for(args.quick)
    cores = available_cores()
    thread_counts = sorted({1, cores})
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="keir-bench-c-") as folder:
        c_ref = build_c_reference(Path(folder)) if any(c.name in chosen for c in CASES) else "not built"
        rows = []
        for case in CASES:
            if case.name not in chosen:
                continue
            size = case.quick_size if settings.quick else case.size
            for dtype in ("float32", "float64"):
                for threads in thread_counts:
                    print(f"  {case.name} {dtype} threads={threads} ...", file=sys.stderr, flush=True)
                    rows.append(measure_row(case, size, dtype, threads, c_ref, settings))

    print(f"## keir CPU benchmark{' (--quick)' if settings.quick else ''}\n")
    print(
        f"Machine: {cpu_description()}. NumPy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
        + "."
    )
    print(
        f"Load average (1 min) before the run: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}; other "
        "processes competing for the cores make the all-threads rows (torch's OpenMP above all) unreliable."
    )
    if rows:
        print(f"C reference: {c_ref if isinstance(c_ref, str) else c_ref.description}.")
        print(
            f"torch and NumPy: blocks of {I_BLOCK} × {J_BLOCK} pairs, d2 in the expanded form (one matrix "
            "product per block). torch: torch.set_num_threads(T). NumPy's ufuncs (exp included) are "
            "single-threaded: at T threads, T worker threads take i-blocks, each with a single-threaded BLAS.\n"
        )
        print(
            "Pairs (i, j) per second, in 10⁹ (best of repeated calls, taken in turns); keir/C and keir/torch "
            "are ratios of those rates; keir rel. err = max|keir − C| / max|C|."
        )
        print(
            "† measured on the first rows of x only (cost is linear in M), extrapolated as pairs/s; "
            "keir always runs on all rows.\n"
        )
        print(format_rows(rows))
    lines = target_lines(rows)
    if "underflow" in chosen:
        text, more = underflow_rows(settings)
        print(text)
        lines += more
    if "overhead" in chosen:
        lines += per_call_overhead()
    if "compile" in chosen:
        lines += compile_times(settings.compile_repeats)
    if lines:
        print("\n### Targets\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
