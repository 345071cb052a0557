"""Protobuf wire bytes built by hand, for inputs the protobuf library never writes."""

from __future__ import annotations


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(tag: int, data: bytes) -> bytes:
    """A length-delimited field: its tag (number and wire type 2), length and bytes."""
    return bytes([tag]) + varint(len(data)) + data


def nested_lists(levels: int) -> bytes:
    """A Value holding a ListValue holding that Value, `levels` times."""
    deep = b""
    for _ in range(levels):
        deep = field(0x32, field(0x0A, deep))
    return deep


def observed(name: bytes, *structs: bytes) -> bytes:
    """A RunFunctionRequest's observed field holding one object, given as the bytes of its
    Struct (several: the Resource's field repeated)."""
    resource = b"".join(field(0x0A, struct) for struct in structs)
    return field(0x12, field(0x12, field(0x0A, name) + field(0x12, resource)))
