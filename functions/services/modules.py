"""Tenant modules: monitoring and ingress, composed in the tenant namespace (reference §6.4)."""

from __future__ import annotations

from functions.domain import presets, secrets
from functions.domain.text import to_yaml
from functions.services.base import Object, Outcome, meta

VM = "operator.victoriametrics.com/v1beta1"
VL = "operator.victoriametrics.com/v1"
CNPG = "postgresql.cnpg.io/v1"
HELM = "helm.toolkit.fluxcd.io/v2"
ROOT = "tenant-root"

# Cozystack's monitoring defaults: (name, retention, deduplication interval).
METRICS_STORAGES = (("shortterm", "3d", "15s"), ("longterm", "14d", "5m"))
METRICS_SIZE = "10Gi"
LOGS_STORAGE = "generic"
LOGS_RETENTION = "1"
LOGS_SIZE = "10Gi"
LOGS_CLASS = "replicated"
VMSELECT_PORT = 8481
VLSELECT_PORT = 9471

GRAFANA_IMAGE = (
    "ghcr.io/cozystack/cozystack/grafana:v1.6.2"
    "@sha256:63c90beb8bf31f49820f529c74ebeb9e8be10acb02c45ac517844aecdfd1a4f2"
)
GRAFANA_DB_IMAGE = "ghcr.io/cloudnative-pg/postgresql:17.7-standard-trixie"
GRAFANA_DB_SIZE = "10Gi"
GRAFANA_PORT = 3000
GRAFANA_LABELS = {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "grafana"}
GRAFANA_RESOURCES = {
    "limits": {"cpu": "1", "memory": "1Gi"},
    "requests": {"cpu": "100m", "memory": "256Mi"},
}
GRAFANA_DB_RESOURCES = {
    "limits": {"cpu": "1", "memory": "2048Mi"},
    "requests": {"cpu": "100m", "memory": "512Mi"},
}
DATASOURCES_DIR = "/etc/grafana/provisioning/datasources"
ALLOW_TO_APISERVER = {"policy.cozystack.io/allow-to-apiserver": "true"}

INGRESS_REPLICAS = 2
INGRESS_PRESET = "t1.micro"
INGRESS_POD_LABELS = {
    "app.kubernetes.io/component": "controller",
    "app.kubernetes.io/name": "ingress-nginx",
}


def _app_labels(kind: str, name: str) -> dict[str, str]:
    return {
        "apps.cozystack.io/application.group": "apps.cozystack.io",
        "apps.cozystack.io/application.kind": kind,
        "apps.cozystack.io/application.name": name,
    }


def _claim_template(size: str, storage_class: str) -> Object:
    spec: Object = {"resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "volumeClaimTemplate": {
            # vm-operator copies claim-template labels onto the PVCs, so they stay findable.
            "metadata": {"labels": {"apps.cozystack.io/application.name": "monitoring"}},
            "spec": spec,
        }
    }


def compose_monitoring(out: Outcome, ns: str, host: str, ingress_class: str) -> None:
    """VictoriaMetrics and VictoriaLogs storages, the agent, and Grafana on its own database."""
    labels = {"managedMetadata": {"labels": _app_labels("Monitoring", "monitoring")}}
    for name, retention, dedup in METRICS_STORAGES:
        out.add(
            f"vmcluster-{name}",
            {
                "apiVersion": VM,
                "kind": "VMCluster",
                "metadata": meta(name, ns),
                "spec": labels
                | {
                    "replicationFactor": 2,
                    "retentionPeriod": retention,
                    "vminsert": {
                        "replicaCount": 2,
                        # KubeVirt and friends carry more labels than the default 30.
                        "extraArgs": {"maxLabelsPerTimeseries": "60"},
                    },
                    "vmselect": {
                        "replicaCount": 2,
                        "extraArgs": {
                            "search.maxUniqueTimeseries": "600000",
                            "dedup.minScrapeInterval": dedup,
                        },
                        "cacheMountPath": "/select-cache",
                        "storage": _claim_template("2Gi", ""),
                    },
                    "vmstorage": {
                        "replicaCount": 2,
                        "storage": _claim_template(METRICS_SIZE, ""),
                        "storageDataPath": "/vm-data",
                    },
                },
            },
        )
    out.add(
        "vlcluster",
        {
            "apiVersion": VL,
            "kind": "VLCluster",
            "metadata": meta(LOGS_STORAGE, ns),
            "spec": labels
            | {
                "vlinsert": {"replicaCount": 2},
                "vlselect": {"replicaCount": 2},
                "vlstorage": {
                    "replicaCount": 2,
                    "retentionPeriod": LOGS_RETENTION,
                    "storage": _claim_template(LOGS_SIZE, LOGS_CLASS),
                },
            },
        },
    )
    if ns != ROOT:
        # The root's metrics are the platform's own agent's job, as in Cozystack.
        selector = {"matchLabels": {"namespace.cozystack.io/monitoring": ns}}
        out.add(
            "vmagent",
            {
                "apiVersion": VM,
                "kind": "VMAgent",
                "metadata": meta("vmagent", ns),
                "spec": {
                    "podMetadata": {"labels": ALLOW_TO_APISERVER},
                    "shardCount": 1,
                    "externalLabels": {"cluster": "cozystack", "tenant": ns},
                    "extraArgs": {
                        "promscrape.maxScrapeSize": "32MB",
                        "promscrape.streamParse": "true",
                    },
                    "remoteWrite": [
                        {"url": f"http://vminsert-{name}:8480/insert/0/prometheus"}
                        for name, _, _ in METRICS_STORAGES
                    ],
                    "scrapeInterval": "30s",
                    "selectAllByDefault": False,
                    "podScrapeNamespaceSelector": selector,
                    "serviceScrapeNamespaceSelector": selector,
                },
            },
        )
    _grafana(out, ns, host, ingress_class)


def _grafana(out: Outcome, ns: str, host: str, ingress_class: str) -> None:
    observed = secrets.decoded(out.ctx.observed.data("grafana-admin-password"))
    password = secrets.stable(None, observed.get("password"), generate=out.ctx.passwords, length=32)
    out.add(
        "grafana-admin-password",
        secrets.secret(
            "grafana-admin-password",
            ns,
            {"user": observed.get("user") or "admin", "password": password},
        ),
    )
    # Keep the image an existing database runs: CloudNativePG upgrades majors only by import.
    db = out.ctx.observed.get("grafana-db") or {}
    out.add(
        "grafana-db",
        {
            "apiVersion": CNPG,
            "kind": "Cluster",
            "metadata": meta("grafana-db", ns),
            "spec": {
                "instances": 2,
                "imageName": db.get("spec", {}).get("imageName") or GRAFANA_DB_IMAGE,
                "storage": {"size": GRAFANA_DB_SIZE},
                "monitoring": {"enablePodMonitor": True},
                "resources": GRAFANA_DB_RESOURCES,
                "inheritedMetadata": {"labels": ALLOW_TO_APISERVER},
            },
        },
    )
    datasources = [
        {
            "name": f"vm-{name}",
            "type": "prometheus",
            "access": "proxy",
            "url": f"http://vmselect-{name}.{ns}.svc:{VMSELECT_PORT}/select/0/prometheus/",
            "isDefault": i == 0,
            "jsonData": {"tlsSkipVerify": True, "timeInterval": "30s"},
            "editable": True,
        }
        for i, (name, _, _) in enumerate(METRICS_STORAGES)
    ] + [
        {
            "name": f"vlogs-{LOGS_STORAGE}",
            "type": "victoriametrics-logs-datasource",
            "access": "proxy",
            "url": f"http://vlselect-{LOGS_STORAGE}.{ns}.svc:{VLSELECT_PORT}",
        }
    ]
    out.add(
        "grafana-datasources",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("grafana-datasources", ns),
            "data": {
                "datasources.yaml": to_yaml(
                    {"apiVersion": 1, "datasources": datasources}, sort_keys=True
                )
            },
        },
    )
    grafana_host = f"grafana.{host}" if host else ""

    def secret_env(name: str, secret: str, key: str) -> Object:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env: list[Object] = [
        {"name": "GF_LOG_MODE", "value": "console"},
        {"name": "GF_PATHS_PLUGINS", "value": "/var/lib/grafana-plugins"},
        {
            "name": "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS",
            "value": "victoriametrics-logs-datasource",
        },
        {"name": "GF_DATABASE_TYPE", "value": "postgres"},
        {"name": "GF_DATABASE_HOST", "value": "grafana-db-rw:5432"},
        {"name": "GF_DATABASE_NAME", "value": "app"},
        {"name": "GF_DATABASE_USER", "value": "app"},
        secret_env("GF_DATABASE_PASSWORD", "grafana-db-app", "password"),
        secret_env("GF_SECURITY_ADMIN_USER", "grafana-admin-password", "user"),
        secret_env("GF_SECURITY_ADMIN_PASSWORD", "grafana-admin-password", "password"),
    ]
    if grafana_host:
        env.append({"name": "GF_SERVER_ROOT_URL", "value": f"https://{grafana_host}"})
    out.add(
        "grafana",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("grafana", ns, GRAFANA_LABELS),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": GRAFANA_LABELS},
                "template": {
                    "metadata": {"labels": GRAFANA_LABELS},
                    "spec": {
                        "containers": [
                            {
                                "name": "grafana",
                                "image": GRAFANA_IMAGE,
                                "ports": [
                                    {
                                        "name": "http",
                                        "containerPort": GRAFANA_PORT,
                                        "protocol": "TCP",
                                    }
                                ],
                                "env": env,
                                "resources": GRAFANA_RESOURCES,
                                "readinessProbe": {
                                    "httpGet": {"path": "/api/health", "port": GRAFANA_PORT},
                                    "failureThreshold": 3,
                                },
                                "securityContext": {"allowPrivilegeEscalation": False},
                                "volumeMounts": [
                                    {
                                        "name": "datasources",
                                        "mountPath": DATASOURCES_DIR,
                                        "readOnly": True,
                                    }
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "datasources", "configMap": {"name": "grafana-datasources"}}
                        ],
                    },
                },
            },
        },
    )
    out.add(
        "grafana-service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("grafana-service", ns),
            "spec": {
                "selector": GRAFANA_LABELS,
                "ports": [
                    {
                        "name": "http",
                        "port": GRAFANA_PORT,
                        "targetPort": GRAFANA_PORT,
                        "protocol": "TCP",
                    }
                ],
            },
        },
    )
    if grafana_host and ingress_class:
        issuer = out.ctx.config.cluster_issuer
        out.add(
            "grafana-ingress",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta("grafana-ingress", ns)
                | {
                    "annotations": {
                        "acme.cert-manager.io/http01-ingress-ingressclassname": ingress_class,
                        "cert-manager.io/cluster-issuer": issuer,
                    }
                },
                "spec": {
                    "ingressClassName": ingress_class,
                    "rules": [
                        {
                            "host": grafana_host,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": "grafana-service",
                                                "port": {"number": GRAFANA_PORT},
                                            }
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                    "tls": [{"hosts": [grafana_host], "secretName": "grafana-ingress-tls"}],
                },
            },
        )


def compose_ingress(out: Outcome, ns: str) -> None:
    """An ingress-nginx controller of the tenant's own, its IngressClass named after `ns`."""
    config = out.ctx.config
    publishing = ns == config.expose_ingress
    service: Object = {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    if publishing and config.expose_external_ips:
        service = {
            "type": "ClusterIP",
            "externalTrafficPolicy": "Cluster",
            "externalIPs": list(config.expose_external_ips),
        }
    controller: Object = {
        "replicaCount": INGRESS_REPLICAS,
        "ingressClass": ns,
        "resources": presets.resources(INGRESS_PRESET, {}, config.ratios),
        "ingressClassResource": {"name": ns, "controllerValue": f"k8s.io/ingress-nginx-{ns}"},
        "podLabels": {"cozystack.io/service": "ingress"} | ALLOW_TO_APISERVER,
        "service": service,
    }
    if ns != ROOT:
        # Only the root's controller validates Ingresses through its admission webhook.
        controller["admissionWebhooks"] = {"enabled": False}
    chart = config.ingress_chart
    out.add(
        "ingress-nginx",
        {
            "apiVersion": HELM,
            "kind": "HelmRelease",
            "metadata": meta("ingress-nginx-system", ns, {"sharding.fluxcd.io/key": "tenants"}),
            "spec": {
                "chartRef": {"kind": chart.kind, "name": chart.name, "namespace": chart.namespace},
                "interval": "5m",
                "timeout": "10m",
                "install": {"remediation": {"retries": -1}},
                "upgrade": {"remediation": {"retries": -1}},
                "values": {
                    "ingress-nginx": {
                        "fullnameOverride": f"{ns.removeprefix('tenant-')}-ingress",
                        "controller": controller,
                    }
                },
            },
        },
    )
    relabel = [
        {"replacement": "nginx-ingress-controller", "targetLabel": "job"},
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
    ]
    for name, port, extra in (
        ("nginx-ingress-controller", "metrics", []),
        (
            "nginx-ingress-controller-detailed",
            "metrics2",
            [
                {
                    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                    "targetLabel": "controller",
                }
            ],
        ),
    ):
        out.add(
            f"scrape-{name}",
            {
                "apiVersion": VM,
                "kind": "VMPodScrape",
                "metadata": meta(name, ns),
                "spec": {
                    "jobLabel": "jobLabel",
                    "namespaceSelector": {"matchNames": [ns]},
                    "podMetricsEndpoints": [
                        {
                            "port": port,
                            "honorLabels": True,
                            "interval": "30s",
                            "relabelConfigs": [
                                *relabel,
                                *extra,
                                {"targetLabel": "tier", "replacement": "cluster"},
                            ],
                        }
                    ],
                    "selector": {"matchLabels": INGRESS_POD_LABELS},
                },
            },
        )
