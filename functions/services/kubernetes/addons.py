"""Addons installed into the tenant cluster as Flux HelmReleases (§7.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.api.kubernetes import KubernetesSpec
from functions.domain import secrets
from functions.domain.errors import ComposeError
from functions.domain.text import to_yaml
from functions.services.base import Object, Outcome, copied, meta
from functions.services.kubernetes.workers import TENANT_DNS_DOMAIN, Cluster

HELM = "helm.toolkit.fluxcd.io/v2"
LINSTOR = "linstor.csi.linbit.com"
# The tenant StorageClass whose volumes go on the claim's storageClass.
KUBEVIRT_CLASS = "kubevirt"


def merge(base: Any, override: Any) -> Any:
    """Sprig's mergeOverwrite: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value) if key in base else copied(value)
        return out
    return copied(override)


@dataclass
class Release:
    """One addon: a HelmRelease of a chart into a namespace of the tenant cluster."""

    suffix: str
    chart: str
    release_name: str
    target: str
    depends: list[str] = field(default_factory=list)
    values: Object | None = None
    retry_on_failure: bool = False
    create_namespace: bool = True
    values_from: list[Object] = field(default_factory=list)
    # A chart outside the addon chart source (cozyplane's own tenant-bootstrap chart).
    chart_ref: Object | None = None


def _helm_release(out: Outcome, c: Cluster, r: Release) -> Object:
    charts = out.ctx.config.addon_charts
    policy: Object = {"remediation": {"retries": -1}}
    if r.retry_on_failure:
        policy["strategy"] = {"name": "RetryOnFailure", "retryInterval": "30s"}
    install = ({"createNamespace": True} if r.create_namespace else {}) | policy
    spec: Object = {
        "releaseName": r.release_name,
        "chartRef": r.chart_ref
        or {
            "kind": charts.kind,
            "name": f"{charts.name_prefix}{r.chart}",
            "namespace": charts.namespace,
        },
        "kubeConfig": {
            "secretRef": {"name": f"{c.release}-admin-kubeconfig", "key": "super-admin.svc"}
        },
        "targetNamespace": r.target,
        "storageNamespace": r.target,
        "interval": "5m",
        "timeout": "10m",
        "install": install,
        "upgrade": copied(policy),
    }
    if r.values:
        spec["values"] = r.values
    if r.values_from:
        spec["valuesFrom"] = r.values_from
    if r.depends:
        spec["dependsOn"] = [
            {"name": f"{c.release}-{d}", "namespace": c.namespace} for d in r.depends
        ]
    return {
        "apiVersion": HELM,
        "kind": "HelmRelease",
        "metadata": meta(
            f"{c.release}-{r.suffix}",
            c.namespace,
            {
                "cozystack.io/repository": "system",
                "cozystack.io/target-cluster-name": c.release,
                "sharding.fluxcd.io/key": "tenants",
            },
        ),
        "spec": spec,
    }


def infra_class(spec: KubernetesSpec) -> str:
    """The infra StorageClass behind the tenant's own `kubevirt` class."""
    return spec.storage_class or "replicated"


def storage_classes(spec: KubernetesSpec, classes: list[Object]) -> Object:
    """One tenant StorageClass per infra LINSTOR class that allows remote access (§5)."""
    default = infra_class(spec)
    out: dict[str, Object] = {}
    for sc in sorted(classes, key=lambda s: str(s.get("metadata", {}).get("name"))):
        params = sc.get("parameters") or {}
        remote = params.get(f"{LINSTOR}/allowRemoteVolumeAccess", "true")
        name = sc.get("metadata", {}).get("name")
        # A nameless class is no class the tenant's volumes could be provisioned from.
        if name and sc.get("provisioner") == LINSTOR and remote != "false":
            out[name] = {"infraStorageClass": name, "default": False}
    if not out:
        out["replicated"] = {"infraStorageClass": "replicated", "default": False}
    chosen = default if default in out else "replicated" if "replicated" in out else sorted(out)[0]
    out.setdefault(KUBEVIRT_CLASS, {"infraStorageClass": default, "default": False})
    out[chosen]["default"] = True
    return dict(sorted(out.items()))


def releases(
    spec: KubernetesSpec, c: Cluster, *, monitoring: str, classes: list[Object]
) -> list[Release]:
    a = spec.addons
    gateway = a.gateway_api.enabled
    domain = c.cluster_domain
    cilium: Object = {
        "k8sServiceHost": f"{c.release}.{c.namespace}.svc",
        "k8sServicePort": 6443,
        "routingMode": "tunnel",
        "MTU": 1350,
        "enableIPv4Masquerade": True,
        "ipv4NativeRoutingCIDR": "",
    }
    if gateway:
        cilium |= {"gatewayAPI": {"enabled": True, "enableAlpn": True}, "envoy": {"enabled": True}}
    out = [
        Release(
            "cilium",
            "cilium",
            "cilium",
            "cozy-cilium",
            ["gateway-api-crds"] if gateway else [],
            merge({"cilium": cilium}, a.cilium.values_override),
            retry_on_failure=True,
        ),
        Release(
            "coredns",
            "coredns",
            "coredns",
            "kube-system",
            ["cilium"],
            merge({"coredns": {"service": {"clusterIP": "10.95.0.10"}}}, a.coredns.values_override),
            create_namespace=False,
        ),
        Release("vsnap-crd", "volumesnapshot-crd", "vsnap-crd", "cozy-vsnap-crd"),
        Release(
            "csi",
            "kubevirt-csi-node",
            "csi",
            "cozy-csi",
            ["vsnap-crd", "cilium"],
            {"storageClasses": storage_classes(spec, classes)},
            retry_on_failure=True,
        ),
        Release(
            "prometheus-operator-crds",
            "prometheus-operator-crds",
            "prometheus-operator-crds",
            "cozy-victoria-metrics-operator",
        ),
        Release(
            "metrics-server",
            "metrics-server",
            "metrics-server",
            "cozy-monitoring",
            ["cilium", "prometheus-operator-crds"],
        ),
    ]
    if a.cert_manager.enabled:
        crds = Release(
            "cert-manager-crds", "cert-manager-crds", "cert-manager-crds", "cozy-cert-manager-crds"
        )
        if a.cert_manager.values_override:
            crds.values_from = [
                {
                    "kind": "Secret",
                    "name": f"{c.release}-cert-manager-crds-values-override",
                    "valuesKey": "values",
                }
            ]
        defaults: Object = {}
        if gateway:
            defaults = {
                "cert-manager": {
                    "config": {
                        "apiVersion": "controller.config.cert-manager.io/v1alpha1",
                        "kind": "ControllerConfiguration",
                        "enableGatewayAPI": True,
                    }
                }
            }
        out += [
            crds,
            Release(
                "cert-manager",
                "cert-manager",
                "cert-manager",
                "cozy-cert-manager",
                ["cilium", "cert-manager-crds"],
                merge(defaults, a.cert_manager.values_override),
            ),
        ]
    if gateway:
        out.append(
            Release(
                "gateway-api-crds",
                "gateway-api-crds",
                "gateway-api-crds",
                "kube-system",
                create_namespace=False,
            )
        )
    if a.ingress_nginx.enabled:
        controller: Object = {"kind": "DaemonSet"}
        if a.ingress_nginx.expose_method == "Proxied":
            controller["service"] = {
                "enabled": True,
                "type": "NodePort",
                "nodePorts": {"http": 30000, "https": 30001},
            }
        if not a.cert_manager.enabled:
            controller["admissionWebhooks"] = {"certManager": {"enabled": False}}
        values: Object = {
            "ingress-nginx": {
                "fullnameOverride": "ingress-nginx",
                "controller": controller,
                "nodeSelector": {"node-role.kubernetes.io/ingress-nginx": ""},
            }
        }
        out.append(
            Release(
                "ingress-nginx",
                "ingress-nginx",
                "ingress-nginx",
                "cozy-ingress-nginx",
                ["cilium"],
                merge(values, a.ingress_nginx.values_override),
            )
        )
    if a.gpu_operator.enabled:
        operator: Object = {
            "driver": {"kernelModuleConfig": {"name": "nvidia-kernel-module-params"}}
        }
        if a.hami.enabled:
            operator["devicePlugin"] = {"enabled": False}
        values = {"kernelModuleConfig": {"create": True}, "gpu-operator": operator}
        out.append(
            Release(
                "gpu-operator",
                "gpu-operator",
                "gpu-operator",
                "cozy-gpu-operator",
                ["cilium"],
                merge(values, a.gpu_operator.values_override),
            )
        )
    if a.hami.enabled:
        out.append(
            Release(
                "hami",
                "hami",
                "hami",
                "cozy-hami",
                ["cilium", "gpu-operator"],
                a.hami.values_override or None,
            )
        )
    if a.monitoring_agents.enabled:
        out += _monitoring(spec, c, monitoring, domain)
    if a.velero.enabled:
        out.append(
            Release(
                "velero",
                "velero",
                "velero",
                "cozy-velero",
                ["cilium"],
                a.velero.values_override or None,
            )
        )
    if a.ouroboros.enabled:
        override = a.ouroboros.values_override
        asked = (
            override.get("ouroboros", {}).get("controller", {}).get("gatewayApi", {}).get("enabled")
        )
        if str(asked).lower() in ("true", "1", "yes", "on", "y") and not gateway:
            raise ComposeError(
                "spec.addons.ouroboros.valuesOverride",
                "ouroboros.controller.gatewayApi.enabled needs addons.gatewayAPI.enabled",
            )
        values = {
            "ouroboros": {
                "controller": {
                    "mode": "coredns-import",
                    "gatewayApi": {"enabled": gateway},
                    "clusterDomain": TENANT_DNS_DOMAIN,
                }
            }
        }
        depends = ["cilium", "coredns", "ingress-nginx"] + (["gateway-api-crds"] if gateway else [])
        out.append(
            Release(
                "ouroboros",
                "ouroboros",
                "ouroboros",
                "cozy-ouroboros",
                depends,
                merge(values, override),
            )
        )
    return out


def _monitoring(spec: KubernetesSpec, c: Cluster, monitoring: str, domain: str) -> list[Release]:
    """Agents shipping metrics and logs to the tenant's monitoring, and the VPA reading them."""
    release, ns = c.release, c.namespace
    filters = (
        "\n".join(
            [
                "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n"
                "    Keep_Log On\n"
                "    K8S-Logging.Parser On\n    K8S-Logging.Exclude On",
                "[FILTER]\n    Name nest\n    Match *\n    Wildcard pod_name\n    Operation lift\n"
                "    Nested_under kubernetes\n    Add_prefix kubernetes_",
                f"[FILTER]\n    Name modify\n    Match *\n    Add tenant {ns}",
                f"[FILTER]\n    Name modify\n    Match *\n    Add cluster {release}",
            ]
        )
        + "\n"
    )
    outputs = (
        "[OUTPUT]\n    Name http\n    Match kube.*\n"
        f"    Host vlinsert-generic.{monitoring}.svc.{domain}\n    port 9481\n    compress gzip\n"
        "    uri /insert/jsonline?_stream_fields=stream,kubernetes_pod_name,"
        "kubernetes_container_name,"
        "kubernetes_namespace_name&_msg_field=log&_time_field=date\n"
        "    format json_lines\n    json_date_format iso8601\n"
        "    header AccountID 0\n    header ProjectID 0\n"
    )
    agents = {
        "vmagent": {
            "externalLabels": {"cluster": release, "tenant": ns},
            "remoteWrite": {
                "url": f"http://vminsert-shortterm.{monitoring}.svc.{domain}:8480/insert/0/prometheus"
            },
        },
        "fluent-bit": {
            "readinessProbe": {"httpGet": {"path": "/"}},
            "daemonSetVolumes": [
                {"name": "varlog", "hostPath": {"path": "/var/log"}},
                {
                    "name": "varlibdockercontainers",
                    "hostPath": {"path": "/var/lib/docker/containers"},
                },
            ],
            "daemonSetVolumeMounts": [
                {"name": "varlog", "mountPath": "/var/log"},
                {
                    "name": "varlibdockercontainers",
                    "mountPath": "/var/lib/docker/containers",
                    "readOnly": True,
                },
            ],
            "config": {"outputs": outputs, "filters": filters},
        },
    }
    selector = (
        f'kube_pod_labels{{job="kube-state-metrics", tenant="{ns}", cluster="{release}"}}[8d]'
    )
    vpa = {
        "vpaForVPA": False,
        "vertical-pod-autoscaler": {
            "recommender": {
                "extraArgs": {
                    "container-name-label": "container",
                    "container-namespace-label": "namespace",
                    "container-pod-name-label": "pod",
                    "storage": "prometheus",
                    "memory-saver": True,
                    "pod-label-prefix": "label_",
                    "metric-for-pod-labels": selector,
                    "pod-name-label": "pod",
                    "pod-namespace-label": "namespace",
                    "prometheus-address": f"http://vmselect-shortterm.{monitoring}.svc.{domain}:8481/select/0/prometheus/",
                    "prometheus-cadvisor-job-name": "cadvisor",
                },
                "resources": {
                    "limits": {"memory": "1600Mi"},
                    "requests": {"cpu": "100m", "memory": "1600Mi"},
                },
            }
        },
    }
    cert_crds = ["cert-manager-crds"] if spec.addons.cert_manager.enabled else []
    return [
        Release(
            "cozy-victoria-metrics-operator",
            "victoria-metrics-operator",
            "cozy-victoria-metrics-operator",
            "cozy-victoria-metrics-operator",
            ["cilium", *cert_crds],
        ),
        Release(
            "vertical-pod-autoscaler-crds",
            "vertical-pod-autoscaler-crds",
            "vertical-pod-autoscaler-crds",
            "cozy-vertical-pod-autoscaler-crds",
        ),
        Release(
            "monitoring-agents",
            "monitoring-agents",
            "cozy-monitoring-agents",
            "cozy-monitoring",
            [
                "cozy-victoria-metrics-operator",
                "vertical-pod-autoscaler-crds",
                "prometheus-operator-crds",
                "metrics-server",
            ],
            merge(agents, spec.addons.monitoring_agents.values_override),
        ),
        Release(
            "vertical-pod-autoscaler",
            "vertical-pod-autoscaler",
            "vertical-pod-autoscaler",
            "cozy-vertical-pod-autoscaler",
            ["monitoring-agents"],
            merge(vpa, spec.addons.vertical_pod_autoscaler.values_override),
        ),
    ]


def compose_addons(
    out: Outcome,
    spec: KubernetesSpec,
    c: Cluster,
    *,
    monitoring: str,
    classes: list[Object],
    bootstrap_token: dict[str, str] | None,
) -> None:
    for release in releases(spec, c, monitoring=monitoring, classes=classes):
        out.add(f"addon-{release.suffix}", _helm_release(out, c, release))
    if spec.addons.cert_manager.enabled and spec.addons.cert_manager.values_override:
        text = to_yaml(spec.addons.cert_manager.values_override, sort_keys=True)
        out.add(
            "addon-cert-manager-crds-values",
            secrets.secret(
                f"{c.release}-cert-manager-crds-values-override", c.namespace, {"values": text}
            ),
        )
    users = [u.model_dump() for u in spec.oidc.users] if spec.oidc.mode != "None" else []
    if bootstrap_token is None and not users:
        return
    # Objects inside the tenant cluster that cozystack applies with kubectl Jobs.
    values: Object = {"oidcUsers": users, "clusterName": c.release}
    values_from: list[Object] = []
    if bootstrap_token is not None:
        values_from = [
            {
                "kind": "Secret",
                "name": f"{c.release}-talos-secrets",
                "valuesKey": key,
                "targetPath": path,
            }
            for key, path in (
                ("bootstrapTokenId", "bootstrapToken.id"),
                ("bootstrapTokenSecret", "bootstrapToken.secret"),
            )
        ]
    out.add(
        "addon-tenant-bootstrap",
        _helm_release(
            out,
            c,
            Release(
                "tenant-bootstrap",
                "cozyplane-tenant-bootstrap",
                "cozyplane-tenant-bootstrap",
                "kube-system",
                values=values,
                create_namespace=False,
                values_from=values_from,
                retry_on_failure=True,
                chart_ref=out.ctx.config.bootstrap_chart.model_dump(),
            ),
        ),
    )
