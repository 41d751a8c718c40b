"""python -m tests.fuzz --cases 300 --seed 0: run the fuzzer and print the summary (exit status 1 on failures).

The summary (and the --json file) is written as soon as every case has run, before failing cases are shrunk;
the summary with the shrunk reproducers follows when shrinking ends."""

from __future__ import annotations

import argparse
import json
import sys

from .driver import run


def write_json(path: str, results: list[tuple[dict, dict]]) -> None:
    with open(path, "w") as handle:
        json.dump([{"case": c, "outcome": o} for c, o in results], handle)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first case (to rerun a slice)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it is a hang")
    parser.add_argument("--shrink-budget", type=int, default=30, help="runs spent shrinking each signature")
    parser.add_argument("--shrink-seconds", type=float, default=600.0, help="wall-clock limit of all shrinking")
    parser.add_argument("--profile", choices=["full", "ci"], default="full",
                        help="ci: shallower formulas, fewer second derivatives (the pytest slice)")
    parser.add_argument("--json", help="write every (case, outcome) to this file")
    args = parser.parse_args()

    def before_shrinking(text: str, results: list[tuple[dict, dict]], groups: dict) -> None:
        print(text, flush=True)
        if args.json:
            write_json(args.json, results)
        if groups and args.shrink_budget > 0:
            print("\nshrinking the failing cases...", file=sys.stderr, flush=True)

    text, results, groups = run(args.cases, args.seed, args.start, args.jobs, args.timeout, args.shrink_budget,
                                profile=args.profile, before_shrinking=before_shrinking,
                                shrink_seconds=args.shrink_seconds)
    if groups and args.shrink_budget > 0:
        print("\n" + "#" * 100 + "\n# after shrinking\n" + "#" * 100 + "\n" + text, flush=True)
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
