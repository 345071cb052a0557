"""The gRPC edge: decode the request, dispatch on the composite kind, encode the answer."""

from __future__ import annotations

import datetime
import re
from typing import Any

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from pydantic import ValidationError

from functions import _wire
from functions.api.config import PlatformConfig
from functions.api.kinds import BY_COMPOSITE
from functions.api.rules import violations
from functions.domain.secrets import PasswordSource, random_password
from functions.services import COMPOSERS
from functions.services.base import (
    ComposeError,
    Composite,
    Context,
    Observed,
    Outcome,
    Required,
    StateError,
)
from functions.serving import NotARequestError

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

    def run_wire(self, request: bytes) -> bytes:
        return run_wire(request, self.passwords, self.log)

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None
    ) -> fnv1.RunFunctionResponse:
        return run(req, self.passwords, self.log)


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain data, as the SDK's struct_to_dict, without the API server's
    managedFields: nothing reads them, and they are much of an object. One call into the
    wire codec (functions/_wire.c) instead of one per field: upb serialises the bytes."""
    return _wire.decode(struct.SerializeToString())


_JSON_BASES = (str, bool, int, float, list)


def _plain(value: Any) -> Any:
    """What the wire codec cannot encode itself, as the JSON value it stands for: a subclass
    (an enum) as its base type."""
    base = next((t for t in _JSON_BASES if isinstance(value, t)), None)
    if base is None:
        raise TypeError(f"cannot encode a {type(value).__name__}")
    return str.__str__(value) if base is str else base(value)


def _write(struct: struct_pb2.Struct, data: dict[str, Any]) -> None:
    """Merge `data` into `struct`, as Struct.update would, in one call into the codec."""
    struct.MergeFromString(_wire.encode(data, _plain))


def _field_errors(err: ValidationError, root: str) -> str:
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in (root, *e["loc"]))
        parts.append(f"{where}: {e['msg']}")
    # Sorted: errors in maps come in the Struct's order, which varies from call to call.
    return "; ".join(sorted(parts))


def run_wire(request: bytes, passwords: PasswordSource, log: Any) -> bytes:
    """The answer to a RunFunctionRequest, both as wire bytes.

    upb parses and serialises only what is not a composed object. Observed objects stay
    bytes until a service reads them (functions/_wire.c decodes only the fields it asks
    for); desired objects are encoded straight into the response's bytes. upb's parse
    of a Kubernetes claim's whole request alone took 0.45 ms. Raises
    NotARequestError for bytes that are not a request.
    """
    try:
        rest, objects = _wire.split_request(request)
        req = fnv1.RunFunctionRequest.FromString(rest)
    except (ValueError, DecodeError) as err:
        raise NotARequestError(str(err)) from err
    rsp = response.to(req, ttl=TTL_SETTLED)
    composed = _respond(req, objects, rsp, passwords, log)
    answer: bytes = rsp.SerializeToString()
    return answer + composed


def run(
    req: fnv1.RunFunctionRequest, passwords: PasswordSource, log: Any
) -> fnv1.RunFunctionResponse:
    """run_wire for a parsed request (render, tests): the same answer, parsed."""
    answer = run_wire(req.SerializeToString(), passwords, log)
    rsp: fnv1.RunFunctionResponse = fnv1.RunFunctionResponse.FromString(answer)
    return rsp


def _respond(
    req: fnv1.RunFunctionRequest,
    objects: dict[str, bytes],
    rsp: fnv1.RunFunctionResponse,
    passwords: PasswordSource,
    log: Any,
) -> bytes:
    """Fill `rsp` with the outcome; returns the desired objects' bytes to append to it."""
    kind, name = _identity(req.observed.composite.resource)
    log = log.bind(tag=req.meta.tag, kind=kind, name=name)
    try:
        outcome = _compose(req, objects, passwords)
    except StateError as err:
        response.fatal(rsp, f"cannot compose {kind} {name}: {err}")
        return b""
    except ComposeError as err:
        response.fatal(rsp, f"invalid {kind or 'composite'} {name}: {err}")
        return b""
    except Exception as err:  # A bug must become a Fatal result, not a gRPC error.
        found = _malformed(req, objects)
        if found is not None:  # A readiness rule tripped on a field of a broken object.
            log.info("malformed observed or required object", problem=str(found))
            response.fatal(rsp, f"cannot compose {kind} {name}: {found}")
            return b""
        log.exception("compose failed")
        response.fatal(rsp, f"cannot compose {kind} {name}: internal error ({type(err).__name__})")
        return b""
    composed = _encode(outcome, rsp)
    log.debug("composed", resources=len(outcome.resources), waiting=len(outcome.waiting))
    return composed


def _malformed(req: fnv1.RunFunctionRequest, objects: dict[str, bytes]) -> StateError | None:
    """The first observed or required object of an impossible type, in name order."""
    try:
        _observed(objects).check()
        _required(req).check()
    except StateError as err:
        return err
    return None


def _observed(objects: dict[str, bytes]) -> Observed:
    return Observed(
        objects.keys(),
        lambda key: _decoded(objects, key, None),
        lambda key, names: _decoded(objects, key, names),
    )


def _decoded(objects: dict[str, bytes], key: str, keep: frozenset[str] | None) -> dict[str, Any]:
    try:
        return _wire.decode(objects[key], keep)
    except (ValueError, RecursionError) as err:  # Left unchecked by split_request.
        raise StateError("", f"observed resource {key!r}: {err}") from err


def _required(req: fnv1.RunFunctionRequest) -> Required:
    return Required(
        {
            name: [_dict(item.resource) for item in found.items]
            for name, found in req.required_resources.items()
        }
    )


def _identity(xr: struct_pb2.Struct) -> tuple[str, str]:
    """The composite's kind and name for messages and logs; empty where not strings."""
    fields = xr.fields
    kind = fields["kind"].string_value if "kind" in fields else ""
    metadata = fields["metadata"].struct_value.fields if "metadata" in fields else {}
    return kind, metadata["name"].string_value if "name" in metadata else ""


def _compose(
    req: fnv1.RunFunctionRequest, objects: dict[str, bytes], passwords: PasswordSource
) -> Outcome:
    xr = _dict(req.observed.composite.resource)
    kind_name = xr.get("kind", "")
    kind = BY_COMPOSITE.get(kind_name) if isinstance(kind_name, str) else None
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
    for field, value in (("metadata", metadata), ("spec.claimRef", claim)):
        if not isinstance(value, dict):
            raise ComposeError(field, "must be an object")
    composite = Composite(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        claim_name=str(claim.get("name", "")),
        claim_namespace=str(claim.get("namespace", "")),
    )
    if composite.claim_name and not (
        re.fullmatch(kind.name_pattern, composite.claim_name)
        and len(composite.claim_name) <= kind.name_max_length
    ):
        raise ComposeError("metadata.name", f"{composite.claim_name!r}: {kind.name_rule}")
    ctx = Context(composite, _observed(objects), _required(req), config, passwords)
    return COMPOSERS[kind.composite](spec, ctx)


def _encode(outcome: Outcome, rsp: fnv1.RunFunctionResponse) -> bytes:
    """Write the outcome into `rsp`, but for the desired objects: returns their bytes."""
    items: list[tuple[str, dict[str, Any], int]] = []
    for key, desired in outcome.resources.items():
        ready: int = fnv1.READY_TRUE if desired.ready else fnv1.READY_FALSE
        if key in rsp.desired.resources:  # From an earlier step: keep what it set beside.
            target = rsp.desired.resources[key]
            target.resource.Clear()
            _write(target.resource, desired.body)
            target.ready = ready
        else:
            items.append((key, desired.body, ready))
    composite = rsp.desired.composite.resource
    if "status" in composite.fields:
        del composite.fields["status"]  # Replaced, not merged, as Struct.update would.
    _write(composite, {"status": outcome.status})
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
    return _wire.encode_resources(items, _plain)
