"""Redis compose: RedisFailover, auth Secret, external and metrics Services (§10)."""

from __future__ import annotations

import base64
import copy
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from functions.api.kinds import REDIS
from functions.api.redis import RedisSpec, RedisVersion
from functions.services import redis
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context
from tests.support.schemas import Catalog

RELEASE = "redis-cache"


def compose(spec: dict[str, Any] | None = None, name: str = "cache", **kw: Any) -> Outcome:
    return redis.compose(RedisSpec.model_validate(spec or {}), context(name, "tenant-dev", **kw))


def failover(out: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = out.resources["failover"].body["spec"]
    return spec


def password(out: Outcome) -> str:
    return base64.b64decode(out.resources["auth"].body["data"]["password"]).decode()


def statefulset(ready: int, replicas: int = 2, image: str = "redis:8.4.0") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": f"rfr-{RELEASE}", "namespace": "tenant-dev"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "redis", "image": image},
                        {"name": "redis-exporter", "image": redis.EXPORTER_IMAGE},
                    ]
                }
            }
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def deployment(ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"rfs-{RELEASE}", "namespace": "tenant-dev"},
        "status": {"replicas": 3, "readyReplicas": ready},
    }


NANO = {
    "limits": {"cpu": "250m", "ephemeral-storage": "2Gi", "memory": "128Mi"},
    "requests": {"cpu": "0.025", "ephemeral-storage": "53687091", "memory": "134217728"},
}


def test_defaults() -> None:
    out = compose()
    assert sorted(out.resources) == ["auth", "failover", "metrics-service", "service-scrape"]
    body = out.resources["failover"].body
    assert body["apiVersion"] == "databases.spotahome.com/v1"
    assert body["metadata"] == {
        "name": RELEASE,
        "namespace": "tenant-dev",
        "labels": {
            "app.kubernetes.io/instance": RELEASE,
            "redis-failover.freshworks.com/operator-group": "cozystack",
        },
    }
    assert body["spec"] == {
        "sentinel": {"image": "redis:6.2.6-alpine", "replicas": 3, "resources": NANO},
        "redis": {
            "image": "redis:8.4.0",
            "resources": NANO,
            "replicas": 2,
            "storage": {
                "persistentVolumeClaim": {
                    "metadata": {
                        "name": "redisfailover-persistent-data",
                        "labels": {
                            "app.kubernetes.io/component": "redis",
                            "app.kubernetes.io/instance": RELEASE,
                        },
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            },
            "exporter": {
                "enabled": True,
                "image": "oliver006/redis_exporter:v1.55.0-alpine",
                "args": ["--web.telemetry-path", "/metrics"],
                "env": [{"name": "REDIS_EXPORTER_LOG_FORMAT", "value": "txt"}],
            },
            "customConfig": ["tcp-keepalive 0", "loglevel notice"],
        },
        "auth": {"secretPath": "redis-cache-auth"},
    }
    auth = out.resources["auth"].body
    assert auth["metadata"] == {"name": "redis-cache-auth", "namespace": "tenant-dev"}
    assert list(auth["data"]) == ["password"]
    assert out.requirements[redis.STATEFULSET].name == f"rfr-{RELEASE}"
    assert out.requirements[redis.DEPLOYMENT].name == f"rfs-{RELEASE}"


@pytest.mark.parametrize(("version", "image"), [("v8", "redis:8.4.0"), ("v7", "redis:7.4.7")])
def test_versions(version: str, image: str) -> None:
    spec = failover(compose({"version": version}))
    assert spec["redis"]["image"] == image
    # The Sentinels stay pinned whatever the data version.
    assert spec["sentinel"]["image"] == "redis:6.2.6-alpine"


def test_sizing_applies_to_redis_and_sentinels() -> None:
    spec = failover(
        compose(
            {
                "replicas": 3,
                "resourcesPreset": "u1.small",
                "resources": {"memory": "6Gi"},
                "size": "8Gi",
                "storageClass": "replicated",
            }
        )
    )
    assert spec["redis"]["replicas"] == 3
    assert spec["sentinel"]["replicas"] == 3
    limits = {"cpu": "1", "ephemeral-storage": "2Gi", "memory": "6Gi"}
    assert spec["redis"]["resources"]["limits"] == limits
    assert spec["sentinel"]["resources"] == spec["redis"]["resources"]
    assert spec["redis"]["resources"]["requests"]["cpu"] == "0.1"
    claim = spec["redis"]["storage"]["persistentVolumeClaim"]["spec"]
    assert claim["resources"] == {"requests": {"storage": "8Gi"}}
    assert claim["storageClassName"] == "replicated"


def test_an_integer_size_is_a_quantity() -> None:
    claim = failover(compose({"size": 2147483648}))["redis"]["storage"]["persistentVolumeClaim"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2147483648"


def test_empty_size_means_no_volume_and_no_persistence() -> None:
    out = compose({"size": ""})
    spec = failover(out)["redis"]
    assert "storage" not in spec
    assert spec["customConfig"] == [
        "tcp-keepalive 0",
        "loglevel notice",
        "appendonly no",
        'save ""',
    ]
    assert out.warnings == []
    warned = compose({"size": "", "storageClass": "local"})
    assert warned.warnings == ["storageClass has no effect: size is empty, so there is no volume"]


def test_auth_can_be_disabled() -> None:
    out = compose({"authEnabled": False})
    assert "auth" not in out.resources
    assert "auth" not in failover(out)
    assert out.status["authSecret"] == ""


def test_password_is_32_characters_generated_once_then_read_back() -> None:
    assert len(password(compose())) == 32
    observed = {"auth": {"data": {"password": base64.b64encode(b"x" * 32).decode()}}}
    assert password(compose(observed=observed)) == "x" * 32


def test_external_service_selects_the_master() -> None:
    out = compose({"external": True})
    svc = out.resources["external-service"].body
    assert svc["metadata"] == {
        "name": "redis-cache-external-lb",
        "namespace": "tenant-dev",
        "labels": {"app.kubernetes.io/instance": RELEASE},
    }
    assert svc["spec"] == {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "allocateLoadBalancerNodePorts": False,
        "selector": {
            "app.kubernetes.io/component": "redis",
            "app.kubernetes.io/name": RELEASE,
            "app.kubernetes.io/part-of": "redis-failover",
            "redisfailovers-role": "master",
        },
        "ports": [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}],
    }
    assert "Service redis-cache-external-lb has no external address yet" in out.waiting
    assert out.status["services"]["external"] == "redis-cache-external-lb"
    assert "external-service" not in compose().resources


def test_external_address_in_status() -> None:
    lb = {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.org"}]}}}
    out = compose({"external": True}, observed={"external-service": lb})
    assert out.status["endpoints"]["external"] == "lb.example.org:6379"
    assert not any("external address" in w for w in out.waiting)


def test_metrics_service_and_scrape() -> None:
    out = compose()
    svc = out.resources["metrics-service"].body
    assert svc["metadata"]["name"] == "redis-cache-metrics"
    assert svc["metadata"]["labels"] == {
        "app": "redis-cache-metrics",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert svc["spec"] == {
        "selector": {
            "app.kubernetes.io/component": "redis",
            "app.kubernetes.io/name": RELEASE,
            "app.kubernetes.io/part-of": "redis-failover",
        },
        "ports": [{"name": "metrics", "port": 9121, "targetPort": "metrics", "protocol": "TCP"}],
    }
    scrape = out.resources["service-scrape"].body
    assert scrape["apiVersion"] == "operator.victoriametrics.com/v1beta1"
    assert scrape["metadata"]["name"] == RELEASE
    assert scrape["spec"]["namespaceSelector"] == {"matchNames": ["tenant-dev"]}
    assert scrape["spec"]["selector"] == {"matchLabels": {"app": "redis-cache-metrics"}}
    (endpoint,) = scrape["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert {"replacement": RELEASE, "targetLabel": "service"} in endpoint["relabelConfigs"]
    assert {"replacement": "redis", "targetLabel": "job"} in endpoint["relabelConfigs"]


def observed_failover(out: Outcome) -> dict[str, Any]:
    return {"failover": copy.deepcopy(out.resources["failover"].body)}


def test_volumes_may_grow_but_never_shrink() -> None:
    observed = observed_failover(compose({"size": "4Gi"}))
    grown = failover(compose({"size": "8Gi"}, observed=observed))
    assert grown["redis"]["storage"]["persistentVolumeClaim"]["spec"]["resources"] == {
        "requests": {"storage": "8Gi"}
    }
    with pytest.raises(ComposeError, match=r"spec\.size: volumes cannot shrink from 4Gi to 1Gi"):
        compose({"size": "1Gi"}, observed=observed)


def test_storage_class_cannot_change() -> None:
    observed = observed_failover(compose({"storageClass": "replicated"}))
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        compose({"storageClass": "local"}, observed=observed)
    with pytest.raises(ComposeError, match=r"spec\.storageClass"):
        compose({}, observed=observed)
    assert compose({"storageClass": "replicated"}, observed=observed).resources["failover"]


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("1Gi", "", "keeps its data on volumes; an empty size would drop them"),
        ("", "1Gi", "was created without persistence"),
    ],
)
def test_persistence_cannot_be_switched(before: str, after: str, message: str) -> None:
    observed = observed_failover(compose({"size": before}))
    with pytest.raises(ComposeError, match=rf"spec\.size: this Redis .*{message}"):
        compose({"size": after}, observed=observed)
    assert compose({"size": before}, observed=observed).resources["failover"]


def test_persistence_switch_is_refused_by_the_xrd_too(catalog: Catalog) -> None:
    def claim(size: str) -> dict[str, Any]:
        return {
            "apiVersion": "cozyplane.io/v1alpha1",
            "kind": "Redis",
            "metadata": {"name": "cache", "namespace": "tenant-dev"},
            "spec": {"size": size},
        }

    for old, new in (("1Gi", ""), ("", "1Gi")):
        errors = catalog.validate(claim(new), old=claim(old))
        assert any("size cannot switch between empty" in e for e in errors), errors
    assert catalog.validate(claim("2Gi"), old=claim("1Gi")) == []
    assert catalog.validate(claim(""), old=claim("")) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 0}, "greater than or equal to 1"),
        ({"replicas": 33}, "less than or equal to 32"),
        ({"version": "v6"}, "'v8' or 'v7'"),
        ({"size": "big"}, "not a Kubernetes quantity"),
        ({"resourcesPreset": "x1.huge"}, "Input should be"),
        ({"sentinel": {}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RedisSpec.model_validate(spec)


def test_not_ready_until_the_operator_runs_the_pods() -> None:
    out = compose()
    assert not out.resources["failover"].ready
    assert out.waiting == [
        "the redis-operator has not created the pods of RedisFailover redis-cache yet"
    ]
    observed = {k: d.body for k, d in out.resources.items()}
    partly = compose(
        observed=observed,
        required={redis.STATEFULSET: [statefulset(1)], redis.DEPLOYMENT: [deployment(2)]},
    )
    assert not partly.resources["failover"].ready
    assert partly.waiting == [
        "Redis rfr-redis-cache: 1/2 pods ready",
        "Sentinel rfs-redis-cache: 2/3 pods ready",
    ]
    assert (partly.status["readyReplicas"], partly.status["readySentinels"]) == (1, 2)


def test_ready_with_every_pod_ready_and_status() -> None:
    first = compose()
    observed = {k: d.body for k, d in first.resources.items()}
    out = compose(
        observed=observed,
        required={redis.STATEFULSET: [statefulset(2)], redis.DEPLOYMENT: [deployment(3)]},
    )
    assert out.waiting == []
    assert all(d.ready for d in out.resources.values())
    assert out.status == {
        "version": "8.4.0",
        "replicas": 2,
        "readyReplicas": 2,
        "readySentinels": 3,
        "services": {
            "master": "rfrm-redis-cache",
            "replicas": "rfrs-redis-cache",
            "sentinel": "rfs-redis-cache",
            "external": "",
        },
        "endpoints": {
            "master": "rfrm-redis-cache.tenant-dev.svc:6379",
            "replicas": "rfrs-redis-cache.tenant-dev.svc:6379",
            "sentinel": "rfs-redis-cache.tenant-dev.svc:26379",
            "external": "",
        },
        "authSecret": "redis-cache-auth",
    }
    # The failover is not ready before it exists, whatever the workloads say.
    early = compose(
        required={redis.STATEFULSET: [statefulset(2)], redis.DEPLOYMENT: [deployment(3)]}
    )
    assert not early.resources["failover"].ready


def test_status_never_shows_the_password() -> None:
    out = compose({"external": True})
    assert password(out) not in repr(out.status) + repr(out.waiting) + repr(out.warnings)


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "a" * REDIS.name_max_length
    out = compose({"external": True}, name=name)
    release = f"redis-{name}"
    names = [d.body["metadata"]["name"] for d in out.resources.values()]
    # What the operator derives: Services, and its StatefulSet with a revision hash label.
    names += [f"rfrm-{release}", f"rfrs-{release}", f"rfs-{release}", f"rfr-{release}-1234567890"]
    assert max(len(n) for n in names) == 63
    labels = [
        v for d in out.resources.values() for v in d.body["metadata"].get("labels", {}).values()
    ]
    assert max(len(v) for v in labels) <= 63


def test_composed_objects_are_valid_upstream(catalog: Catalog) -> None:
    for spec in ({}, {"size": "", "authEnabled": False}, {"external": True, "storageClass": "x"}):
        for desired in compose(spec).resources.values():
            assert catalog.validate(desired.body) == [], spec


def test_every_version_has_an_image() -> None:
    assert sorted(redis.IMAGES) == sorted(get_args(RedisVersion))


@pytest.mark.parametrize(("length", "ok"), [(42, True), (43, False)])
def test_claim_names_are_bounded_by_the_xrd(length: int, ok: bool, catalog: Catalog) -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Redis",
        "metadata": {"name": "a" * length, "namespace": "tenant-dev"},
        "spec": {},
    }
    assert (catalog.validate(claim) == []) is ok
