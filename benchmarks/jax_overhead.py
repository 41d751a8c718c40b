"""Per-call time of one Gaussian kernel sum, out_i = sum_j exp(-|x_i - y_j|^2) b_j: keir.numpy eagerly next
to keir.jax eagerly and under jax.jit (an XLA custom call into the same compiled kernel), at M = N = 10 (the
fixed cost of a call) and 1000.

Run: python benchmarks/jax_overhead.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from common import Budget, interleaved_minimums  # benchmarks/common.py (this script's folder is on sys.path)

import keir.jax as kj
import keir.numpy as kn


def gaussian(module, x, y, b):
    return ((-module.Vi(x).sqdist(module.Vj(y))).exp() * module.Vj(b)).sum(axis=1)


def measure(size: int, rng: np.random.Generator) -> dict[str, float]:
    """The fastest call of each, in seconds, at M = N = size."""
    x, y = (rng.normal(size=(size, 3)).astype(np.float32) for _ in range(2))
    b = rng.normal(size=(size, 1)).astype(np.float32)
    xj, yj, bj = map(jnp.asarray, (x, y, b))
    jitted = jax.jit(lambda x, y, b: gaussian(kj, x, y, b))
    jax.block_until_ready(jitted(xj, yj, bj))  # compiled once, outside the timings
    np.testing.assert_allclose(np.asarray(jitted(xj, yj, bj)), gaussian(kn, x, y, b), rtol=1e-5, atol=1e-5)
    return interleaved_minimums({
        "numpy": lambda: gaussian(kn, x, y, b),
        "eager": lambda: jax.block_until_ready(gaussian(kj, xj, yj, bj)),
        "jit": lambda: jax.block_until_ready(jitted(xj, yj, bj)),
    }, Budget(seconds=1.0, min_repeats=20, max_repeats=500))


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'M = N':>6} {'keir.numpy':>12} {'keir.jax eager':>15} {'keir.jax jit':>13}")
    for size in (10, 1000):
        times = measure(size, rng)
        print(f"{size:>6} {times['numpy'] * 1e6:>10.1f}us {times['eager'] * 1e6:>13.1f}us "
              f"{times['jit'] * 1e6:>11.1f}us")

if __name__ == "__main__":
    main()
