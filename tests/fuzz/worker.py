"""The worker process: reads one JSON case per line on stdin, answers `START` and then one JSON outcome per line.

Run by pool.py as `python -m tests.fuzz.worker`. The protocol goes to the original stdout; file descriptor 1 is
pointed at stderr, so that whatever keir, MLIR or LLVM print cannot corrupt it.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import torch

    torch.set_num_threads(1)
    from .execute import run_case

    for line in sys.stdin:
        case = json.loads(line)
        protocol.write("START\n")
        outcome = run_case(case)
        protocol.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
