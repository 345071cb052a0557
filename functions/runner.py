"""The gRPC edge: decode the request, dispatch on the composite kind, encode the answer."""

from __future__ import annotations

import datetime
import re
from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import struct_pb2
from pydantic import ValidationError

from functions.api.config import PlatformConfig
from functions.api.kinds import BY_COMPOSITE
from functions.api.rules import violations
from functions.domain.secrets import PasswordSource, random_password
from functions.services import COMPOSERS
from functions.services.base import ComposeError, Composite, Context, Observed, Outcome, Required

# Fields Crossplane adds to a legacy composite's spec; they are not part of our API.
CROSSPLANE_SPEC_FIELDS = frozenset(
    {
        "claimRef",
        "compositionRef",
        "compositionRevisionRef",
        "compositionRevisionSelector",
        "compositionSelector",
        "compositionUpdatePolicy",
        "compositeDeletePolicy",
        "environmentConfigRefs",
        "publishConnectionDetailsTo",
        "resourceRef",
        "resourceRefs",
        "writeConnectionSecretToRef",
    }
)
# Long when settled: watches on composed resources trigger reconciles anyway.
TTL_SETTLED = datetime.timedelta(minutes=5)
# Short while waiting on state nothing watches (required resources, operator status).
TTL_WAITING = datetime.timedelta(seconds=15)
CONDITION = "Available"
MAX_LISTED = 5


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves every cozyplane claim kind."""

    def __init__(self, passwords: PasswordSource = random_password) -> None:
        self.passwords = passwords
        self.log = logging.get_logger()

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None
    ) -> fnv1.RunFunctionResponse:
        return run(req, self.passwords, self.log)


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return resource.struct_to_dict(struct)


def _field_errors(err: ValidationError, root: str) -> str:
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in (root, *e["loc"]))
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def run(
    req: fnv1.RunFunctionRequest, passwords: PasswordSource, log: Any
) -> fnv1.RunFunctionResponse:
    rsp = response.to(req, ttl=TTL_SETTLED)
    xr = req.observed.composite.resource
    kind = xr["kind"] if "kind" in xr else ""  # noqa: SIM401
    name = xr["metadata"]["name"] if "metadata" in xr and "name" in xr["metadata"] else ""
    log = log.bind(tag=req.meta.tag, kind=kind, name=name)
    try:
        outcome = _compose(req, passwords)
    except ComposeError as err:
        response.fatal(rsp, f"invalid {kind or 'composite'} {name}: {err}")
        return rsp
    except Exception as err:  # A bug must become a Fatal result, not a gRPC error.
        log.exception("compose failed")
        response.fatal(rsp, f"cannot compose {kind} {name}: internal error ({type(err).__name__})")
        return rsp
    _encode(outcome, rsp)
    log.debug("composed", resources=len(outcome.resources), waiting=len(outcome.waiting))
    return rsp


def _compose(req: fnv1.RunFunctionRequest, passwords: PasswordSource) -> Outcome:
    xr = _dict(req.observed.composite.resource)
    kind_name = xr.get("kind", "")
    kind = BY_COMPOSITE.get(kind_name)
    if kind is None:
        served = ", ".join(sorted(BY_COMPOSITE))
        raise ComposeError(
            "kind", f"function-cozyplane composes {served}, not {kind_name or 'nothing'}"
        )
    try:
        config = PlatformConfig.model_validate(_dict(req.input) if req.HasField("input") else {})
    except ValidationError as err:
        raise ComposeError("", _field_errors(err, "input")) from err
    raw_spec = xr.get("spec") or {}
    if not isinstance(raw_spec, dict):
        raise ComposeError("spec", "must be an object")
    try:
        spec = kind.spec.model_validate(
            {k: v for k, v in raw_spec.items() if k not in CROSSPLANE_SPEC_FIELDS}
        )
    except ValidationError as err:
        raise ComposeError("", _field_errors(err, "spec")) from err
    broken = violations(spec)
    if broken:
        raise ComposeError("", "; ".join(broken))

    metadata = xr.get("metadata") or {}
    claim = raw_spec.get("claimRef") or {}
    composite = Composite(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        claim_name=str(claim.get("name", "")),
        claim_namespace=str(claim.get("namespace", "")),
    )
    resources = req.observed.resources
    observed = Observed(resources.keys(), lambda key: _dict(resources[key].resource))
    required = Required(
        {
            name: [_dict(item.resource) for item in found.items]
            for name, found in req.required_resources.items()
        }
    )
    if composite.claim_name and not (
        re.fullmatch(kind.name_pattern, composite.claim_name)
        and len(composite.claim_name) <= kind.name_max_length
    ):
        raise ComposeError("metadata.name", f"{composite.claim_name!r}: {kind.name_rule}")
    ctx = Context(composite, observed, required, config, passwords)
    return COMPOSERS[kind.composite](spec, ctx)


def _encode(outcome: Outcome, rsp: fnv1.RunFunctionResponse) -> None:
    for key, desired in outcome.resources.items():
        target = rsp.desired.resources[key]
        target.resource.Clear()
        target.resource.update(desired.body)
        target.ready = fnv1.READY_TRUE if desired.ready else fnv1.READY_FALSE
    rsp.desired.composite.resource.update({"status": outcome.status})
    for name, req in outcome.requirements.items():
        selector = rsp.requirements.resources[name]
        selector.api_version, selector.kind = req.api_version, req.kind
        if req.name is not None:
            selector.match_name = req.name
        elif req.labels:
            selector.match_labels.labels.update(dict(req.labels))
        if req.namespace is not None:
            selector.namespace = req.namespace
    for message in outcome.warnings:
        response.warning(rsp, message)

    unready = [k for k, d in outcome.resources.items() if not d.ready]
    waiting = list(outcome.waiting)
    if unready and not waiting:
        shown = ", ".join(unready[:MAX_LISTED])
        more = f" and {len(unready) - MAX_LISTED} more" if len(unready) > MAX_LISTED else ""
        waiting.append(f"waiting for {shown}{more} to become ready")
    condition = fnv1.Condition(
        type=CONDITION,
        target=fnv1.TARGET_COMPOSITE_AND_CLAIM,
        status=fnv1.STATUS_CONDITION_TRUE,
        reason="Available",
    )
    pending = [n for n in outcome.requirements if not outcome.ctx.required.resolved(n)]
    if waiting or pending:
        condition.status, condition.reason = fnv1.STATUS_CONDITION_FALSE, "Waiting"
        condition.message = "; ".join(waiting) or "waiting for required resources"
        rsp.meta.ttl.FromTimedelta(TTL_WAITING)
    if outcome.ready is not None:
        rsp.desired.composite.ready = fnv1.READY_TRUE if outcome.ready else fnv1.READY_FALSE
    rsp.conditions.append(condition)
