"""Static GPU benchmark: keir's kernels compiled for sm_80 and sm_90, without a GPU.

For each formula of the matrix: registers, spilled bytes, static shared memory, and the SASS instructions
of the steady-state j loop per (i, j) pair, by class (benchmarks/sass.py finds the loop and its unroll
factor), with the pairs/s that the issue model predicts (one warp instruction per scheduler per clock;
sm_90: an H200, 132 SMs at 1.98 GHz; sm_80: an A100, 108 SMs at 1.41 GHz). The KeOps column gives
KeOps 2.3's counts for the same formulas on sm_90, measured the same way from the CUDA source it generates
(NVRTC, -use_fast_math), where they were measured. "fast path": for the K-min family, the instructions per pair
of the pairs that skip the insertion (the shortest way through the loop); the prediction uses it.

    .venv/bin/python benchmarks/gpu_static.py          # needs ptxas and nvdisasm: pip install 'keir[bench]'
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sass  # noqa: E402

import keir.numpy as kn  # noqa: E402
from keir import gpu_kernels  # noqa: E402
from keir.compiler.codegen_gpu import gpu_to_ptx  # noqa: E402
from keir.compiler.pipeline import CompileOptions  # noqa: E402

ARCHS = ("sm_90", "sm_80")

# KeOps 2.3 on sm_90, instructions per pair in its j loop (issue 15's measurements).
KEOPS = {"gaussian D=3 f32": 12.0, "gaussian D=3 f32 fast": 12.0, "gaussian D=3 f64": 48.0,
         "argKmin K=10 D=3 f32": 24.5, "gaussian D=100 f32": 332.0}


def _arrays(d: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return tuple(rng.random(shape).astype(dtype) for shape in ((8, d), (8, d), (8, 1)))


def _gaussian(x, y, b):
    return ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * kn.Vj(b)).sum(axis=1, call=False)


def _cauchy(x, y, b):
    return (kn.Vj(b) / (1 + kn.Vi(x).sqdist(kn.Vj(y)))).sum(axis=1, call=False)


def _logsumexp(x, y, b):
    return (-kn.Vi(x).sqdist(kn.Vj(y))).logsumexp(axis=1, call=False)


def _softmax(x, y, b):
    return (-kn.Vi(x).sqdist(kn.Vj(y))).sumsoftmaxweight(kn.Vj(b), axis=1, call=False)


def _argkmin(x, y, b):
    return kn.Vi(x).sqdist(kn.Vj(y)).argKmin(10, axis=1, call=False)


def _gradient(x, y, b):
    x_i = kn.Vi(x)
    kernel = (-x_i.sqdist(kn.Vj(y))).exp() * kn.Vj(b)
    return kernel.grad(x_i, kn.Vi(np.ones((x.shape[0], 1), dtype=x.dtype))).sum(axis=1, call=False)


def _laplacian(x, y, b):
    x_i = kn.Vi(x)
    return ((-x_i.sqdist(kn.Vj(y))).exp().laplacian(x_i) * kn.Vj(b)).sum(axis=1, call=False)


# name -> (formula, D, dtype, precision: the GPU exp, see keir.reduction.Reduction)
FORMULAS: dict[str, tuple[Callable, int, str, str]] = {
    "gaussian D=3 f32": (_gaussian, 3, "float32", "sfu"),
    "gaussian D=3 f32 fast": (_gaussian, 3, "float32", "fast"),
    "gaussian D=3 f32 ieee": (_gaussian, 3, "float32", "ieee"),
    "gaussian D=3 f64": (_gaussian, 3, "float64", "sfu"),
    "gaussian D=100 f32": (_gaussian, 100, "float32", "sfu"),
    "gaussian D=100 f64": (_gaussian, 100, "float64", "sfu"),
    "cauchy D=3 f32": (_cauchy, 3, "float32", "sfu"),
    "logsumexp D=3 f32": (_logsumexp, 3, "float32", "sfu"),
    "sumsoftmaxweight D=3 f32": (_softmax, 3, "float32", "sfu"),
    "argKmin K=10 D=3 f32": (_argkmin, 3, "float32", "sfu"),
    "gradient of gaussian D=3 f32": (_gradient, 3, "float32", "sfu"),
    "laplacian of gaussian D=3 f32": (_laplacian, 3, "float32", "sfu"),
}


def measure(name: str, arch: str) -> tuple[sass.Assembly, sass.Loop]:
    build, d, dtype, precision = FORMULAS[name]
    reduction = build(*_arrays(d, dtype))
    options = gpu_kernels.gpu_options(CompileOptions(gpu_math=precision), arch)
    lowered = gpu_kernels.gpu_lowering(reduction.root, np.dtype(dtype), options, "keir_kernel")
    assembly = sass.assemble(gpu_to_ptx(lowered.text, arch), arch)
    return assembly, sass.steady_state_loop(assembly.sass, lowered.row_bytes, lowered.rows_per_thread)


def main() -> int:
    if not sass.tool("ptxas") or not sass.tool("nvdisasm"):
        print("gpu_static: skipped, ptxas and nvdisasm are not installed (pip install 'keir[bench]')")
        return 0
    classes = " | ".join(sass.CLASSES)
    print(f"| formula | arch | registers | spills (B) | smem (B) | rows × unroll | instr/pair | fast path | KeOps | "
          f"{classes} | predicted pairs/s |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|" + "--:|" * len(sass.CLASSES) + "--:|")
    for arch in ARCHS:
        machine = sass.MACHINES[arch]
        for name in FORMULAS:
            assembly, loop = measure(name, arch)
            per_pair, fast = loop.per_pair(), loop.fast_path_per_pair
            keops = KEOPS.get(name) if arch == "sm_90" else None
            by_class = " | ".join(f"{loop.per_pair(c):.2f}" for c in sass.CLASSES)
            print(f"| {name} | {arch} | {assembly.registers} | {assembly.spilled_bytes} | {assembly.shared_bytes} | "
                  f"{loop.rows} × {loop.unroll} | {per_pair:.2f} | {'' if fast == per_pair else f'{fast:.2f}'} | "
                  f"{'' if keops is None else f'{keops:.1f}'} | {by_class} | "
                  f"{machine.pairs_per_second(fast):.3g} ({machine.name}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
