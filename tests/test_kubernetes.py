"""Kubernetes compose: control plane, workers, Talos or kubeadm bootstrap, addons (reference §7)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import cel
import pytest
import yaml

from functions.api import kubernetes as kubernetes_api
from functions.api.config import PlatformConfig
from functions.api.kubernetes import KubernetesSpec
from functions.api.rules import violations
from functions.domain.instancetypes import INSTANCETYPES
from functions.domain.quantity import helm_to_float
from functions.services import kubernetes
from functions.services.base import ComposeError, Outcome
from functions.services.kubernetes import workers
from tests.support.compose import context, namespace

LABELS = {
    "namespace.cozystack.io/etcd": "tenant-root",
    "namespace.cozystack.io/ingress": "tenant-root",
    "namespace.cozystack.io/monitoring": "tenant-root",
    "namespace.cozystack.io/host": "dev.example.org",
}
NS = namespace("tenant-dev", **LABELS)
B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").decode()
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "kubernetes-c"},
    "spec": {"clusterIP": "10.96.1.2"},
}
KAMAJI_CA = {"apiVersion": "v1", "kind": "Secret", "data": {"ca.crt": B64}}
TALOS_CA = {"apiVersion": "v1", "kind": "Secret", "data": {"tls.crt": B64}}
DNS = {"apiVersion": "v1", "kind": "Service", "spec": {"clusterIP": "10.96.0.10"}}
LINSTOR = [
    {
        "metadata": {"name": "local"},
        "provisioner": "linstor.csi.linbit.com",
        "parameters": {"linstor.csi.linbit.com/allowRemoteVolumeAccess": "false"},
    },
    {"metadata": {"name": "replicated"}, "provisioner": "linstor.csi.linbit.com", "parameters": {}},
    {"metadata": {"name": "fast"}, "provisioner": "linstor.csi.linbit.com"},
    {"metadata": {"name": "nfs"}, "provisioner": "nfs.csi.k8s.io"},
]


def required(**overrides: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found = {
        "namespace": [NS],
        "control-plane-service": [SERVICE],
        "kamaji-ca": [KAMAJI_CA],
        "talos-ca-secret": [TALOS_CA],
        "cluster-dns": [DNS],
        "storage-classes": LINSTOR,
        "machine-sets": [],
    }
    return found | overrides


def compose(spec: dict[str, Any] | None = None, **kw: Any) -> Outcome:
    kw.setdefault("required", required())
    return kubernetes.compose(
        KubernetesSpec.model_validate(spec or {}), context("c", "tenant-dev", **kw)
    )


def body(out: Outcome, key: str) -> dict[str, Any]:
    return out.resources[key].body


def machine_deployment(out: Outcome, group: str) -> dict[str, Any]:
    return body(out, f"machinedeployment-{group}")


def talos_data(out: Outcome, group: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        body(out, f"bootstrap-{group}")["spec"]["template"]["spec"]["data"]
    )
    return data


def spec_violations(spec: dict[str, Any]) -> list[str]:
    return violations(KubernetesSpec.model_validate(spec))


def test_first_call_asks_for_the_tenant_namespace_only() -> None:
    out = kubernetes.compose(KubernetesSpec(), context("c", "tenant-dev"))
    assert out.resources == {}
    assert list(out.requirements) == ["namespace"]


def test_defaults_compose_a_cluster_with_group_md0() -> None:
    out = compose()
    release = "kubernetes-c"
    assert body(out, "cluster")["metadata"] == {"name": release, "namespace": "tenant-dev"}
    cp = body(out, "control-plane")["spec"]
    assert cp["version"] == "v1.35.6"
    assert cp["replicas"] == 2
    assert cp["dataStoreName"] == "tenant-root"
    assert cp["addons"]["konnectivity"]["server"]["version"] == "v0.34.0"
    assert cp["network"]["ingress"] == {
        "extraAnnotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
        "hostname": "kubernetes-c.dev.example.org:443",
        "className": "tenant-root",
    }
    assert cp["network"]["certSANs"] == [
        f"{release}.tenant-dev.svc",
        f"{release}.tenant-dev.svc.cluster.local",
        "10.96.1.2",
    ]
    assert cp["apiServer"]["resources"]["limits"] == {
        "cpu": "2",
        "ephemeral-storage": "2Gi",
        "memory": "2Gi",
    }
    assert cp["controllerManager"]["resources"]["limits"]["memory"] == "256Mi"
    assert [c["name"] for c in cp["deployment"]["extraContainers"]] == ["talos-csr-signer"]
    md = machine_deployment(out, "md0")
    assert md["metadata"]["name"] == f"{release}-md0"
    assert "replicas" not in md["spec"]
    assert (
        md["spec"]["template"]["metadata"]["labels"]["node-role.kubernetes.io/ingress-nginx"] == ""
    )
    assert md["metadata"]["annotations"] == {
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "0",
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "10",
        "cluster.x-k8s.io/autoscaling-options-maxnodeprovisiontime": "30m",
        # The reference's worked example: u1.medium has 1 vCPU and 4Gi.
        "capacity.cluster-autoscaler.kubernetes.io/memory": "3297Mi",
        "capacity.cluster-autoscaler.kubernetes.io/cpu": "900m",
    }
    assert out.status["kubeconfig"] == {
        "secret": f"{release}-admin-kubeconfig",
        "keys": ["admin.conf", "admin.svc", "super-admin.conf", "super-admin.svc"],
    }
    assert out.status["internalEndpoint"] == f"https://{release}.tenant-dev.svc:6443"


@pytest.mark.parametrize(
    ("version", "patch"),
    [
        ("v1.35", "v1.35.6"),
        ("v1.34", "v1.34.9"),
        ("v1.33", "v1.33.13"),
        ("v1.32", "v1.32.13"),
        ("v1.31", "v1.31.14"),
    ],
)
def test_versions(version: str, patch: str) -> None:
    out = compose({"version": version})
    assert body(out, "control-plane")["spec"]["version"] == patch
    assert machine_deployment(out, "md0")["spec"]["template"]["spec"]["version"] == patch
    assert (
        talos_data(out, "md0")["machine"]["kubelet"]["image"]
        == f"ghcr.io/siderolabs/kubelet:{patch}"
    )
    konnectivity = body(out, "control-plane")["spec"]["addons"]["konnectivity"]
    assert ("version" in konnectivity["server"]) is (version == "v1.35")


def test_the_etcd_gate_composes_nothing_and_says_why() -> None:
    bare = namespace("tenant-dev", **{k: v for k, v in LABELS.items() if "etcd" not in k})
    out = compose(required=required(namespace=[bare]))
    assert out.resources == {}
    assert out.ready is False
    assert "no etcd" in out.waiting[0]
    assert "set etcd: true on an ancestor Tenant" in out.waiting[0]


def test_a_running_cluster_keeps_its_data_store_when_etcd_disappears() -> None:
    bare = namespace("tenant-dev", **{k: v for k, v in LABELS.items() if "etcd" not in k})
    observed = {"control-plane": {"spec": {"dataStoreName": "tenant-old"}}}
    out = compose(required=required(namespace=[bare]), observed=observed)
    assert body(out, "control-plane")["spec"]["dataStoreName"] == "tenant-old"
    assert "keeping DataStore 'tenant-old'" in out.warnings[0]


def test_a_cluster_that_lost_its_etcd_and_its_control_plane_is_fatal_not_emptied() -> None:
    # Regression (fuzzing): composing nothing here made Crossplane delete the whole cluster.
    bare = namespace("tenant-dev", **{k: v for k, v in LABELS.items() if "etcd" not in k})
    observed = {"cluster": {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster"}}
    with pytest.raises(ComposeError, match=r"metadata\.namespace: no tenant above tenant-dev runs"):
        compose(required=required(namespace=[bare]), observed=observed)


def test_host() -> None:
    assert compose({"host": "k8s.example.com"}).status["endpoint"] == "https://k8s.example.com"
    assert compose().status["host"] == "kubernetes-c.dev.example.org"


@pytest.mark.parametrize("name", sorted(INSTANCETYPES))
def test_capacity_of_every_instancetype(name: str) -> None:
    spec = INSTANCETYPES[name]
    mem_mi = int(helm_to_float(spec.memory) / workers.MIB)
    reserved_mi = min(max(int(mem_mi * 0.05), 256), 1024)
    reserved_m = min(max(int(spec.cpu * 1000 * 0.05), 50), 500)
    if 2 * reserved_mi + mem_mi * 0.07 >= mem_mi:
        # As in Cozystack, the default reservations do not fit the smallest types.
        with pytest.raises(ComposeError, match="reserved memory"):
            compose({"nodeGroups": {"g": {"instanceType": name}}})
        return
    out = compose({"nodeGroups": {"g": {"instanceType": name}}})
    annotations = machine_deployment(out, "g")["metadata"]["annotations"]
    expected_mem = int(mem_mi - 2 * reserved_mi - mem_mi * 0.07)
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/memory"] in (
        f"{expected_mem}Mi",
        f"{expected_mem - 1}Mi",
    )
    assert (
        annotations["capacity.cluster-autoscaler.kubernetes.io/cpu"]
        == f"{spec.cpu * 1000 - 2 * reserved_m}m"
    )
    template = body(out, next(k for k in out.resources if k.startswith("machinetemplate-g-")))
    vm = template["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
    assert vm["instancetype"] == {"kind": "VirtualMachineClusterInstancetype", "name": name}


def test_groups_sized_by_resources_drop_the_instancetype() -> None:
    out = compose(
        {
            "nodeGroups": {
                "g": {
                    "resources": {"cpu": 4, "memory": "16Gi"},
                    "podCpuLimit": "4",
                    "podCpuRequest": "1",
                    "gpus": [{"name": "nvidia.com/X"}],
                    "logSerialConsole": True,
                }
            }
        }
    )
    key = next(k for k in out.resources if k.startswith("machinetemplate-g-"))
    vm = body(out, key)["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
    assert "instancetype" not in vm
    domain = vm["template"]["spec"]["domain"]
    assert domain["cpu"] == {"threads": 1, "cores": 4, "sockets": 1}
    assert domain["memory"] == {"guest": "16Gi"}
    assert domain["resources"]["limits"]["cpu"] == "4"
    assert domain["resources"]["requests"]["cpu"] == "1"
    assert domain["devices"]["gpus"] == [{"name": "gpu1", "deviceName": "nvidia.com/X"}]
    assert domain["devices"]["logSerialConsole"] is True
    assert talos_data(out, "g")["machine"]["nodeLabels"] == {"gpu": "on"}


def test_unknown_instancetypes_are_read_from_the_cluster() -> None:
    spec = {"nodeGroups": {"g": {"instanceType": "custom.big"}}}
    first = compose(spec)
    assert first.requirements["instancetype-custom.big"].kind == "VirtualMachineClusterInstancetype"
    found = {"spec": {"cpu": {"guest": 2}, "memory": {"guest": "8Gi"}}}
    out = compose(spec, required=required(**{"instancetype-custom.big": [found]}))
    assert (
        machine_deployment(out, "g")["metadata"]["annotations"][
            "capacity.cluster-autoscaler.kubernetes.io/cpu"
        ]
        == "1800m"
    )
    with pytest.raises(
        ComposeError,
        match=r"spec\.nodeGroups\.g\.instanceType: instancetype 'custom.big' does not exist",
    ):
        compose(spec, required=required(**{"instancetype-custom.big": []}))


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (
            {"instanceType": "u1.nano", "kubelet": {"systemReservedMemory": "256Mi"}},
            r"reserved memory .* must be less",
        ),
        (
            {"instanceType": "u1.medium", "kubelet": {"systemReservedCpu": "1"}},
            r"reserved CPU .* must be less",
        ),
        (
            {"kubelet": {"evictionHardMemory": "7%", "evictionSoftMemory": "500Mi"}},
            "both be percentages or both quantities",
        ),
        (
            {"kubelet": {"evictionHardMemory": "10%", "evictionSoftMemory": "10%"}},
            "must be below evictionSoftMemory",
        ),
        (
            {"kubelet": {"evictionHardMemory": "1Gi", "evictionSoftMemory": "500Mi"}},
            "must be below evictionSoftMemory",
        ),
        ({"kubelet": {"evictionHardMemory": "7%", "evictionSoftMemory": "120%"}}, "at most 100"),
        ({"kubelet": {"kubeReservedMemory": "0"}}, "kubeReservedMemory: must be positive"),
        (
            {"instanceType": "", "kubelet": {"systemReservedMemory": "256Mi"}},
            "memory reservations need",
        ),
        ({"instanceType": "", "kubelet": {"kubeReservedCpu": "100m"}}, "CPU reservations need"),
        (
            {"resources": {"cpu": 2, "memory": "4Gi"}, "podCpuLimit": "0"},
            "podCpuLimit: 0 needs podCpuRequest 0",
        ),
        (
            {"resources": {"cpu": 2, "memory": "4Gi"}, "podCpuLimit": "2", "podCpuRequest": "0"},
            "would request the whole limit",
        ),
        (
            {"resources": {"cpu": 2, "memory": "4Gi"}, "podCpuLimit": "1", "podCpuRequest": "2"},
            "exceeds podCpuLimit",
        ),
        ({"resources": {"cpu": "1500m", "memory": "4Gi"}}, "whole number of cores"),
    ],
)
def test_node_group_rules_the_function_enforces(group: dict[str, Any], message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose({"nodeGroups": {"g": group}})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"nodeGroups": {"g": {"resources": {"cpu": 2}}}}, "set both cpu and memory, or neither"),
        (
            {"nodeGroups": {"g": {"podCpuLimit": "1"}}},
            "podCpuLimit and podCpuRequest need a group sized",
        ),
        (
            {"nodeGroups": {"g": {"minReplicas": 3, "maxReplicas": 2}}},
            "maxReplicas must be at least minReplicas",
        ),
        ({"addons": {"hami": {"enabled": True}}}, "hami needs gpuOperator enabled"),
        ({"addons": {"ouroboros": {"enabled": True}}}, "ouroboros needs ingressNginx enabled"),
        (
            {
                "controlPlane": {
                    "apiServer": {
                        "extraVolumes": [{"name": "talos-ca", "secret": {"secretName": "x"}}]
                    }
                }
            },
            "talos-ca and talos-tls-cert are reserved",
        ),
        (
            {
                "controlPlane": {
                    "apiServer": {
                        "extraVolumes": [
                            {"name": "a", "secret": {}},
                            {"name": "a", "configMap": {}},
                        ]
                    }
                }
            },
            "volume names must be unique",
        ),
        (
            {
                "controlPlane": {
                    "apiServer": {"extraVolumes": [{"name": "a", "secret": {}, "configMap": {}}]}
                }
            },
            "set exactly one of configMap or secret",
        ),
        (
            {
                "controlPlane": {
                    "apiServer": {"extraVolumeMounts": [{"name": "nope", "mountPath": "/x"}]}
                }
            },
            "each mount must name a volume",
        ),
        ({"oidc": {"mode": "CustomConfig"}}, "needs exactly one of customConfig.config"),
        (
            {
                "oidc": {"mode": "System"},
                "controlPlane": {"apiServer": {"extraArgs": ["--oidc-issuer-url=x"]}},
            },
            "--oidc-* and --authentication-config conflict",
        ),
        (
            {
                "oidc": {"mode": "System"},
                "controlPlane": {
                    "apiServer": {"extraVolumes": [{"name": "authentication-config", "secret": {}}]}
                },
            },
            "authentication-config is reserved",
        ),
    ],
)
def test_rules_in_the_xrd(spec: dict[str, Any], message: str) -> None:
    assert any(message in v for v in spec_violations(spec)), spec_violations(spec)


def test_the_talos_support_matrix_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kubernetes_api.TALOS_SUPPORT, "v1.13", ("v1.34",))
    rule = cel.compile(kubernetes_api._talos_rule())
    spec = KubernetesSpec.model_validate({"version": "v1.35"}).model_dump(
        by_alias=True, exclude_none=True
    )
    assert rule.execute({"self": spec}) is False
    assert rule.execute({"self": spec | {"version": "v1.34"}}) is True
    assert rule.execute({"self": spec | {"bootstrap": "kubeadm"}}) is True
    assert rule.execute({"self": spec | {"talos": spec["talos"] | {"version": "v1.12.0"}}}) is True


def test_talos_configuration_waits_for_its_inputs() -> None:
    out = compose(required=required(**{"control-plane-service": [], "talos-ca-secret": []}))
    assert "bootstrap-md0" not in out.resources
    assert any(
        "the ClusterIP of Service kubernetes-c" in w and "Secret kubernetes-c-talos-ca" in w
        for w in out.waiting
    )
    assert "10.96.1.2" not in body(out, "control-plane")["spec"]["network"]["certSANs"]


def test_talos_worker_configuration() -> None:
    out = compose(
        {
            "talos": {"registryMirrors": {"docker.io": {"endpoints": ["https://m"]}}},
            "nodeGroups": {
                "g": {"instanceType": "u1.large", "kubelet": {"kubeReservedCpu": "200m"}}
            },
        }
    )
    template = body(out, "bootstrap-g")["spec"]["template"]["spec"]
    assert template["generateType"] == "none"
    assert template["talosVersion"] == "v1.13.6"
    data = talos_data(out, "g")
    secrets = {
        k: base64.b64decode(v).decode() for k, v in body(out, "talos-secrets")["data"].items()
    }
    assert data["machine"]["token"] == secrets["token"]
    assert data["cluster"]["token"] == secrets["bootstrapToken"]
    assert data["cluster"]["id"] == secrets["clusterId"]
    assert data["machine"]["network"]["nameservers"] == ["10.96.0.10"]
    assert data["machine"]["network"]["searchDomains"] == [
        "svc.cozy.local",
        "cozy.local",
        "svc.cluster.local",
        "cluster.local",
    ]
    assert data["machine"]["network"]["extraHostEntries"] == [
        {
            "ip": "10.96.1.2",
            "aliases": ["kubernetes-c.tenant-dev.svc", "kubernetes-c.tenant-dev.svc.cluster.local"],
        }
    ]
    assert data["machine"]["ca"]["crt"] == B64
    assert data["cluster"]["ca"]["crt"] == B64
    assert data["cluster"]["controlPlane"]["endpoint"] == "https://kubernetes-c.tenant-dev.svc:6443"
    kubelet = data["machine"]["kubelet"]["extraConfig"]
    assert kubelet["systemReserved"] == {"cpu": "100m", "memory": "409Mi"}
    assert kubelet["kubeReserved"] == {"cpu": "200m", "memory": "409Mi"}
    assert data["machine"]["registries"] == {"mirrors": {"docker.io": {"endpoints": ["https://m"]}}}
    assert data["machine"]["install"]["image"].endswith(":v1.13.6")


def test_talos_secrets_are_made_once() -> None:
    first = compose()
    secrets = {
        k: base64.b64decode(v).decode() for k, v in body(first, "talos-secrets")["data"].items()
    }
    assert len(secrets["bootstrapTokenId"]) == 6
    assert (
        secrets["bootstrapToken"]
        == f"{secrets['bootstrapTokenId']}.{secrets['bootstrapTokenSecret']}"
    )
    assert secrets["token"].islower() or secrets["token"].replace(".", "").isalnum()
    again = compose(observed={"talos-secrets": body(first, "talos-secrets")})
    assert body(again, "talos-secrets") == body(first, "talos-secrets")


def test_kubeadm_bootstrap() -> None:
    out = compose(
        {"bootstrap": "kubeadm", "version": "v1.33", "nodeGroups": {"g": {"roles": ["worker"]}}}
    )
    assert not {"talos-secrets", "talos-ca", "addon-tenant-bootstrap"} & out.resources.keys()
    assert "extraContainers" not in body(out, "control-plane")["spec"]["deployment"]
    assert "additionalServicePorts" not in body(out, "control-plane")["spec"]["network"]
    kct = body(out, "bootstrap-g")
    assert kct["kind"] == "KubeadmConfigTemplate"
    args = kct["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"][
        "kubeletExtraArgs"
    ]
    assert args["system-reserved"] == "cpu=50m,memory=256Mi"
    assert args["node-labels"] == "node-role.kubernetes.io/worker="
    assert args["eviction-hard"].startswith("memory.available<7%")
    ref = machine_deployment(out, "g")["spec"]["template"]["spec"]["bootstrap"]["configRef"]
    assert (ref["apiVersion"], ref["kind"]) == (
        "bootstrap.cluster.x-k8s.io/v1beta1",
        "KubeadmConfigTemplate",
    )
    key = next(k for k in out.resources if k.startswith("machinetemplate-g-"))
    source = body(out, key)["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"][
        "dataVolumeTemplates"
    ][0]["spec"]["source"]
    assert source == {
        "registry": {"url": "docker://quay.io/capk/ubuntu-2404-container-disk:v1.33.13"}
    }


def test_a_group_change_rolls_a_new_template_and_keeps_the_old_one_while_used() -> None:
    first = compose()
    (old_key,) = [k for k in first.resources if k.startswith("machinetemplate-md0-")]
    old_name = body(first, old_key)["metadata"]["name"]
    observed = {k: d.body for k, d in first.resources.items()}
    changed = {"nodeGroups": {"md0": {"instanceType": "u1.large", "roles": ["ingress-nginx"]}}}
    unused = compose(changed, observed=observed)
    assert old_key not in unused.resources
    (new_key,) = [k for k in unused.resources if k.startswith("machinetemplate-md0-")]
    new_name = body(unused, new_key)["metadata"]["name"]
    assert new_name != old_name
    assert (
        machine_deployment(unused, "md0")["spec"]["template"]["spec"]["infrastructureRef"]["name"]
        == new_name
    )
    machine_set = {"spec": {"template": {"spec": {"infrastructureRef": {"name": old_name}}}}}
    rolling = compose(
        changed, observed=observed, required=required(**{"machine-sets": [machine_set]})
    )
    assert body(rolling, old_key) == body(first, old_key)
    assert new_key in rolling.resources


def test_template_names_are_content_hashes() -> None:
    a, b = compose(), compose()
    assert sorted(k for k in a.resources if k.startswith("machinetemplate")) == sorted(
        k for k in b.resources if k.startswith("machinetemplate")
    )
    c = compose({"nodeGroups": {"md0": {"roles": ["ingress-nginx"], "logSerialConsole": True}}})
    assert sorted(k for k in c.resources if k.startswith("machinetemplate")) != sorted(
        k for k in a.resources if k.startswith("machinetemplate")
    )


def test_health_checks() -> None:
    out = compose(
        {
            "nodeHealthCheck": {"maxUnhealthy": "2", "readyFalseTimeout": "15m"},
            "nodeGroups": {"a": {}, "b": {"maxUnhealthy": "30%", "nodeStartupTimeout": "1h"}},
        }
    )
    a, b = body(out, "healthcheck-a")["spec"], body(out, "healthcheck-b")["spec"]
    assert a["maxUnhealthy"] == 2
    assert a["nodeStartupTimeout"] == "20m"
    assert a["unhealthyConditions"][1] == {"type": "Ready", "status": "False", "timeout": "15m"}
    assert (b["maxUnhealthy"], b["nodeStartupTimeout"]) == ("30%", "1h")


def test_control_plane_options() -> None:
    out = compose(
        {
            "controlPlane": {
                "replicas": 3,
                "apiServer": {
                    "extraArgs": ["--audit-log-maxage=7"],
                    "extraVolumes": [{"name": "audit", "configMap": {"name": "audit"}}],
                    "extraVolumeMounts": [
                        {"name": "audit", "mountPath": "/etc/audit", "readOnly": True}
                    ],
                },
                "scheduler": {"resources": {"cpu": "500m"}},
            }
        }
    )
    cp = body(out, "control-plane")["spec"]
    assert cp["replicas"] == 3
    assert cp["apiServer"]["extraArgs"] == ["--audit-log-maxage=7"]
    assert cp["apiServer"]["extraVolumeMounts"] == [
        {"name": "audit", "mountPath": "/etc/audit", "readOnly": True}
    ]
    assert [v["name"] for v in cp["deployment"]["extraVolumes"]] == [
        "talos-ca",
        "talos-tls-cert",
        "audit",
    ]
    assert cp["scheduler"]["resources"]["limits"]["cpu"] == "500m"


def test_oidc_custom_config_inline_and_system() -> None:
    out = compose({"oidc": {"mode": "CustomConfig", "customConfig": {"config": "apiVersion: x"}}})
    cp = body(out, "control-plane")["spec"]
    assert cp["apiServer"]["extraArgs"] == [
        "--authentication-config=/etc/kubernetes/authentication-config/config.yaml"
    ]
    assert (
        cp["deployment"]["extraVolumes"][-1]["secret"]["secretName"]
        == "kubernetes-c-oidc-authn-config"
    )
    with pytest.raises(ComposeError, match="System needs the platform's OIDC issuer"):
        compose({"oidc": {"mode": "System"}})
    system = compose(
        {"oidc": {"mode": "System", "users": [{"email": "a@b.c", "role": "admin"}]}},
        config=PlatformConfig(oidc_issuer_url="https://keycloak.example.org/realms/cozy"),
    )
    config = yaml.safe_load(
        base64.b64decode(body(system, "oidc-authn-config")["data"]["config.yaml"])
    )
    assert config["jwt"][0]["issuer"] == {
        "url": "https://keycloak.example.org/realms/cozy",
        "audiences": ["tenant-dev-kubernetes-c"],
    }
    kubeconfig = yaml.safe_load(
        base64.b64decode(body(system, "oidc-kubeconfig")["data"]["kubeconfig"])
    )
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": "https://kubernetes-c.dev.example.org",
        "certificate-authority-data": B64,
    }
    values = body(system, "addon-tenant-bootstrap")["spec"]["values"]
    assert values["oidcUsers"] == [{"email": "a@b.c", "role": "admin"}]


def _release(out: Outcome, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = body(out, f"addon-{name}")["spec"]
    return spec


def test_default_addons_and_their_order() -> None:
    out = compose()
    releases = sorted(k.removeprefix("addon-") for k in out.resources if k.startswith("addon-"))
    assert releases == [
        "cilium",
        "coredns",
        "csi",
        "metrics-server",
        "prometheus-operator-crds",
        "tenant-bootstrap",
        "vsnap-crd",
    ]
    csi = _release(out, "csi")
    assert [d["name"] for d in csi["dependsOn"]] == [
        "kubernetes-c-vsnap-crd",
        "kubernetes-c-cilium",
    ]
    assert csi["install"]["strategy"] == {"name": "RetryOnFailure", "retryInterval": "30s"}
    assert csi["values"]["storageClasses"] == {
        "fast": {"infraStorageClass": "fast", "default": False},
        "kubevirt": {"infraStorageClass": "replicated", "default": False},
        "replicated": {"infraStorageClass": "replicated", "default": True},
    }
    cilium = _release(out, "cilium")
    assert cilium["chartRef"] == {
        "kind": "ExternalArtifact",
        "namespace": "cozy-system",
        "name": "cozystack-kubernetes-application-kubevirt-kubernetes-cilium",
    }
    assert cilium["kubeConfig"] == {
        "secretRef": {"name": "kubernetes-c-admin-kubeconfig", "key": "super-admin.svc"}
    }
    assert cilium["values"]["cilium"]["k8sServiceHost"] == "kubernetes-c.tenant-dev.svc"
    assert "createNamespace" not in _release(out, "coredns")["install"]
    bootstrap = _release(out, "tenant-bootstrap")
    assert bootstrap["chartRef"] == {
        "kind": "OCIRepository",
        "namespace": "cozy-system",
        "name": "cozyplane-tenant-bootstrap",
    }
    assert bootstrap["valuesFrom"] == [
        {
            "kind": "Secret",
            "name": "kubernetes-c-talos-secrets",
            "valuesKey": "bootstrapTokenId",
            "targetPath": "bootstrapToken.id",
        },
        {
            "kind": "Secret",
            "name": "kubernetes-c-talos-secrets",
            "valuesKey": "bootstrapTokenSecret",
            "targetPath": "bootstrapToken.secret",
        },
    ]


ALL_ADDONS = {
    "certManager": {"enabled": True, "valuesOverride": {"a": 1}},
    "gatewayAPI": {"enabled": True},
    "ingressNginx": {"enabled": True, "hosts": ["app.example.org"]},
    "gpuOperator": {"enabled": True},
    "hami": {"enabled": True},
    "monitoringAgents": {"enabled": True},
    "velero": {"enabled": True},
    "ouroboros": {"enabled": True},
}


def test_the_dependency_graph_of_every_addon() -> None:
    out = compose({"addons": ALL_ADDONS})
    graph = {
        k.removeprefix("addon-"): [
            d["name"].removeprefix("kubernetes-c-") for d in d_.body["spec"].get("dependsOn", [])
        ]
        for k, d_ in out.resources.items()
        if k.startswith("addon-") and d_.body["kind"] == "HelmRelease"
    }
    assert graph == {
        "cilium": ["gateway-api-crds"],
        "coredns": ["cilium"],
        "vsnap-crd": [],
        "csi": ["vsnap-crd", "cilium"],
        "prometheus-operator-crds": [],
        "metrics-server": ["cilium", "prometheus-operator-crds"],
        "cert-manager-crds": [],
        "cert-manager": ["cilium", "cert-manager-crds"],
        "gateway-api-crds": [],
        "ingress-nginx": ["cilium"],
        "gpu-operator": ["cilium"],
        "hami": ["cilium", "gpu-operator"],
        "cozy-victoria-metrics-operator": ["cilium", "cert-manager-crds"],
        "vertical-pod-autoscaler-crds": [],
        "monitoring-agents": [
            "cozy-victoria-metrics-operator",
            "vertical-pod-autoscaler-crds",
            "prometheus-operator-crds",
            "metrics-server",
        ],
        "vertical-pod-autoscaler": ["monitoring-agents"],
        "velero": ["cilium"],
        "ouroboros": ["cilium", "coredns", "ingress-nginx", "gateway-api-crds"],
        "tenant-bootstrap": [],
    }
    assert _release(out, "cert-manager-crds")["valuesFrom"] == [
        {
            "kind": "Secret",
            "name": "kubernetes-c-cert-manager-crds-values-override",
            "valuesKey": "values",
        }
    ]
    assert (
        base64.b64decode(body(out, "addon-cert-manager-crds-values")["data"]["values"]) == b"a: 1\n"
    )
    assert _release(out, "gpu-operator")["values"]["gpu-operator"]["devicePlugin"] == {
        "enabled": False
    }
    agents = _release(out, "monitoring-agents")["values"]["vmagent"]
    assert (
        agents["remoteWrite"]["url"]
        == "http://vminsert-shortterm.tenant-root.svc.cozy.local:8480/insert/0/prometheus"
    )
    assert _release(out, "cilium")["values"]["cilium"]["gatewayAPI"] == {
        "enabled": True,
        "enableAlpn": True,
    }


def test_values_overrides_merge_over_defaults_and_win() -> None:
    out = compose(
        {
            "addons": {
                "cilium": {
                    "valuesOverride": {"cilium": {"MTU": 1400, "hubble": {"enabled": True}}}
                },
                "coredns": {
                    "valuesOverride": {"coredns": {"service": {"clusterIP": "10.95.0.53"}}}
                },
            }
        }
    )
    cilium = _release(out, "cilium")["values"]["cilium"]
    assert (cilium["MTU"], cilium["routingMode"], cilium["hubble"]) == (
        1400,
        "tunnel",
        {"enabled": True},
    )
    assert _release(out, "coredns")["values"] == {
        "coredns": {"service": {"clusterIP": "10.95.0.53"}}
    }


def test_ouroboros_gateway_override_needs_gateway_api() -> None:
    spec = {
        "addons": {
            "ingressNginx": {"enabled": True},
            "ouroboros": {
                "enabled": True,
                "valuesOverride": {"ouroboros": {"controller": {"gatewayApi": {"enabled": True}}}},
            },
        }
    }
    with pytest.raises(
        ComposeError, match=r"gatewayApi\.enabled needs addons\.gatewayAPI\.enabled"
    ):
        compose(spec)


def test_ingress_exposure() -> None:
    out = compose({"addons": {"ingressNginx": {"enabled": True, "hosts": ["a.example.org"]}}})
    service = body(out, "ingress-nginx-service")
    assert service["spec"]["selector"] == {
        "cluster.x-k8s.io/cluster-name": "kubernetes-c",
        "node-role.kubernetes.io/ingress-nginx": "",
    }
    ingress = body(out, "ingress-nginx-ingress")
    assert ingress["spec"]["ingressClassName"] == "tenant-root"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["a.example.org"]
    lb = compose({"addons": {"ingressNginx": {"enabled": True, "exposeMethod": "LoadBalancer"}}})
    assert "ingress-nginx-service" not in lb.resources
    assert "service" not in _release(lb, "ingress-nginx")["values"]["ingress-nginx"]["controller"]


def ready_state(out: Outcome) -> dict[str, Any]:
    observed: dict[str, Any] = {k: copy.deepcopy(d.body) for k, d in out.resources.items()}
    observed["cluster"]["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    observed["control-plane"]["status"] = {"ready": True, "readyReplicas": 2, "version": "v1.35.6"}
    observed["infra-cluster"]["status"] = {"ready": True}
    return observed


def test_ready_with_the_control_plane_and_minimum_workers_whatever_the_addons() -> None:
    spec = {"nodeGroups": {"a": {"minReplicas": 0}, "b": {"minReplicas": 2}}}
    observed = ready_state(compose(spec))
    observed["machinedeployment-b"]["status"] = {"replicas": 1, "readyReplicas": 1}
    out = compose(spec, observed=observed)
    assert out.ready is False
    assert any("b: 1/2 workers ready" in w for w in out.waiting)
    observed["machinedeployment-b"]["status"] = {"replicas": 2, "readyReplicas": 2}
    out = compose(spec, observed=observed)
    assert out.ready is True
    assert not any(d.ready for k, d in out.resources.items() if k.startswith("addon-"))
    assert out.status["nodeGroups"]["b"]["readyReplicas"] == 2
    assert out.status["readyControlPlaneReplicas"] == 2
    assert out.status["version"] == "v1.35.6"
    assert out.status["addons"]["cilium"] is False


def test_node_group_names_must_fit() -> None:
    spec = KubernetesSpec.model_validate({"nodeGroups": {"g" * 40: {}}})
    with pytest.raises(ComposeError, match="longer than 63"):
        kubernetes.compose(spec, context("a" * 30, "tenant-dev", required=required()))


def test_not_ready_while_the_worker_configuration_waits() -> None:
    observed = ready_state(compose())
    out = compose(observed=observed, required=required(**{"talos-ca-secret": []}))
    assert out.ready is False
    assert compose(observed=observed).ready is True


def test_a_nameless_storage_class_is_not_offered() -> None:
    nameless = {"provisioner": "linstor.csi.linbit.com", "metadata": {}}
    out = compose(required=required(**{"storage-classes": [*LINSTOR, nameless]}))
    assert set(_release(out, "csi")["values"]["storageClasses"]) == {
        "fast",
        "kubevirt",
        "replicated",
    }


def test_an_unreadable_running_version_is_no_downgrade() -> None:
    observed = {"control-plane": {"spec": {"version": "v1.²"}}}
    assert body(compose(observed=observed), "control-plane")["spec"]["version"] == "v1.35.6"


@pytest.mark.parametrize("cpu", ["1n", "1.5m", "250u"])
def test_a_cpu_below_the_reservations_is_refused_naming_the_group(cpu: str) -> None:
    """Found by the long fuzz run: `1n` crashed the chart's millicore conversion."""
    spec = {"nodeGroups": {"g": {"resources": {"cpu": cpu, "memory": "8Gi"}}}}
    with pytest.raises(ComposeError, match=r"spec\.nodeGroups\.g\.kubelet: reserved CPU"):
        compose(spec)


@pytest.mark.parametrize(
    ("cpu", "millis"), [("2k", 2_000_000), ("1e1", 10_000), ("2Ki", 2_048_000)]
)
def test_a_cpu_with_any_suffix_is_read_as_cores(cpu: str, millis: int) -> None:
    spec = {"nodeGroups": {"g": {"resources": {"cpu": cpu, "memory": "8Gi"}}}}
    annotations = body(compose(spec), "machinedeployment-g")["metadata"]["annotations"]
    # Allocatable: the node's CPU less the system and kube reservations (500m each at most).
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/cpu"] == f"{millis - 1000}m"
