"""A non-uniform discrete Fourier transform on the CPU (issue 17): out_k = sum_j c_j exp(-2 pi i xi_k x_j), for
M = N = 10^5 (10^10 complex terms), in complex64 and complex128, with keir's complex LazyTensors; side by side
with torch on dense chunks of rows (the phase matrix of 256 rows at a time, torch.polar, a matrix-vector
product) on the first `--torch-rows` frequencies (torch takes ~150 s for all of them here).

Points x_j and frequencies xi_k are uniform in [0, 1), so phases stay within 2 pi: the float32 rounding of a
phase then costs ~1e-7, and the error measures the kernel, not the inputs (at phases of 10^5 rad, as with
integer frequencies up to N / 2, float32 inputs alone lose 1e-2). The error is max |keir - exact| / max |exact|
over `--check-rows` frequencies, exact = NumPy complex128 on the same inputs; keir sums with its default,
block_sum (and direct_sum, for comparison).

    python benchmarks/complex_nudft.py [--m 100000] [--n 100000] [--torch-rows 10000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from keir.numpy import LazyTensor, Vi, Vj


def nudft(c: np.ndarray, x: np.ndarray, xi: np.ndarray, **options: str) -> np.ndarray:
    """sum_j c_j exp(-2 pi i xi_k x_j), one keir reduction (options: sum_scheme, ...; by default block_sum, as
    in pykeops)."""
    phase = -2j * math.pi * Vi(xi[:, None]) * Vj(x[:, None])
    return (LazyTensor(c[None, :, None]) * phase.exp()).sum(axis=1, **options)[:, 0]


def torch_chunked(c: np.ndarray, x: np.ndarray, xi: np.ndarray, rows: int = 256) -> np.ndarray:
    import torch

    X, XI, C = torch.from_numpy(x), torch.from_numpy(xi), torch.from_numpy(c)
    parts = []
    for start in range(0, len(xi), rows):
        phase = (-2 * math.pi) * XI[start : start + rows, None] * X[None, :]
        parts.append(torch.polar(torch.ones_like(phase), phase) @ C)
    return torch.cat(parts).numpy()


def exact(c: np.ndarray, x: np.ndarray, xi: np.ndarray) -> np.ndarray:
    return np.exp(-2j * np.pi * xi.astype(float)[:, None] * x.astype(float)[None, :]) @ c.astype(complex)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=100_000, help="frequencies")
    parser.add_argument("--n", type=int, default=100_000, help="points")
    parser.add_argument("--torch-rows", type=int, default=10_000, help="frequencies torch computes (timed)")
    parser.add_argument("--check-rows", type=int, default=200, help="frequencies checked against complex128")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"NUDFT, M = {args.m} frequencies, N = {args.n} points; torch on the first {args.torch_rows} rows")
    print(f"{'dtype':>10} {'keir (s)':>9} {'keir rows/s':>12} {'torch rows/s':>13} {'speed-up':>9} {'rel. error':>11}")
    for complex_dtype, real_dtype in ((np.complex64, np.float32), (np.complex128, np.float64)):
        x, xi = rng.random(args.n).astype(real_dtype), rng.random(args.m).astype(real_dtype)
        c = (rng.standard_normal(args.n) + 1j * rng.standard_normal(args.n)).astype(complex_dtype)
        nudft(c[:64], x[:64], xi[:64])  # compile outside the timing
        start = time.perf_counter()
        out = nudft(c, x, xi)
        keir_time = time.perf_counter() - start
        rows = min(args.torch_rows, args.m)
        start = time.perf_counter()
        theirs = torch_chunked(c, x, xi[:rows])
        torch_time = time.perf_counter() - start
        want = exact(c, x, xi[: args.check_rows])
        error = np.abs(out[: args.check_rows] - want).max() / np.abs(want).max()
        direct = nudft(c, x, xi[: args.check_rows], sum_scheme="direct_sum")
        direct_error = np.abs(direct - want).max() / np.abs(want).max()
        torch_error = np.abs(theirs[: args.check_rows] - want).max() / np.abs(want).max()
        keir_rate, torch_rate = args.m / keir_time, rows / torch_time
        print(f"{np.dtype(complex_dtype).name:>10} {keir_time:9.2f} {keir_rate:12.0f} {torch_rate:13.0f} "
              f"{keir_rate / torch_rate:8.1f}x {error:11.1e}  (direct_sum {direct_error:.1e}, torch {torch_error:.1e})")


if __name__ == "__main__":
    main()
