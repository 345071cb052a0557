"""The Struct wire codec (functions/_wire.c) against the protobuf library.

Encoding must give the Struct that `Struct.update` gives, for any JSON value; decoding must
read any Struct as the protobuf API reads it, type for type; malformed bytes and runaway
nesting must raise, never crash the process.
"""

from __future__ import annotations

import contextlib
import math
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from functions import _wire, runner
from tests.support.fuzz import nest
from tests.support.protowire import field, nested_lists, observed

keys = st.text(max_size=12) | st.sampled_from(("metadata", "managedFields", "name", ""))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=60)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=40,
)
objects = st.dictionaries(keys, values, max_size=6)


def sdk_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def typed(value: struct_pb2.Value) -> Any:
    """The protobuf API's reading of a Value, each leaf tagged with its type: 1 and 1.0 and
    True compare equal in Python, and must not here."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        return ("struct", {k: typed(fields[k]) for k in fields})
    if kind == "list_value":
        return ("list", [typed(v) for v in value.list_value.values])
    leaf = getattr(value, kind) if kind else None
    return (kind, repr(leaf))


def typed_plain(data: Any) -> Any:
    """`typed`, of what the codec decoded."""
    if isinstance(data, dict):
        return ("struct", {k: typed_plain(v) for k, v in data.items()})
    if isinstance(data, list):
        return ("list", [typed_plain(v) for v in data])
    if data is None:
        return ("null_value", repr(0))
    kind = {bool: "bool_value", float: "number_value", str: "string_value"}[type(data)]
    return (kind, repr(data))


def expected_object(struct: struct_pb2.Struct) -> Any:
    """A Struct as decode must read it: the object, without metadata.managedFields."""
    out = typed_plain_struct(struct)
    metadata = out[1].get("metadata")
    if metadata is not None and metadata[0] == "struct":
        metadata[1].pop("managedFields", None)
    return out


def typed_plain_struct(struct: struct_pb2.Struct) -> Any:
    return ("struct", {k: typed(struct.fields[k]) for k in struct.fields})


@settings(max_examples=600, deadline=None)
@given(data=objects)
def test_encode_writes_the_struct_update_writes(data: dict[str, Any]) -> None:
    ours = struct_pb2.Struct.FromString(_wire.encode(data, runner._plain))
    sdk = sdk_struct(data)
    assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


@settings(max_examples=600, deadline=None)
@given(data=objects)
def test_decode_reads_what_the_protobuf_api_reads(data: dict[str, Any]) -> None:
    struct = sdk_struct(data)
    decoded = _wire.decode(struct.SerializeToString())
    assert typed_plain(decoded) == expected_object(struct)


def test_decode_leaves_out_managed_fields_of_the_object_metadata_only() -> None:
    data = {
        "metadata": {"name": "a", "managedFields": [{"manager": "m"}]},
        "spec": {"metadata": {"managedFields": 1}, "managedFields": 2},
    }
    assert _wire.decode(sdk_struct(data).SerializeToString()) == {
        "metadata": {"name": "a"},
        "spec": {"metadata": {"managedFields": 1.0}, "managedFields": 2.0},
    }


def test_an_entry_without_key_or_value_reads_as_protobuf_reads_it() -> None:
    wire = b"\x0a\x02\x12\x00" + b"\x0a\x03\x0a\x01k"  # {"": Value()}, {"k": unset}
    struct = struct_pb2.Struct.FromString(wire)
    assert set(struct.fields) == {"", "k"}
    assert all(struct.fields[k].WhichOneof("kind") is None for k in struct.fields)
    assert _wire.decode(wire) == {"": None, "k": None}


def test_numbers_bools_and_nulls_keep_their_types() -> None:
    data = {"i": 3, "f": 1.5, "t": True, "n": None, "big": 2**63, "nan": math.nan}
    decoded = _wire.decode(_wire.encode(data, runner._plain))
    assert [type(decoded[k]) for k in ("i", "f", "t", "n", "big")] == [
        float,
        float,
        bool,
        type(None),
        float,
    ]
    assert decoded["big"] == 2.0**63
    assert math.isnan(decoded["nan"])


def test_values_of_other_types_go_through_plain() -> None:
    class Mode(StrEnum):
        ON = "on"

    class Count(IntEnum):
        THREE = 3

    data = {"e": Mode.ON, "n": Count.THREE, "l": [Mode.ON, (Count.THREE,)]}
    assert _wire.decode(_wire.encode(data, runner._plain)) == {
        "e": "on",
        "n": 3.0,
        "l": ["on", [3.0]],
    }
    with pytest.raises(TypeError, match="cannot encode a mappingproxy"):
        _wire.encode({"v": MappingProxyType({"a": 1})}, runner._plain)  # Objects are dicts.


def test_what_cannot_be_encoded_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode a set"):
        _wire.encode({"x": {1}}, runner._plain)
    with pytest.raises(TypeError, match="must be a str"):
        _wire.encode({"a": {1: "x"}}, runner._plain)
    with pytest.raises(TypeError, match="cannot encode a frozenset"):
        _wire.encode({"x": frozenset()}, lambda _: frozenset())
    with pytest.raises(UnicodeEncodeError):
        _wire.encode({"x": "\ud800"}, runner._plain)
    with pytest.raises(OverflowError):
        _wire.encode({"x": 10**400}, runner._plain)
    with pytest.raises(TypeError):
        _wire.encode([], runner._plain)  # type: ignore[arg-type]


def test_a_list_changed_by_plain_is_refused_not_read_out_of_bounds() -> None:
    items: list[Any] = ["a", "b", object()]

    def plain(_: Any) -> Any:
        items.clear()
        return "x"

    with pytest.raises(RuntimeError, match="changed size"):
        _wire.encode({"l": items}, plain)


def test_runaway_nesting_raises_instead_of_overflowing_the_stack() -> None:
    with pytest.raises(RecursionError):
        _wire.encode({"x": nest(100_000)}, runner._plain)
    with pytest.raises(RecursionError):
        _wire.decode(_entry("x", nested_lists(100_000)))


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=200))
def test_malformed_bytes_raise_value_error_never_crash(data: bytes) -> None:
    try:
        decoded = _wire.decode(data)
    except ValueError:  # UnicodeDecodeError is one.
        return
    assert isinstance(decoded, dict)


@settings(max_examples=300, deadline=None)
@given(data=objects, cut=st.integers(min_value=1))
def test_truncated_bytes_raise_value_error(data: dict[str, Any], cut: int) -> None:
    wire = sdk_struct(data).SerializeToString()
    if not wire:
        return
    try:
        decoded = _wire.decode(wire[: -(cut % len(wire) or 1)])
    except ValueError:
        return
    assert isinstance(decoded, dict)  # A cut between entries is a shorter Struct.


# ---- requests and responses split and joined around the composed objects ----

names = st.text(max_size=10)
resources = st.dictionaries(names, objects, max_size=4)


def request_of(
    composite: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    desired: dict[str, dict[str, Any]],
    context: dict[str, Any],
) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag="t"))
    req.observed.composite.resource.update(composite)
    for name, obj in observed.items():
        req.observed.resources[name].resource.update(obj)
        req.observed.resources[name].connection_details["k"] = b"v"
    for name, obj in desired.items():
        req.desired.resources[name].resource.update(obj)
    req.context.update(context)
    req.required_resources["r"].items.add().resource.update(composite)
    return req


@settings(max_examples=300, deadline=None)
@given(composite=objects, observed=resources, desired=resources, context=objects)
def test_a_split_request_is_the_request_without_its_observed_objects(
    composite: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    desired: dict[str, dict[str, Any]],
    context: dict[str, Any],
) -> None:
    req = request_of(composite, observed, desired, context)
    rest, split = _wire.split_request(req.SerializeToString())
    expected = fnv1.RunFunctionRequest()
    expected.CopyFrom(req)
    if expected.HasField("observed"):  # Clearing a field of an absent one would add it.
        expected.observed.ClearField("resources")
    assert fnv1.RunFunctionRequest.FromString(rest) == expected
    assert set(split) == set(req.observed.resources)
    for name, wire in split.items():
        struct = struct_pb2.Struct.FromString(wire)
        assert typed_plain_struct(struct) == typed_plain_struct(
            req.observed.resources[name].resource
        )


def test_split_objects_merge_and_replace_as_protobuf_reads_them() -> None:
    a = sdk_struct({"a": 1}).SerializeToString()
    b = sdk_struct({"b": 2, "a": 3}).SerializeToString()
    wire = observed(b"x", a) + observed(b"x", b) + observed(b"y", a, b) + observed(b"", a)
    # Objects of one byte and none, then more: bytes are kept as they come, to decode later.
    _, kept = _wire.split_request(observed(b"z", b"\x08", b"", a) + observed(b"e", b"", a))
    assert kept == {"z": b"\x08" + a, "e": a}
    rest, split = _wire.split_request(wire)
    upb = fnv1.RunFunctionRequest.FromString(wire)
    assert set(split) == set(upb.observed.resources) == {"x", "y", ""}
    for name, data in split.items():
        assert _wire.decode(data) == runner._dict(upb.observed.resources[name].resource)
    assert fnv1.RunFunctionRequest.FromString(rest) == fnv1.RunFunctionRequest(
        observed=fnv1.State()
    )


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=200))
def test_split_refuses_malformed_requests_never_crashes(data: bytes) -> None:
    try:
        rest, split = _wire.split_request(data)
    except ValueError:
        return
    assert isinstance(rest, bytes)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in split.items())


@settings(max_examples=200, deadline=None)
@given(composite=objects, observed=resources, cut=st.integers(min_value=1))
def test_truncated_requests_are_refused_or_read_as_protobuf_reads_them(
    composite: dict[str, Any], observed: dict[str, dict[str, Any]], cut: int
) -> None:
    wire = request_of(composite, observed, {}, {}).SerializeToString()
    wire = wire[: -(cut % len(wire) or 1)]
    try:
        rest, _ = _wire.split_request(wire)
    except ValueError:
        return
    with contextlib.suppress(DecodeError):  # upb may still refuse the rest.
        fnv1.RunFunctionRequest.FromString(rest)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.tuples(names, objects, st.sampled_from((fnv1.READY_TRUE, fnv1.READY_FALSE))),
        max_size=5,
    ),
    desired=resources,
)
def test_encoded_resources_merge_into_a_response_as_the_protobuf_api_sets_them(
    items: list[tuple[str, dict[str, Any], int]], desired: dict[str, dict[str, Any]]
) -> None:
    rsp = fnv1.RunFunctionResponse(meta=fnv1.ResponseMeta(tag="t"))
    for name, obj in desired.items():
        rsp.desired.resources[name].resource.update(obj)
    expected = fnv1.RunFunctionResponse()
    expected.CopyFrom(rsp)
    for name, obj, ready in items:
        expected.desired.resources[name].CopyFrom(
            fnv1.Resource(resource=sdk_struct(obj), ready=ready)  # type: ignore[arg-type]
        )
    joined = rsp.SerializeToString() + _wire.encode_resources(items, runner._plain)
    assert fnv1.RunFunctionResponse.FromString(joined) == expected


def test_decode_keeps_only_the_fields_asked_for() -> None:
    wire = sdk_struct(
        {"kind": "Pod", "metadata": {"name": "p", "managedFields": []}, "spec": {"x": 1}}
    ).SerializeToString()
    assert _wire.decode(wire, frozenset({"kind", "metadata"})) == {
        "kind": "Pod",
        "metadata": {"name": "p"},
    }
    assert _wire.decode(wire, None) == _wire.decode(wire)
    with pytest.raises(TypeError):
        _wire.decode(wire, {"kind"})  # type: ignore[arg-type]


def _entry(key: str, *values: bytes) -> bytes:
    return field(0x0A, field(0x0A, key.encode()) + b"".join(field(0x12, v) for v in values))


STRUCT_A = field(0x2A, sdk_struct({"x": "1", "n": 1}).SerializeToString())
STRUCT_B = field(0x2A, sdk_struct({"y": "2", "n": 2}).SerializeToString())
LIST_1 = field(0x32, field(0x0A, b"\x1a\x011"))
LIST_2 = field(0x32, field(0x0A, b"\x1a\x012"))
GROUP = b"\x9b\x06\x08\x01\x9c\x06"  # Field 99 as a group holding a varint: unknown.


@pytest.mark.parametrize(
    "wire",
    [
        _entry("a", STRUCT_A, STRUCT_B),  # A value repeated: the Values merge.
        _entry("a", STRUCT_A + STRUCT_B),  # A struct repeated in one Value: merged.
        _entry("a", LIST_1 + LIST_2),  # A list repeated: concatenated.
        _entry("a", STRUCT_A + b"\x1a\x01s" + STRUCT_B),  # Another kind between: replaced.
        _entry("a", b"\x1a\x01s", b""),  # An empty Value after: nothing changes.
        _entry("a", STRUCT_A) + _entry("a", STRUCT_B),  # A key again: the entry replaces.
        GROUP + _entry("a", GROUP + b"\x1a\x01s" + GROUP),  # Groups skipped where unknown.
    ],
)
def test_repeated_and_unknown_fields_read_as_protobuf_reads_them(wire: bytes) -> None:
    struct = struct_pb2.Struct.FromString(wire)
    assert typed_plain(_wire.decode(wire)) == typed_plain_struct(struct)


def test_a_request_with_unknown_groups_splits_as_protobuf_parses_it() -> None:
    obj = sdk_struct({"kind": "Pod"}).SerializeToString()
    # Not in the map entry itself: upb sets aside an entry with unknown fields, Go's
    # protobuf does not, and Crossplane sends none.
    entry = field(0x0A, b"x") + field(0x12, GROUP + field(0x0A, obj) + GROUP)
    state = GROUP + field(0x12, entry) + field(0x0A, field(0x0A, obj))
    wire = GROUP + field(0x12, state) + GROUP
    rest, split = _wire.split_request(wire)
    upb = fnv1.RunFunctionRequest.FromString(wire)
    assert _wire.decode(split["x"]) == {"kind": "Pod"}
    expected = fnv1.RunFunctionRequest()
    expected.CopyFrom(upb)
    expected.observed.ClearField("resources")
    assert fnv1.RunFunctionRequest.FromString(rest) == expected


def test_resources_whose_ready_runs_code_that_clears_the_list_never_crash() -> None:
    items: list[Any] = []

    class Clears(int):
        def __index__(self) -> int:
            items.clear()
            return 1

    items.append(("n" * 51, {"k" * 41: ["a" * 100]}, Clears(1)))
    wire = _wire.encode_resources(items, runner._plain)
    rsp = fnv1.RunFunctionResponse.FromString(wire)
    assert list(rsp.desired.resources) == ["n" * 51]
