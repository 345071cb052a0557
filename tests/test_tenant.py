"""Tenant compose: naming, inheritance, quotas, access levels and isolation (reference §6)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.config import PlatformConfig
from functions.api.tenant import TenantSpec
from functions.services import tenant
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context, namespace

ROOT_NS = namespace(
    "tenant-root",
    **{
        "tenant.cozystack.io/tenant-root": "",
        "namespace.cozystack.io/etcd": "tenant-root",
        "namespace.cozystack.io/ingress": "tenant-root",
        "namespace.cozystack.io/monitoring": "tenant-root",
        "namespace.cozystack.io/seaweedfs": "tenant-root",
        "namespace.cozystack.io/gateway": "",
        "namespace.cozystack.io/host": "example.org",
    },
)
DEV_NS = namespace(
    "tenant-dev",
    **{
        "tenant.cozystack.io/tenant-root": "",
        "tenant.cozystack.io/tenant-dev": "",
        "namespace.cozystack.io/etcd": "tenant-dev",
        "namespace.cozystack.io/ingress": "tenant-root",
        "namespace.cozystack.io/monitoring": "tenant-root",
        "namespace.cozystack.io/seaweedfs": "tenant-root",
        "namespace.cozystack.io/gateway": "",
        "namespace.cozystack.io/host": "dev.example.org",
        "scheduler.cozystack.io/scheduling-class": "gold",
    },
)


def compose(
    name: str, parent: dict[str, Any] | None, spec: dict[str, Any] | None = None, **kw: Any
) -> Outcome:
    parent_name = kw.pop(
        "parent_name", (parent or {}).get("metadata", {}).get("name", "tenant-root")
    )
    required = {tenant.PARENT: [parent] if parent else []}
    return tenant.compose(
        TenantSpec.model_validate(spec or {}), context(name, parent_name, required=required, **kw)
    )


def body(out: Outcome, key: str) -> dict[str, Any]:
    return out.resources[key].body


def test_first_call_only_asks_for_the_parent_namespace() -> None:
    out = tenant.compose(TenantSpec(), context("dev", "tenant-root"))
    assert out.resources == {}
    req = out.requirements[tenant.PARENT]
    assert (req.api_version, req.kind, req.name) == ("v1", "Namespace", "tenant-root")


def test_root_tenant_does_not_compose_its_own_namespace() -> None:
    out = compose("root", ROOT_NS, {"etcd": True})
    assert "namespace" not in out.resources
    assert out.status["namespace"] == "tenant-root"
    assert out.status["host"] == "example.org"
    assert out.status["services"]["etcd"] == "tenant-root"
    assert body(out, "serviceaccount")["metadata"] == {
        "name": "tenant-root",
        "namespace": "tenant-root",
    }


def test_child_namespace_labels() -> None:
    out = compose("team", DEV_NS, {"ingress": True})
    ns = body(out, "namespace")
    assert ns["metadata"]["name"] == "tenant-dev-team"
    assert ns["metadata"]["labels"] == {
        "tenant.cozystack.io/tenant-root": "",
        "tenant.cozystack.io/tenant-dev": "",
        "tenant.cozystack.io/tenant-dev-team": "",
        "namespace.cozystack.io/etcd": "tenant-dev",
        "namespace.cozystack.io/ingress": "tenant-dev-team",
        "namespace.cozystack.io/monitoring": "tenant-root",
        "namespace.cozystack.io/seaweedfs": "tenant-root",
        "namespace.cozystack.io/gateway": "",
        "namespace.cozystack.io/host": "team.dev.example.org",
        "scheduler.cozystack.io/scheduling-class": "gold",
        "alpha.kubevirt.io/auto-memory-limits-ratio": "1.0",
    }


@pytest.mark.parametrize(
    ("spec", "host"),
    [({}, "team.dev.example.org"), ({"host": "team.example.com"}, "team.example.com")],
)
def test_host_is_inherited_unless_set(spec: dict[str, Any], host: str) -> None:
    assert compose("team", DEV_NS, spec).status["host"] == host


def test_no_parent_host_means_no_host() -> None:
    bare = namespace("tenant-root", **{"tenant.cozystack.io/tenant-root": ""})
    assert compose("dev", bare).status["host"] == ""


def test_modules_are_recorded_in_status() -> None:
    out = compose("dev", ROOT_NS, {"etcd": True, "monitoring": True, "gateway": True})
    assert out.status["modules"] == {
        "etcd": True,
        "monitoring": True,
        "ingress": False,
        "seaweedfs": False,
        "gateway": True,
    }
    assert out.status["services"]["etcd"] == "tenant-dev"
    assert out.status["services"]["ingress"] == "tenant-root"


def test_scheduling_class_is_inherited_and_cannot_be_overridden() -> None:
    assert (
        "scheduler.cozystack.io/scheduling-class"
        not in body(compose("dev", ROOT_NS), "namespace")["metadata"]["labels"]
    )
    own = body(compose("dev", ROOT_NS, {"schedulingClass": "silver"}), "namespace")
    assert own["metadata"]["labels"]["scheduler.cozystack.io/scheduling-class"] == "silver"
    with pytest.raises(
        ComposeError, match=r"spec\.schedulingClass: the parent tenant already sets"
    ):
        compose("team", DEV_NS, {"schedulingClass": "silver"})


def test_quota_and_limit_range_only_with_quotas() -> None:
    assert "quota" not in compose("dev", ROOT_NS).resources
    out = compose(
        "dev",
        ROOT_NS,
        {"resourceQuotas": {"cpu": 4, "memory": "8Gi", "storage": "100Gi", "pods": 20}},
    )
    assert body(out, "quota")["spec"]["hard"] == {
        "limits.cpu": "4",
        "limits.memory": "8Gi",
        "pods": "20",
        "requests.cpu": "0.4",
        "requests.memory": "8589934592",
        "requests.storage": "100Gi",
    }
    assert body(out, "quota")["metadata"] == {"name": "tenant-quota", "namespace": "tenant-dev"}
    limits = body(out, "limitrange")["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "2Gi"}
    assert limits["defaultRequest"] == {
        "cpu": "25m",
        "memory": "128Mi",
        "ephemeral-storage": "50Mi",
    }


def test_quota_uses_the_platform_ratios() -> None:
    config = PlatformConfig(cpu_allocation_ratio=4, memory_allocation_ratio=2)
    out = compose("dev", ROOT_NS, {"resourceQuotas": {"cpu": 2, "memory": "2Gi"}}, config=config)
    assert body(out, "quota")["spec"]["hard"]["requests.cpu"] == "0.5"
    assert body(out, "quota")["spec"]["hard"]["requests.memory"] == "1073741824"


def test_role_bindings() -> None:
    out = compose("team", DEV_NS)
    tenant_rb = body(out, "rolebinding-tenant")
    assert tenant_rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cozyplane:tenant",
    }
    assert [s["name"] for s in tenant_rb["subjects"]] == [
        "tenant-root",
        "tenant-dev",
        "tenant-dev-team",
    ]
    for level in ("view", "use", "admin", "super-admin"):
        rb = body(out, f"rolebinding-{level}")
        assert rb["metadata"] == {
            "name": f"cozyplane:tenant:{level}",
            "namespace": "tenant-dev-team",
        }
        assert rb["roleRef"]["name"] == f"cozyplane:tenant:{level}"
    admin = [s["name"] for s in body(out, "rolebinding-admin")["subjects"] if s["kind"] == "Group"]
    assert "tenant-dev-team-admin" in admin
    assert "tenant-root-super-admin" in admin
    assert "tenant-dev-team-use" not in admin


def test_isolation_policies() -> None:
    out = compose("team", DEV_NS, {"etcd": True, "ingress": True, "monitoring": True})
    egress = body(out, "ccnp-egress")
    assert egress["metadata"]["name"] == "tenant-dev-team-egress"
    own, *ancestor_rules = egress["spec"]["egress"]
    assert own == {
        "toEndpoints": [
            {
                "matchLabels": {
                    "k8s:io.cilium.k8s.namespace.labels.tenant.cozystack.io/tenant-dev-team": ""
                }
            }
        ]
    }
    for rule in ancestor_rules:
        assert [
            s["matchLabels"]["k8s:io.kubernetes.pod.namespace"] for s in rule["toEndpoints"]
        ] == ["tenant-root", "tenant-dev"]
    ingress = body(out, "ccnp-ingress")["spec"]["ingress"]
    assert ingress[-1] == {
        "fromEndpoints": [
            {"matchLabels": {"k8s:io.kubernetes.pod.namespace": ns}}
            for ns in ("tenant-root", "tenant-dev")
        ]
    }
    assert {
        "ccnp-ingress-ingress",
        "ccnp-ingress-etcd",
        "ccnp-egress-virt-handler",
    } <= out.resources.keys()
    cnps = sorted(k for k in out.resources if k.startswith("cnp-"))
    assert len(cnps) == 10


def test_root_policies_have_no_ancestors_and_no_optional_modules() -> None:
    out = compose("root", ROOT_NS)
    assert len(body(out, "ccnp-egress")["spec"]["egress"]) == 1
    assert len(body(out, "ccnp-ingress")["spec"]["ingress"]) == 3
    assert (
        not {"ccnp-ingress-ingress", "ccnp-ingress-etcd", "ccnp-egress-virt-handler"}
        & out.resources.keys()
    )


def test_everything_is_unready_until_observed_then_ready() -> None:
    first = compose("dev", ROOT_NS)
    assert not any(d.ready for d in first.resources.values())
    observed = {k: d.body for k, d in first.resources.items()}
    second = compose("dev", ROOT_NS, observed=observed)
    assert all(d.ready for d in second.resources.values())


@pytest.mark.parametrize(
    ("name", "parent", "message"),
    [
        ("dev", "default", "a Tenant belongs in a tenant namespace"),
        ("a" * 57, "tenant-root", "longer than 63"),
    ],
)
def test_bad_placement(name: str, parent: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose(name, namespace(parent), parent_name=parent)


def test_parent_must_exist_and_be_a_tenant_namespace() -> None:
    with pytest.raises(ComposeError, match="does not exist"):
        compose("dev", None, parent_name="tenant-root")
    with pytest.raises(ComposeError, match="is not a tenant namespace"):
        compose("dev", namespace("tenant-root"))


def test_composite_without_claim_is_refused() -> None:
    ctx = context("", "")
    with pytest.raises(ComposeError, match="through a Tenant claim"):
        tenant.compose(TenantSpec(), ctx)


ETCD_KEYS = {
    "etcd-cluster",
    "etcd-selfsigning-issuer",
    "etcd-peer-ca",
    "etcd-ca",
    "etcd-peer-issuer",
    "etcd-issuer",
    "etcd-server",
    "etcd-peer",
    "etcd-client",
    "etcd-headless",
    "datastore",
}


def test_etcd_module_composes_the_cluster_its_certificates_and_the_data_store() -> None:
    assert not ETCD_KEYS & compose("dev", ROOT_NS).resources.keys()
    out = compose("dev", ROOT_NS, {"etcd": True})
    assert out.resources.keys() >= ETCD_KEYS
    cluster = body(out, "etcd-cluster")
    assert cluster["metadata"] == {"name": "etcd", "namespace": "tenant-dev"}
    assert cluster["spec"]["version"] == "3.6.11"
    assert cluster["spec"]["replicas"] == 3
    assert cluster["spec"]["options"]["quotaBackendBytes"] == 4080218931
    assert cluster["spec"]["tls"]["client"]["operatorClientSecretRef"] == {
        "name": "etcd-client-tls"
    }
    store = body(out, "datastore")
    assert store["metadata"] == {"name": "tenant-dev"}
    assert store["spec"]["endpoints"] == ["etcd.tenant-dev.svc:2379"]
    client = store["spec"]["tlsConfig"]["clientCertificate"]["certificate"]["secretReference"]
    assert client == {"keyPath": "tls.crt", "name": "etcd-client-tls", "namespace": "tenant-dev"}
    assert body(out, "etcd-client")["spec"]["commonName"] == "root"
    assert "dnsNames" not in body(out, "etcd-client")["spec"]
    assert "*.etcd-headless.tenant-dev.svc" in body(out, "etcd-server")["spec"]["dnsNames"]
    assert body(out, "etcd-ca")["spec"]["privateKey"]["rotationPolicy"] == "Never"
    assert (
        body(out, "namespace")["metadata"]["labels"]["namespace.cozystack.io/etcd"] == "tenant-dev"
    )


def test_etcd_is_ready_when_the_operator_says_so() -> None:
    first = compose("dev", ROOT_NS, {"etcd": True})
    observed = {k: d.body for k, d in first.resources.items()}
    for members, ready in ((0, False), (1, False), (2, True)):
        observed["etcd-cluster"] = observed["etcd-cluster"] | {"status": {"readyMembers": members}}
        out = compose("dev", ROOT_NS, {"etcd": True}, observed=observed)
        assert out.resources["etcd-cluster"].ready is ready
