"""RabbitMQ compose: the RabbitmqCluster, users, vhosts and permissions (§11)."""

from __future__ import annotations

import base64
import copy
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from functions.api.kinds import RABBITMQ
from functions.api.rabbitmq import RabbitMQSpec, RabbitMQVersion
from functions.api.rules import violations
from functions.services import rabbitmq
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context
from tests.support.schemas import Catalog

RELEASE = "rabbitmq-queue"
READY = [{"type": "Ready", "status": "True"}]
HEALTHY = [
    {"type": "AllReplicasReady", "status": "True"},
    {"type": "ClusterAvailable", "status": "True"},
    {"type": "NoWarnings", "status": "True"},
    {"type": "ReconcileSuccess", "status": "True"},
]


def compose(spec: dict[str, Any] | None = None, name: str = "queue", **kw: Any) -> Outcome:
    return rabbitmq.compose(
        RabbitMQSpec.model_validate(spec or {}), context(name, "tenant-dev", **kw)
    )


def cluster(out: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = out.resources["cluster"].body["spec"]
    return spec


def data(out: Outcome, key: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in out.resources[key].body["data"].items()}


def observed_as_applied(out: Outcome, **status: list[dict[str, Any]]) -> dict[str, Any]:
    """What the API server holds after applying `out`, with operator status where given."""
    observed = {k: copy.deepcopy(d.body) for k, d in out.resources.items()}
    for key, conditions in status.items():
        observed[key.replace("_", "-")]["status"] = {"conditions": conditions}
    return observed


def test_defaults() -> None:
    out = compose()
    assert list(out.resources) == ["cluster"]
    body = out.resources["cluster"].body
    assert body["apiVersion"] == "rabbitmq.com/v1beta1"
    assert body["metadata"] == {
        "name": RELEASE,
        "namespace": "tenant-dev",
        "labels": {"app.kubernetes.io/instance": RELEASE},
    }
    assert body["spec"] == {
        "replicas": 3,
        "image": "rabbitmq:4.2.4-management",
        "resources": {
            "limits": {"cpu": "250m", "ephemeral-storage": "2Gi", "memory": "128Mi"},
            "requests": {"cpu": "0.025", "ephemeral-storage": "53687091", "memory": "134217728"},
        },
        "override": {
            "statefulSet": {
                "spec": {
                    "template": {
                        "metadata": {"labels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
                        "spec": {"enableServiceLinks": False, "containers": []},
                    }
                }
            }
        },
        "persistence": {"storage": "10Gi"},
    }
    assert out.requirements == {}


@pytest.mark.parametrize(
    ("version", "tag"),
    [("v4.2", "4.2.4"), ("v4.1", "4.1.8"), ("v4.0", "4.0.9"), ("v3.13", "3.13.7")],
)
def test_versions(version: str, tag: str) -> None:
    assert cluster(compose({"version": version}))["image"] == f"rabbitmq:{tag}-management"


def test_sizing_storage_and_external() -> None:
    out = compose(
        {
            "replicas": 5,
            "resourcesPreset": "c1.medium",
            "resources": {"cpu": 3},
            "size": "20Gi",
            "storageClass": "replicated",
            "external": True,
        }
    )
    spec = cluster(out)
    assert spec["replicas"] == 5
    assert spec["resources"]["limits"] == {"cpu": "3", "ephemeral-storage": "2Gi", "memory": "2Gi"}
    assert spec["resources"]["requests"]["cpu"] == "0.3"
    assert spec["persistence"] == {"storage": "20Gi", "storageClassName": "replicated"}
    assert spec["service"] == {"type": "LoadBalancer"}
    assert spec["override"]["service"] == {
        "spec": {"externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": False}
    }
    assert "service" not in cluster(compose({}))["override"]
    # The LoadBalancer is the operator's Service `R`, read back for its address.
    requirement = out.requirements[rabbitmq.SERVICE]
    assert (requirement.kind, requirement.name, requirement.namespace) == (
        "Service",
        RELEASE,
        "tenant-dev",
    )
    assert "Service rabbitmq-queue has no external address yet" in out.waiting


USERS: dict[str, Any] = {
    "users": {"orders_app": {"password": "s3cret"}, "auditor": {}, "billing": {}},
    "vhosts": {
        "orders": {"roles": {"admin": ["orders_app"], "readonly": ["auditor", "auditor"]}},
        "billing_v2": {"roles": {"admin": ["billing"], "readonly": ["orders_app"]}},
    },
}


def test_users_get_a_credentials_secret_and_a_user() -> None:
    out = compose(USERS)
    secret = out.resources["credentials-orders-app"].body
    assert secret["metadata"] == {
        "name": "rabbitmq-queue-orders-app-credentials",
        "namespace": "tenant-dev",
        "labels": {"apps.cozystack.io/user-secret": "true"},
    }
    assert secret["type"] == "Opaque"
    assert data(out, "credentials-orders-app") == {"username": "orders_app", "password": "s3cret"}
    user = out.resources["user-orders-app"].body
    assert user == {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "User",
        "metadata": {"name": "rabbitmq-queue-orders-app", "namespace": "tenant-dev"},
        "spec": {
            "importCredentialsSecret": {"name": "rabbitmq-queue-orders-app-credentials"},
            "rabbitmqClusterReference": {"name": RELEASE},
        },
    }
    assert len(data(out, "credentials-auditor")["password"]) == 16
    assert out.status["secrets"]["users"] == {
        "auditor": "rabbitmq-queue-auditor-credentials",
        "billing": "rabbitmq-queue-billing-credentials",
        "orders_app": "rabbitmq-queue-orders-app-credentials",
    }


def test_generated_passwords_are_read_back_from_observed_secrets() -> None:
    observed = {
        "credentials-auditor": {
            "data": {
                "username": base64.b64encode(b"auditor").decode(),
                "password": base64.b64encode(b"kept-password").decode(),
            }
        }
    }
    out = compose(USERS, observed=observed)
    assert data(out, "credentials-auditor")["password"] == "kept-password"


def test_vhosts_and_permissions() -> None:
    out = compose(USERS)
    vhost = out.resources["vhost-billing-v2"].body
    assert vhost["metadata"] == {"name": "rabbitmq-queue-billing-v2", "namespace": "tenant-dev"}
    assert vhost["spec"] == {"name": "billing_v2", "rabbitmqClusterReference": {"name": RELEASE}}
    admin = out.resources["permission-orders-orders-app"].body
    assert admin["metadata"]["name"] == "rabbitmq-queue-orders-orders-app"
    assert admin["spec"] == {
        "vhost": "orders",
        "user": "orders_app",
        "permissions": {"configure": ".*", "write": ".*", "read": ".*"},
        "rabbitmqClusterReference": {"name": RELEASE},
    }
    readonly = out.resources["permission-billing-v2-orders-app"].body
    assert readonly["spec"]["permissions"] == {"read": ".*"}
    assert readonly["spec"]["vhost"] == "billing_v2"
    # A user listed twice gets one Permission.
    assert sorted(k for k in out.resources if k.startswith("permission-")) == [
        "permission-billing-v2-billing",
        "permission-billing-v2-orders-app",
        "permission-orders-auditor",
        "permission-orders-orders-app",
    ]


def test_a_removed_user_goes_with_its_permissions() -> None:
    out = compose(
        {"users": {"auditor": {}}, "vhosts": {"orders": {"roles": {"readonly": ["auditor"]}}}},
        observed=observed_as_applied(compose(USERS)),
    )
    assert sorted(out.resources) == [
        "cluster",
        "credentials-auditor",
        "permission-orders-auditor",
        "user-auditor",
        "vhost-billing-v2",
        "vhost-orders",
    ]


def test_a_removed_vhost_is_kept_with_its_queues() -> None:
    observed = observed_as_applied(compose(USERS))
    out = compose({"users": USERS["users"]}, observed=observed)
    assert out.resources["vhost-billing-v2"].body == observed["vhost-billing-v2"]
    assert out.resources["vhost-orders"].body == observed["vhost-orders"]
    assert not any(k.startswith("permission-") for k in out.resources)
    assert out.status["retainedVhosts"] == ["billing_v2", "orders"]
    assert out.warnings == [
        "vhost billing_v2 was removed from the claim and is kept with its queues; "
        "it goes away with the RabbitMQ claim",
        "vhost orders was removed from the claim and is kept with its queues; "
        "it goes away with the RabbitMQ claim",
    ]
    # Declared again, it is an ordinary vhost.
    again = compose(USERS, observed=observed_as_applied(out))
    assert again.status["retainedVhosts"] == []
    assert again.warnings == []


def test_a_vhost_cannot_take_the_objects_of_another() -> None:
    observed = observed_as_applied(compose({"vhosts": {"billing_v2": {"roles": {}}}}))
    with pytest.raises(
        ComposeError, match=r"spec\.vhosts\.billing-v2: the Vhost rabbitmq-queue-billing-v2"
    ):
        compose({"vhosts": {"billing-v2": {"roles": {}}}}, observed=observed)


def test_a_permission_cannot_change_what_it_grants() -> None:
    before = {
        "users": {"b_c": {}, "c": {}},
        "vhosts": {"a": {"roles": {"admin": ["b_c"]}}, "a_b": {"roles": {}}},
    }
    after = {
        "users": {"b_c": {}, "c": {}},
        "vhosts": {"a": {"roles": {}}, "a_b": {"roles": {"admin": ["c"]}}},
    }
    with pytest.raises(ComposeError, match=r"spec\.vhosts\.a_b: the Permission .* still grants"):
        compose(after, observed=observed_as_applied(compose(before)))


def test_a_user_cannot_take_the_objects_of_another() -> None:
    observed = observed_as_applied(compose({"users": {"a_b": {}}}))
    with pytest.raises(ComposeError, match=r"spec\.users\.a-b: the Secret .* still holds user"):
        compose({"users": {"a-b": {}}}, observed=observed)


def test_a_password_cannot_change_once_rabbitmq_imported_it() -> None:
    spec = {"users": {"app": {"password": "first"}}}
    observed = observed_as_applied(compose(spec))
    # Not imported yet: the Secret may still change.
    changed = {"users": {"app": {"password": "second"}}}
    assert data(compose(changed, observed=observed), "credentials-app")["password"] == "second"
    observed["user-app"]["status"] = {"username": "app", "conditions": READY}
    with pytest.raises(ComposeError, match=r"spec\.users\.app\.password: RabbitMQ keeps"):
        compose(changed, observed=observed)
    # Dropping the explicit password keeps the imported one.
    kept = compose({"users": {"app": {}}}, observed=observed)
    assert data(kept, "credentials-app")["password"] == "first"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"users": {"a_b": {}, "a-b": {}}}, "spec.users.a_b", "same objects as user 'a-b'"),
        (
            {"vhosts": {"x_y": {"roles": {}}, "x-y": {"roles": {}}}},
            "spec.vhosts.x_y",
            "same objects as vhost 'x-y'",
        ),
        (
            {"users": {"app": {}, "app_user": {}}},
            "spec.users.app_user",
            "is the one the topology operator writes for user 'app'",
        ),
        (
            {
                "users": {"b_c": {}, "c": {}},
                "vhosts": {"a": {"roles": {"admin": ["b_c"]}}, "a_b": {"roles": {"admin": ["c"]}}},
            },
            "spec.vhosts.a_b",
            "named rabbitmq-queue-a-b-c, as the one of user 'b_c' on vhost 'a'",
        ),
        (
            {"users": {"u" * 40: {}}},
            f"spec.users.{'u' * 40}",
            "is longer than 63 characters",
        ),
        (
            {"users": {"u" * 30: {}}, "vhosts": {"v" * 30: {"roles": {"readonly": ["u" * 30]}}}},
            f"spec.vhosts.{'v' * 30}",
            "Permission .* is longer than 63 characters",
        ),
        ({"vhosts": {"v" * 50: {"roles": {}}}}, f"spec.vhosts.{'v' * 50}", "longer than 63"),
    ],
)
def test_derived_names_are_distinct_and_short(
    spec: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ComposeError, match=rf"{field}: .*{message}"):
        compose(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"vhosts": {"v": {"roles": {"admin": ["ghost"]}}}}, "may only name users defined"),
        (
            {"users": {"a": {}}, "vhosts": {"v": {"roles": {"admin": ["a"], "readonly": ["a"]}}}},
            "admin or readonly on a vhost, not both",
        ),
    ],
)
def test_cel_rules(spec: dict[str, Any], message: str) -> None:
    broken = violations(RabbitMQSpec.model_validate(spec))
    assert any(message in m for m in broken), broken


@pytest.mark.parametrize(
    "name", ["app", "user2", "2fa", "orders_app", "billing-v2", "a1_2b-c3", "x", "0"]
)
def test_names_helm_would_kebab_the_same_way_are_accepted(name: str) -> None:
    spec = {"users": {name: {}}, "vhosts": {name: {"roles": {"admin": [name]}}}}
    assert violations(RabbitMQSpec.model_validate(spec)) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"vhosts": {"v": {}}}, "roles\n  Field required"),
        ({"replicas": 0}, "greater than or equal to 1"),
        ({"version": "v3.12"}, "Input should be"),
        ({"size": "lots"}, "not a Kubernetes quantity"),
        ({"users": {"a": {"password": ""}}}, "at least 1 character"),
    ],
)
def test_bad_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RabbitMQSpec.model_validate(spec)


def test_volumes_may_grow_but_never_shrink_or_move() -> None:
    observed = observed_as_applied(compose({"size": "20Gi", "storageClass": "replicated"}))
    grown = compose({"size": "30Gi", "storageClass": "replicated"}, observed=observed)
    assert cluster(grown)["persistence"]["storage"] == "30Gi"
    with pytest.raises(ComposeError, match=r"spec\.size: volumes cannot shrink from 20Gi to 10Gi"):
        compose({"size": "10Gi", "storageClass": "replicated"}, observed=observed)
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        compose({"size": "20Gi"}, observed=observed)


def test_storage_class_is_immutable_in_the_xrd(catalog: Catalog) -> None:
    def claim(storage_class: str) -> dict[str, Any]:
        return {
            "apiVersion": "cozyplane.io/v1alpha1",
            "kind": "RabbitMQ",
            "metadata": {"name": "queue", "namespace": "tenant-dev"},
            "spec": {"storageClass": storage_class},
        }

    errors = catalog.validate(claim("local"), old=claim("replicated"))
    assert any("storageClass is immutable" in e for e in errors), errors


def test_readiness_follows_the_operators() -> None:
    first = compose(USERS)
    assert first.ready is False
    assert first.waiting == ["creating RabbitmqCluster rabbitmq-queue"]
    unhealthy = [
        {"type": "AllReplicasReady", "status": "False", "message": "1/3 ready"},
        {"type": "ReconcileSuccess", "status": "True"},
    ]
    observed = observed_as_applied(first, cluster=unhealthy)
    out = compose(USERS, observed=observed)
    assert out.ready is False
    assert out.waiting[0] == "RabbitmqCluster rabbitmq-queue: AllReplicasReady=False (1/3 ready)"
    observed["cluster"]["status"] = {"conditions": HEALTHY}
    observed["user-auditor"]["status"] = {
        "conditions": [{"type": "Ready", "status": "False", "message": "no cluster"}]
    }
    out = compose(USERS, observed=observed)
    assert out.resources["cluster"].ready
    assert out.waiting[0] == "User rabbitmq-queue-auditor: Ready=False (no cluster)"
    assert "Permission rabbitmq-queue-orders-auditor: not ready yet" in out.waiting
    assert out.ready is False
    for key, obj in observed.items():
        if key != "cluster" and obj["kind"] != "Secret":
            obj["status"] = {"conditions": READY}
    out = compose(USERS, observed=observed)
    assert out.waiting == []
    assert out.ready is True


def test_a_stale_cluster_status_is_not_ready() -> None:
    observed = observed_as_applied(compose())
    observed["cluster"]["metadata"]["generation"] = 3
    observed["cluster"]["status"] = {"observedGeneration": 2, "conditions": HEALTHY}
    assert not compose(observed=observed).resources["cluster"].ready
    observed["cluster"]["status"]["observedGeneration"] = 3
    assert compose(observed=observed).ready is True


def test_status() -> None:
    observed = observed_as_applied(compose({"external": True}), cluster=HEALTHY)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": RELEASE, "namespace": "tenant-dev"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}},
    }
    out = compose({"external": True}, observed=observed, required={rabbitmq.SERVICE: [service]})
    assert out.ready is True
    assert out.status == {
        "service": RELEASE,
        "endpoints": {
            "amqp": "rabbitmq-queue.tenant-dev.svc:5672",
            "management": "rabbitmq-queue.tenant-dev.svc:15672",
            "externalAMQP": "192.0.2.9:5672",
            "externalManagement": "192.0.2.9:15672",
        },
        "secrets": {"defaultUser": "rabbitmq-queue-default-user", "users": {}},
        "retainedVhosts": [],
    }


def test_secrets_never_reach_status_or_messages() -> None:
    out = compose(USERS)
    said = repr(out.status) + repr(out.waiting) + repr(out.warnings)
    for key in ("credentials-auditor", "credentials-orders-app"):
        assert data(out, key)["password"] not in said


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "q" * RABBITMQ.name_max_length
    release = f"rabbitmq-{name}"
    spec = {"users": {"u" * 5: {}}, "vhosts": {"v" * 10: {"roles": {"admin": ["u" * 5]}}}}
    out = compose(spec, name=name)
    names = [d.body["metadata"]["name"] for d in out.resources.values()]
    # The operator's StatefulSet with its revision-hash label value.
    names.append(f"{release}-server-1234567890")
    assert max(len(n) for n in names) == 63
    with pytest.raises(ComposeError, match="longer than 63"):
        compose({"users": {"u" * 6: {}}}, name=name)


def test_composed_objects_are_valid_upstream(catalog: Catalog) -> None:
    for spec in ({}, USERS | {"external": True, "storageClass": "local"}):
        for desired in compose(spec).resources.values():
            assert catalog.validate(desired.body) == [], spec


def test_every_version_has_an_image() -> None:
    assert sorted(rabbitmq.IMAGES) == sorted(get_args(RabbitMQVersion))


@pytest.mark.parametrize(("length", "ok"), [(36, True), (37, False)])
def test_claim_names_are_bounded_by_the_xrd(length: int, ok: bool, catalog: Catalog) -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "RabbitMQ",
        "metadata": {"name": "a" * length, "namespace": "tenant-dev"},
        "spec": {},
    }
    assert (catalog.validate(claim) == []) is ok
