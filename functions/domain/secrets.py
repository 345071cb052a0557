"""Secrets composed by cozyplane: generated once, then reused from observed state."""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

PasswordSource = Callable[[int], str]
"""Returns a new random password of the given length."""

_ALPHABET = string.ascii_letters + string.digits


def random_password(length: int) -> str:
    """Letters and digits from the OS CSPRNG, like Helm's randAlphaNum."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def decoded(data: Mapping[str, Any]) -> dict[str, str]:
    """An observed Secret's data (`Observed.data`), base64-decoded; values that are not
    base64 of UTF-8 are skipped."""
    out: dict[str, str] = {}
    for key in data:
        value = decoded_value(data, key)
        if value is not None:
            out[key] = value
    return out


def decoded_value(data: Mapping[str, Any], key: str) -> str | None:
    """One value of an observed Secret's data, base64-decoded; None when it is absent or
    not base64 of UTF-8."""
    value = data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return None


def secret(
    name: str,
    namespace: str,
    data: Mapping[str, str],
    *,
    type_: str = "Opaque",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Secret with base64 `data` (what the API server stores, so observed compares equal)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": type_,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def stable(
    requested: str | None, *observed: str | None, generate: PasswordSource, length: int = 16
) -> str:
    """The requested value, else the first one already observed, else a new one."""
    if requested:
        return requested
    for value in observed:
        if value:
            return value
    return generate(length)
