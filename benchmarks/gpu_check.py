"""Every GPU check in one go, on a machine with an NVIDIA GPU and its driver (no CUDA SDK needed), in < 4 min:

1. the GPU tests (tests/compiler/lowering/test_gpu_ptx.py: ptxas, and every op launched and compared with the
   CPU backend);
2. every formula of the op test matrix, both reductions (over i and over j), float32 and float64, at sizes with
   partial blocks and several tiles, and the gradient of each with respect to each of its variables (float64),
   GPU against the CPU backend;
3. the Gaussian kernel sum out_i = sum_j exp(-|x_i - y_j|^2) b_j, D = 3, float32, M = N in {1e4, 1e5, 1e6}:
   keir on torch CUDA tensors against torch (chunked, dense blocks on the GPU) and pykeops when installed; and
   M = 1e4, N = 1e6 with and without the column splits (grid y);
4. block-sparse reductions (ranges): every reduction kind over i and j against the masked dense float64
   reference (tests/support/block_sparse.py), and the truncated Gaussian of benchmarks/block_sparse.py
   (M = N = 1e5, 5 % of cluster pairs kept) against keir dense, both on the GPU;
5. the GPU's float32 exp on the device for each `precision` (sfu, fast, ieee) over its whole range, in ulps
   against float64 (sfu: at most 2.5 ulp; ieee: 1), and for each formula of benchmarks/gpu_static.py the
   measured pairs/s (M = N = 1e6 for float32 at D = 3, else 1e5) against the issue model's prediction (where
   ptxas and nvdisasm are installed: pip install 'keir[bench]').

    python benchmarks/gpu_check.py            # exits non-zero if any check fails
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the op test matrix (tests/support)
# One artifact cache for this script and the tests it runs, so that kernels compile once.
os.environ.setdefault("KEIR_CACHE_DIR", tempfile.mkdtemp(prefix="keir-gpu-check-"))

from keir import gpu_kernels, kernels  # noqa: E402
from keir.dialect.derivatives import SELECTING_ARG, NotDifferentiableError, reduction_gradient  # noqa: E402
from keir.dialect.node import make, var, variables  # noqa: E402
from keir.numpy import Pm, Vi, Vj  # noqa: E402
from keir.runtime import cuda  # noqa: E402

TOLERANCE = {np.float32: 5e-5, np.float64: 1e-11}
SIZES = [1e4, 1e5, 1e6]


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), 1e-300))


def data(m: int, n: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(0.5, 1.5, (m, 3)).astype(dtype),
        rng.uniform(0.5, 1.5, (n, 3)).astype(dtype),
        rng.uniform(0.5, 1.5, (n, 1)).astype(dtype),
        rng.uniform(0.5, 1.5, 3).astype(dtype),
    )


def run_tests() -> bool:
    print("== 1. tests/compiler/lowering/test_gpu_ptx.py")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/compiler/lowering/test_gpu_ptx.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    print("\n".join(lines[-1:] if result.returncode == 0 else lines[-40:]))
    print(f"   ({time.perf_counter() - start:.0f} s)")
    return result.returncode == 0


def compare_matrix() -> bool:
    from support.op_matrix import OPS, REDUCTIONS

    print("== 2. every op, reduction and gradient: GPU against the CPU backend")
    start, failures, checked = time.perf_counter(), [], 0

    def check(label: str, root, arrays, m: int, n: int, dtype) -> None:
        nonlocal checked
        checked += 1
        got = gpu_kernels.gpu_kernel(root, dtype)(arrays, m, n)
        want = kernels.cpu_kernel(root, dtype)(arrays, m, n)
        for g, w in zip(got, want, strict=True):
            exact = w.dtype == np.int64  # indices: the same values compare equal on both
            error = 0.0 if exact and np.array_equal(g, w) else relative_error(g, w)
            if g.shape != w.shape or error > (0 if exact else TOLERANCE[dtype]):
                failures.append(f"{label}: shape {g.shape} vs {w.shape}, error {error:.2e}")

    m, n = 1337, 2049  # partial blocks, several tiles
    for name, (formula, _) in sorted(OPS.items()):
        for dtype in (np.float32, np.float64):
            lazy = formula(*(f(a) for f, a in zip((Vi, Vj, Vj, Pm), data(m, n, dtype))))
            arrays = list(lazy.arrays)
            for axis in (0, 1):
                root = make("reduce", lazy.node, kind="sum", axis=axis)
                check(f"{name} {np.dtype(dtype).name} axis={axis}", root, arrays, m, n, dtype)
                if dtype is not np.float64:
                    continue
                gradients(name, root, arrays, lazy.categories, m, n, dtype, check)
    x, y, b, p = data(m, n, np.float32)
    xi, yj = var(0, "i", 3), var(1, "j", 3)
    for kind, options in REDUCTIONS:
        formula = make("sub", make("mul", xi, var(3, "p", 3)), yj)
        if kind in ("logsumexp_weight", "sumsoftmaxweight"):
            formula = make("concat", make("neg", make("sqdist", xi, yj)), make("mul", yj, var(2, "j", 1)))
        for axis in (0, 1):
            root = make("reduce", formula, kind=kind, axis=axis, **options)
            check(f"{kind} {options} axis={axis}", root, [x, y, b, p], m, n, np.float32)
    for failure in failures:
        print("   FAIL", failure)
    print(f"   {checked - len(failures)} of {checked} kernels agree ({time.perf_counter() - start:.0f} s)")
    return not failures


def gradients(name: str, root, arrays: list, categories, m: int, n: int, dtype, check) -> None:
    """Check the gradient reduction of `root` with respect to each of its variables (cotangent: random)."""
    axis = root.attr("axis")
    category = "i" if axis == 1 else "j"
    rows = m if axis == 1 else n
    cotangent = np.random.default_rng(1).uniform(0.5, 1.5, (rows, root.dim)).astype(dtype)
    (output,) = kernels.cpu_kernel(root, dtype)(arrays, m, n)
    cotangent_var, output_var = var(len(arrays), category, root.dim), var(len(arrays) + 1, category, root.dim)
    for k, (array, var_category) in enumerate(zip(arrays, categories)):
        wrt = var(k, var_category, array.shape[-1])
        try:
            # min/max: any indicator of the selected pairs makes a kernel to compare between the backends
            selected = make("eq", root.args[0], output_var) if root.attr("kind") in SELECTING_ARG else None
            gradient, _ = reduction_gradient(root, wrt, cotangent_var, output_var, selected)
        except NotDifferentiableError:
            continue
        inputs = [*arrays, cotangent] + ([output] if output_var in variables(gradient) else [])
        check(f"d/d(var {k}) {name} axis={axis}", gradient, inputs, m, n, dtype)


def gaussian_torch(x, y, b, chunk_elements: int = 1 << 28):
    """Dense blocks of exp(-|x_i - y_j|^2), at most chunk_elements each, times b: what one writes in torch."""
    import torch

    out = torch.empty((x.shape[0], 1), dtype=x.dtype, device=x.device)
    step = max(1, chunk_elements // y.shape[0])
    y2 = (y * y).sum(-1)
    for start in range(0, x.shape[0], step):
        xs = x[start : start + step]
        d2 = (xs * xs).sum(-1)[:, None] + y2[None, :] - 2 * xs @ y.T
        out[start : start + step] = torch.exp(-d2.clamp_min_(0)) @ b
    return out


def time_call(call, repeat: int, warm_up: bool = True) -> tuple[float, object]:
    import torch

    if warm_up:  # compile, JIT, allocator
        call()
        torch.cuda.synchronize()
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def gaussian_keops(x, y, b):
    from pykeops.torch import LazyTensor

    x_i, y_j, b_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
    return ((-x_i.sqdist(y_j)).exp() * b_j).sum(dim=1)


def benchmark() -> bool:
    import torch

    print("== 3. Gaussian kernel sum, D = 3, float32, on torch CUDA tensors (best of repeats, seconds)")
    try:
        import pykeops  # noqa: F401

        with_keops = True
    except ImportError:
        with_keops = False
    x_i, y_j, b_j = var(0, "i", 3), var(1, "j", 3), var(2, "j", 1)
    root = make("reduce", make("mul", make("exp", make("neg", make("sqdist", x_i, y_j))), b_j), kind="sum", axis=1)
    kernel = gpu_kernels.gpu_kernel(root, np.float32)
    print(f"   {'M = N':>9} {'keir':>10} {'torch':>10} {'pykeops':>10}   keir vs torch   threads x blocks")
    ok = True
    for size in SIZES:
        m = n = int(size)
        inputs = [torch.from_numpy(a).cuda() for a in data(m, n, np.float32)[:3]]
        repeat, warm_up = (5, True) if m <= 10**5 else (1, False)  # the smaller sizes warmed everything up
        keir_time, (ours,) = time_call(lambda inputs=inputs, m=m: kernel(inputs, m, m), repeat, warm_up)
        torch_time, theirs = time_call(lambda inputs=inputs: gaussian_torch(*inputs), repeat, warm_up)
        keops_time = float("nan")
        if with_keops:
            try:
                keops_time, _ = time_call(lambda inputs=inputs: gaussian_keops(*inputs), repeat, warm_up)
            except Exception as error:  # a pykeops that cannot compile here is reported, not fatal
                print(f"   pykeops failed: {type(error).__name__}: {error}")
                with_keops = False
        error = relative_error(ours.cpu().numpy(), theirs.cpu().numpy())
        ok &= error < 1e-3
        config = kernel.launch_config(m, cuda.device(0))
        print(
            f"   {m:>9.0e} {keir_time:>10.4f} {torch_time:>10.4f} {keops_time:>10.4f}   {error:>13.1e}   "
            f"{config.block} x {config.grid}"
        )
    print(f"   (keir's kernel: {kernel.registers(cuda.device(0))} registers per thread)")
    m, n = 10**4, 10**6  # few rows: the column splits (grid y) against one block row of work per column range
    inputs = [torch.from_numpy(a).cuda() for a in (data(m, n, np.float32)[0], *data(n, n, np.float32)[1:3])]
    split_time, (split_out,) = time_call(lambda: kernel(inputs, m, n), 3)
    limit, cuda.MAX_SPLITS = cuda.MAX_SPLITS, 1
    try:
        whole_time, (whole_out,) = time_call(lambda: kernel(inputs, m, n), 3)
    finally:
        cuda.MAX_SPLITS = limit
    ok &= relative_error(split_out.cpu().numpy(), whole_out.cpu().numpy()) < 1e-5
    print(f"   M = 1e4, N = 1e6: {split_time:.4f} s with the column splits "
          f"({kernel.splits(m, n, cuda.device(0))} of them), {whole_time:.4f} s without")
    if not with_keops:
        print("   (pykeops: not installed or not working here)")
    return ok


def block_sparse() -> bool:
    print("== 4. block-sparse reductions on the GPU")
    import torch
    from support.block_sparse import dense_reduction, random_ranges

    import keir.torch as kt
    from keir.torch.cluster import cluster_ranges_centroids, from_matrix, grid_cluster, sort_clusters

    ok = True
    rng = np.random.default_rng(1)
    m, n = 3000, 2000
    ranges, mask = random_ranges(rng, m, n)
    x, y = rng.standard_normal((m, 3)), rng.standard_normal((n, 3))
    terms = -((x[:, None] - y[None]) ** 2).sum(-1, keepdims=True)
    K = -kt.Vi(torch.tensor(x, device="cuda")).sqdist(kt.Vj(torch.tensor(y, device="cuda")))
    for kind in ("sum", "max", "argmax", "logsumexp"):
        for axis in (0, 1):
            got = getattr(K, kind)(axis=axis, ranges=ranges).cpu().numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                want = dense_reduction(kind, terms, mask, axis)
            good = np.allclose(got.reshape(want.shape), want, rtol=1e-10, atol=1e-10)
            ok &= good
            print(f"   {kind:10s} axis {axis}: {'ok' if good else 'WRONG'}")
    size = 100_000
    points = [torch.tensor(rng.random((400, 3)), device="cuda")[torch.randint(0, 400, (size,), device="cuda")]
              + 0.03 * torch.randn(size, 3, device="cuda", dtype=torch.float64) for _ in range(2)]
    x, y = (p.float() for p in points)
    b = torch.randn(size, 1, device="cuda")
    labels = [grid_cluster(p, 1 / 8) for p in (x, y)]
    (x_ranges, x_c, _), (y_ranges, y_c, _) = (cluster_ranges_centroids(p, lab) for p, lab in zip((x, y), labels))
    x, _ = sort_clusters(x, labels[0])
    (y, b), _ = sort_clusters((y, b), labels[1])
    distances = ((x_c[:, None] - y_c[None]) ** 2).sum(-1)
    keep = distances <= torch.quantile(distances.flatten().cpu(), 0.05).to(distances.device)
    kernel = (-kt.Vi(x).sqdist(kt.Vj(y)) / 0.05**2).exp() * kt.Vj(b)
    ranges = from_matrix(x_ranges, y_ranges, keep)
    dense_time, _ = time_call(lambda: kernel.sum(axis=1), 5)
    sparse_time, _ = time_call(lambda: kernel.sum(axis=1, ranges=ranges), 5)
    print(f"   truncated Gaussian, M = N = 1e5, 5 % kept: dense {dense_time * 1e3:.2f} ms, ranges "
          f"{sparse_time * 1e3:.2f} ms ({dense_time / sparse_time:.1f}x)")
    return ok


def exp_and_predictions() -> bool:
    import keir.numpy as kn

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_static
    import sass

    print("== 5. the GPU's float32 exp on the device, and measured against predicted pairs/s")
    grid = np.concatenate([np.linspace(-105.0, 89.0, 1_000_001, dtype=np.float32),
                           np.array([0.0, -0.0, 88.7228394, np.inf, -np.inf, np.nan], dtype=np.float32)])
    exact = np.exp(grid.astype(np.float64))
    ok = True
    for precision, bound in (("sfu", 2.5), ("fast", None), ("ieee", 1.0)):
        got = kn.Vi(grid.reshape(-1, 1)).exp().sum(axis=1, backend="GPU", precision=precision).ravel()
        with np.errstate(all="ignore"):
            _, exponent = np.frexp(np.abs(exact))
            ulp = np.ldexp(1.0, np.maximum(exponent - 1, -126) - 23)
            errors = np.abs(got.astype(np.float64) - exact) / ulp
        finite = np.isfinite(exact.astype(np.float32))
        specials_ok = bool(np.array_equal(got[~finite], exact[~finite].astype(np.float32), equal_nan=True))
        worst = float(errors[finite].max())
        ok &= specials_ok and (bound is None or worst <= bound)
        print(f"   exp, precision={precision!r}: max {worst:.2f} ulp (bound {bound}), specials "
              f"{'exact' if specials_ok else 'WRONG'}")
    tools = sass.tool("ptxas") and sass.tool("nvdisasm")
    print(f"   {'formula':<32} {'pairs/s':>10} {'predicted':>10}")
    for name, (build, d, dtype, precision) in gpu_static.FORMULAS.items():
        size = 10**6 if (d, dtype) == (3, "float32") else 10**5
        rng = np.random.default_rng(0)
        x, y, b = (rng.random((size, k)).astype(dtype) for k in (d, d, 1))
        reduction = build(x, y, b)._with((), {"precision": precision, "backend": "GPU"})
        seconds, _ = time_call(lambda reduction=reduction: reduction(), 1, True)
        predicted = float("nan")
        if tools:
            _, loop = gpu_static.measure(name, cuda.device(0).arch)
            predicted = sass.Machine("this GPU", cuda.device(0).multiprocessors, 4, 1.98e9).pairs_per_second(
                loop.fast_path_per_pair)
        print(f"   {name:<32} {size * size / seconds:>10.3g} {predicted:>10.3g}")
    return ok


def main() -> int:
    start = time.perf_counter()
    if not cuda.cuda_available():
        print("no CUDA driver and device here (or cuda-bindings is missing: pip install 'keir[cuda]')")
        return 1
    dev = cuda.device(0)
    print(f"device 0: {dev.name}, {dev.arch}, {dev.multiprocessors} multiprocessors")
    results = [run_tests(), compare_matrix(), benchmark(), block_sparse(), exp_and_predictions()]
    print(f"all GPU checks {'passed' if all(results) else 'FAILED'} in {time.perf_counter() - start:.0f} s")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
