"""google.protobuf.Struct wire bytes to and from plain data (functions/_wire.c)."""

from collections.abc import Callable
from typing import Any

def encode(data: dict[str, Any], plain: Callable[[Any], Any], /) -> bytes:
    """`data` as the wire bytes of a Struct. Values of the JSON types (str, int, float,
    bool, None, dict, list, tuple) are encoded directly; any other value is first given to
    `plain`, which returns the JSON value it stands for or raises."""

def decode(data: bytes, /) -> dict[str, Any]:
    """A Kubernetes object from the wire bytes of a Struct, as plain data (numbers as
    floats), without its metadata's managedFields. Raises ValueError on malformed bytes."""
