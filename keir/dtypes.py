"""The dtypes keir takes, and the dtype each computes in.

float32 and float64 arrays are computed in their own precision. Half-precision arrays (float16, bfloat16:
NumPy's float16, ml_dtypes' bfloat16, torch's float16 and bfloat16) are stored in half and computed in float32:
a LazyTensor converts them to float32 when it is made (an O(N D) copy; the j-variables are copied into the
kernel's blocked layout anyway), every kernel runs in float32 (`dtype_acc` and `sum_scheme` apply as for
float32), and a reduction's values are rounded to the half dtype at the end. Mixing precisions in one formula is
an error.
"""

from __future__ import annotations

HALF_DTYPES = ("float16", "bfloat16")
SUPPORTED_DTYPES = ("float32", "float64", *HALF_DTYPES)


def compute_dtype(name: str) -> str:
    """The dtype a formula over arrays of dtype `name` is computed in."""
    return "float32" if name in HALF_DTYPES else name


def check_supported(name: str) -> None:
    if name not in SUPPORTED_DTYPES:
        raise TypeError(f"keir works on float32, float64, float16 and bfloat16 arrays (and complex64 / complex128 "
                        f"in LazyTensors), got {name}")
