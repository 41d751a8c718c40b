"""`make demo`: the Gaussian kernel sum out_i = sum_j exp(-|x_i - y_j|^2 / 0.5) b_j, M = N = 10^4, float32.

Prints the result, its relative error against NumPy float64, the cold compile time (empty artifact cache),
the first call in a second process that finds the artifact cached, the warm call time and NumPy's time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

os.environ["KEIR_CACHE_DIR"] = tempfile.mkdtemp(prefix="keir-demo-cache-")  # a cold start, for honest timing

import numpy as np  # noqa: E402

M = N = 10_000

SECOND_PROCESS = f"""
import time
import numpy as np
import keir.numpy as kn
rng = np.random.default_rng(0)
x, y, b = (rng.random((n, d), dtype=np.float32) for n, d in (({M}, 3), ({N}, 3), ({N}, 1)))
times = []
for _ in range(2):
    t = time.perf_counter()
    ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1)
    times.append(time.perf_counter() - t)
print(*times)
"""


def numpy_reference(x, y, b, chunk=1000):
    x, y, b = (a.astype(np.float64) for a in (x, y, b))
    out = np.empty((len(x), 1))
    for start in range(0, len(x), chunk):
        d2 = ((x[start : start + chunk, None, :] - y[None, :, :]) ** 2).sum(-1)
        out[start : start + chunk] = np.exp(-d2 / 0.5) @ b
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    x, y, b = (rng.random((n, d), dtype=np.float32) for n, d in ((M, 3), (N, 3), (N, 1)))

    t0 = time.perf_counter()
    import keir.numpy as kn

    t1 = time.perf_counter()
    out = ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1)
    t2 = time.perf_counter()
    warm = min(_timed(lambda: ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1)) for _ in range(5))

    t3 = time.perf_counter()
    want = numpy_reference(x, y, b)
    numpy_time = time.perf_counter() - t3
    error = float(np.abs(out - want).max() / np.abs(want).max())

    second = subprocess.run([sys.executable, "-c", SECOND_PROCESS], capture_output=True, text=True, check=True)
    cached_first_call, cached_second_call = map(float, second.stdout.split())

    print(f"Gaussian kernel sum, M = N = {M}, D = 3, float32, {os.cpu_count()} threads")
    print(f"  out[:3, 0]                      = {out[:3, 0]}")
    print(f"  relative error vs NumPy float64 = {error:.2e}   ({'ok' if error < 1e-5 else 'TOO LARGE'}: < 1e-5)")
    print(f"  import keir.numpy               = {(t1 - t0) * 1e3:8.1f} ms")
    print(f"  cold compile + first call       = {(t2 - t1) * 1e3:8.1f} ms   (empty cache)")
    print(f"  first call, second process      = {cached_first_call * 1e3:8.1f} ms   (artifact cached, after import; "
          f"its second call: {cached_second_call * 1e3:.1f} ms, so loading costs "
          f"{(cached_first_call - cached_second_call) * 1e3:.1f} ms)")
    print(f"  warm call                       = {warm * 1e3:8.1f} ms   ({M * N / warm / 1e9:.2f} G pairs/s)")
    print(f"  NumPy float64 (chunked)         = {numpy_time * 1e3:8.1f} ms   (keir is {numpy_time / warm:.0f}x faster)")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
