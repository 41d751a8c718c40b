"""One case in this process: run its program, evaluate the reference, compare, and classify the outcome.

Outcome classes: ok, wrong (the answer differs), rejected (keir raised ValueError/TypeError on a formula pykeops
accepts), crash (any other exception from keir; process deaths are classified by pool.py), fuzzer-error (the
fuzzer's own code failed: a bug here, not in keir).
"""

from __future__ import annotations

import traceback
import warnings

import torch

from . import dense, gradients, program, reductions, semantics
from .reductions import Mismatch
from .semantics import Precision


def _exception_outcome(error: BaseException) -> dict:
    klass = "rejected" if isinstance(error, (ValueError, TypeError)) else "crash"
    return {"class": klass, "type": type(error).__name__, "message": str(error).strip().split("\n")[0][:300],
            "traceback": traceback.format_exc()[-2000:]}


def run_case(case: dict) -> dict:
    namespace: dict = {}
    try:
        exec(compile(program.data_source(case), "<fuzz data>", "exec"), namespace)
    except Exception as error:  # the fuzzer's own array code
        return {"class": "fuzzer-error", "type": type(error).__name__, "message": str(error)[:300],
                "traceback": traceback.format_exc()[-2000:]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(program.api_source(case), "<fuzz case>", "exec"), namespace)
    except Exception as error:
        return _exception_outcome(error)
    try:
        with torch.no_grad():
            precision = Precision.of(case["dtype"])
            variables = dense.variable_bounds(case, namespace, precision)
            terms, weight, derivatives_known = dense.evaluate_terms(case, variables, precision)
            result = namespace["result"]
            if "matmul" in case["reduction"]:  # (f @ b)_i = sum_j f_ij b_j, of shape (M,)
                b = dense.as_float64(namespace["b"]).reshape(1, -1, 1)
                terms = semantics.pointwise(torch.mul, [terms, semantics.Bound(b, torch.zeros_like(b))], precision)
                result = reductions.as_numpy(result)[..., None] if reductions.as_numpy(result).ndim == 1 else \
                    reductions.as_numpy(result)[..., None, :]  # a wrong (M, 1) shape then fails the comparison
            checked = reductions.check(case["reduction"]["kind"], case["reduction"].get("k"), result,
                                       terms, weight, precision)
        if case["grad"] and derivatives_known and gradients.well_conditioned(terms):
            checked += gradients.check(case, namespace)
    except Mismatch as mismatch:
        return {"class": "wrong", "message": str(mismatch)[:500], "grad": str(mismatch).startswith("grad"),
                "relative": mismatch.relative}
    except Exception as error:
        return {"class": "fuzzer-error", "type": type(error).__name__, "message": str(error)[:300],
                "traceback": traceback.format_exc()[-2000:]}
    return {"class": "ok", "checked": checked}
