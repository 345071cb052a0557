"""Tenant compose: naming, inheritance, quotas, access levels and isolation (reference §6)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

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
    # The tenant's namespace exists unless a test says otherwise (see the first-reconcile test).
    kw.setdefault("observed", {"namespace": namespace(f"tenant-{name}")})
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


def test_nothing_is_composed_inside_the_namespace_until_it_exists() -> None:
    first = compose("dev", ROOT_NS, {"resourceQuotas": {"cpu": "4"}, "etcd": True}, observed={})
    assert list(first.resources) == ["namespace"]
    assert first.waiting == ["namespace tenant-dev to be created"]
    assert first.status["namespace"] == "tenant-dev"
    then = compose("dev", ROOT_NS, {"resourceQuotas": {"cpu": "4"}, "etcd": True})
    assert {"namespace", "quota", "etcd-cluster"} <= set(then.resources)
    assert then.waiting == []


def test_objects_stay_composed_if_the_namespace_is_not_observed() -> None:
    # Once anything in the namespace exists, losing sight of the namespace drops nothing.
    spec = {"resourceQuotas": {"cpu": "4"}}
    out = compose("dev", ROOT_NS, spec, observed={"quota": {"kind": "ResourceQuota"}})
    assert {"namespace", "quota", "limitrange"} <= set(out.resources)


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
    assert not any(d.ready for k, d in first.resources.items() if k != "namespace")
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


def _values(out: Outcome) -> dict[str, Any]:
    values: dict[str, Any] = body(out, "ingress-nginx")["spec"]["values"]["ingress-nginx"]
    return values


def test_ingress_module_is_a_controller_with_the_namespace_as_its_class() -> None:
    assert "ingress-nginx" not in compose("dev", ROOT_NS).resources
    out = compose("dev", ROOT_NS, {"ingress": True})
    release = body(out, "ingress-nginx")
    assert release["metadata"]["name"] == "ingress-nginx-system"
    assert release["spec"]["chartRef"] == {
        "kind": "ExternalArtifact",
        "name": "cozystack-ingress-application-default-ingress-system",
        "namespace": "cozy-system",
    }
    values = _values(out)
    assert values["fullnameOverride"] == "dev-ingress"
    controller = values["controller"]
    assert controller["ingressClassResource"] == {
        "name": "tenant-dev",
        "controllerValue": "k8s.io/ingress-nginx-tenant-dev",
    }
    assert controller["podLabels"]["cozystack.io/service"] == "ingress"
    assert controller["admissionWebhooks"] == {"enabled": False}
    assert controller["service"] == {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    assert controller["resources"]["limits"]["cpu"] == "500m"
    scrapes = {body(out, k)["metadata"]["name"] for k in out.resources if k.startswith("scrape-")}
    assert scrapes == {"nginx-ingress-controller", "nginx-ingress-controller-detailed"}
    assert body(out, "namespace")["metadata"]["labels"]["namespace.cozystack.io/ingress"] == (
        "tenant-dev"
    )


def test_the_publishing_ingress_may_use_external_ips() -> None:
    config = PlatformConfig.model_validate({"exposeExternalIps": ["192.0.2.1", "192.0.2.2"]})
    root = _values(compose("root", ROOT_NS, {"ingress": True}, config=config))["controller"]
    assert root["service"] == {
        "type": "ClusterIP",
        "externalTrafficPolicy": "Cluster",
        "externalIPs": ["192.0.2.1", "192.0.2.2"],
    }
    assert "admissionWebhooks" not in root
    child = _values(compose("dev", ROOT_NS, {"ingress": True}, config=config))["controller"]
    assert child["service"]["type"] == "LoadBalancer"


def test_monitoring_module_composes_storages_agent_and_grafana() -> None:
    out = compose("dev", ROOT_NS, {"monitoring": True})
    short, long_ = body(out, "vmcluster-shortterm"), body(out, "vmcluster-longterm")
    assert (short["spec"]["retentionPeriod"], long_["spec"]["retentionPeriod"]) == ("3d", "14d")
    assert short["spec"]["vmselect"]["extraArgs"]["dedup.minScrapeInterval"] == "15s"
    assert short["spec"]["vmstorage"]["storage"]["volumeClaimTemplate"]["spec"] == {
        "resources": {"requests": {"storage": "10Gi"}}
    }
    logs = body(out, "vlcluster")
    assert logs["metadata"]["name"] == "generic"
    assert logs["spec"]["vlstorage"]["storage"]["volumeClaimTemplate"]["spec"][
        "storageClassName"
    ] == ("replicated")
    agent = body(out, "vmagent")["spec"]
    assert agent["remoteWrite"] == [
        {"url": "http://vminsert-shortterm:8480/insert/0/prometheus"},
        {"url": "http://vminsert-longterm:8480/insert/0/prometheus"},
    ]
    assert agent["externalLabels"] == {"cluster": "cozystack", "tenant": "tenant-dev"}
    assert agent["serviceScrapeNamespaceSelector"] == {
        "matchLabels": {"namespace.cozystack.io/monitoring": "tenant-dev"}
    }
    datasources = yaml.safe_load(body(out, "grafana-datasources")["data"]["datasources.yaml"])
    assert [(d["name"], d.get("isDefault")) for d in datasources["datasources"]] == [
        ("vm-shortterm", True),
        ("vm-longterm", False),
        ("vlogs-generic", None),
    ]
    assert datasources["datasources"][2]["url"] == "http://vlselect-generic.tenant-dev.svc:9471"
    ingress = body(out, "grafana-ingress")
    assert ingress["spec"]["rules"][0]["host"] == "grafana.dev.example.org"
    # The Grafana of tenant-dev is published by the ingress its tenant inherits.
    assert ingress["spec"]["ingressClassName"] == "tenant-root"
    assert body(out, "grafana-service")["spec"]["ports"][0]["port"] == 3000
    assert body(out, "grafana-db")["spec"]["instances"] == 2
    assert "vmagent" not in compose("root", ROOT_NS, {"monitoring": True}).resources


def test_grafana_keeps_its_password_and_its_database_image() -> None:
    first = compose("dev", ROOT_NS, {"monitoring": True})
    secret = body(first, "grafana-admin-password")
    assert base64.b64decode(secret["data"]["user"]) == b"admin"
    assert len(base64.b64decode(secret["data"]["password"])) == 32
    observed = {
        "grafana-admin-password": secret,
        "grafana-db": {"spec": {"imageName": "ghcr.io/cloudnative-pg/postgresql:16.4"}},
    }
    again = compose("dev", ROOT_NS, {"monitoring": True}, observed=observed)
    assert body(again, "grafana-admin-password") == secret
    assert body(again, "grafana-db")["spec"]["imageName"].endswith(":16.4")


def test_grafana_without_a_host_or_an_ingress_gets_no_ingress() -> None:
    bare = namespace(
        "tenant-root", **{"tenant.cozystack.io/tenant-root": "", "namespace.cozystack.io/host": ""}
    )
    out = compose("dev", bare, {"monitoring": True})
    assert "grafana-ingress" not in out.resources
    env = body(out, "grafana")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "GF_SERVER_ROOT_URL" not in {e["name"] for e in env}


def test_victoriametrics_objects_are_ready_when_operational() -> None:
    first = compose("dev", ROOT_NS, {"monitoring": True})
    observed = {k: d.body for k, d in first.resources.items()}
    for status, ready in (
        ({}, False),
        ({"updateStatus": "expanding"}, False),
        ({"updateStatus": "operational"}, True),
    ):
        observed["vmcluster-shortterm"] = observed["vmcluster-shortterm"] | {"status": status}
        out = compose("dev", ROOT_NS, {"monitoring": True}, observed=observed)
        assert out.resources["vmcluster-shortterm"].ready is ready
