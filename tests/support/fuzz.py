"""Hypothesis strategies and a harness for fuzzing function-cozyplane (tests/test_fuzz.py).

Claim specs are drawn from the structural schema the XRDs carry, so they are what the API
server admits; mutations then take them outside it. Observed and required objects come
in two tiers: shaped as the API server would return them (typed, odd values), and
garbage (any JSON anywhere).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.message import DecodeError
from hypothesis import reject
from hypothesis import strategies as st
from pydantic.alias_generators import to_snake

from functions import _wire
from functions.api.kinds import API_VERSION, Kind
from functions.api.schema import openapi_schema
from functions.domain.quantity import MAX_MAGNITUDE, QUANTITY_PATTERN, helm_to_float
from functions.domain.secrets import PasswordSource
from functions.render import MAX_ITERATIONS, RESOURCE_NAME, to_composite
from functions.runner import CROSSPLANE_SPEC_FIELDS, FunctionRunner, _compose
from tests.conftest import counter_passwords

Json = Any
Path = tuple[str | int, ...]
Strategy = st.SearchStrategy[Any]

# A small vocabulary, so map keys and the lists that refer to them sometimes agree
# (databases.*.roles naming users, quota keys, parent namespaces).
NAMES = (
    "a",
    "b",
    "app",
    "db",
    "web",
    "x1",
    "cpu",
    "memory",
    "storage",
    "pods",
    "services.loadbalancers",
    "requests.cpu",
    "default",
    "main",
    "root",
    "tenant-root",
    "tenant-dev",
    "ubuntu",
    "u1.medium",
)
# Valid quantities that are easy to get wrong: tiny and odd suffixes, exponents, fractions
# of binary units, signs, overflow of a float64 and of an int64.
ODD_QUANTITIES = (
    "1n",
    "5u",
    "1m",
    "1e3",
    "1E3",
    "1E",
    "2e-3",
    "0.5Ki",
    ".5",
    "5.",
    "+1",
    "-1",
    "0",
    "-1Gi",
    "-0.001m",
    "1Ei",
    "16Ei",
    "1e18",
    "1e308",
    "1e309",
    "9e999",
    "1e-999",
    "99999999999999999999999",
    "0.000000001",
    "1.5Gi",
    "100Mi",
    "2k",
)
CONDITION_TYPES = (
    "Ready",
    "Available",
    "AllReplicasReady",
    "Complete",
    "Failed",
    "RestartRequired",
    "Progressing",
)
PHASES = (
    "Bound",
    "Pending",
    "Succeeded",
    "Failed",
    "Running",
    "Stopped",
    "operational",
    "Cluster in healthy state",
    "WaitForFirstConsumer",
    "ImportInProgress",
)

text = st.text(max_size=24)
words = st.sampled_from(NAMES) | text
keys = st.sampled_from(NAMES) | st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
quantities = st.sampled_from(ODD_QUANTITIES) | st.integers(-(2**40), 2**62).map(str)
# What the API server returns: it caps quantities at 2^63 in magnitude.
kept_quantities = quantities.filter(lambda q: abs(helm_to_float(q)) <= MAX_MAGNITUDE)
scalars: Strategy = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | st.sampled_from(ODD_QUANTITIES)
)
json_values: Strategy = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4),
    max_leaves=12,
)


def nest(depth: int, leaf: Json = "x") -> Json:
    """Alternating maps and lists `depth` deep. Protobuf decodes 100 message levels, about 38
    of JSON, so gRPC refuses deeper requests before the function sees them."""
    value = leaf
    for level in range(depth):
        value = {"n": value} if level % 2 else [value]
    return value


def huge_map(size: int) -> dict[str, Json]:
    return {f"k{i:05d}": i for i in range(size)}


# Shapes no schema-derived value has: huge maps, deep nesting, long unicode strings.
monsters: Strategy = st.one_of(
    st.integers(200, 3000).map(huge_map),
    st.integers(10, 28).map(nest),
    st.text(min_size=300, max_size=2000),
    st.just("\u0000\u202e\U0001f600\ufeff" * 50),
)
garbage: Strategy = json_values | monsters
objects = st.dictionaries(words, garbage, max_size=5)


# --- claim specs from the structural schema -------------------------------------------------


def _strings(node: Mapping[str, Any]) -> Strategy:
    low, high = node.get("minLength", 0), node.get("maxLength", 64)
    if "pattern" in node:
        base: Strategy = st.from_regex(node["pattern"], fullmatch=True)
    else:
        base = st.sampled_from(NAMES) | st.text(max_size=min(high, 40))
    return base.filter(lambda s: low <= len(s) <= high)


def from_schema(node: Mapping[str, Any]) -> Strategy:
    """Values an OpenAPI v3 structural schema node admits (CEL rules aside)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        if QUANTITY_PATTERN in node.get("pattern", ""):
            return st.integers(0, 2**40) | quantities.filter(re.compile(node["pattern"]).match)
        return st.integers(-(2**31), 2**31) | _strings(node)
    kind = node.get("type")
    if kind == "object":
        if "properties" in node:
            required = set(node.get("required", ()))
            props = {name: from_schema(prop) for name, prop in node["properties"].items()}
            return st.fixed_dictionaries(
                {k: v for k, v in props.items() if k in required},
                optional={k: v for k, v in props.items() if k not in required},
            )
        if isinstance(node.get("additionalProperties"), dict):
            size = min(node.get("maxProperties", 4), 4)
            return st.dictionaries(keys, from_schema(node["additionalProperties"]), max_size=size)
        return st.dictionaries(words, json_values, max_size=4)
    if kind == "array":
        return st.lists(
            from_schema(node["items"]),
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 4), 4),
        )
    if kind == "string":
        return _strings(node)
    if kind == "integer":
        low = node.get("minimum", -(2**53))
        high = node.get("maximum", 2**53)
        if node.get("exclusiveMinimum"):
            low += 1
        return st.integers(low, high)
    if kind == "number":
        return st.floats(
            node.get("minimum"),
            node.get("maximum"),
            exclude_min=bool(node.get("exclusiveMinimum")),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    return json_values


@cache
def spec_schema(kind: Kind) -> dict[str, Any]:
    return openapi_schema(kind.spec)


@cache
def specs(kind: Kind) -> Strategy:
    return from_schema(spec_schema(kind))


def claim_names(kind: Kind) -> Strategy:
    return st.from_regex(kind.name_pattern, fullmatch=True).filter(
        lambda n: len(n) <= kind.name_max_length
    )


namespaces = st.sampled_from(("tenant-root", "tenant-dev")) | st.from_regex(
    r"tenant-[a-z][a-z0-9]{0,8}", fullmatch=True
)


def composite(kind: Kind, name: str, namespace: str, spec: Json) -> dict[str, Any]:
    """The composite Crossplane makes for a claim, with `spec` as given (any JSON)."""
    claim = {"apiVersion": API_VERSION, "kind": kind.claim}
    xr = to_composite(claim | {"metadata": {"name": name, "namespace": namespace}}, kind)
    xr["spec"] = (spec | {"claimRef": xr["spec"]["claimRef"]}) if isinstance(spec, dict) else spec
    return xr


# --- mutations that take a spec outside its schema -----------------------------------------


@dataclass(frozen=True)
class Mutation:
    path: Path
    what: str
    value: Json
    invalid: bool
    """Whether the schema certainly rejects `value`, so a Fatal must name `path`."""


# Values that no lax pydantic coercion turns into the schema type of a node.
_WRONG = {
    "object": ([1, "x"], "not an object \u2603", 2.5, True),
    "array": ({"\u2603": 1}, "not a list \u2603", 2.5, True),
    "string": ({"\u2603": 1}, [1, "x"], 2.5, True),
    "int-or-string": ({"\u2603": 1}, [1, "x"], 2.5),
    "integer": ({"\u2603": 1}, [1, "x"], 2.5, "three \u2603"),
    "number": ({"\u2603": 1}, [1, "x"], "three \u2603"),
    "boolean": ({"\u2603": 1}, [1, "x"], 2.5, "maybe \u2603"),
}


def _type(node: Mapping[str, Any]) -> str | None:
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return None
    kind = node.get("type")
    return kind if isinstance(kind, str) else None


def _child(node: Mapping[str, Any], key: str | int) -> Mapping[str, Any]:
    if isinstance(key, int):
        return node.get("items") or {}
    if key in node.get("properties", {}):
        return node["properties"][key]  # type: ignore[no-any-return]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _nodes(value: Json, node: Mapping[str, Any], path: Path) -> Iterator[tuple[Path, Json, Any]]:
    yield path, value, node
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _nodes(value[key], _child(node, key), (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, _child(node, index), (*path, index))


def _replace(doc: Json, path: Path, value: Json) -> Json:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    out = list(doc)
    out[head] = _replace(out[head], rest, value)  # type: ignore[index]
    return out


def _unknown_key(node: Mapping[str, Any]) -> Strategy:
    known = set(node.get("properties", {})) | CROSSPLANE_SPEC_FIELDS
    known |= {to_snake(k) for k in known}
    return (st.text(min_size=1, max_size=12) | st.sampled_from(NAMES)).filter(
        lambda k: k not in known
    )


def _out_of_bounds(node: Mapping[str, Any]) -> list[Json]:
    found: list[Json] = []
    if "enum" in node:
        found.append("\u2603" + str(node["enum"][0]))
    if node.get("type") == "integer":
        if "maximum" in node:
            found += [node["maximum"] + 1, 2**62]
        if "minimum" in node:
            found += [node["minimum"] - 1, -(2**62)]
    if node.get("type") == "string" and "maxLength" in node:
        found.append("y" * (node["maxLength"] + 1))
    return found


def _refused_quantity(node: Mapping[str, Any], value: str | int) -> bool:
    """A negative or oversized value where a claim takes a size, a limit or a quota."""
    if QUANTITY_PATTERN not in node.get("pattern", ""):
        return False
    number = helm_to_float(str(value))
    return number < 0 or abs(number) > MAX_MAGNITUDE


@st.composite
def mutated(draw: st.DrawFn, kind: Kind, spec: Json) -> tuple[Json, list[Mutation]]:
    """`spec` with one to three mutations, each a wrong type, an unknown field, a value out
    of bounds, an odd quantity, unicode, a huge map, deep nesting or any JSON."""
    schema = spec_schema(kind)
    done: list[Mutation] = []
    for _ in range(draw(st.integers(1, 3))):
        path, value, node = draw(st.sampled_from(list(_nodes(spec, schema, ()))))
        kind_of = _type(node)
        options = ["garbage", "monster", "unicode-key"]
        if kind_of is not None:
            options.append("wrong-type")
        if kind_of == "object" and "properties" in node and isinstance(value, dict):
            options.append("unknown-field")
        if _out_of_bounds(node):
            options.append("out-of-bounds")
        if kind_of == "int-or-string":
            options.append("quantity")
        what = draw(st.sampled_from(options))
        invalid = what in ("wrong-type", "unknown-field", "out-of-bounds")
        if what == "wrong-type":
            assert kind_of is not None
            new = draw(st.sampled_from(_WRONG[kind_of]))
        elif what == "unknown-field":
            key, new = draw(_unknown_key(node)), draw(json_values)
            spec = _replace(spec, path, {**value, key: new})
            done.append(Mutation((*path, key), what, new, invalid))
            continue
        elif what == "out-of-bounds":
            new = draw(st.sampled_from(_out_of_bounds(node)))
        elif what == "quantity":
            new = draw(quantities | st.integers(-(2**63), 2**63))
            invalid = _refused_quantity(node, new)
        elif what == "monster":
            new = draw(monsters)
        elif what == "unicode-key":
            if not isinstance(value, dict) or not value:
                continue
            old = draw(st.sampled_from(sorted(value)))
            new_key = draw(st.text(min_size=1, max_size=12))
            renamed = {(new_key if k == old else k): v for k, v in value.items()}
            spec = _replace(spec, path, renamed)
            done.append(Mutation(path, what, renamed, invalid))
            continue
        else:
            new = draw(garbage)
        spec = _replace(spec, path, new)
        done.append(Mutation(path, what, new, invalid))
    return spec, done


def still_there(spec: Json, mutation: Mutation) -> bool:
    """Whether later mutations left `mutation`'s value in place."""
    value = spec
    for step in mutation.path:
        inside = isinstance(value, list) and isinstance(step, int) and step < len(value)
        if not (inside or (isinstance(value, dict) and step in value)):
            return False
        value = value[step]
    return type(value) is type(mutation.value) and bool(value == mutation.value)


def dotted(path: Path) -> str:
    return ".".join(("spec", *map(str, path)))


# --- observed and required objects ---------------------------------------------------------

counts = st.integers(-3, 5) | st.integers(-(2**31), 2**53)
ips = st.sampled_from(("192.0.2.10", "2001:db8::1", "10.0.0.1", "", "not-an-ip", "300.1.1.1"))
conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(CONDITION_TYPES) | text,
            "status": st.sampled_from(("True", "False", "Unknown")),
        },
        optional={"reason": words, "message": text, "lastTransitionTime": text},
    ),
    max_size=4,
)
interfaces = st.lists(
    st.fixed_dictionaries(
        {}, optional={"ipAddress": ips, "ipAddresses": st.lists(ips, max_size=3), "name": words}
    ),
    max_size=3,
)
# Status fields the services and readiness rules read, each with its API type.
STATUS: dict[str, Strategy] = {
    "conditions": conditions,
    "readyReplicas": counts,
    "replicas": counts,
    "readyInstances": counts,
    "instances": counts,
    "readyMembers": counts,
    "observedGeneration": counts,
    "ready": st.booleans(),
    "applied": st.booleans(),
    "phase": st.sampled_from(PHASES) | text,
    "printableStatus": st.sampled_from(PHASES) | text,
    "updateStatus": st.sampled_from(PHASES) | text,
    "progress": st.sampled_from(("N/A", "45.00%", "100.0%")) | text,
    "currentPrimary": words,
    "message": text,
    "username": words,
    "claimName": words,
    "capacity": st.fixed_dictionaries({}, optional={"storage": kept_quantities}),
    "loadBalancer": st.fixed_dictionaries(
        {},
        optional={
            "ingress": st.lists(
                st.fixed_dictionaries({}, optional={"ip": ips, "hostname": words}), max_size=2
            )
        },
    ),
    "interfaces": interfaces,
    "ipAddresses": st.lists(ips, max_size=3),
    "ipAddress": ips,
    "dataStoreName": words,
    "version": words,
}
statuses = st.fixed_dictionaries({}, optional=STATUS)
string_maps = st.dictionaries(words, words | quantities, max_size=4)


def _secret_values() -> Strategy:
    raw = st.binary(max_size=40) | st.text(max_size=40).map(str.encode)
    return raw.map(lambda b: base64.b64encode(b).decode()) | st.sampled_from(("", "%%%", "a"))


secret_data = st.dictionaries(
    st.sampled_from(("password", "username", "ca.crt", "tls.crt", "tls.key", "token", "uri"))
    | words,
    _secret_values(),
    max_size=4,
)


@st.composite
def api_shaped(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the API server might return it: a status, labels and annotations, Secret
    data, all typed as the API says, with odd values."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    if draw(st.booleans()):
        meta["annotations"] = dict(meta.get("annotations") or {}) | draw(string_maps)
    if draw(st.booleans()):
        meta["labels"] = dict(meta.get("labels") or {}) | draw(string_maps)
    if draw(st.booleans()):
        meta["generation"] = draw(counts)
    out["metadata"] = meta
    if draw(st.booleans()):
        out["status"] = draw(statuses)
    if out.get("kind") == "Secret" and draw(st.booleans()):
        out["data"] = draw(secret_data)
    return out


@st.composite
def corrupted(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with garbage at one to three places: wrong types, lost metadata, any JSON."""
    out: Json = obj
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p, _, _ in _nodes(out, {}, ()) if p]
        if not places:
            break
        path = draw(st.sampled_from(places))
        out = _replace(out, path, draw(garbage))
    if out and draw(st.booleans()):
        lost = draw(st.sampled_from(sorted(out)))
        out = {k: v for k, v in out.items() if k != lost}
    return out  # type: ignore[no-any-return]


def synthetic(selector: fnv1.ResourceSelector) -> dict[str, Any]:
    """An object that answers `selector`, with nothing but its identity."""
    meta: dict[str, Any] = {"name": selector.match_name or "found"}
    if selector.HasField("namespace"):
        meta["namespace"] = selector.namespace
    if selector.match_labels.labels:
        meta["labels"] = dict(selector.match_labels.labels)
    return {"apiVersion": selector.api_version, "kind": selector.kind, "metadata": meta}


# --- the harness -----------------------------------------------------------------------------


@dataclass
class Stats:
    cases: int = 0
    calls: int = 0
    crashes: int = 0
    refused: int = 0
    """Fatals naming an observed or required object of impossible types."""


STATS = Stats()
INTERNAL = "internal error"
# services/base.py and runner.py: `observed resource "cluster": status.conditions[0] must be
# an object`.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
REFUSED = re.compile(
    rf"(?P<what>observed|required) resource (?P<name>{_QUOTED})(?:\[(?P<index>\d+)\])?: "
    rf"(?P<path>[A-Za-z]\w*(?:\.\w+|\[\d+\]|\[{_QUOTED}\])*) must be "
)
_STEP = re.compile(rf"\.(\w+)|\[(\d+)\]|\[({_QUOTED})\]")


class CrashError(AssertionError):
    """RunFunction raised, or turned a bug into an internal-error Fatal."""


class Harness:
    """Sends requests through the wire format to the real FunctionRunner."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def call(
        self, req: fnv1.RunFunctionRequest, passwords: PasswordSource | None = None
    ) -> fnv1.RunFunctionResponse:
        """One RunFunction call; an exception or an internal-error Fatal is a crash."""
        try:
            wire = fnv1.RunFunctionRequest.FromString(req.SerializeToString())
        except DecodeError:  # Nested too deep for protobuf: gRPC refuses it already.
            reject()
        runner = FunctionRunner(passwords or counter_passwords())
        STATS.calls += 1
        try:
            rsp = self.loop.run_until_complete(runner.RunFunction(wire, None))
        except Exception as err:
            STATS.crashes += 1
            raise CrashError(f"RunFunction raised {type(err).__name__}: {err}") from err
        if not isinstance(rsp, fnv1.RunFunctionResponse):
            STATS.crashes += 1
            raise CrashError(f"RunFunction returned {type(rsp).__name__}")
        message = fatal(rsp)
        if message is not None and REFUSED.search(message):
            STATS.refused += 1
        elif message is not None and INTERNAL in message:
            STATS.crashes += 1
            try:  # Show the bug's traceback, which the runner only logs.
                rest, objects = _wire.split_request(wire.SerializeToString())
                _compose(fnv1.RunFunctionRequest.FromString(rest), objects, counter_passwords())
            except Exception as err:
                raise CrashError(message) from err
            raise CrashError(message)
        return rsp


def fatal(rsp: fnv1.RunFunctionResponse) -> str | None:
    found = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    return "; ".join(found) if found else None


def refused_field(req: fnv1.RunFunctionRequest, message: str) -> Json:
    """The value at the field a Fatal names in an observed or required object of `req`;
    fails unless the message names one that exists."""
    match = REFUSED.search(message)
    assert match is not None, message
    name, index = json.loads(match["name"]), int(match["index"] or 0)
    if match["what"] == "observed":
        struct = req.observed.resources[name].resource
    else:
        struct = req.required_resources[name].items[index].resource
    value: Json = resource.struct_to_dict(struct)
    path = match["path"]
    head = re.match(r"\w+", path)
    assert head is not None
    value = value[head[0]]
    for step in _STEP.finditer(path, head.end()):
        field, position, key = step.groups()
        value = value[int(position)] if position else value[field or json.loads(key)]
    return value


def resolved(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse) -> bool:
    """Whether the request answered every requirement of the response: Crossplane uses
    this response, not a later one."""
    return all(name in req.required_resources for name in rsp.requirements.resources)


World = Callable[[str, fnv1.ResourceSelector], list[dict[str, Any]]]


def build(
    xr: Json,
    observed: Mapping[str, Json],
    requirements: fnv1.Requirements | None,
    world: World,
    step_input: Json,
) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest()
    req.meta.tag = "fuzz"
    req.observed.composite.resource.update(xr)
    for key, obj in observed.items():
        req.observed.resources[key].resource.update(obj)
    req.input.update(step_input)
    if requirements is not None:
        # Sorted, as everything read from protobuf maps here: their order varies per
        # process, and Hypothesis must draw in the same order to replay a case.
        for name in sorted(requirements.resources):
            found = req.required_resources[name]
            for doc in world(name, requirements.resources[name]):
                found.items.add().resource.update(doc)
    return req


def converge(
    harness: Harness,
    xr: Json,
    observed: Mapping[str, Json],
    world: World,
    step_input: Json,
) -> tuple[fnv1.RunFunctionRequest, fnv1.RunFunctionResponse]:
    """Call as Crossplane does: again with the required resources until they settle."""
    requirements: fnv1.Requirements | None = None
    for _ in range(MAX_ITERATIONS + 1):
        req = build(xr, observed, requirements, world, step_input)
        rsp = harness.call(req)
        if fatal(rsp) is not None or rsp.requirements == (requirements or fnv1.Requirements()):
            break
        requirements = rsp.requirements
    return req, rsp


def as_observed(rsp: fnv1.RunFunctionResponse) -> dict[str, dict[str, Any]]:
    """The desired resources of a response as Crossplane observes them once applied."""
    out = {}
    for key in sorted(rsp.desired.resources):
        obj = resource.struct_to_dict(rsp.desired.resources[key].resource)
        obj.setdefault("metadata", {}).setdefault("annotations", {})[RESOURCE_NAME] = key
        out[key] = obj
    return out


def reordered(req: fnv1.RunFunctionRequest, rng: random.Random) -> fnv1.RunFunctionRequest:
    """`req` with the insertion order of every map in it shuffled."""

    def mix(struct: Any) -> Json:
        return shuffled(resource.struct_to_dict(struct), rng)

    out = fnv1.RunFunctionRequest()
    out.meta.CopyFrom(req.meta)
    out.observed.composite.resource.update(mix(req.observed.composite.resource))
    for key in rng.sample(sorted(req.observed.resources), len(req.observed.resources)):
        out.observed.resources[key].resource.update(mix(req.observed.resources[key].resource))
    for name in rng.sample(sorted(req.required_resources), len(req.required_resources)):
        found = out.required_resources[name]
        for item in req.required_resources[name].items:
            found.items.add().resource.update(mix(item.resource))
    out.input.update(mix(req.input))
    return out


def shuffled(value: Json, rng: random.Random) -> Json:
    """The same JSON with every map's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value
