"""python -m tests.fuzz --cases 300 --seed 0: run the fuzzer and print the summary (exit status 1 on failures)."""

from __future__ import annotations

import argparse
import json
import sys

from .driver import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first case (to rerun a slice)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it is a hang")
    parser.add_argument("--shrink-budget", type=int, default=30, help="runs spent shrinking each signature")
    parser.add_argument("--profile", choices=["full", "ci"], default="full",
                        help="ci: shallower formulas, fewer second derivatives (the pytest slice)")
    parser.add_argument("--json", help="write every (case, outcome) to this file")
    args = parser.parse_args()
    text, results, groups = run(args.cases, args.seed, args.start, args.jobs, args.timeout, args.shrink_budget,
                                profile=args.profile)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{"case": c, "outcome": o} for c, o in results], handle)
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
