"""Cases the fuzzer once reported, kept as tests: each must now be ok. `regressions.json` holds the cases (the
fuzzer's JSON, so a changed generator does not change them), where they were found and why they failed."""

from __future__ import annotations

import json
from pathlib import Path

from .pool import run_cases

REGRESSIONS = json.loads((Path(__file__).parent / "regressions.json").read_text())


def test_every_reported_case_is_ok_now() -> None:
    cases = [entry["case"] for entry in REGRESSIONS]
    outcomes = {id(c): o for c, o in run_cases(cases, jobs=1, timeout=120.0)}
    failed = [f"{entry['found']} ({entry['why']}): {outcomes[id(entry['case'])]['class']}: "
              f"{outcomes[id(entry['case'])].get('message', '')[:300]}"
              for entry in REGRESSIONS if outcomes[id(entry["case"])]["class"] != "ok"]
    assert not failed, "\n".join(failed)
