"""Render claims offline through the production RunFunction path, as Crossplane would."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from crossplane.function import logging, resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from functions.api.kinds import API_VERSION, KINDS, Kind
from functions.api.manifests import composition
from functions.domain.secrets import PasswordSource, random_password
from functions.runner import FunctionRunner

RESOURCE_NAME = "crossplane.io/composition-resource-name"
COMPOSITE_LABEL = "crossplane.io/composite"
CLAIM_NAME = "crossplane.io/claim-name"
CLAIM_NAMESPACE = "crossplane.io/claim-namespace"
MAX_ITERATIONS = 5  # Crossplane's limit on required-resource round trips.
CONDITION_TIME = "2024-01-01T00:00:00Z"  # What `crossplane render` writes too.
_CLAIM_ONLY = ("compositeDeletePolicy", "writeConnectionSecretToRef", "resourceRef")


class RenderError(Exception):
    """The claim cannot be rendered; the message is for the user."""


@dataclass
class Rendered:
    composite: dict[str, Any]
    resources: list[dict[str, Any]]
    results: list[tuple[str, str]] = field(default_factory=list)


def load(path: Path) -> list[dict[str, Any]]:
    """Every YAML or JSON document in a file, or in the files of a folder (sorted)."""
    files = (
        sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        if path.is_dir()
        else [path]
    )
    docs: list[dict[str, Any]] = []
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict):
                docs.append(doc)
            elif doc is not None:
                raise RenderError(f"{file}: every document must be a Kubernetes object")
    return docs


def kind_of(doc: dict[str, Any]) -> tuple[Kind, bool]:
    """The cozyplane kind of a claim or composite, and whether it is the claim."""
    if doc.get("apiVersion") == API_VERSION:
        for kind in KINDS:
            if doc.get("kind") == kind.claim:
                return kind, True
            if doc.get("kind") == kind.composite:
                return kind, False
    raise RenderError(
        f"not a cozyplane claim or composite: {doc.get('apiVersion')}/{doc.get('kind')}"
    )


def to_composite(claim: dict[str, Any], kind: Kind) -> dict[str, Any]:
    """The composite Crossplane's claim controller would make for this claim.

    Crossplane picks a random name suffix and the API server a random UID; both are
    derived from the claim here so that renders are reproducible.
    """
    meta = claim.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    if not name or not namespace:
        raise RenderError(f"the {kind.claim} claim needs metadata.name and metadata.namespace")
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    xr_name = f"{name}-{digest[:5]}"
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if "kubernetes.io" not in k}
    labels |= {CLAIM_NAME: name, CLAIM_NAMESPACE: namespace, COMPOSITE_LABEL: xr_name}
    spec = {k: v for k, v in (claim.get("spec") or {}).items() if k not in _CLAIM_ONLY}
    spec["claimRef"] = {
        "apiVersion": API_VERSION,
        "kind": kind.claim,
        "name": name,
        "namespace": namespace,
    }
    spec.setdefault("compositionRef", {"name": kind.xrd_name})
    return {
        "apiVersion": API_VERSION,
        "kind": kind.composite,
        "metadata": {
            "name": xr_name,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cozyplane:{namespace}/{name}")),
            "labels": dict(sorted(labels.items())),
        },
        "spec": spec,
    }


def matches(doc: Mapping[str, Any], selector: fnv1.ResourceSelector) -> bool:
    """Whether a document is what a requirement selects (name or labels, and namespace)."""
    meta = doc.get("metadata") or {}
    if doc.get("apiVersion") != selector.api_version or doc.get("kind") != selector.kind:
        return False
    if selector.HasField("namespace") and meta.get("namespace", "") != selector.namespace:
        return False
    if selector.HasField("match_name"):
        return bool(meta.get("name") == selector.match_name)
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.match_labels.labels.items())


def request(
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    required: Iterable[dict[str, Any]],
    step_input: dict[str, Any],
    requirements: fnv1.Requirements | None,
) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.update(xr)
    for key, obj in sorted(observed.items()):
        req.observed.resources[key].resource.update(obj)
    req.input.update(step_input)
    if requirements is not None:
        docs = list(required)
        for name, selector in requirements.resources.items():
            found = req.required_resources[name]
            for doc in docs:
                if matches(doc, selector):
                    found.items.add().resource.update(doc)
    return req


def _run(runner: FunctionRunner, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return asyncio.run(runner.RunFunction(req, None))


def render(
    document: dict[str, Any],
    *,
    observed: Iterable[dict[str, Any]] = (),
    required: Iterable[dict[str, Any]] = (),
    composition_doc: dict[str, Any] | None = None,
    passwords: PasswordSource = random_password,
) -> Rendered:
    kind, is_claim = kind_of(document)
    xr = to_composite(document, kind) if is_claim else document
    by_key: dict[str, dict[str, Any]] = {}
    for obj in observed:
        key = (obj.get("metadata", {}).get("annotations") or {}).get(RESOURCE_NAME)
        if not key:
            raise RenderError(f"observed {obj.get('kind')} lacks the {RESOURCE_NAME} annotation")
        by_key[key] = obj
    step_input = (composition_doc or composition(kind))["spec"]["pipeline"][0].get("input", {})
    required_docs = list(required)

    logging.configure(logging.Level.DISABLED)
    runner = FunctionRunner(passwords)
    requirements: fnv1.Requirements | None = None
    for _ in range(MAX_ITERATIONS + 1):
        rsp = _run(runner, request(xr, by_key, required_docs, step_input, requirements))
        fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
        if fatal:
            raise RenderError("; ".join(fatal))
        if not rsp.requirements.resources or rsp.requirements == requirements:
            break
        requirements = rsp.requirements
    return Rendered(
        composite=_composite_output(xr, rsp),
        resources=[
            _with_metadata(
                key, plain(resource.struct_to_dict(rsp.desired.resources[key].resource)), xr
            )
            for key in sorted(rsp.desired.resources)
        ],
        results=[
            (fnv1.Severity.Name(r.severity), r.message)
            for r in rsp.results
            if r.severity != fnv1.SEVERITY_FATAL
        ],
    )


def plain(value: Any) -> Any:
    """Struct numbers are floats; print integral ones as integers, as Crossplane (Go) does."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _with_metadata(key: str, obj: dict[str, Any], xr: dict[str, Any]) -> dict[str, Any]:
    """Add what Crossplane adds to every composed resource before applying it."""
    meta = obj.setdefault("metadata", {})
    xr_meta = xr.get("metadata", {})
    xr_labels = xr_meta.get("labels") or {}
    prefix = xr_labels.get(COMPOSITE_LABEL) or xr_meta.get("name", "")
    if not meta.get("name") and not meta.get("generateName"):
        meta["generateName"] = f"{prefix}-"
    meta.setdefault("annotations", {})[RESOURCE_NAME] = key
    labels = meta.setdefault("labels", {})
    labels[COMPOSITE_LABEL] = prefix
    claim = xr.get("spec", {}).get("claimRef") or {}
    if xr_labels.get(CLAIM_NAME) and xr_labels.get(CLAIM_NAMESPACE):
        labels[CLAIM_NAME], labels[CLAIM_NAMESPACE] = (
            xr_labels[CLAIM_NAME],
            xr_labels[CLAIM_NAMESPACE],
        )
    elif claim:
        labels[CLAIM_NAME], labels[CLAIM_NAMESPACE] = claim["name"], claim["namespace"]
    meta["ownerReferences"] = [
        {
            "apiVersion": xr["apiVersion"],
            "kind": xr["kind"],
            "name": xr_meta.get("name", ""),
            "uid": xr_meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return obj


def _composite_output(xr: dict[str, Any], rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    """The composite with its desired status and conditions, as `crossplane render -x` prints it."""
    desired = plain(resource.struct_to_dict(rsp.desired.composite.resource))
    unready = sorted(k for k, r in rsp.desired.resources.items() if r.ready != fnv1.READY_TRUE)
    ready: dict[str, Any] = {"type": "Ready", "status": "True", "reason": "Available"}
    if rsp.desired.composite.ready == fnv1.READY_FALSE or unready:
        ready = {"type": "Ready", "status": "False", "reason": "Creating"}
        if rsp.desired.composite.ready == fnv1.READY_UNSPECIFIED:
            ready["message"] = f"Unready resources: {_n_and_more(unready)}"
    conditions = [ready | {"lastTransitionTime": CONDITION_TIME}]
    statuses = {fnv1.STATUS_CONDITION_TRUE: "True", fnv1.STATUS_CONDITION_FALSE: "False"}
    for c in rsp.conditions:
        cond: dict[str, Any] = {
            "type": c.type,
            "status": statuses.get(c.status, "Unknown"),
            "reason": c.reason,
            "lastTransitionTime": CONDITION_TIME,
        }
        if c.message:
            cond["message"] = c.message
        conditions.append(cond)
    status = dict(desired.get("status") or {})
    status["conditions"] = conditions
    out = {k: v for k, v in xr.items() if k != "status"}
    out["status"] = status
    return out


def _n_and_more(names: list[str], first: int = 3) -> str:
    """Crossplane's StableNAndSomeMore: "a, b", "a, b, and c" or "a, b, c, and 2 more"."""
    if len(names) > first:
        return f"{', '.join(names[:first])}, and {len(names) - first} more"
    if len(names) == first:
        return f"{', '.join(names[:-1])}, and {names[-1]}"
    return ", ".join(names)
