"""`make bench`: thread scaling of keir's CPU kernels, 1 thread to all cores.

    .venv/bin/python benchmarks/threads.py [--quick]

Three float32 cases on uniform points: the Gaussian sum (D = 3, M = N = 2e4), K-NN (`argKmin(10)`, D = 16,
M = N = 3e4) and `K @ B` (Gaussian, D = 3, B of 64 columns, M = N = 1e4), each called with `threads=t` for
t = 1, 2, 4, ... and all cores; the time is the best of two calls, the speed-up is against one thread.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import available_cores, best_of, cpu_description, markdown_table, three_digits

import keir.numpy as kn


def cases(scale: int) -> dict[str, object]:
    rng = np.random.default_rng(0)

    def points(size: int, dim: int) -> np.ndarray:
        return rng.random((size // scale, dim), dtype=np.float32)

    x3, y3, b1 = points(20_000, 3), points(20_000, 3), points(20_000, 1)
    x16 = points(30_000, 16)
    xk, yk, b64 = points(10_000, 3), points(10_000, 3), points(10_000, 64)
    return {
        f"Gaussian sum, D = 3, M = N = {len(x3):.0e}": ((-kn.Vi(x3).sqdist(kn.Vj(y3)) * 2).exp() * kn.Vj(b1)).sum(
            axis=1, call=False),
        f"K-NN, K = 10, D = 16, M = N = {len(x16):.0e}": kn.Vi(x16).sqdist(kn.Vj(x16)).argKmin(10, axis=1, call=False),
        f"K @ B, 64 columns, D = 3, M = N = {len(xk):.0e}": ((-kn.Vi(xk).sqdist(kn.Vj(yk)) * 2).exp() * kn.Vj(b64)).sum(
            axis=1, call=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes divided by 4")
    args = parser.parse_args()
    cores = available_cores()
    counts = sorted({1, cores, *[2**k for k in range(1, 8) if 2**k < cores]})
    print(f"# thread scaling, float32, {cpu_description()}\n")
    rows = []
    for name, reduction in cases(4 if args.quick else 1).items():
        reduction()  # compile
        times = [best_of(lambda t=t, reduction=reduction: reduction(threads=t))[0] for t in counts]
        rows.append([name, *(f"{t:.3f} s ({three_digits(times[0] / t)}x)" for t in times)])
    print(markdown_table(["case", *(f"{t} thread{'s' * (t > 1)}" for t in counts)], rows, right_from=1))


if __name__ == "__main__":
    main()
