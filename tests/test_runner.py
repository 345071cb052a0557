"""The gRPC edge: dispatch, Fatal results for bad input, readiness, TTL and conditions."""

from __future__ import annotations

import asyncio
import base64
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import pytest
from crossplane.function import logging, resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import struct_pb2

from benchmarks.workload import steady
from functions import runner, services
from functions.api.config import PlatformConfig
from functions.api.kinds import BY_COMPOSITE, POSTGRES, TENANT
from functions.api.kubernetes import KubernetesSpec
from functions.api.rules import violations
from functions.domain import readiness, secrets
from functions.render import load, request, to_composite
from functions.runner import FunctionRunner
from functions.services.base import STATE_FIELDS
from tests.conftest import CLAIMS, ENVIRONMENT, counter_passwords
from tests.support.protowire import field, nested_lists, observed

logging.configure(logging.Level.DISABLED)
CONFIG = {"apiVersion": "fn.cozyplane.io/v1alpha1", "kind": "Input"}


def postgres_xr(**spec: Any) -> dict[str, Any]:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Postgres",
        "metadata": {"name": "db", "namespace": "tenant-dev"},
        "spec": spec,
    }
    return to_composite(claim, POSTGRES)


def call(
    xr: dict[str, Any],
    *,
    observed: dict[str, Any] | None = None,
    step_input: dict[str, Any] | None = None,
    requirements: fnv1.Requirements | None = None,
) -> fnv1.RunFunctionResponse:
    req = request(
        xr,
        observed or {},
        load(ENVIRONMENT),
        CONFIG if step_input is None else step_input,
        requirements,
    )
    req.meta.tag = "tag-1"
    return asyncio.run(FunctionRunner(counter_passwords()).RunFunction(req, None))


def fatal(rsp: fnv1.RunFunctionResponse) -> str:
    (result,) = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    return str(result.message)


@pytest.mark.parametrize(
    ("xr", "message"),
    [
        ({}, f"function-cozyplane composes {', '.join(sorted(BY_COMPOSITE))}, not nothing"),
        (
            {"apiVersion": "example.org/v1", "kind": "XBucket", "metadata": {"name": "b"}},
            "not XBucket",
        ),
        (postgres_xr(replicas="three"), "spec.replicas: Input should be a valid integer"),
        (postgres_xr(replicas=2.5), "spec.replicas: Input should be a valid integer"),
        (postgres_xr(size=1.5), "spec.size: Value error, must be an integer or a quantity string"),
        (postgres_xr(users={"postgres": {}}), "spec: users.postgres is forbidden"),
        (
            postgres_xr(postgresql={"parameters": {"archive_command": "x"}}),
            "spec: postgresql.parameters may not set",
        ),
        (postgres_xr(version="v9"), "spec.version: Input should be 'v18'"),
        (
            postgres_xr(users={"a": {"password": ""}}),
            "spec.users.a.password: String should have at least 1 character",
        ),
        (postgres_xr(extra=True), "spec.extra: Extra inputs are not permitted"),
        (postgres_xr(spec=None) | {"spec": "nonsense"}, "spec: must be an object"),
        # Regressions found by fuzzing (tests/test_fuzz.py): internal errors, or a raise.
        (
            postgres_xr(resources={"memory": "1e309"}),
            "spec.resources.memory: Value error, '1e309' is larger than 2^63",
        ),
        (postgres_xr(size="-1Gi"), "spec.size: Value error, '-1Gi' is negative"),
        ({"kind": ["XPostgres"]}, "kind: function-cozyplane composes"),
        (postgres_xr() | {"metadata": 5}, "metadata: must be an object"),
        (postgres_xr() | {"metadata": ["db"]}, "metadata: must be an object"),
        (postgres_xr() | {"spec": {"claimRef": "db"}}, "spec.claimRef: must be an object"),
    ],
)
def test_bad_input_is_a_fatal_result_naming_the_field(xr: dict[str, Any], message: str) -> None:
    rsp = call(xr)
    assert message in fatal(rsp)
    assert not rsp.desired.resources


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        (TENANT, "dev-team", "metadata.name: 'dev-team': a tenant name is a lower-case letter"),
        (POSTGRES, "x" * 40, "a Postgres name is a DNS label of at most 39 characters"),
        (POSTGRES, "Orders", "a Postgres name is a DNS label"),
    ],
)
def test_claim_names_are_checked(kind: Any, name: str, message: str) -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": kind.claim,
        "metadata": {"name": name, "namespace": "tenant-root"},
        "spec": {},
    }
    assert message in fatal(call(to_composite(claim, kind)))


def test_messages_do_not_depend_on_map_order() -> None:
    # Regression (fuzzing): errors followed the Struct's map order, which varies per call.
    names = [f"u{i}" for i in range(8)]
    bad = {"password": ""}
    forward = fatal(call(postgres_xr(users=dict.fromkeys(names, bad))))
    assert forward == fatal(call(postgres_xr(users=dict.fromkeys(reversed(names), bad))))
    groups = [(f"g{i}", {"minReplicas": 2, "maxReplicas": 1}) for i in range(8)]
    found = [
        violations(KubernetesSpec.model_validate({"nodeGroups": dict(order)}))
        for order in (groups, groups[::-1])
    ]
    assert found[0] == found[1] == sorted(found[0])


def test_bad_step_input_is_fatal() -> None:
    rsp = call(postgres_xr(), step_input=CONFIG | {"cpuAllocationRatio": 0})
    assert "input.cpuAllocationRatio: Input should be greater than or equal to 1" in fatal(rsp)


def test_storage_shrink_is_fatal_and_nothing_is_dropped() -> None:
    xr = postgres_xr(size="20Gi")
    first = call(xr)
    observed = {k: resource.struct_to_dict(r.resource) for k, r in first.desired.resources.items()}
    xr["spec"]["size"] = "10Gi"
    rsp = call(xr, observed=observed)
    assert "spec.size: volumes cannot shrink from 20Gi to 10Gi" in fatal(rsp)


def test_numbers_arrive_as_floats_and_leave_as_integers() -> None:
    rsp = call(postgres_xr(replicas=3.0, size=20.0))
    spec = rsp.desired.resources["cluster"].resource["spec"]
    assert spec["instances"] == 3
    assert spec["storage"]["size"] == "20"


def test_internal_errors_become_fatal_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setitem(services.COMPOSERS, "XPostgres", broken)
    message = fatal(call(postgres_xr()))
    assert message.startswith("cannot compose XPostgres db-")
    assert "internal error (KeyError)" in message
    assert "Traceback" not in message


def test_response_keeps_tag_and_reports_readiness_and_a_claim_condition() -> None:
    rsp = call(postgres_xr())
    assert rsp.meta.tag == "tag-1"
    assert rsp.desired.resources["cluster"].ready == fnv1.READY_FALSE
    (condition,) = rsp.conditions
    assert condition.type == "Available"
    assert condition.status == fnv1.STATUS_CONDITION_FALSE
    assert condition.target == fnv1.TARGET_COMPOSITE_AND_CLAIM
    assert condition.message == "creating CloudNativePG Cluster postgres-db"
    assert rsp.meta.ttl.seconds == 15


def test_settled_claims_get_a_long_ttl() -> None:
    xr = postgres_xr()
    observed = {
        k: resource.struct_to_dict(r.resource) for k, r in call(xr).desired.resources.items()
    }
    observed["cluster"]["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "readyInstances": 2,
    }
    rsp = call(xr, observed=observed)
    assert rsp.desired.resources["cluster"].ready == fnv1.READY_TRUE
    assert rsp.conditions[0].status == fnv1.STATUS_CONDITION_TRUE
    assert rsp.meta.ttl.seconds == 300


def test_requirements_are_the_same_on_every_call() -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "dev", "namespace": "tenant-root"},
        "spec": {},
    }
    xr = to_composite(claim, TENANT)
    first = call(xr)
    assert not first.desired.resources
    assert first.meta.ttl.seconds == 15
    second = call(xr, requirements=first.requirements)
    assert second.requirements == first.requirements
    assert "namespace" in second.desired.resources


def test_secrets_never_reach_status_results_or_conditions() -> None:
    xr = postgres_xr(
        users={"app": {"password": "hunter2hunter2"}, "gen": {}},
        backup={
            "enabled": True,
            "destinationPath": "s3://b/",
            "s3AccessKey": "AKIAEXAMPLE",
            "s3SecretKey": "wJalrXUtnFEMIEXAMPLEKEY",
        },
    )
    rsp = call(xr)
    encoded = resource.struct_to_dict(rsp.desired.resources["credentials"].resource)["data"]["gen"]
    generated = base64.b64decode(encoded).decode()
    outside = (
        str(resource.struct_to_dict(rsp.desired.composite.resource))
        + str(list(rsp.results))
        + str(list(rsp.conditions))
    )
    for secret in ("hunter2hunter2", "AKIAEXAMPLE", "wJalrXUtnFEMIEXAMPLEKEY", generated):
        assert secret not in outside


def test_desired_values_encode_as_the_sdk_encodes_them() -> None:
    """The wire codec writes what Struct.update writes, subclasses (enums) included."""

    class Mode(StrEnum):
        ON = "on"

    class Count(IntEnum):
        THREE = 3

    data = {
        "s": "x",
        "e": Mode.ON,
        "n": Count.THREE,
        "f": 1.5,
        "b": False,
        "z": None,
        "d": {"a": {}, "l": [1, "two", {"k": [Mode.ON]}, [], None]},
    }
    ours = struct_pb2.Struct()
    runner._write(ours, data)
    sdk = struct_pb2.Struct()
    sdk.update(data)
    assert ours == sdk
    with pytest.raises(TypeError, match="cannot encode a set"):
        runner._write(ours, {"x": {1}})


def test_observed_state_is_the_sdks_conversion_without_spec_or_managed_fields() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "labels": {"a": "b"}, "managedFields": [{"manager": "m"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}, "n": 2.0, "ok": True},
        "spec": {"type": "LoadBalancer"},
    }
    wire = resource.dict_to_struct(obj).SerializeToString()
    objects = {"svc": wire}
    observed = runner._observed(objects)
    state = observed.state("svc")
    assert state == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "labels": {"a": "b"}},
        "status": resource.struct_to_dict(resource.dict_to_struct(obj))["status"],
    }
    assert observed.get("svc") == state | {"spec": {"type": "LoadBalancer"}}
    assert objects == {"svc": wire}


def test_a_secret_is_read_for_its_data_alone_and_that_data_is_checked() -> None:
    """Services reuse what a Secret holds: only `data` is decoded and checked, so its
    metadata is neither converted nor a reason to refuse it, and bad data still is."""
    good = {"password": base64.b64encode(b"hunter2hunter2").decode(), "bad": "%%%"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "labels": "not an object"},
        "data": good,
    }
    broken = secret | {"data": {"password": 7}}
    objects = {
        "secret": resource.dict_to_struct(secret).SerializeToString(),
        "broken": resource.dict_to_struct(broken).SerializeToString(),
    }
    observed = runner._observed(objects)
    assert observed.data("secret") == good
    assert observed.data("absent") == {}
    assert secrets.decoded(observed.data("secret")) == {"password": "hunter2hunter2"}
    assert secrets.decoded_value(observed.data("secret"), "password") == "hunter2hunter2"
    assert secrets.decoded_value(observed.data("secret"), "bad") is None
    assert secrets.decoded_value(observed.data("secret"), "absent") is None
    with pytest.raises(
        services.base.StateError, match=r'"broken": data\["password"\] must be a string'
    ):
        observed.data("broken")
    with pytest.raises(services.base.StateError, match=r"metadata\.labels must be an object"):
        observed.get("secret")
    # Without a partial decoder, the part is cut from the whole object, which is checked.
    whole = services.base.Observed.of({"secret": secret | {"metadata": {"name": "s"}}})
    assert whole.data("secret") == good


# Objects whose readiness their service holds back beyond their kind's rule: Redis counts
# its RedisFailover ready only once the operator runs every pod.
HELD_BACK = {"failover"}


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.stem)
def test_readiness_is_each_kinds_rule_on_what_is_observed(path: Path) -> None:
    """Kinds ready once they exist are judged without decoding their observed objects;
    every object's readiness is still its kind's rule on the observed object, with half
    of what it composes observed (healthy) and half not yet, each half in turn."""
    (claim,) = load(path)
    steady_request = steady(claim, path.stem).request
    checked = 0
    for half in (0, 1):
        req = fnv1.RunFunctionRequest.FromString(steady_request)
        observed = {
            key: resource.struct_to_dict(item.resource)
            for key, item in req.observed.resources.items()
        }
        for key in sorted(observed)[half::2]:
            del req.observed.resources[key]
            del observed[key]
        rsp = runner.run(req, counter_passwords(), logging.get_logger())
        for key, item in rsp.desired.resources.items():
            body = resource.struct_to_dict(item.resource)
            seen = observed.get(key)
            view = None
            if seen is not None:
                view = {f: seen[f] for f in STATE_FIELDS if f in seen} | {
                    "spec": body.get("spec", {})
                }
            ready = item.ready == fnv1.READY_TRUE
            expected = view is not None and readiness.rule_of(body)(view)
            assert ready == expected or (key in HELD_BACK and not ready), key
            checked += 1
    assert checked


class DecodedError(Exception):
    pass


def test_a_kind_ready_once_it_exists_is_not_decoded() -> None:
    def load(key: str) -> dict[str, Any]:
        raise DecodedError(key)

    ctx = services.base.Context(
        composite=services.base.Composite("xr", "uid", "c", "ns"),
        observed=services.base.Observed(["secret"], load, lambda key, _: load(key)),
        required=services.base.Required({}),
        config=PlatformConfig(),
        passwords=counter_passwords(),
    )
    out = services.base.Outcome(ctx)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    out.add("secret", secret)
    out.add("absent", secret)
    assert {k: d.ready for k, d in out.resources.items()} == {"secret": True, "absent": False}
    with pytest.raises(ValueError, match="composed twice: secret"):
        out.add("secret", secret)
    # Asked for the object as observed, it decodes it.
    fresh = services.base.Outcome(ctx)
    assert fresh.add_observed("absent", secret) is None
    with pytest.raises(DecodedError, match="secret"):
        fresh.add_observed("secret", secret)


def test_an_object_an_earlier_step_desired_keeps_what_that_step_set_beside_it() -> None:
    req = request(postgres_xr(), {}, load(ENVIRONMENT), CONFIG, None)
    req.desired.resources["cluster"].resource.update({"kind": "Placeholder"})
    req.desired.resources["cluster"].connection_details["password"] = b"from-a-step"
    req.desired.resources["other"].resource.update({"kind": "ConfigMap"})
    rsp = runner.run(req, counter_passwords(), logging.get_logger())
    plain = runner.run(
        request(postgres_xr(), {}, load(ENVIRONMENT), CONFIG, None),
        counter_passwords(),
        logging.get_logger(),
    )
    cluster = rsp.desired.resources["cluster"]
    assert cluster.resource == plain.desired.resources["cluster"].resource
    assert cluster.connection_details["password"] == b"from-a-step"
    assert cluster.ready == plain.desired.resources["cluster"].ready
    assert resource.struct_to_dict(rsp.desired.resources["other"].resource) == {"kind": "ConfigMap"}
    assert set(rsp.desired.resources) == set(plain.desired.resources) | {"other"}


def test_an_observed_object_that_does_not_decode_is_fatal_naming_it() -> None:
    req = request(postgres_xr(), {}, load(ENVIRONMENT), CONFIG, None)
    broken = b"\x0a\x05\x0a\x01s\x12\x09"  # A Struct entry whose value runs past the end.
    wire = req.SerializeToString() + observed(b"cluster", broken)
    answer = fnv1.RunFunctionResponse.FromString(
        runner.run_wire(wire, counter_passwords(), logging.get_logger())
    )
    name = req.observed.composite.resource["metadata"]["name"]
    assert fatal(answer) == (
        f"cannot compose XPostgres {name}: observed resource 'cluster': "
        "malformed google.protobuf.Struct bytes"
    )


def test_an_observed_object_nested_past_the_recursion_limit_is_fatal_naming_it() -> None:
    req = request(postgres_xr(), {}, load(ENVIRONMENT), CONFIG, None)
    status = field(0x0A, field(0x0A, b"status") + field(0x12, nested_lists(5000)))
    wire = req.SerializeToString() + observed(b"cluster", status)
    answer = fnv1.RunFunctionResponse.FromString(
        runner.run_wire(wire, counter_passwords(), logging.get_logger())
    )
    assert "observed resource 'cluster': maximum recursion depth exceeded" in fatal(answer)
