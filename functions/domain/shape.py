"""The shape of the Kubernetes objects cozyplane reads: observed and required resources.

The API server keeps objects to their schemas, so a field of the wrong type comes only
from a broken cluster. Reading on would fail deep inside a service, or worse, skip a
Secret's password as undecodable and generate a new one; services/base.py checks each
object against `OBJECT` when it first hands it out, and refuses it naming the field.

One table for every kind: each path means the same in every object cozyplane reads, so
an object whose `kind` is itself wrong is still checked. It names the generic object
shape and every deeper field a service or readiness rule reads; a field it does not name
is not looked at, so a check costs a few microseconds per object. Absent fields are fine
(objects not yet reconciled have no status). tests/test_observed_shape.py checks that
every object the examples compose or observe passes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from functions.domain.quantity import MAX_MAGNITUDE, parse
from functions.domain.readiness import MIN_SIZE


@dataclass(frozen=True)
class Leaf:
    """A value that passes `test`."""

    test: Callable[[Any], bool]
    rule: str


@dataclass(frozen=True)
class Map:
    """An object of any keys (labels, Secret data), each value of shape `each`, or of the
    shape in `known` for the keys named there."""

    each: Shape
    known: Mapping[str, Shape] = field(default_factory=dict)


Shape: TypeAlias = "type | Leaf | Map | dict[str, Shape] | list[Shape]"
"""A type is that exact type, as a Struct decodes (`float`: any finite number); a dict, an
object with the fields named; a one-item list, a list of items of that shape."""


def _integer_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        int(value)
    except ValueError:
        return False
    return True


def _quantity(value: Any) -> bool:
    """What the API server keeps: a quantity of at most 2^63, which the guards parse."""
    try:
        return isinstance(value, str) and abs(parse(value)) <= MAX_MAGNITUDE
    except ValueError:
        return False


STRING = str
BOOLEAN = bool
NUMBER = float
QUANTITY = Leaf(_quantity, "must be a Kubernetes quantity of at most 2^63")
STRINGS = Map(STRING)

_REQUESTS: dict[str, Shape] = {"requests": {"storage": QUANTITY}}
_VOLUME: dict[str, Shape] = {"storageClassName": STRING, "resources": _REQUESTS}

METADATA: dict[str, Shape] = {
    "name": STRING,
    "namespace": STRING,
    "uid": STRING,
    "resourceVersion": STRING,
    "generation": NUMBER,
    "labels": STRINGS,
    # readiness.machine_deployment counts ready workers against it.
    "annotations": Map(STRING, {MIN_SIZE: Leaf(_integer_text, "must be an integer")}),
}
# Kinds share paths: `storage` is CloudNativePG's, mariadb-operator's and CDI's.
SPEC: dict[str, Shape] = {
    "replicas": NUMBER,
    "type": STRING,
    "clusterIP": STRING,
    "name": STRING,
    "image": STRING,
    "imageName": STRING,
    "version": STRING,
    "dataStoreName": STRING,
    "maxRetention": STRING,
    "vhost": STRING,
    "user": STRING,
    "storageClassName": STRING,
    "resources": _REQUESTS,
    "pvc": _VOLUME,
    "source": {},
    "storage": _VOLUME | {"size": QUANTITY, "storageClass": STRING, "s3": {}},
    "persistence": {"storage": QUANTITY, "storageClassName": STRING},
    "redis": {"storage": {"persistentVolumeClaim": {"spec": _VOLUME}}},
    "managed": {"roles": [{"name": STRING, "login": BOOLEAN}]},
    "bootstrap": {"recovery": {"source": STRING}},
    "externalClusters": [{"name": STRING}],
    "values": {"storageClasses": Map({"infraStorageClass": STRING})},
    "template": {
        "spec": {
            "containers": [{"name": STRING, "image": STRING}],
            "domain": {"firmware": {"uuid": STRING}, "devices": {"disks": [{"name": STRING}]}},
            "bootstrap": {"configRef": {"kind": STRING}},
            "infrastructureRef": {"name": STRING},
        }
    },
    "instancetype": {"name": STRING, "revisionName": STRING},
    "preference": {"name": STRING, "revisionName": STRING},
    "cpu": {"guest": NUMBER},
    "memory": {"guest": QUANTITY},
    "gpus": [{}],
    "ipAddress": STRING,
    "v4IpAddress": STRING,
    "v6IpAddress": STRING,
    "macAddress": STRING,
}
STATUS: dict[str, Shape] = {
    "conditions": [{"type": STRING, "status": STRING, "reason": STRING, "message": STRING}],
    "observedGeneration": NUMBER,
    "replicas": NUMBER,
    "readyReplicas": NUMBER,
    "readyMembers": NUMBER,
    "instances": NUMBER,
    "readyInstances": NUMBER,
    "ready": BOOLEAN,
    "applied": BOOLEAN,
    "phase": STRING,
    "printableStatus": STRING,
    "updateStatus": STRING,
    "progress": STRING,
    "message": STRING,
    "currentPrimary": STRING,
    "image": STRING,
    "version": STRING,
    "username": STRING,
    "claimName": STRING,
    "capacity": {"storage": QUANTITY},
    "pgDataImageInfo": {"majorVersion": NUMBER},
    "loadBalancer": {"ingress": [{"ip": STRING, "hostname": STRING}]},
    "interfaces": [{"name": STRING, "ipAddress": STRING, "ipAddresses": [STRING]}],
}
OBJECT: dict[str, Shape] = {
    "apiVersion": STRING,
    "kind": STRING,
    "metadata": METADATA,
    "spec": SPEC,
    "status": STATUS,
    "data": STRINGS,
    "stringData": STRINGS,
    # StorageClass.
    "provisioner": STRING,
    "parameters": STRINGS,
}

Found = tuple[str, list[str]]
"""A rule broken and the path to it, innermost segment first."""
Check = Callable[[Any], Found | None]
Node = type | Check
"""A compiled shape: a type, tested inline by the loops below, or a check."""
_RULES: dict[type, str] = {
    str: "must be a string",
    bool: "must be a boolean",
    float: "must be a number",
    dict: "must be an object",
    list: "must be a list",
}


def problem(obj: Mapping[str, Any]) -> str | None:
    """The first field of `obj` of a wrong type, e.g. `status.conditions[0] must be an
    object`; None when every field named in `OBJECT` is of its type or absent."""
    found = _CHECK(obj)
    if found is None:
        return None
    rule, path = found
    return f"{''.join(reversed(path)).removeprefix('.')} {rule}"


def _compile(shape: Shape) -> Node:
    if isinstance(shape, type):
        return shape
    if isinstance(shape, Leaf):
        return _leaf(shape)
    if isinstance(shape, dict):
        return _fields({k: _compile(s) for k, s in shape.items()}) if shape else dict
    if isinstance(shape, list):
        return _items(_compile(shape[0]))
    return _map(_compile(shape.each), {k: _compile(s) for k, s in shape.known.items()})


def _test(node: Any, item: Any) -> Found | None:
    # The common case first: the exact type (and finite, for a float). `node` is typed Any,
    # or this test would narrow `item` to object.
    if node is item.__class__ and (node is not float or item - item == 0):
        return None
    return node(item) if node.__class__ is not type else _mismatch(node, item)


def _mismatch(node: type, value: Any) -> Found | None:
    if node is float:  # An int (from Python callers) is a number too.
        kind = value.__class__
        if kind is int or (kind is float and math.isfinite(value)):
            return None
    elif value.__class__ is node:
        return None
    return _RULES[node], []


def _leaf(leaf: Leaf) -> Check:
    def check(value: Any) -> Found | None:
        return None if leaf.test(value) else (leaf.rule, [])

    return check


def _fields(nodes: dict[str, Node]) -> Check:
    get = nodes.get

    def check(value: Any) -> Found | None:
        if value.__class__ is not dict:
            return "must be an object", []
        for key, item in value.items():
            node = get(key)
            found = None if node is None else _test(node, item)
            if found is not None:
                found[1].append(f".{key}")
                return found
        return None

    return check


def _items(node: Any) -> Check:
    def check(value: Any) -> Found | None:
        if value.__class__ is not list:
            return "must be a list", []
        for index, item in enumerate(value):
            found = _test(node, item)
            if found is not None:
                found[1].append(f"[{index}]")
                return found
        return None

    return check


def _map(each: Node, known: dict[str, Node]) -> Check:
    get = known.get

    def check(value: Any) -> Found | None:
        if value.__class__ is not dict:
            return "must be an object", []
        for key, item in value.items():
            found = _test(get(key, each), item)
            if found is not None:
                found[1].append(f"[{json.dumps(key, ensure_ascii=False)}]")
                return found
        return None

    return check


_CHECK = _fields({key: _compile(shape) for key, shape in OBJECT.items()})
