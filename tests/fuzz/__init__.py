"""A differential fuzzer for keir: random formulas through the public keir.numpy / keir.torch API, checked
against a dense float64 torch evaluation written from pykeops' documented semantics (shares no code with keir).

Run it with `python -m tests.fuzz --cases 300 --seed 0` (or `make fuzz CASES=10000 SEED=1`).

Modules, one job each:
  constants.py   Python numbers of every magnitude and spelling
  catalog.py     the op table: how each op is spelled through the API and which operand dimensions it takes
  generate.py    random cases (formula tree, variables and their arrays, the reduction) as plain JSON data
  program.py     a case as Python source using the public API (what the worker runs and what a reproducer shows)
  semantics.py   the dense float64 meaning of each op, with an error bound carried alongside (interval style)
  dense.py       the case's arrays as dense (*batch, M, N, D) Bounds; the terms of the reduction
  reductions.py  the dense meaning of each reduction and the check of keir's answer against it
  gradients.py   first and second derivatives against torch autograd on the dense form, within a tolerance
                 from the magnitudes they are computed from (an absolute backward sweep)
  execute.py     one case in this process: run, check, classify
  worker.py      the worker process loop (one JSON case in, one JSON outcome out)
  pool.py        worker processes with timeouts, so that an abort, a segfault or a hang is a finding
  signatures.py  failures grouped by a signature without numbers
  shrink.py      smaller cases with the same signature, for the reproducers
  report.py      the summary
  driver.py      a run: generate, run in workers, group, summarise (before shrinking), shrink
  regressions.json  cases the fuzzer once reported, with where and why
Tests: test_fuzz_slice.py (the CI slice: 300 cases, profile "ci", must find nothing), test_checker.py (the checks
catch wrong answers, gradients included, and let rounding noise pass), test_pool.py (an abort and a hang are
classified and the run goes on), test_driver.py (the summary and JSON come before shrinking),
test_regressions.py (every case in regressions.json is ok).
"""
