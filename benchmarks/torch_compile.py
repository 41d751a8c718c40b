"""keir inside torch.compile: the time per call of a compiled function holding one keir reduction, against the
same function run eagerly, for small problems where the per-call overhead shows (issue target: compiled within
10 µs of eager keir). Both are built from the same formula code (the formula is built in the function);
minimum over repeated batches of calls.

    .venv/bin/python benchmarks/torch_compile.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, minimum_time  # noqa: E402

from keir.torch import Vi, Vj  # noqa: E402

warnings.filterwarnings("ignore")


def gaussian(x, y, b):
    return (-Vi(x).sqdist(Vj(y))).exp() @ b


def main() -> int:
    rows = []
    for m in (10, 1000):
        x, y, b = torch.rand(m, 3), torch.rand(m, 3), torch.rand(m, 1)
        calls = {"eager keir": gaussian}
        for backend in ("inductor", "aot_eager"):
            compiled = torch.compile(gaussian, fullgraph=True, backend=backend)
            torch.testing.assert_close(compiled(x, y, b), gaussian(x, y, b))
            calls[f"torch.compile ({backend})"] = compiled
        times = {name: minimum_time(lambda f=f, args=(x, y, b): f(*args), number=300, repeat=7)
                 for name, f in calls.items()}
        eager = times["eager keir"]
        for name, seconds in times.items():
            rows.append([f"M = N = {m}", name, f"{seconds * 1e6:.1f} µs", f"{(seconds - eager) * 1e6:+.1f} µs"])
    print(markdown_table(["problem", "call", "time per call", "vs eager"], rows, right_from=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
