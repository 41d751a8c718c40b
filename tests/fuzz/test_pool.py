"""A worker that aborts or hangs is a finding (crash / hang), and the run goes on with a fresh worker."""

from __future__ import annotations

from .generate import case_running, random_case
from .pool import run_cases
from .signatures import signature


def test_abort_and_hang_are_classified_and_the_run_goes_on() -> None:
    abort = case_running("__import__('os').abort()")
    hang = case_running("__import__('time').sleep(60)")
    fine = random_case(0, 3, "ci")
    outcomes = {id(c): o for c, o in run_cases([abort, hang, fine], jobs=1, timeout=20)}
    assert outcomes[id(abort)]["class"] == "crash"
    assert signature(abort, outcomes[id(abort)]).startswith("crash:worker died: signal SIGABRT")
    assert outcomes[id(hang)]["class"] == "hang"
    assert outcomes[id(fine)]["class"] != "hang"


def test_fast_cases_are_not_taken_for_hangs() -> None:
    """A case that answers at once sends its START and its outcome in one burst: both lines must be read. (Its
    data set-up raises, so it answers without compiling anything: a compile can take seconds on a loaded
    machine, which the timeout would count, since it runs from START.)"""
    instant = [case_running("raise RuntimeError('an instant answer')") for _ in range(100)]
    outcomes = [o for _, o in run_cases(instant, jobs=1, timeout=5)]
    assert [o["class"] for o in outcomes] == ["fuzzer-error"] * 100


def test_the_timeout_counts_from_the_start_of_the_case() -> None:
    """A fresh worker imports torch, keir and MLIR before its first case; that time is not the case's."""
    outcomes = [o for _, o in run_cases([case_running("raise RuntimeError('an instant answer')")], jobs=1,
                                        timeout=0.5)]
    assert [o["class"] for o in outcomes] == ["fuzzer-error"]
