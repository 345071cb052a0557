"""google.protobuf.Struct wire bytes to and from plain data (functions/_wire.c)."""

from collections.abc import Callable
from typing import Any

def encode(data: dict[str, Any], plain: Callable[[Any], Any], /) -> bytes:
    """`data` as the wire bytes of a Struct. Values of the JSON types (str, int, float,
    bool, None, dict, list, tuple) are encoded directly; any other value is first given to
    `plain`, which returns the JSON value it stands for or raises."""

def decode(data: bytes, keep: frozenset[str] | None = None, /) -> dict[str, Any]:
    """A Kubernetes object from the wire bytes of a Struct, as plain data (numbers as
    floats), without its metadata's managedFields; only its top-level fields in `keep`
    when given. Raises ValueError on malformed bytes."""

def encode_resources(
    items: list[tuple[str, dict[str, Any], int]], plain: Callable[[Any], Any], /
) -> bytes:
    """The wire bytes of a RunFunctionResponse whose desired state holds only the
    (name, object, ready) items, objects encoded as `encode` does: appended to another
    response's bytes, they read as a merge into its desired resources."""

def split_request(data: bytes, /) -> tuple[bytes, dict[str, bytes]]:
    """A RunFunctionRequest's wire bytes without its observed composed objects, and those
    objects' Struct bytes by name. Raises ValueError when the request's own fields are
    malformed; an object's bytes are left for `decode`, which raises when they are."""
