"""The control plane in the management cluster and the workloads beside it (§7.3, §7.6)."""

from __future__ import annotations

import base64
from typing import Any

from functions.api.kubernetes import KubernetesSpec
from functions.domain import presets, secrets
from functions.domain.errors import ComposeError
from functions.domain.text import to_yaml
from functions.services.base import Object, Outcome, meta
from functions.services.kubernetes.workers import (
    CAPI,
    CAPK,
    POD_CIDR,
    SERVICE_CIDR,
    TENANT_DNS_DOMAIN,
    Cluster,
)

KAMAJI_CP = "controlplane.cluster.x-k8s.io/v1alpha1"
CERT_MANAGER = "cert-manager.io/v1"
RBAC = "rbac.authorization.k8s.io/v1"
# Images cozystack v1.6.0 pins (packages/apps/kubernetes/images/*.tag).
IMAGES = {
    "busybox": "docker.io/library/busybox:1.37.0"
    "@sha256:1487d0af5f52b4ba31c7e465126ee2123fe3f2305d638e7827681e7cf6c83d5e",
    "cluster-autoscaler": "ghcr.io/cozystack/cozystack/cluster-autoscaler:v1.6.0"
    "@sha256:d188f395a31e37ea09bfa91e45d7ce1606b7459192a437fa66bb760ffb5f17d2",
    "kubevirt-cloud-provider": "ghcr.io/cozystack/cozystack/kubevirt-cloud-provider:v1.6.0"
    "@sha256:f005b99041d191eed9dde98f9f6691ba2d0cbfa1b3b0b2fe4b32cc0fdba74acf",
    "kubevirt-csi-driver": "ghcr.io/cozystack/cozystack/kubevirt-csi-driver:v1.6.0"
    "@sha256:d6326e343c7932ce3d375c6742b9b9745090a4a26bf5bbc5ad19f5504ea93d65",
    "talos-csr-signer": "ghcr.io/cozystack/cozystack/talos-csr-signer:v1.6.0"
    "@sha256:85b41e16e5e40398b1272fe0a69de72e205532c8034d0e6a9fc4a1d510f17818",
}
# Konnectivity images Kamaji would derive but that do not exist (files/konnectivity-versions.yaml).
KONNECTIVITY = {"v1.35": "v0.34.0"}
KUBECONFIG_KEYS = ("admin.conf", "admin.svc", "super-admin.conf", "super-admin.svc")
TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
]
SMALL = {
    "limits": {"cpu": "512m", "memory": "512Mi"},
    "requests": {"cpu": "125m", "memory": "128Mi"},
}
DROP_ALL = {"capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
AUTHN_CONFIG_DIR = "/etc/kubernetes/authentication-config"


def _resources(component: Any, ratios: presets.AllocationRatios) -> Object:
    return presets.resources(component.resources_preset, component.resources.overrides(), ratios)


def _namespaced(api_version: str, kind: str, name: str, namespace: str, body: Object) -> Object:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta(name, namespace)} | body


def control_plane(
    out: Outcome,
    c: Cluster,
    spec: KubernetesSpec,
    *,
    data_store: str,
    ingress_class: str,
    host: str,
    service_ip: str | None,
    oidc_secret: str | None,
) -> Object | None:
    """Cluster, KamajiControlPlane and KubevirtCluster; returns the observed control plane."""
    ratios = out.ctx.config.ratios
    release, ns = c.release, c.namespace
    out.add(
        "cluster",
        _namespaced(
            CAPI,
            "Cluster",
            release,
            ns,
            {
                "spec": {
                    "clusterNetwork": {
                        "pods": {"cidrBlocks": [POD_CIDR]},
                        "services": {"cidrBlocks": [SERVICE_CIDR]},
                    },
                    "controlPlaneRef": {
                        "apiVersion": KAMAJI_CP,
                        "kind": "KamajiControlPlane",
                        "name": release,
                        "namespace": ns,
                    },
                    "infrastructureRef": {
                        "apiVersion": CAPK,
                        "kind": "KubevirtCluster",
                        "name": release,
                        "namespace": ns,
                    },
                }
            },
        ),
    )
    api = spec.control_plane.api_server
    extra_args = list(api.extra_args)
    mounts = [m.model_dump(by_alias=True, exclude_none=True) for m in api.extra_volume_mounts]
    volumes: list[Object] = []
    talos = c.bootstrap == "talos"
    if talos:
        volumes += [
            {"name": "talos-ca", "secret": {"secretName": f"{release}-talos-ca"}},
            {"name": "talos-tls-cert", "secret": {"secretName": f"{release}-talos-tls-cert"}},
        ]
    volumes += [v.model_dump(by_alias=True, exclude_none=True) for v in api.extra_volumes]
    if oidc_secret:
        extra_args.append(f"--authentication-config={AUTHN_CONFIG_DIR}/config.yaml")
        mounts.append(
            {"name": "authentication-config", "mountPath": AUTHN_CONFIG_DIR, "readOnly": True}
        )
        volumes.append(
            {
                "name": "authentication-config",
                "secret": {
                    "secretName": oidc_secret,
                    "items": [{"key": "config.yaml", "path": "config.yaml"}],
                },
            }
        )
    konnectivity: Object = {"server": {"port": 8132}}
    if spec.version in KONNECTIVITY:
        konnectivity = {
            "agent": {"version": KONNECTIVITY[spec.version]},
            "server": {"port": 8132, "version": KONNECTIVITY[spec.version]},
        }
    konnectivity["server"]["resources"] = _resources(spec.control_plane.konnectivity.server, ratios)
    sans = [f"{release}.{ns}.svc", f"{release}.{ns}.svc.{TENANT_DNS_DOMAIN}"]
    if service_ip:
        sans.append(service_ip)
    ingress: Object = {
        "extraAnnotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
        "hostname": f"{host}:443",
    }
    if ingress_class:
        ingress["className"] = ingress_class
    network: Object = {"serviceType": "ClusterIP", "ingress": ingress}
    if talos:
        network["additionalServicePorts"] = [
            {"name": "talos-trustd", "port": 50001, "targetPort": 50001, "protocol": "TCP"}
        ]
    network["certSANs"] = sans
    deployment: Object = {
        "podAdditionalMetadata": {"labels": {"policy.cozystack.io/allow-to-etcd": "true"}}
    }
    if talos:
        deployment["extraContainers"] = [_csr_signer(release, spec)]
    if volumes:
        deployment["extraVolumes"] = volumes
    return out.add_observed(
        "control-plane",
        {
            "apiVersion": KAMAJI_CP,
            "kind": "KamajiControlPlane",
            "metadata": meta(release, ns, {"cluster.x-k8s.io/role": "control-plane"})
            | {"annotations": {"kamaji.clastix.io/kubeconfig-secret-key": "super-admin.svc"}},
            "spec": {
                "apiServer": {
                    "resources": _resources(api, ratios),
                    "extraArgs": extra_args,
                    "extraVolumeMounts": mounts,
                },
                "controllerManager": {
                    "resources": _resources(spec.control_plane.controller_manager, ratios)
                },
                "scheduler": {"resources": _resources(spec.control_plane.scheduler, ratios)},
                "dataStoreName": data_store,
                "addons": {"konnectivity": konnectivity},
                "kubelet": {
                    "cgroupfs": "systemd",
                    "preferredAddressTypes": ["InternalIP", "ExternalIP"],
                },
                "network": network,
                "deployment": deployment,
                "replicas": spec.control_plane.replicas,
                "version": c.version,
            },
        },
    )


def infrastructure(out: Outcome, c: Cluster) -> None:
    out.add(
        "infra-cluster",
        {
            "apiVersion": CAPK,
            "kind": "KubevirtCluster",
            "metadata": meta(c.release, c.namespace)
            | {"annotations": {"cluster.x-k8s.io/managed-by": "kamaji"}},
            "spec": {},
        },
    )
    config = {
        "loadBalancer": {
            "creationPollInterval": 5,
            "creationPollTimeout": 60,
            "enableEPSController": True,
            "selectorless": True,
        },
        "namespace": c.namespace,
        "infraLabels": app_labels(c) | {"internal.cozystack.io/tenantresource": "true"},
    }
    out.add(
        "cloud-config",
        _namespaced(
            "v1",
            "ConfigMap",
            f"{c.release}-cloud-config",
            c.namespace,
            {"data": {"cloud-config": to_yaml(config, sort_keys=False)}},
        ),
    )


def app_labels(c: Cluster) -> dict[str, str]:
    return {
        "apps.cozystack.io/application.group": "apps.cozystack.io",
        "apps.cozystack.io/application.kind": "Kubernetes",
        "apps.cozystack.io/application.name": c.name,
    }


def _csr_signer(release: str, spec: KubernetesSpec) -> Object:
    return {
        "name": "talos-csr-signer",
        "image": spec.images.talos_csr_signer or IMAGES["talos-csr-signer"],
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "trustd", "containerPort": 50001, "protocol": "TCP"}],
        "env": [
            {
                "name": "TALOS_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": f"{release}-talos-secrets", "key": "token"}},
            }
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "talos-ca", "mountPath": "/etc/talos-ca", "readOnly": True},
            {"name": "talos-tls-cert", "mountPath": "/etc/talos-server-crt", "readOnly": True},
        ],
    }


def talos_secrets(out: Outcome, c: Cluster) -> dict[str, str]:
    """The machine token, cluster identity and bootstrap token: made once, then reused."""
    key = "talos-secrets"
    old = secrets.decoded(out.ctx.observed.data(key))
    generate = out.ctx.passwords

    def lower(length: int) -> str:
        return generate(length).lower()

    token = old.get("token") or f"{lower(6)}.{lower(16)}"
    values = {
        "token": token,
        "clusterId": secrets.stable(None, old.get("clusterId"), generate=generate, length=32),
        "clusterSecret": secrets.stable(
            None, old.get("clusterSecret"), generate=generate, length=32
        ),
        "bootstrapTokenId": old.get("bootstrapTokenId") or lower(6),
        "bootstrapTokenSecret": old.get("bootstrapTokenSecret") or lower(16),
    }
    values["bootstrapToken"] = f"{values['bootstrapTokenId']}.{values['bootstrapTokenSecret']}"
    out.add(key, secrets.secret(f"{c.release}-talos-secrets", c.namespace, values))
    return values


def talos_pki(out: Outcome, c: Cluster) -> None:
    """cert-manager issues the Talos CA and the trustd serving certificate of talos-csr-signer."""
    release, ns = c.release, c.namespace
    out.add(
        "talos-bootstrap-issuer",
        _namespaced(
            CERT_MANAGER, "Issuer", f"{release}-talos-bootstrap", ns, {"spec": {"selfSigned": {}}}
        ),
    )
    out.add(
        "talos-ca",
        _namespaced(
            CERT_MANAGER,
            "Certificate",
            f"{release}-talos-ca",
            ns,
            {
                "spec": {
                    "secretName": f"{release}-talos-ca",
                    "isCA": True,
                    "commonName": "talos",
                    "duration": "87600h",
                    "renewBefore": "720h",
                    "privateKey": {"algorithm": "Ed25519"},
                    "issuerRef": {
                        "name": f"{release}-talos-bootstrap",
                        "kind": "Issuer",
                        "group": "cert-manager.io",
                    },
                }
            },
        ),
    )
    out.add(
        "talos-ca-issuer",
        _namespaced(
            CERT_MANAGER,
            "Issuer",
            f"{release}-talos-ca",
            ns,
            {"spec": {"ca": {"secretName": f"{release}-talos-ca"}}},
        ),
    )
    out.add(
        "talos-tls-cert",
        _namespaced(
            CERT_MANAGER,
            "Certificate",
            f"{release}-talos-tls-cert",
            ns,
            {
                "spec": {
                    "secretName": f"{release}-talos-tls-cert",
                    "duration": "8760h",
                    "renewBefore": "720h",
                    "privateKey": {"algorithm": "Ed25519"},
                    "usages": ["digital signature", "server auth"],
                    "dnsNames": [f"{release}.{ns}.svc", f"{release}.{ns}.svc.{TENANT_DNS_DOMAIN}"],
                    "issuerRef": {
                        "name": f"{release}-talos-ca",
                        "kind": "Issuer",
                        "group": "cert-manager.io",
                    },
                }
            },
        ),
    )


def _wait_for_kubeconfig(spec: KubernetesSpec) -> Object:
    return {
        "name": "wait-for-kubeconfig",
        "image": spec.images.wait_for_kubeconfig or IMAGES["busybox"],
        "command": [
            "sh",
            "-c",
            (
                "set -eu\n"
                "deadline=$(( $(date +%s) + 600 ))\n"
                "until [ -s /etc/kubernetes/kubeconfig/super-admin.svc ]; do\n"
                '  if [ "$(date +%s)" -ge "$deadline" ]; then\n'
                '    echo "the admin kubeconfig did not appear within 10m" >&2; exit 1\n'
                "  fi\n"
                "  sleep 5\n"
                "done\n"
            ),
        ],
        "volumeMounts": [
            {"name": "kubeconfig", "mountPath": "/etc/kubernetes/kubeconfig", "readOnly": True}
        ],
    }


def _kubeconfig_volume(release: str) -> Object:
    return {
        "name": "kubeconfig",
        "secret": {"secretName": f"{release}-admin-kubeconfig", "optional": True},
    }


def _deployment(name: str, ns: str, labels: dict[str, str], account: str, pod: Object) -> Object:
    return _namespaced(
        "apps/v1",
        "Deployment",
        name,
        ns,
        {
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels | {"policy.cozystack.io/allow-to-apiserver": "true"}
                    },
                    "spec": {
                        "enableServiceLinks": False,
                        "serviceAccountName": account,
                        "tolerations": TOLERATIONS,
                    }
                    | pod,
                },
            }
        },
    )


def _rbac(out: Outcome, key: str, name: str, ns: str, rules: list[Object], account: str) -> None:
    out.add(f"{key}-serviceaccount", _namespaced("v1", "ServiceAccount", account, ns, {}))
    out.add(f"{key}-role", _namespaced(RBAC, "Role", name, ns, {"rules": rules}))
    out.add(
        f"{key}-rolebinding",
        _namespaced(
            RBAC,
            "RoleBinding",
            name,
            ns,
            {
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            },
        ),
    )


def _cluster_rbac(
    out: Outcome, key: str, name: str, account: str, ns: str, rules: list[Object]
) -> None:
    out.add(
        f"{key}-clusterrole",
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": meta(name), "rules": rules},
    )
    out.add(
        f"{key}-clusterrolebinding",
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": meta(name),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    )


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Object:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


# What the workloads beside each control plane may do. Crossplane must hold these
# permissions to grant them (package/rbac is generated from them).
AUTOSCALER_RULES: list[Object] = [
    _rule(
        ["cluster.x-k8s.io"],
        [
            "machinedeployments",
            "machinedeployments/scale",
            "machines",
            "machinesets",
            "machinepools",
        ],
        ["get", "list", "update", "watch"],
    ),
    _rule(
        ["infrastructure.cluster.x-k8s.io"],
        ["kubevirtmachinetemplates"],
        ["get", "list", "update", "watch"],
    ),
]

KCCM_RULES: list[Object] = [
    _rule(["kubevirt.io"], ["virtualmachines"], ["get", "watch", "list"]),
    _rule(["kubevirt.io"], ["virtualmachineinstances"], ["get", "watch", "list", "update"]),
    _rule([""], ["pods"], ["get", "list", "watch"]),
    _rule([""], ["services"], ["*"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], ["*"]),
    _rule([""], ["nodes"], ["get"]),
]

KCSI_RULES: list[Object] = [
    _rule(["cdi.kubevirt.io"], ["datavolumes"], ["get", "create", "delete"]),
    _rule(["kubevirt.io"], ["virtualmachineinstances", "virtualmachines"], ["list", "get"]),
    _rule(
        ["subresources.kubevirt.io"],
        ["virtualmachines/addvolume", "virtualmachines/removevolume"],
        ["update"],
    ),
    _rule(["snapshot.storage.k8s.io"], ["volumesnapshots"], ["get", "create", "delete"]),
    _rule([""], ["persistentvolumeclaims"], ["get", "patch"]),
    _rule(["cilium.io"], ["ciliumnetworkpolicies"], ["get", "create", "update", "delete"]),
]
KCCM_CLUSTER_RULES: list[Object] = [_rule([""], ["nodes"], ["get"])]
KCSI_CLUSTER_RULES: list[Object] = [_rule([""], ["persistentvolumes"], ["get"])]
ROLE_RULES = (AUTOSCALER_RULES, KCCM_RULES, KCCM_CLUSTER_RULES, KCSI_RULES, KCSI_CLUSTER_RULES)
BOUND_ROLES = ("extension-apiserver-authentication-reader",)
"""Roles that composed RoleBindings refer to without composing them."""


def workloads(out: Outcome, c: Cluster, spec: KubernetesSpec) -> None:
    """cluster-autoscaler, the KubeVirt cloud controller and the CSI controller, with their RBAC."""
    release, ns = c.release, c.namespace
    kubeconfig = "/etc/kubernetes/kubeconfig/super-admin.svc"
    mount = {"mountPath": "/etc/kubernetes/kubeconfig", "name": "kubeconfig", "readOnly": True}
    cloud_config = {"configMap": {"name": f"{release}-cloud-config"}, "name": "cloud-config"}

    account = f"{release}-cluster-autoscaler"
    _rbac(
        out,
        "autoscaler",
        account,
        ns,
        AUTOSCALER_RULES,
        account,
    )
    out.add(
        "autoscaler",
        _deployment(
            account,
            ns,
            {"app": account},
            account,
            {
                "initContainers": [_wait_for_kubeconfig(spec)],
                "containers": [
                    {
                        "name": "cluster-autoscaler",
                        "image": IMAGES["cluster-autoscaler"],
                        "command": ["/cluster-autoscaler"],
                        "args": [
                            "--cloud-provider=clusterapi",
                            "--enforce-node-group-min-size=true",
                            "--ignore-daemonsets-utilization=true",
                            "--ignore-mirror-pods-utilization=true",
                            "--scale-down-unneeded-time=30s",
                            "--scan-interval=25s",
                            f"--kubeconfig={kubeconfig}",
                            "--clusterapi-cloud-config-authoritative",
                            f"--node-group-auto-discovery=clusterapi:namespace={ns},clusterName={release}",
                        ],
                        "resources": SMALL,
                        "volumeMounts": [mount],
                    }
                ],
                "volumes": [cloud_config, _kubeconfig_volume(release)],
                "terminationGracePeriodSeconds": 10,
            },
        ),
    )

    account = f"{release}-kccm"
    _rbac(
        out,
        "kccm",
        account,
        ns,
        KCCM_RULES,
        account,
    )
    out.add(
        "kccm-authentication-reader",
        _namespaced(
            RBAC,
            "RoleBinding",
            f"{ns}-{release}-kccm",
            "kube-system",
            {
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "extension-apiserver-authentication-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            },
        ),
    )
    _cluster_rbac(out, "kccm", f"{ns}-{release}-kccm", account, ns, KCCM_CLUSTER_RULES)
    out.add(
        "kccm",
        _deployment(
            account,
            ns,
            {"k8s-app": account},
            account,
            {
                "initContainers": [_wait_for_kubeconfig(spec)],
                "containers": [
                    {
                        "name": "kubevirt-cloud-controller-manager",
                        "image": IMAGES["kubevirt-cloud-provider"],
                        "imagePullPolicy": "Always",
                        "command": ["/bin/kubevirt-cloud-controller-manager"],
                        "args": [
                            "--cloud-provider=kubevirt",
                            "--cloud-config=/etc/cloud/cloud-config",
                            f"--kubeconfig={kubeconfig}",
                            f"--cluster-name={release}",
                        ],
                        "resources": SMALL,
                        "volumeMounts": [
                            mount,
                            {"mountPath": "/etc/cloud", "name": "cloud-config", "readOnly": True},
                        ],
                    }
                ],
                "volumes": [cloud_config, _kubeconfig_volume(release)],
            },
        ),
    )

    account = f"{release}-kcsi"
    _rbac(
        out,
        "kcsi",
        account,
        ns,
        KCSI_RULES,
        account,
    )
    _cluster_rbac(out, "kcsi", f"{ns}-{release}-kcsi", account, ns, KCSI_CLUSTER_RULES)
    out.add(
        "kcsi",
        _deployment(
            f"{release}-kcsi-controller",
            ns,
            {"app": f"{release}-kcsi-driver"},
            account,
            {
                "priorityClassName": "system-cluster-critical",
                "initContainers": [_wait_for_kubeconfig(spec)],
                "containers": _csi_containers(release, kubeconfig),
                "volumes": [{"name": "socket-dir", "emptyDir": {}}, _kubeconfig_volume(release)],
            },
        ),
    )


def _csi_containers(release: str, kubeconfig: str) -> list[Object]:
    socket = {"name": "socket-dir", "mountPath": "/var/lib/csi/sockets/pluginproxy/"}
    csi_socket = {"mountPath": "/csi", "name": "socket-dir"}
    config = {"name": "kubeconfig", "mountPath": "/etc/kubernetes/kubeconfig", "readOnly": True}
    proxy_address = [{"name": "ADDRESS", "value": "/var/lib/csi/sockets/pluginproxy/csi.sock"}]

    def sidecar(
        name: str, image: str, args: list[str], mounts: list[Object], **extra: Any
    ) -> Object:
        return {
            "name": name,
            "image": image,
            "args": args,
            "volumeMounts": mounts,
            "resources": SMALL,
            "securityContext": DROP_ALL,
        } | extra

    return [
        sidecar(
            "csi-driver",
            IMAGES["kubevirt-csi-driver"],
            [
                "--endpoint=$(CSI_ENDPOINT)",
                "--infra-cluster-namespace=$(INFRACLUSTER_NAMESPACE)",
                "--infra-cluster-labels=$(INFRACLUSTER_LABELS)",
                "--run-node-service=false",
                "--v=5",
            ],
            [socket, config],
            imagePullPolicy="Always",
            ports=[{"name": "healthz", "containerPort": 10301, "protocol": "TCP"}],
            env=[
                {
                    "name": "CSI_ENDPOINT",
                    "value": "unix:///var/lib/csi/sockets/pluginproxy/csi.sock",
                },
                {
                    "name": "KUBE_NODE_NAME",
                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                },
                {
                    "name": "INFRACLUSTER_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
                {
                    "name": "INFRACLUSTER_LABELS",
                    "value": f"cluster.x-k8s.io/cluster-name={release}",
                },
                {
                    "name": "INFRA_STORAGE_CLASS_ENFORCEMENT",
                    "valueFrom": {
                        "configMapKeyRef": {
                            "name": "driver-config",
                            "key": "infraStorageClassEnforcement",
                            "optional": True,
                        }
                    },
                },
            ],
        ),
        sidecar(
            "csi-provisioner",
            "quay.io/openshift/origin-csi-external-provisioner:latest",
            [
                "--csi-address=$(ADDRESS)",
                "--default-fstype=ext4",
                f"--kubeconfig={kubeconfig}",
                "--v=5",
                "--timeout=3m",
                "--retry-interval-max=1m",
            ],
            [socket, config],
            env=proxy_address,
        ),
        sidecar(
            "csi-attacher",
            "quay.io/openshift/origin-csi-external-attacher:latest",
            [
                "--csi-address=$(ADDRESS)",
                f"--kubeconfig={kubeconfig}",
                "--v=5",
                "--timeout=3m",
                "--retry-interval-max=1m",
            ],
            [socket, config],
            env=proxy_address,
        ),
        sidecar(
            "csi-liveness-probe",
            "quay.io/openshift/origin-csi-livenessprobe:latest",
            ["--csi-address=/csi/csi.sock", "--probe-timeout=3s", "--health-port=10301"],
            [csi_socket],
        ),
        sidecar(
            "csi-snapshotter",
            "registry.k8s.io/sig-storage/csi-snapshotter:v8.3.0",
            [
                "--timeout=1m",
                "--csi-address=$(ADDRESS)",
                "--worker-threads=10",
                f"--kubeconfig={kubeconfig}",
            ],
            [csi_socket, config],
            imagePullPolicy="IfNotPresent",
            env=[{"name": "ADDRESS", "value": "/csi/csi.sock"}],
        ),
        sidecar(
            "snapshot-controller",
            "registry.k8s.io/sig-storage/snapshot-controller:v8.3.0",
            ["--worker-threads=10", f"--kubeconfig={kubeconfig}"],
            [config],
            imagePullPolicy="IfNotPresent",
        ),
        sidecar(
            "csi-resizer",
            "registry.k8s.io/sig-storage/csi-resizer:v1.13.1",
            [
                "-csi-address=/csi/csi.sock",
                f"-kubeconfig={kubeconfig}",
                "-v=5",
                "-timeout=3m",
                "-handle-volume-inuse-error=false",
            ],
            [csi_socket, config],
        ),
    ]


def ingress_exposure(out: Outcome, c: Cluster, spec: KubernetesSpec, ingress_class: str) -> None:
    """The tenant's ingress forwards the cluster's hosts to its ingress-nginx (Proxied)."""
    ingress = spec.addons.ingress_nginx
    if not (ingress.enabled and ingress.expose_method == "Proxied"):
        return
    release, ns = c.release, c.namespace
    labels = app_labels(c) | {"internal.cozystack.io/tenantresource": "true"}
    out.add(
        "ingress-nginx-service",
        _namespaced(
            "v1",
            "Service",
            f"{release}-ingress-nginx",
            ns,
            {
                "metadata": meta(f"{release}-ingress-nginx", ns, labels),
                "spec": {
                    "ports": [
                        {"appProtocol": "http", "name": "http", "port": 80, "targetPort": 30000},
                        {"appProtocol": "https", "name": "https", "port": 443, "targetPort": 30001},
                    ],
                    "selector": {
                        "cluster.x-k8s.io/cluster-name": release,
                        "node-role.kubernetes.io/ingress-nginx": "",
                    },
                },
            },
        ),
    )
    if not ingress.hosts:
        return
    backend = [
        {
            "path": "/",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": f"{release}-ingress-nginx", "port": {"number": port}}},
        }
        for port in (443, 80)
    ]
    body: Object = {"rules": [{"host": h, "http": {"paths": backend}} for h in ingress.hosts]}
    if ingress_class:
        body = {"ingressClassName": ingress_class} | body
    out.add(
        "ingress-nginx-ingress",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta(f"{release}-ingress-nginx", ns, labels)
            | {
                "annotations": {
                    "nginx.ingress.kubernetes.io/backend-protocol": "AUTO_HTTP",
                    "nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                    "nginx.ingress.kubernetes.io/ssl-redirect": "false",
                }
            },
            "spec": body,
        },
    )


def oidc(
    out: Outcome, c: Cluster, spec: KubernetesSpec, host: str, kubernetes_ca: str | None
) -> str | None:
    """The AuthenticationConfiguration Secret the API server mounts, and the OIDC kubeconfig.

    Returns the Secret's name when OIDC is on.
    """
    mode, release, ns = spec.oidc.mode, c.release, c.namespace
    if mode == "None":
        return None
    if mode == "CustomConfig" and spec.oidc.custom_config.secret_ref.name:
        return spec.oidc.custom_config.secret_ref.name
    name = f"{release}-oidc-authn-config"
    if mode == "CustomConfig":
        config = spec.oidc.custom_config.config
    else:
        issuer = out.ctx.config.oidc_issuer_url
        if not issuer:
            raise ComposeError(
                "spec.oidc.mode", "System needs the platform's OIDC issuer (input oidcIssuerUrl)"
            )
        client_id = f"{ns}-{release}"
        groups = ", ".join(f'"{ns}-{lvl}"' for lvl in ("view", "use", "admin", "super-admin"))
        config = to_yaml(
            {
                "apiVersion": "apiserver.config.k8s.io/v1beta1",
                "kind": "AuthenticationConfiguration",
                "jwt": [
                    {
                        "issuer": {"url": issuer, "audiences": [client_id]},
                        "claimValidationRules": [
                            {
                                "expression": "has(claims.groups) && "
                                f"dyn(claims.groups).exists(g, g in [{groups}])",
                                "message": f"not a member of a {ns}-<level> group",
                            }
                        ],
                        "claimMappings": {
                            "username": {"claim": "email", "prefix": ""},
                            "groups": {"claim": "groups", "prefix": ""},
                        },
                    }
                ],
            },
            sort_keys=False,
        )
        if kubernetes_ca:
            kubeconfig = {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": release,
                "clusters": [
                    {
                        "name": release,
                        "cluster": {
                            "server": f"https://{host}",
                            "certificate-authority-data": kubernetes_ca,
                        },
                    }
                ],
                "users": [
                    {
                        "name": f"{release}-oidc",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": "kubectl",
                                "args": [
                                    "oidc-login",
                                    "get-token",
                                    f"--oidc-issuer-url={issuer}",
                                    f"--oidc-client-id={client_id}",
                                    "--oidc-extra-scope=email",
                                    "--oidc-extra-scope=groups",
                                    "--oidc-use-pkce",
                                ],
                                "interactiveMode": "IfAvailable",
                                "provideClusterInfo": True,
                            }
                        },
                    }
                ],
                "contexts": [
                    {"name": release, "context": {"cluster": release, "user": f"{release}-oidc"}}
                ],
            }
            out.add(
                "oidc-kubeconfig",
                secrets.secret(
                    f"{release}-oidc-kubeconfig",
                    ns,
                    {"kubeconfig": to_yaml(kubeconfig, sort_keys=False)},
                ),
            )
    out.add("oidc-authn-config", secrets.secret(name, ns, {"config.yaml": config}))
    return name


def decode(value: str | None) -> str:
    return base64.b64decode(value).decode() if value else ""
