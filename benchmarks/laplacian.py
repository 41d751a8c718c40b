"""The Laplacian of a Gaussian kernel sum three ways, side by side in one run (issue 5's done-criterion).

    .venv/bin/python benchmarks/laplacian.py             # M = N = 2e4, D = 3, float32
    .venv/bin/python benchmarks/laplacian.py --quick     # M = N = 3000: a smoke test in seconds

out_i = sum_j Delta_x K(x_i - y_j), K = exp(-|x - y|^2 / (2 s^2)), with s inside the formula (a Pm parameter,
and a Python float), written

- hand-written: K (D2 - D s^2) / s^4, the closed form a user would derive (keir-simplify moves the s out
  of the pair loop for it as for the others: no rescaling by the user);
- laplacian:    K.laplacian(x), expanded by keir-trace;
- per-coordinate Hessian: sum_k K.grad(x, 1).elem(k).grad(x, 1).elem(k), the generic route.

For each route the table gives the number of keir ops after all keir passes (`.ir("opt")`) and whether
the lowered loop nest (`.ir("loops")`, constants in float32) is the hand-written formula's, the time of one
call at one thread and at every core (the fastest of repeated calls, taken in turns with the other routes,
since the machine may be shared), the ratio to the hand-written formula, and the largest difference to the
hand-written result and to a float64 NumPy reference on the first rows, relative to the largest value.
pykeops runs the same three formulas when it is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Callable

import numpy as np
from common import Budget, available_cores, cpu_description, interleaved_minimums, markdown_table, relative_error

import keir.numpy

SIGMA = 0.6
ROUTES = ("hand-written", "laplacian", "per-coordinate Hessian")
REFERENCE_ROWS = 256


def routes(module, x: np.ndarray, y: np.ndarray, sigma) -> dict[str, object]:
    """The three formulas, built with `module`'s Vi/Vj (keir.numpy or pykeops.numpy)."""
    X, Y = module.Vi(x), module.Vj(y)
    dim = x.shape[1]
    d2 = X.sqdist(Y)
    K = (-d2 / (2 * sigma * sigma)).exp()
    built: dict[str, object] = {"hand-written": K * (d2 - dim * sigma * sigma) / (sigma * sigma * sigma * sigma)}
    built["laplacian"] = K.laplacian(X) if hasattr(K, "laplacian") else "no LazyTensor.laplacian"
    hessian = None
    for k in range(dim):
        term = K.grad(X, 1.0 if module is keir.numpy else module.LazyTensor(np.ones(1, dtype=x.dtype))).elem(k)
        term = term.grad(X, 1.0 if module is keir.numpy else module.LazyTensor(np.ones(1, dtype=x.dtype))).elem(k)
        hessian = term if hessian is None else hessian + term
    built["per-coordinate Hessian"] = hessian
    return built


def _constants_in_float32(loops: str) -> str:
    """The loop nest with its f32 constants written as the float32 values they are (the IR spells them with
    float64 digits: two spellings can be one float32)."""
    return re.sub(r"arith\.constant ([-+0-9.e]+) : f32",
                  lambda m: f"arith.constant {float(np.float32(float(m.group(1))))!r} : f32", loops)


def dense_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The closed form in float64 NumPy, on the first rows."""
    x, y = x[:REFERENCE_ROWS].astype(np.float64), y.astype(np.float64)
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return (np.exp(-d2 / (2 * SIGMA**2)) * (d2 - x.shape[1] * SIGMA**2) / SIGMA**4).sum(1)[:, None]


def keir_rows(x: np.ndarray, y: np.ndarray, sigma_kind: str, budget: Budget) -> list[list[str]]:
    sigma = keir.numpy.Pm(np.array([SIGMA], dtype=x.dtype)) if sigma_kind == "Pm" else SIGMA
    formulas = routes(keir.numpy, x, y, sigma)
    thread_counts = (1, available_cores())
    calls = {t: {name: formulas[name].sum(axis=1, call=False, threads=t) for name in ROUTES} for t in thread_counts}
    ops = {name: calls[1][name].ir("opt").count('"keir.') for name in ROUTES}
    loops = {name: _constants_in_float32(calls[1][name].ir("loops")) for name in ROUTES}
    outputs = {name: calls[thread_counts[-1]][name]() for name in ROUTES}  # compiles, and warms the caches
    times = {t: interleaved_minimums(calls[t], budget) for t in thread_counts}
    reference = dense_reference(x, y)
    rows = []
    for name in ROUTES:
        same = "yes" if loops[name] == loops["hand-written"] else "no"
        row = [f"keir, s {'= Pm(0.6)' if sigma_kind == 'Pm' else '= 0.6 (float)'}", name, str(ops[name]), same]
        for t in thread_counts:
            seconds = times[t][name]
            row += [f"{seconds * 1e3:.0f}", f"{seconds / times[t]['hand-written']:.3f}"]
        row += [f"{relative_error(outputs[name], outputs['hand-written']):.1e}",
                f"{relative_error(outputs[name][:REFERENCE_ROWS], reference):.1e}"]
        rows.append(row)
    return rows


def pykeops_rows(x: np.ndarray, y: np.ndarray, budget: Budget) -> list[list[str]]:
    if importlib.util.find_spec("pykeops") is None:
        return [["pykeops", "(not installed here)", "", "", "", "", "", "", "", ""]]
    import pykeops.numpy

    sigma = pykeops.numpy.LazyTensor(np.array([SIGMA], dtype=x.dtype))
    formulas = routes(pykeops.numpy, x, y, sigma)
    calls: dict[str, Callable[[], np.ndarray]] = {}
    rows: dict[str, list[str]] = {}
    for name in ROUTES:
        if isinstance(formulas[name], str):
            rows[name] = ["pykeops, s = LazyTensor", name, "", "", "", "", "", "", formulas[name], ""]
        else:
            calls[name] = (lambda f=formulas[name]: f.sum(axis=1))
    outputs = {name: call() for name, call in calls.items()}
    times = interleaved_minimums(calls, budget)
    hand = times.get("hand-written")
    for name in calls:
        ratio = f"{times[name] / hand:.3f}" if hand else ""
        rows[name] = ["pykeops, s = LazyTensor", name, "", "", "", "", f"{times[name] * 1e3:.0f}", ratio,
                      f"{relative_error(outputs[name], outputs['hand-written']):.1e}" if hand else "", ""]
    return [rows[name] for name in ROUTES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="M = N (default 2e4)")
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="M = N = 3000")
    args = parser.parse_args(argv)
    size = 3_000 if args.quick else args.size
    rng = np.random.default_rng(0)
    scale = 1 / np.sqrt(args.dim)  # unit variance spread over the components: |x - y|^2 is about 2
    x = (rng.standard_normal((size, args.dim)) * scale).astype(np.float32)
    y = (rng.standard_normal((size, args.dim)) * scale).astype(np.float32)
    budget = Budget(seconds=2.0 if args.quick else 6.0, min_repeats=5, max_repeats=15)
    cores = available_cores()
    rows = keir_rows(x, y, "Pm", budget) + keir_rows(x, y, "float", budget) + pykeops_rows(x, y, budget)
    print(f"Laplacian of a Gaussian kernel sum, s inside, D = {args.dim}, float32, M = N = {size:,}; "
          f"{cpu_description()}; KEIR_NUM_THREADS={os.environ.get('KEIR_NUM_THREADS', 'unset')}\n")
    headers = ["formula", "route", "keir ops", "same loops as hand-written", "1 thread (ms)", "ratio",
               f"{cores} threads (ms)", "ratio",
               "vs hand-written", f"vs float64 ({REFERENCE_ROWS} rows)"]
    print(markdown_table(headers, rows, right_from=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
