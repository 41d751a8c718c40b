"""float16 and bfloat16 Gaussian sums (issue 17): out_i = sum_j exp(-|x_i - y_j|^2 / 0.05) b_j, M = N = 10^5, D = 3,
on torch tensors, side by side with float32: time, and the error against NumPy float64 on the first rows
(computed from the same half-precision inputs), relative to the largest value. keir computes half inputs in
float32 and rounds the result (keir.dtypes), so the time is float32's plus the conversions and the error is
the final rounding: 2^-11 (float16) and 2^-8 (bfloat16) of each value at most.

    python benchmarks/half.py [--m 100000] [--n 100000] [--check-rows 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from keir.torch import Vi, Vj


def gaussian_sum(x: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((-Vi(x).sqdist(Vj(y)) / 0.05).exp() * Vj(b)).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--check-rows", type=int, default=500)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(args.m, 3, generator=generator), torch.rand(args.n, 3, generator=generator)
    b = torch.rand(args.n, 1, generator=generator)
    print(f"Gaussian sum, M = {args.m}, N = {args.n}, D = 3 (torch tensors, CPU)")
    print(f"{'dtype':>9} {'time (s)':>9} {'vs float32':>11} {'max rel. error':>15} {'rounding bound':>15}")
    baseline = None
    for dtype, bound in ((torch.float32, None), (torch.float16, 2.0**-11), (torch.bfloat16, 2.0**-8)):
        xs, ys, bs = x.to(dtype), y.to(dtype), b.to(dtype)
        gaussian_sum(xs[:100], ys[:100], bs[:100])  # compile outside the timing
        start = time.perf_counter()
        out = gaussian_sum(xs, ys, bs)
        elapsed = time.perf_counter() - start
        baseline = baseline or elapsed
        rows = args.check_rows
        x64, y64, b64 = (t.double().numpy() for t in (xs[:rows], ys, bs))
        exact = np.exp(-((x64[:, None] - y64[None]) ** 2).sum(-1) / 0.05) @ b64
        error = np.abs(out[:rows].double().numpy() - exact).max() / np.abs(exact).max()
        bound_text = "-" if bound is None else f"{bound:.1e}"  # float32: its summation error, not a rounding
        print(f"{str(dtype).removeprefix('torch.'):>9} {elapsed:9.2f} {elapsed / baseline:10.2f}x {error:15.1e} "
              f"{bound_text:>15}")


if __name__ == "__main__":
    main()
