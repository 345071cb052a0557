"""Requests as Crossplane sends them in steady state, built from the examples.

A steady-state request carries the composite, every composed object as the API server
returns it (server metadata, managedFields for the two field managers, operator status)
and the required resources already fetched: one RunFunction call per reconcile.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossplane.function import logging, resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from benchmarks.store import Case
from functions.api.manifests import composition
from functions.domain.readiness import group_of
from functions.render import MAX_ITERATIONS, kind_of, load, request, to_composite
from functions.runner import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENVIRONMENT = EXAMPLES / "environment"
TIME = "2026-11-01T10:00:00Z"
Object = dict[str, Any]


def _counter() -> Any:
    count = iter(range(1_000_000))
    return lambda length: f"p{next(count):04d}".ljust(length, "x")[:length]


def _fields(value: Any) -> Any:
    """The FieldsV1 set of a value, as the API server records ownership."""
    if isinstance(value, dict):
        return {f"f:{k}": _fields(v) for k, v in value.items()}
    return {}


def _status(obj: Object) -> Object:
    """A healthy status of the size and shape operators write."""
    name = obj["metadata"]["name"]
    conditions = [
        {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": f"{obj['kind']} {name} is {reason.lower()}: every replica reports healthy",
            "lastTransitionTime": TIME,
            "observedGeneration": 1,
        }
        for kind, reason in (("Ready", "Succeeded"), ("Available", "Available"))
    ]
    replicas = int(obj.get("spec", {}).get("replicas") or obj.get("spec", {}).get("instances") or 1)
    status: Object = {
        "conditions": conditions,
        "observedGeneration": 1,
        "ready": True,
        "replicas": replicas,
        "readyReplicas": replicas,
        "readyMembers": replicas,
        "instances": replicas,
        "readyInstances": replicas,
        "applied": True,
        "phase": "Bound" if obj["kind"] == "PersistentVolumeClaim" else "Succeeded",
        "updateStatus": "operational",
    }
    if obj.get("spec", {}).get("type") == "LoadBalancer":
        status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}
    return status


def observed_like(obj: Object) -> Object:
    """`obj` as a GET returns it once applied by Crossplane and reconciled by its operator."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    digest = hashlib.sha256(f"{meta.get('namespace')}/{meta.get('name')}".encode()).hexdigest()
    meta |= {
        "uid": str(uuid.UUID(digest[:32])),
        "resourceVersion": str(int(digest[:8], 16)),
        "generation": 1,
        "creationTimestamp": TIME,
    }
    meta["managedFields"] = [
        {
            "manager": "apiextensions.crossplane.io/composed/" + digest[:16],
            "operation": "Apply",
            "apiVersion": obj["apiVersion"],
            "time": TIME,
            "fieldsType": "FieldsV1",
            "fieldsV1": _fields({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}),
        }
    ]
    if obj["kind"] not in ("Secret", "ConfigMap", "ServiceAccount", "Namespace"):
        out["status"] = _status(obj)
        meta["managedFields"].append(
            {
                "manager": f"{group_of(obj['apiVersion']) or 'core'}-controller",
                "operation": "Update",
                "apiVersion": obj["apiVersion"],
                "time": TIME,
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields({"status": out["status"]}),
                "subresource": "status",
            }
        )
    return out


def steady(claim: Object, label: str, series: str = "", x: int = 0) -> Case:
    """The request of `claim` once everything it composes exists and is healthy."""
    kind, _ = kind_of(claim)
    xr = to_composite(claim, kind)
    step = composition(kind)["spec"]["pipeline"][0].get("input", {})
    environment = load(ENVIRONMENT)
    passwords = _counter()
    log = logging.get_logger()
    observed: dict[str, Object] = {}
    requirements: fnv1.Requirements | None = None
    rsp = fnv1.RunFunctionResponse()
    # First reconciles: resolve requirements, then let every composed object exist.
    for _ in range(2):
        for _ in range(MAX_ITERATIONS + 1):
            req = request(xr, observed, environment, step, requirements)
            rsp = run(req, passwords, log)
            if rsp.requirements == requirements:
                break
            requirements = rsp.requirements
        observed = {
            key: observed_like(resource.struct_to_dict(d.resource))
            for key, d in rsp.desired.resources.items()
        }
    req = request(xr, observed, environment, step, requirements)
    req.meta.tag = hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()
    rsp = run(req, passwords, log)
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    if fatal:
        raise ValueError(f"{label}: {fatal[0]}")
    return Case(
        label=label,
        kind=kind.claim,
        request=req.SerializeToString(deterministic=True),
        response=rsp.SerializeToString(deterministic=True),
        composed=len(rsp.desired.resources),
        series=series,
        x=x,
    )


def _claim(kind: str, name: str, namespace: str, spec: Object) -> Object:
    return {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


SCALE = (1, 10, 100)


def series() -> Iterator[tuple[str, int, Object]]:
    """Claims that grow along one dimension: node groups, quota keys, users."""
    for n in SCALE:
        groups = {f"g{i}": {"minReplicas": 1, "maxReplicas": 3} for i in range(n)}
        yield (
            "Kubernetes node groups",
            n,
            _claim("Kubernetes", "scale", "tenant-dev", {"nodeGroups": groups}),
        )
    for n in SCALE:
        quotas = {f"count/widgets{i}.example.org": "10" for i in range(n)}
        yield (
            "Tenant quota keys",
            n,
            _claim("Tenant", "scale", "tenant-root", {"resourceQuotas": quotas}),
        )
    for n in SCALE:
        users: dict[str, Any] = {f"user{i}": {} for i in range(n)}
        yield "Postgres users", n, _claim("Postgres", "scale", "tenant-dev", {"users": users})


def cases(*, quick: bool = False) -> list[Case]:
    """Every example claim and the scale series; quick: the largest example of each kind."""
    logging.configure(logging.Level.DISABLED)
    examples = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        (claim,) = load(path)
        examples.append(steady(claim, path.stem))
    if quick:
        largest: dict[str, Case] = {}
        for case in examples:
            if case.kind not in largest or len(case.response) > len(largest[case.kind].response):
                largest[case.kind] = case
        return sorted(largest.values(), key=lambda c: c.label)
    return examples + [steady(claim, f"{name} = {n}", name, n) for name, n, claim in series()]
