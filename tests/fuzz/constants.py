"""Python numbers for formulas: every magnitude and spelling, as the source text a user would type.

The text is what the generated program contains, so a reproducer shows the literal exactly; the value the
reference uses is eval() of the same text.
"""

from __future__ import annotations

import random

# Ordinary values, most of the time: small ints and simple decimals.
COMMON = ["0", "1", "2", "3", "-1", "-2", "0.5", "-0.5", "1.5", "2.0", "0.1", "0.25", "-3.0", "10", "0.3"]

# Magnitudes and spellings that stress the printing of constants into the IR and the folding of them.
UNUSUAL = [
    "1e-5", "1e-05", "3e-07", "2.5e-3", "1e20", "-1e20", "1e+20", "1e-300", "5e-324", "1.5e300", "1e-38",
    "1e-45", "3.4e38", "1e-8", "-0.0", "0.0", "1/3", "2/3", "1e3", "12345.678", "0.1 + 0.2", "2**24 + 1",
    "2**31", "2**53 + 1", "10**6", "7", "-7", "1e-10", "6.02214076e23", "np.float32(0.3)", "np.float64(1e-5)",
]

# Non-finite values, sparingly: their semantics are clear in IEEE arithmetic but easy to fold wrongly.
NON_FINITE = ["float('inf')", "-float('inf')", "float('nan')"]


def random_number(rng: random.Random, allow_non_finite: bool = True) -> str:
    """The source text of a Python number."""
    roll = rng.random()
    if allow_non_finite and roll < 0.02:
        return rng.choice(NON_FINITE)
    if roll < 0.35:
        return rng.choice(UNUSUAL)
    if roll < 0.45:
        return repr(round(rng.uniform(-5, 5), rng.randint(1, 6)))
    return rng.choice(COMMON)


def number_value(text: str) -> float:
    """The exact value (as float64) of a number's source text."""
    import math

    import numpy as np

    return float(eval(text, {"np": np, "math": math}))  # our own generated literals only
