"""Forward + backward of the Gaussian kernel sum: keir (torch autograd through keir kernels) next to torch
chunked and pykeops (when installed), in one run.

    out_i = sum_j exp(-|x_i - y_j|^2 / s) b_j,   loss = sum_i out_i . g_i,   d loss / d (x, y, b, s)

Run: python benchmarks/grad.py [--size N]
"""

from __future__ import annotations

import argparse
import os

import torch
from common import Budget, interleaved_minimums  # benchmarks/common.py (this script's folder is on sys.path)

import keir.torch as kt


def keir_step(x, y, b, s, g):
    K = (-kt.Vi(x).sqdist(kt.Vj(y)) / kt.Pm(s)).exp()
    out = (K * kt.Vj(b)).sum(axis=1)
    return torch.autograd.grad((out * g).sum(), [x, y, b, s])


def torch_step(x, y, b, s, g, chunk=1024):
    """Chunked dense blocks: each block's graph is freed after its backward, so memory stays bounded."""
    grads = [torch.zeros_like(t) for t in (x, y, b, s)]
    for start in range(0, len(x), chunk):
        xs = x[start : start + chunk]
        d2 = (xs[:, None, :] - y[None, :, :]).pow(2).sum(-1)
        out = torch.exp(-d2 / s) @ b
        parts = torch.autograd.grad((out * g[start : start + chunk]).sum(), [x, y, b, s])
        for total, part in zip(grads, parts):
            total += part
    return grads


def pykeops_step(x, y, b, s, g):
    from pykeops.torch import LazyTensor

    K = (-LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, :, :])) / s).exp()
    out = (K * LazyTensor(b[None, :, :])).sum(axis=1)
    return torch.autograd.grad((out * g).sum(), [x, y, b, s])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args()
    n = args.size
    torch.manual_seed(0)
    x, y = torch.rand(n, 3, requires_grad=True), torch.rand(n, 3, requires_grad=True)
    b = torch.rand(n, 1, requires_grad=True)
    s = torch.tensor([0.5], requires_grad=True)
    g = torch.rand(n, 1)
    steps = {"keir": keir_step, "torch chunked": torch_step}
    try:
        import pykeops  # noqa: F401

        steps["pykeops"] = pykeops_step
    except ImportError:
        pass
    results = {name: step(x, y, b, s, g) for name, step in steps.items()}  # warm-up (keir compiles here)
    times = interleaved_minimums({name: (lambda step=step: step(x, y, b, s, g)) for name, step in steps.items()},
                                 Budget(seconds=6.0, min_repeats=3))
    reference = results["torch chunked"]
    print(f"Gaussian sum, forward + backward w.r.t. x, y, b, s: M = N = {n}, D = 3, float32, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores\n")
    print("| backend | time (ms) | vs keir | max rel. difference of the gradients vs torch |")
    print("|---|--:|--:|--:|")
    for name, seconds in times.items():
        difference = max(float((a - r).abs().max() / r.abs().max()) for a, r in zip(results[name], reference))
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / times['keir']:.2f}× | {difference:.1e} |")
    if "pykeops" not in steps:
        print("| pykeops | not installed | | |")


if __name__ == "__main__":
    main()
