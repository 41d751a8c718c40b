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
    """A case that answers at once sends its START and its outcome in one burst: both lines must be read."""
    instant = [case_running("result = None") for _ in range(100)]
    outcomes = [o for _, o in run_cases(instant, jobs=1, timeout=5)]
    assert len(outcomes) == 100 and not [o for o in outcomes if o["class"] == "hang"]
