"""The benchmark's C reference (built with -ffast-math) must not switch the benchmark process to flush-to-zero:
GCC's crtfastmath.o, linked in by `-ffast-math` at link time, does so when the library is loaded, and every
later measurement then ran with subnormals flushed (the underflow rows measured 1.7x instead of 8x)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

PROGRAM = f"""
import sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, {str(BENCHMARKS)!r})
import cpu
reference = cpu.build_c_reference(Path(tempfile.mkdtemp()))
assert not isinstance(reference, str), reference
tiny = np.float32(1e-39) * np.float32(1.5)
print("subnormal" if tiny != 0 else "flushed")
"""


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler here")
def test_loading_the_c_reference_keeps_subnormals() -> None:
    # in a child process: a regression would flush subnormals in this test process too
    run = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("subnormal"), run.stdout
