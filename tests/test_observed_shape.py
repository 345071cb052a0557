"""Observed and required objects of impossible types: a Fatal naming the object and field.

The API server keeps objects to their schemas, so these come only from a broken cluster;
the function refuses them (nothing applied, nothing deleted) instead of failing inside a
service, and never reads them as absent.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from functions.api.kinds import POSTGRES, TENANT, VMDISK, VPN
from functions.domain import shape
from functions.domain.readiness import MIN_SIZE
from functions.render import load, request, to_composite
from functions.runner import run
from tests.conftest import ALL_EXAMPLES, ENVIRONMENT, OBSERVED, counter_passwords, render_example

CONFIG = {"apiVersion": "fn.cozyplane.io/v1alpha1", "kind": "Input"}
CLUSTER = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster"}


class Log:
    """A structlog stand-in that records what the runner logs."""

    def __init__(self) -> None:
        self.exceptions: list[str] = []

    def bind(self, **_: Any) -> Log:
        return self

    def exception(self, event: str, **_: Any) -> None:
        self.exceptions.append(event)

    def debug(self, event: str, **_: Any) -> None:
        pass

    def info(self, event: str, **_: Any) -> None:
        pass


def claim(kind: Any, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": kind.claim,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return to_composite(doc, kind)


def fatal_of(req: fnv1.RunFunctionRequest) -> str:
    """The one Fatal result of `req`, which must be logged without a traceback."""
    log = Log()
    rsp = run(req, counter_passwords(), log)
    (message,) = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert not rsp.desired.resources
    assert log.exceptions == []
    return str(message)


def postgres(observed: dict[str, Any], **spec: Any) -> fnv1.RunFunctionRequest:
    return request(claim(POSTGRES, "db", "tenant-dev", **spec), observed, [], CONFIG, None)


@pytest.mark.parametrize(
    ("observed", "message"),
    [
        (CLUSTER | {"status": ["healthy"]}, "status must be an object"),
        (CLUSTER | {"metadata": "db"}, "metadata must be an object"),
        (CLUSTER | {"status": {"conditions": ["Ready"]}}, "status.conditions[0] must be an object"),
        (
            CLUSTER | {"status": {"conditions": [{"type": "Ready", "status": True}]}},
            "status.conditions[0].status must be a string",
        ),
        (CLUSTER | {"metadata": {"labels": {"app": 1}}}, 'metadata.labels["app"] must be a string'),
        (CLUSTER | {"status": {"readyInstances": "two"}}, "status.readyInstances must be a number"),
        (
            CLUSTER | {"spec": {"storage": {"size": "big"}}},
            "spec.storage.size must be a Kubernetes quantity",
        ),
        (
            CLUSTER | {"spec": {"managed": {"roles": [{"name": ["app"], "login": True}]}}},
            "spec.managed.roles[0].name must be a string",
        ),
        (
            CLUSTER | {"status": {"pgDataImageInfo": {"majorVersion": "seventeen"}}},
            "status.pgDataImageInfo.majorVersion must be a number",
        ),
    ],
)
def test_a_malformed_observed_object_is_fatal_naming_it(
    observed: dict[str, Any], message: str
) -> None:
    found = fatal_of(postgres({"cluster": observed}))
    assert found.startswith(
        f'cannot compose XPostgres db-32a6c: observed resource "cluster": {message}'
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["cGFzcw=="], "data must be an object"),
        # Not skipped as undecodable: that would give the user a new password.
        ({"app": 12345}, 'data["app"] must be a string'),
    ],
)
def test_a_malformed_secret_is_fatal_not_a_new_password(data: Any, message: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "data": data}
    found = fatal_of(postgres({"credentials": secret}, users={"app": {}}))
    assert f'observed resource "credentials": {message}' in found


def test_a_malformed_required_object_is_fatal_naming_its_requirement() -> None:
    xr = claim(TENANT, "dev", "tenant-root")
    req = request(xr, {}, [], CONFIG, None)
    parent = req.required_resources["parent-namespace"].items.add().resource
    parent.update({"apiVersion": "v1", "kind": "Namespace", "metadata": {"labels": ["root"]}})
    found = fatal_of(req)
    assert 'required resource "parent-namespace": metadata.labels must be an object' in found


def test_an_item_of_a_required_list_is_named_by_its_position() -> None:
    source = {"http": {"url": "https://x.test/a.img"}}
    # No class named: every StorageClass is required, to find the default one.
    xr = claim(VMDISK, "ubuntu", "tenant-dev", storageClass="", source=source)
    first = run(request(xr, {}, [], CONFIG, None), counter_passwords(), Log())
    broken = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": 7}
    docs = [*load(ENVIRONMENT), broken | {"metadata": {"name": "zz"}}]
    found = fatal_of(request(xr, {}, docs, CONFIG, first.requirements))
    assert 'required resource "storage-classes"[2]: provisioner must be a string' in found


@pytest.mark.parametrize(
    ("obj", "found"),
    [
        ({}, None),
        # Absent is fine, unnamed fields are not read, Python ints are numbers.
        ({"metadata": {"name": "a"}, "spec": {"anything": [1, {"x": None}]}}, None),
        ({"status": {"readyReplicas": 3, "observedGeneration": 2.0}}, None),
        ({"status": {"readyReplicas": True}}, "status.readyReplicas must be a number"),
        ({"status": {"readyReplicas": float("nan")}}, "status.readyReplicas must be a number"),
        ({"status": {"replicas": float("inf")}}, "status.replicas must be a number"),
        ({"status": {"ready": "true"}}, "status.ready must be a boolean"),
        ({"kind": None}, "kind must be a string"),
        ({"spec": {"gpus": {"a": 1}}}, "spec.gpus must be a list"),
        (
            {"status": {"capacity": {"storage": "9e999"}}},
            "status.capacity.storage must be a Kubernetes quantity of at most 2^63",
        ),
        ({"status": {"capacity": {"storage": "16Gi"}}}, None),
        (
            {"metadata": {"annotations": {MIN_SIZE: "two"}}},
            f'metadata.annotations["{MIN_SIZE}"] must be an integer',
        ),
        ({"metadata": {"annotations": {MIN_SIZE: "2"}}}, None),
        (
            {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": 5}]}}},
            "status.loadBalancer.ingress[1].hostname must be a string",
        ),
        (
            {"spec": {"values": {"storageClasses": {"kube virt": "replicated"}}}},
            'spec.values.storageClasses["kube virt"] must be an object',
        ),
    ],
)
def test_shape(obj: dict[str, Any], found: str | None) -> None:
    assert shape.problem(obj) == found


def test_every_object_of_the_examples_has_the_shape() -> None:
    """Well-formed objects are never refused: the examples' cluster, their observed state,
    and everything the examples compose."""
    objects = load(ENVIRONMENT) + load(OBSERVED)
    for example in ALL_EXAMPLES:
        objects += render_example(example).resources
    for obj in objects:
        assert shape.problem(obj) is None, (obj["kind"], obj["metadata"].get("name"))


def composes(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    log = Log()
    rsp = run(req, counter_passwords(), log)
    assert not [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert log.exceptions == []
    return rsp


def test_odd_values_of_the_right_type_compose() -> None:
    # Regressions: int() refuses the digit "²" that isdigit() accepts; a role without a
    # name was looked up by it.
    odd = CLUSTER | {
        "spec": {
            "imageName": "ghcr.io/cloudnative-pg/postgresql:²7.1",
            "managed": {"roles": [{"login": True}]},
        }
    }
    composes(postgres({"cluster": odd}))
    # JSON nested deeper than the parser recurses reads as no configuration.
    nested = base64.b64encode(b"[" * 100_000).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"shadowbox_config.json": nested}}
    xr = claim(VPN, "office", "tenant-dev", host="vpn.example.org", users={"alice": {}})
    composes(request(xr, {"config": secret}, [], CONFIG, None))


DATABASE = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Database"}


def test_a_state_field_a_readiness_rule_trips_on_is_fatal_naming_it() -> None:
    """Readiness reads state lazily, unchecked; the runner then finds the broken field."""
    observed = {"database-app": DATABASE | {"status": ["applied"]}}
    found = fatal_of(postgres(observed, databases={"app": {}}))
    assert found == (
        'cannot compose XPostgres db-32a6c: observed resource "database-app": '
        "status must be an object"
    )


def test_a_broken_state_field_nothing_reads_is_left_alone() -> None:
    broken = DATABASE | {"metadata": {"labels": {"app": 1}}, "status": {"applied": True}}
    rsp = run(postgres({"database-app": broken}, databases={"app": {}}), counter_passwords(), Log())
    assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert rsp.desired.resources["database-app"].ready == fnv1.READY_TRUE
