"""The one printer of numbers that reach MLIR: every `arith.constant` keir writes, and the keir dialect's
`value` attribute, come from here (a test greps the package for other `arith.constant` text).

A float is printed so that MLIR reads back exactly the value the kernel's element type holds:
- it is first rounded to the element type (a float64 constant in a float32 kernel becomes the nearest float32,
  as NumPy would store it, so 1e300 becomes inf);
- finite values are written as the shortest decimal of the exact float64 value, always with a decimal point
  (MLIR reads `1e-05` as the integer 1 followed by an unknown op `e`). MLIR parses a decimal literal through
  float64 and then rounds it to the element type; since the float64 written is exactly the element's value,
  that second rounding is exact;
- ±inf and NaN (which have no decimal form in MLIR) are written as their bit patterns in hexadecimal.
"""

from __future__ import annotations

import math
import struct

FLOAT_WIDTHS = {"f32": 32, "f64": 64}


def _bits_hex(value: float, elem: str) -> str:
    if elem == "f32":
        (bits,) = struct.unpack("<I", struct.pack("<f", value))
        return f"0x{bits:08X}"
    (bits,) = struct.unpack("<Q", struct.pack("<d", value))
    return f"0x{bits:016X}"


def rounded(value: float, elem: str) -> float:
    """`value` rounded to the element type `elem` (f32 or f64), overflowing to ±inf as IEEE arithmetic does."""
    value = float(value)
    if elem == "f64" or not math.isfinite(value):
        return value
    if elem != "f32":
        raise ValueError(f"no float literal for element type {elem!r}")
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:  # struct refuses a value that rounds to ±inf in float32, rather than rounding it
        return math.copysign(math.inf, value)


def float_literal(value: float, elem: str) -> str:
    """The MLIR literal of `value` as an `elem` (f32/f64) number, bit-exact after MLIR parses it."""
    value = rounded(value, elem)
    if not math.isfinite(value):
        return _bits_hex(value, elem)
    mantissa, _, exponent = repr(value).partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _element_type(mlir_type: str) -> str:
    """f32 of `f32` or `vector<8xf32>`."""
    if mlir_type.startswith("vector<"):
        return mlir_type[len("vector<") : -1].rsplit("x", 1)[1]
    return mlir_type


def constant(value: float | int, mlir_type: str) -> str:
    """The `arith.constant` op (without its result name) of `value` as `mlir_type`: a float or integer scalar
    type, `index`, or a vector of them (a splat)."""
    elem = _element_type(mlir_type)
    if elem in FLOAT_WIDTHS:
        literal = float_literal(value, elem)
    elif elem == "index" or (elem.startswith("i") and elem[1:].isdigit()):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not an integer constant of type {elem}")
        literal = str(int(value))
    else:
        raise ValueError(f"no constant of type {mlir_type!r}")
    if mlir_type.startswith("vector<"):
        return f"arith.constant dense<{literal}> : {mlir_type}"
    return f"arith.constant {literal} : {mlir_type}"


def vector_constant(values: list[int] | list[float], mlir_type: str) -> str:
    """`arith.constant dense<[...]>` with one literal per lane."""
    elem = _element_type(mlir_type)
    if elem in FLOAT_WIDTHS:
        literals = [float_literal(v, elem) for v in values]
    else:
        literals = [str(int(v)) for v in values]
    return f"arith.constant dense<[{', '.join(literals)}]> : {mlir_type}"
