"""`make bench`: wide right-hand sides, the Gaussian `K @ B` with B of 1 to 256 columns, keir against torch.

    .venv/bin/python benchmarks/wide_rhs.py [--quick]

out_i = sum_j exp(-2 |x_i - y_j|^2) B_j, D = 3, float32, M = N = 2e4, uniform points, all cores: keir
`((-Vi(x).sqdist(Vj(y)) * 2).exp() * Vj(B)).sum(axis=1)`, torch chunked (rows in blocks of 2000: the block's
kernel matrix, then `@ B`, a BLAS product). Each time is the best of two calls; the time per column is printed
with its ratio to the 16-column row's (a cliff shows there), and the largest difference from torch relative to
its largest entry. Sums of more than keir.kernels.WIDEST_OUTPUT (128) columns run in blocks of 128 columns.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import available_cores, best_of, cpu_description, markdown_table, three_digits

import keir.numpy as kn

COLUMNS = (1, 16, 64, 256)
SIZE = 20_000


def torch_chunked(x, y, b, rows: int = 2000):
    import torch

    return torch.cat([torch.exp(-2 * torch.cdist(x[s : s + rows], y) ** 2) @ b for s in range(0, len(x), rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="M = N divided by 10")
    args = parser.parse_args()
    threads = available_cores()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    size = SIZE // 10 if args.quick else SIZE
    print(f"# Gaussian K @ B, D = 3, float32, M = N = {size:.0e}, {threads} threads, {cpu_description()}\n")
    rng = np.random.default_rng(0)
    x, y = rng.random((size, 3), dtype=np.float32), rng.random((size, 3), dtype=np.float32)
    rows, per_column_16 = [], None
    for columns in COLUMNS:
        b = rng.random((size, columns), dtype=np.float32)
        reduction = ((-kn.Vi(x).sqdist(kn.Vj(y)) * 2).exp() * kn.Vj(b)).sum(axis=1, call=False)
        reduction()  # compile
        keir_time, ours = best_of(reduction)
        per_column = keir_time / columns
        per_column_16 = per_column if columns == 16 else per_column_16
        cliff = three_digits(per_column / per_column_16) + "x" if per_column_16 else ""
        torch_text = speed_up = difference = "not installed"
        if torch is not None:
            tensors = [torch.from_numpy(a) for a in (x, y, b)]
            torch_time, theirs = best_of(lambda tensors=tensors: torch_chunked(*tensors))
            theirs = theirs.numpy()
            torch_text, speed_up = f"{torch_time:.3f} s", three_digits(torch_time / keir_time) + "x"
            difference = f"{np.abs(ours - theirs).max() / np.abs(theirs).max():.1e}"
        rows.append([str(columns), f"{keir_time:.3f} s", f"{per_column * 1e3:.2f} ms", cliff, torch_text, speed_up,
                     difference])
    print(markdown_table(["columns", "keir", "keir per column", "vs 16 columns", "torch chunked", "keir speed-up",
                          "difference"], rows, right_from=1))


if __name__ == "__main__":
    main()
