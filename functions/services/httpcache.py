"""HTTPCache: HAProxy hashing URIs over nginx caches, the origins as backups (reference §12)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from functions.api.httpcache import HTTPCacheSpec, HTTPCacheStatus
from functions.domain import presets
from functions.domain.addresses import IPAddress, endpoint, load_balancer_address
from functions.domain.quantity import parse
from functions.domain.storage import guard_volume
from functions.services.base import ComposeError, Context, Object, Outcome, meta

HAPROXY_IMAGE = "haproxy:latest"
NGINX_IMAGE = (
    "ghcr.io/cozystack/cozystack/nginx-cache:v1.6.0"
    "@sha256:bd042a8a9789e8b21b12cb266e390484a3a48f4af6ca6e2d2864a8a83c74bd25"
)
PORT = 80
METRICS_PORT = 10253
HAPROXY_DIR = "/usr/local/etc/haproxy"
# Cloudflare's published ranges: only these may set the client address (CF-Connecting-IP).
CLOUDFLARE_RANGES = (
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
)
RELOADER_RESOURCES = {
    "limits": {"cpu": "50m", "memory": "50Mi"},
    "requests": {"cpu": "50m", "memory": "50Mi"},
}


def compose(spec: HTTPCacheSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XHTTPCache is created through an HTTPCache claim")
    release = f"http-cache-{name}"
    if parse(spec.size) <= 0:
        raise ComposeError("spec.size", f"must be positive, not {spec.size}")
    origins = [endpoint(e, f"spec.endpoints[{i}]") for i, e in enumerate(spec.endpoints)]
    caches = spec.nginx.replicas
    for i in range(caches):
        _guard(spec, ctx.observed.get(f"cache-{i}-volume"))
    labels = {"app.kubernetes.io/instance": release}

    haproxy_data = {
        "CF_ips.lst": "".join(f"{r}\n" for r in CLOUDFLARE_RANGES),
        "haproxy.cfg": haproxy_config(release, caches, origins),
    }
    out.add("haproxy-config", _config_map(f"{release}-haproxy", ns, labels, haproxy_data))
    haproxy = out.add_observed(
        "haproxy",
        _haproxy_deployment(spec, ctx, release, ns, labels, _checksum(haproxy_data)),
    )
    service_spec: Object = {
        "type": "ClusterIP",
        "selector": {"app": f"{release}-haproxy"},
        "ports": [{"name": "http", "protocol": "TCP", "port": PORT, "targetPort": "http"}],
    }
    if spec.external:
        service_spec |= {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "allocateLoadBalancerNodePorts": False,
        }
    service = out.add_observed(
        "haproxy-service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(f"{release}-haproxy", ns, labels),
            "spec": service_spec,
        },
    )

    nginx_data = {"nginx.conf": nginx_config(origins)}
    out.add("nginx-config", _config_map(f"{release}-nginx-cache", ns, labels, nginx_data))
    out.add(
        "nginx-pdb",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(f"{release}-nginx-cache", ns, labels),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": {"app": f"{release}-nginx-cache"}},
            },
        },
    )
    checksum = _checksum(nginx_data)
    cache_deployments: list[Object | None] = []
    volumes: list[Object | None] = []
    for i in range(caches):
        cache_deployments.append(
            out.add_observed(
                f"cache-{i}", _cache_deployment(spec, ctx, release, ns, labels, i, checksum)
            )
        )
        volumes.append(
            out.add_observed(f"cache-{i}-volume", _cache_volume(spec, release, ns, labels, i))
        )
        out.add(f"cache-{i}-service", _cache_service(release, ns, labels, i))
    out.add(
        "nginx-scrape",
        {
            "apiVersion": "operator.victoriametrics.com/v1beta1",
            "kind": "VMServiceScrape",
            "metadata": meta(f"{release}-nginx-cache", ns, labels),
            "spec": {
                "namespaceSelector": {"matchNames": [ns]},
                "selector": {"matchLabels": {"app": f"{release}-nginx-cache"}},
                "endpoints": [
                    {
                        "port": "metrics",
                        "path": "/metrics",
                        "honorLabels": True,
                        "relabelConfigs": [
                            {"targetLabel": "job", "replacement": "nginx-cache"},
                            {
                                "sourceLabels": ["__meta_kubernetes_service_name"],
                                "targetLabel": "instance",
                            },
                            {
                                "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                "targetLabel": "node",
                            },
                            {"targetLabel": "tier", "replacement": "cluster"},
                        ],
                    }
                ],
            },
        },
    )

    _wait_for(out, "haproxy", haproxy)
    for i in range(caches):
        _wait_for(out, f"cache-{i}", cache_deployments[i])
    for i, volume in enumerate(volumes):
        if volume is not None and not out.resources[f"cache-{i}-volume"].ready:
            phase = volume.get("status", {}).get("phase") or "Pending"
            out.wait(f"PersistentVolumeClaim {release}-nginx-cache-{i} is {phase}")
    external = load_balancer_address(service) if spec.external else ""
    if spec.external and not external:
        out.wait(f"Service {release}-haproxy has no external address yet")
    elif ":" in external:
        external = f"[{external}]"
    out.status = HTTPCacheStatus.model_validate(
        {
            "service": f"{release}-haproxy",
            "endpoint": f"{release}-haproxy.{ns}.svc:{PORT}",
            "external": f"{external}:{PORT}" if external else "",
            "haproxy": {
                "replicas": spec.haproxy.replicas,
                "readyReplicas": _ready_replicas(haproxy),
            },
            "nginx": {
                "replicas": caches,
                "readyReplicas": sum(_ready_replicas(d) for d in cache_deployments),
            },
        }
    ).model_dump(by_alias=True)
    return out


def _guard(spec: HTTPCacheSpec, observed: Object | None) -> None:
    """A cache volume keeps its class and only grows.

    With the default class the API server writes the default's name into the claim,
    so a class is compared only when the claim names one.
    """
    pvc = (observed or {}).get("spec") or {}
    guard_volume(
        size=spec.size,
        storage_class=spec.storage_class,
        observed_size=pvc.get("resources", {}).get("requests", {}).get("storage"),
        observed_class=pvc.get("storageClassName", "") if pvc and spec.storage_class else None,
    )


def _server(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def haproxy_config(
    release: str,
    caches: int,
    origins: list[tuple[IPAddress, int]],
) -> str:
    """haproxy.cfg: consistent URI hashing over the caches, the origins as backups."""
    lines = [
        "defaults",
        "    mode tcp",
        "    option dontlognull",
        "    timeout http-request 10s",
        "    timeout queue 20s",
        "    timeout connect 5s",
        "    timeout client 5m",
        "    timeout server 5m",
        "    timeout tunnel 5m",
        "    timeout http-keep-alive 10s",
        "    timeout check 10s",
        "",
        "frontend http",
        "    bind :::8080 v4v6",
        "    mode http",
        "    # Cloudflare passes the client in CF-Connecting-IP: trust it from Cloudflare only.",
        f"    acl from_cf src -f {HAPROXY_DIR}/CF_ips.lst",
        "    acl cf_ip_hdr req.hdr(CF-Connecting-IP) -m found",
        "    http-request set-header X-Forwarded-For %[req.hdr(CF-Connecting-IP)]"
        " if from_cf cf_ip_hdr",
        "    http-request set-header X-Forwarded-For %[src] if !from_cf",
        "    default_backend cache",
        "",
        "backend cache",
        "    mode http",
        "    balance uri whole",
        "    hash-type consistent",
        "    retry-on conn-failure 503",
        "    retries 2",
        "    option redispatch 1",
        "    default-server observe layer7 error-limit 10 on-error mark-down",
    ]
    lines += [f"    server cache{i} {release}-nginx-cache-{i}:{PORT} check" for i in range(caches)]
    # HAProxy reads the port after the last colon, so IPv6 origins go unbracketed.
    lines += [f"    server origin{i} {a}:{p} backup" for i, (a, p) in enumerate(origins)]
    return "\n".join(lines) + "\n"


def nginx_config(origins: list[tuple[IPAddress, int]]) -> str:
    """nginx.conf: a 100g/30d disk cache in front of the origins, PURGE, VTS metrics."""
    upstream = [f"        server {_server(a, p)};" for a, p in origins]
    lines = [
        "user nginx;",
        "worker_processes 2;",
        "error_log /var/log/nginx/error.log notice;",
        "pid /var/run/nginx.pid;",
        "",
        "events {",
        "    use epoll;",
        "    multi_accept on;",
        "    worker_connections 10240;",
        "}",
        "",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        "    vhost_traffic_status_zone;",
        "    log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '",
        "                    '$status $body_bytes_sent \"$http_referer\" '",
        '                    \'"$http_user_agent" "$http_x_forwarded_for"\';',
        "    access_log /var/log/nginx/access.log main;",
        "    sendfile on;",
        "    tcp_nopush on;",
        "    keepalive_timeout 65;",
        "    gzip on;",
        "    proxy_cache_path /data/cache levels=1:2 keys_zone=mycache:400m max_size=100g",
        "                     inactive=30d use_temp_path=off;",
        "",
        "    # Metrics and health, for Prometheus and the probes.",
        "    server {",
        f"        listen *:{METRICS_PORT};",
        "        server_name _;",
        "        vhost_traffic_status_bypass_limit on;",
        "        vhost_traffic_status_bypass_stats on;",
        "        location /health {",
        "            access_log off;",
        "            add_header 'Content-Type' 'text/plain';",
        '            return 200 "healthy\\n";',
        "        }",
        "        location /metrics {",
        "            vhost_traffic_status_display;",
        "            vhost_traffic_status_display_format prometheus;",
        "        }",
        "    }",
        "",
        "    upstream origin_servers {",
        *upstream,
        "    }",
        "",
        "    # Traffic per first path segment: / -> /, /a and /a/ -> /a, /a/b -> /a/*.",
        "    map $uri $shorten_url {",
        "        ~^/$ /;",
        "        ~^/([^/]+)$ /$1;",
        "        ~^/([^/]+)/$ /$1;",
        "        ~^/([^/]+)/.*$ /$1/*;",
        "    }",
        "",
        "    server {",
        f"        listen *:{PORT};",
        "        server_name _;",
        "        vhost_traffic_status_filter_by_host on;",
        "        vhost_traffic_status_filter_by_set_key $shorten_url url::$host;",
        "        proxy_cache mycache;",
        "        proxy_cache_revalidate on;",
        "        proxy_cache_lock on;",
        "        proxy_cache_key $scheme$http_host$request_uri;",
        "        proxy_cache_purge PURGE from all;",
        "        cache_purge_response_type json;",
        "        proxy_cache_valid 200 1h;",
        "        proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "        proxy_cache_background_update on;",
        "        proxy_connect_timeout 400ms;",
        "        proxy_next_upstream error timeout http_500 http_502 http_503 http_504;",
        "        location / {",
        "            proxy_set_header Host $http_host;",
        "            add_header X-Cache-Status $upstream_cache_status;",
        "            proxy_set_header X-Real-IP $remote_addr;",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "            proxy_hide_header Pragma;",
        "            proxy_hide_header Expires;",
        "            proxy_pass http://origin_servers;",
        "            proxy_buffering on;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _checksum(data: Mapping[str, str]) -> str:
    """Changes with the configuration, so that pods restart to read it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _config_map(name: str, ns: str, labels: Mapping[str, str], data: Mapping[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, ns, labels),
        "data": dict(sorted(data.items())),
    }


def _haproxy_deployment(
    spec: HTTPCacheSpec,
    ctx: Context,
    release: str,
    ns: str,
    labels: Mapping[str, str],
    checksum: str,
) -> Object:
    app = f"{release}-haproxy"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(app, ns, labels),
        "spec": {
            "replicas": spec.haproxy.replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {
                    "labels": {"app": app},
                    "annotations": {"checksum/config": checksum},
                },
                "spec": {
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 1,
                                    "podAffinityTerm": {
                                        "labelSelector": {
                                            "matchExpressions": [
                                                {"key": "app", "operator": "In", "values": [app]}
                                            ]
                                        },
                                        "topologyKey": "kubernetes.io/hostname",
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "haproxy",
                            "image": HAPROXY_IMAGE,
                            "resources": presets.resources(
                                spec.haproxy.resources_preset,
                                spec.haproxy.resources.overrides(),
                                ctx.config.ratios,
                            ),
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "volumeMounts": [{"name": "config", "mountPath": HAPROXY_DIR}],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": app}}],
                },
            },
        },
    }


def _cache_deployment(
    spec: HTTPCacheSpec,
    ctx: Context,
    release: str,
    ns: str,
    labels: Mapping[str, str],
    i: int,
    checksum: str,
) -> Object:
    app = f"{release}-nginx-cache"
    pod_labels = {"app": app, "instance": str(i)}
    mounts = [
        {"name": "config", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"},
        {"name": "data", "mountPath": "/data"},
        {"name": "run", "mountPath": "/run"},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "metrics"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(f"{app}-{i}", ns, labels),
        "spec": {
            "replicas": 1,
            # The old pod must release the ReadWriteOnce volume before the new one mounts it.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {"checksum/config": checksum},
                },
                "spec": {
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {
                                        "matchExpressions": [
                                            {"key": "app", "operator": "In", "values": [app]},
                                            {
                                                "key": "instance",
                                                "operator": "NotIn",
                                                "values": [str(i)],
                                            },
                                        ]
                                    },
                                    "topologyKey": "kubernetes.io/hostname",
                                }
                            ]
                        }
                    },
                    # The reloader signals nginx in the other container.
                    "shareProcessNamespace": True,
                    "containers": [
                        {
                            "name": "nginx",
                            "image": NGINX_IMAGE,
                            "resources": presets.resources(
                                spec.nginx.resources_preset,
                                spec.nginx.resources.overrides(),
                                ctx.config.ratios,
                            ),
                            "readinessProbe": probe
                            | {"initialDelaySeconds": 5, "periodSeconds": 5},
                            "livenessProbe": probe | {"failureThreshold": 1, "periodSeconds": 10},
                            "ports": [
                                {"name": "http", "containerPort": PORT},
                                {"name": "cache", "containerPort": 8087},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "volumeMounts": mounts,
                        },
                        {
                            "name": "reloader",
                            "image": NGINX_IMAGE,
                            "command": ["/usr/bin/nginx-reloader.sh"],
                            "resources": RELOADER_RESOURCES,
                            "volumeMounts": mounts,
                        },
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": app}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": f"{app}-{i}"}},
                        {"name": "run", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def _cache_volume(
    spec: HTTPCacheSpec, release: str, ns: str, labels: Mapping[str, str], i: int
) -> Object:
    pvc: Object = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.size}},
    }
    if spec.storage_class:
        pvc["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(f"{release}-nginx-cache-{i}", ns, labels),
        "spec": pvc,
    }


def _cache_service(release: str, ns: str, labels: Mapping[str, str], i: int) -> Object:
    app = f"{release}-nginx-cache"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        # `app` is what the VMServiceScrape selects.
        "metadata": meta(f"{app}-{i}", ns, {**labels, "app": app}),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": app, "instance": str(i)},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": PORT, "targetPort": "http"},
                {
                    "name": "metrics",
                    "protocol": "TCP",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                },
            ],
        },
    }


def _ready_replicas(deployment: Object | None) -> int:
    return int((deployment or {}).get("status", {}).get("readyReplicas") or 0)


def _wait_for(out: Outcome, key: str, observed: Object | None) -> None:
    body = out.resources[key].body
    what = f"Deployment {body['metadata']['name']}"
    if observed is None:
        out.wait(f"creating {what}")
    elif not out.resources[key].ready:
        ready, desired = _ready_replicas(observed), body["spec"]["replicas"]
        out.wait(f"{what}: {ready}/{desired} replicas ready")
