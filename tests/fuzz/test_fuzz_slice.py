"""The CI slice of the differential fuzzer: a fixed-seed run of 300 cases (about two minutes on two cores) that
must find nothing. On failure the message lists each signature with a reproducer."""

from __future__ import annotations

from .driver import run

CASES, SEED = 300, 0  # the same as: python -m tests.fuzz --cases 300 --seed 0 --profile ci


def test_fuzz_slice() -> None:
    text, _, groups = run(CASES, SEED, jobs=2, timeout=120.0, shrink_budget=0, progress=False,
                         profile="ci")
    assert not groups, text
