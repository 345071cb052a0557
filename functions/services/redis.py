"""Redis with Sentinel on the redis-operator (freshworks fork of spotahome's), reference §10."""

from __future__ import annotations

from functions.api.redis import RedisSpec, RedisStatus, RedisVersion
from functions.domain import presets, secrets
from functions.domain.addresses import load_balancer_address
from functions.domain.storage import guard_volume
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta

IMAGES: dict[RedisVersion, str] = {"v8": "redis:8.4.0", "v7": "redis:7.4.7"}
# Pinned apart from the data pods, as Cozystack does, so Sentinels never move by surprise.
SENTINEL_IMAGE = "redis:6.2.6-alpine"
SENTINELS = 3
EXPORTER_IMAGE = "oliver006/redis_exporter:v1.55.0-alpine"
PASSWORD_LENGTH = 32
PORT = 6379
SENTINEL_PORT = 26379
METRICS_PORT = 9121
# The operator reconciles only RedisFailovers of its operator group (OPERATOR_GROUP_ID).
OPERATOR_GROUP = {"redis-failover.freshworks.com/operator-group": "cozystack"}
VOLUME_NAME = "redisfailover-persistent-data"
STATEFULSET = "statefulset"
DEPLOYMENT = "deployment"


def compose(spec: RedisSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XRedis is created through a Redis claim")
    release = f"redis-{name}"
    _guard_storage(spec, ctx.observed.get("failover"))
    if not spec.size and spec.storage_class:
        out.warn("storageClass has no effect: size is empty, so there is no volume")

    if spec.auth_enabled:
        observed = secrets.decoded_value(ctx.observed.data("auth"), "password")
        password = secrets.stable(None, observed, generate=ctx.passwords, length=PASSWORD_LENGTH)
        out.add("auth", secrets.secret(f"{release}-auth", ns, {"password": password}))

    resources = presets.resources(
        spec.resources_preset, spec.resources.overrides(), ctx.config.ratios
    )
    redis: Object = {
        "image": IMAGES[spec.version],
        "resources": resources,
        "replicas": spec.replicas,
        "exporter": {
            "enabled": True,
            "image": EXPORTER_IMAGE,
            "args": ["--web.telemetry-path", "/metrics"],
            "env": [{"name": "REDIS_EXPORTER_LOG_FORMAT", "value": "txt"}],
        },
        "customConfig": ["tcp-keepalive 0", "loglevel notice"],
    }
    if spec.size:
        claim: Object = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.size}},
        }
        if spec.storage_class:
            claim["storageClassName"] = spec.storage_class
        redis["storage"] = {
            "persistentVolumeClaim": {
                "metadata": {
                    "name": VOLUME_NAME,
                    "labels": {
                        "app.kubernetes.io/component": "redis",
                        "app.kubernetes.io/instance": release,
                    },
                },
                "spec": claim,
            }
        }
    else:
        redis["customConfig"] += ["appendonly no", 'save ""']
    failover_spec: Object = {
        "sentinel": {"image": SENTINEL_IMAGE, "replicas": SENTINELS, "resources": resources},
        "redis": redis,
    }
    if spec.auth_enabled:
        failover_spec["auth"] = {"secretPath": f"{release}-auth"}
    out.add(
        "failover",
        {
            "apiVersion": "databases.spotahome.com/v1",
            "kind": "RedisFailover",
            "metadata": meta(release, ns, {"app.kubernetes.io/instance": release} | OPERATOR_GROUP),
            "spec": failover_spec,
        },
    )

    pods = {
        "app.kubernetes.io/component": "redis",
        "app.kubernetes.io/name": release,
        "app.kubernetes.io/part-of": "redis-failover",
    }
    external = ""
    if spec.external:
        svc = out.add_observed(
            "external-service",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta(
                    f"{release}-external-lb", ns, {"app.kubernetes.io/instance": release}
                ),
                "spec": {
                    "type": "LoadBalancer",
                    "externalTrafficPolicy": "Local",
                    "allocateLoadBalancerNodePorts": False,
                    "selector": pods | {"redisfailovers-role": "master"},
                    "ports": [
                        {"name": "redis", "port": PORT, "targetPort": "redis", "protocol": "TCP"}
                    ],
                },
            },
        )
        external = load_balancer_address(svc)
        if not external:
            out.wait(f"Service {release}-external-lb has no external address yet")
    _metrics(out, release, ns, pods)

    workloads = _workloads(out, spec, release, ns)
    out.status = RedisStatus.model_validate(
        workloads
        | {
            "services": {
                "master": f"rfrm-{release}",
                "replicas": f"rfrs-{release}",
                "sentinel": f"rfs-{release}",
                "external": f"{release}-external-lb" if spec.external else "",
            },
            "endpoints": {
                "master": f"rfrm-{release}.{ns}.svc:{PORT}",
                "replicas": f"rfrs-{release}.{ns}.svc:{PORT}",
                "sentinel": f"rfs-{release}.{ns}.svc:{SENTINEL_PORT}",
                "external": f"{external}:{PORT}" if external else "",
            },
            "authSecret": f"{release}-auth" if spec.auth_enabled else "",
        }
    ).model_dump(by_alias=True)
    return out


def _guard_storage(spec: RedisSpec, observed: Object | None) -> None:
    """The volume is fixed at creation: never dropped or added, never shrunk or moved."""
    if observed is None:
        return
    claim = (
        observed.get("spec", {}).get("redis", {}).get("storage", {}).get("persistentVolumeClaim")
    )
    if claim is None and spec.size:
        raise ComposeError(
            "spec.size",
            "this Redis was created without persistence (empty size); adding volumes would "
            "restart every pod on an empty disk and lose the data held in memory",
        )
    if claim is not None and not spec.size:
        raise ComposeError(
            "spec.size",
            "this Redis keeps its data on volumes; an empty size would drop them and the data",
        )
    if claim is None:
        return
    claim_spec = claim.get("spec", {})
    guard_volume(
        size=spec.size,
        storage_class=spec.storage_class,
        observed_size=claim_spec.get("resources", {}).get("requests", {}).get("storage"),
        observed_class=claim_spec.get("storageClassName", ""),
    )


def _metrics(out: Outcome, release: str, ns: str, pods: dict[str, str]) -> None:
    app = {"app": f"{release}-metrics"}
    out.add(
        "metrics-service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(
                f"{release}-metrics", ns, app | {"app.kubernetes.io/instance": release}
            ),
            "spec": {
                "selector": pods,
                "ports": [
                    {
                        "name": "metrics",
                        "port": METRICS_PORT,
                        "targetPort": "metrics",
                        "protocol": "TCP",
                    }
                ],
            },
        },
    )
    out.add(
        "service-scrape",
        {
            "apiVersion": "operator.victoriametrics.com/v1beta1",
            "kind": "VMServiceScrape",
            "metadata": meta(release, ns, {"app.kubernetes.io/instance": release}),
            "spec": {
                "jobLabel": "jobLabel",
                "namespaceSelector": {"matchNames": [ns]},
                "endpoints": [
                    {
                        "port": "metrics",
                        "relabelConfigs": [
                            {"replacement": "redis", "targetLabel": "job"},
                            {
                                "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                "targetLabel": "node",
                            },
                            {"replacement": "cluster", "targetLabel": "tier"},
                            {"replacement": release, "targetLabel": "service"},
                        ],
                    }
                ],
                "selector": {"matchLabels": app},
            },
        },
    )


def _workloads(out: Outcome, spec: RedisSpec, release: str, ns: str) -> Object:
    """Readiness and status from the operator's workloads: RedisFailover has no status.

    The Redis pods' readiness probe passes on the primary and on replicas in sync with it,
    so all of them ready means the data is served and replicated."""
    sts = out.require(STATEFULSET, Requirement("apps/v1", "StatefulSet", f"rfr-{release}", ns))
    deploy = out.require(DEPLOYMENT, Requirement("apps/v1", "Deployment", f"rfs-{release}", ns))
    sts_status = (sts or {}).get("status") or {}
    ready = int(sts_status.get("readyReplicas") or 0)
    sentinels = int(((deploy or {}).get("status") or {}).get("readyReplicas") or 0)
    if sts is None or deploy is None:
        out.wait(f"the redis-operator has not created the pods of RedisFailover {release} yet")
    if sts is not None and ready < spec.replicas:
        out.wait(f"Redis rfr-{release}: {ready}/{spec.replicas} pods ready")
    if deploy is not None and sentinels < SENTINELS:
        out.wait(f"Sentinel rfs-{release}: {sentinels}/{SENTINELS} pods ready")
    failover = out.resources["failover"]
    failover.ready = (
        failover.ready
        and sts is not None
        and deploy is not None
        and ready >= spec.replicas
        and sentinels >= SENTINELS
    )
    version = ""
    containers = (sts or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    for container in containers or []:
        image = str(container.get("image") or "")
        if container.get("name") == "redis" and ":" in image:
            version = image.rpartition(":")[2]
    return {
        "version": version,
        "replicas": int(sts_status.get("replicas") or 0),
        "readyReplicas": ready,
        "readySentinels": sentinels,
    }
