"""Kubernetes resource quantities: exact parsing and Helm-compatible formatting."""

from __future__ import annotations

import math
import re
from decimal import Decimal

# The grammar of k8s.io/apimachinery resource.Quantity (sign, number, suffix).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_SPLIT_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")


def is_quantity(value: str) -> bool:
    return _QUANTITY_RE.match(value) is not None


def parse(value: str | int) -> Decimal:
    """Return the exact value of a quantity; raises ValueError on bad input."""
    text = str(value)
    if not is_quantity(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    match = _SPLIT_RE.match(text)
    assert match is not None  # guaranteed by the pattern above
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    try:
        return number * Decimal(10) ** int(suffix[1:])
    except (ArithmeticError, ValueError):  # An exponent beyond Decimal's (or int's) range.
        raise ValueError(f"{text!r} is a quantity out of range") from None


# Kubernetes keeps no quantity above 2^63-1 in magnitude (it caps larger ones), and the
# float64 maths of cozy-lib's request derivation overflows on what the grammar allows (9e999).
MAX_MAGNITUDE = 2.0**63


def check_magnitude(value: str) -> str:
    """`value` if its magnitude is at most 2^63; raises ValueError naming the rule."""
    if not abs(helm_to_float(value)) <= MAX_MAGNITUDE:
        raise ValueError(f"{value!r} is larger than 2^63, more than Kubernetes keeps")
    return value


def helm_float(value: float) -> str:
    """Format a float the way Helm's `toString` (Go's %v) does.

    cozy-lib renders CPU requests as `toString (divf limit ratio)`; Go prints the
    shortest round-tripping digits and uses exponent form only below 1e-4 or at
    1e21 and above, where Python's repr switches at other cut-offs.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot format {value}")
    if value == 0:
        return "0"
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exp, int)  # finite values only
    digits = "".join(map(str, digit_tuple))
    exponent = len(digits) - 1 + exp
    sign = "-" if value < 0 else ""
    if exponent < -4 or exponent >= 21:
        body = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    fraction = digits[exponent + 1 :]
    return f"{sign}{whole}.{fraction}" if fraction else sign + whole


def helm_to_float(value: str) -> float:
    """cozy-lib's `toFloat`: strip a binary or decimal suffix, multiply as float64.

    cozy-lib knows no `n` or `u` (Go's float64 of "5u" is an error it ignores); every
    suffix of the quantity grammar is read here, so valid quantities never fail.
    """
    for suffix, unit in _BINARY.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * unit
    for suffix in ("n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * float(_DECIMAL[suffix])
    return float(value)


def format_binary(value: Decimal) -> str:
    """Canonical form of a byte count: the largest exact binary suffix."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value >= unit and value % unit == 0:
            return f"{int(value // unit)}{suffix}"
    return str(int(value)) if value == int(value) else str(value)
