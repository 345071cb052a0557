"""HTTPCache compose: HAProxy, nginx caches with their volumes, metrics scraping (§12)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from functions.api.httpcache import MAX_CACHES, HTTPCacheSpec
from functions.api.kinds import HTTPCACHE
from functions.api.schema import openapi_schema
from functions.services import httpcache
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context

ORIGIN = {"endpoints": ["10.100.3.1:80"]}


def compose(spec: dict[str, Any] | None = None, name: str = "cdn", **kw: Any) -> Outcome:
    return httpcache.compose(
        HTTPCacheSpec.model_validate(ORIGIN | (spec or {})), context(name, "tenant-dev", **kw)
    )


def body(out: Outcome, key: str) -> dict[str, Any]:
    found: dict[str, Any] = out.resources[key].body
    return found


def config(out: Outcome, key: str, file: str) -> str:
    text: str = body(out, key)["data"][file]
    return text


def container(out: Outcome, key: str, index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = body(out, key)["spec"]["template"]["spec"]["containers"][index]
    return found


def settled(out: Outcome, **status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the API server would hold once the Deployments, volumes and Service are up."""
    observed: dict[str, dict[str, Any]] = {}
    for key, desired in out.resources.items():
        obj = dict(desired.body)
        if obj["kind"] == "Deployment":
            obj["status"] = {
                "readyReplicas": obj["spec"]["replicas"],
                "conditions": [{"type": "Available", "status": "True"}],
            }
        elif obj["kind"] == "PersistentVolumeClaim":
            obj["status"] = {"phase": "Bound"}
        elif obj["kind"] == "Service" and obj["spec"]["type"] == "LoadBalancer":
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}
        observed[key] = obj | ({"status": status[key]} if key in status else {})
    return observed


def test_defaults() -> None:
    out = compose()
    assert list(out.resources) == [
        "haproxy-config",
        "haproxy",
        "haproxy-service",
        "nginx-config",
        "nginx-pdb",
        "cache-0",
        "cache-0-volume",
        "cache-0-service",
        "cache-1",
        "cache-1-volume",
        "cache-1-service",
        "nginx-scrape",
    ]
    names = {k: d.body["metadata"]["name"] for k, d in out.resources.items()}
    assert names["haproxy"] == names["haproxy-config"] == "http-cache-cdn-haproxy"
    assert names["nginx-config"] == names["nginx-pdb"] == "http-cache-cdn-nginx-cache"
    assert names["cache-1"] == names["cache-1-volume"] == "http-cache-cdn-nginx-cache-1"
    assert all(d.body["metadata"]["namespace"] == "tenant-dev" for d in out.resources.values())
    assert body(out, "haproxy")["spec"]["replicas"] == 2
    assert container(out, "haproxy")["image"] == "haproxy:latest"
    assert container(out, "haproxy")["resources"]["limits"] == {
        "cpu": "250m",
        "ephemeral-storage": "2Gi",
        "memory": "128Mi",
    }
    assert container(out, "cache-0")["resources"] == container(out, "haproxy")["resources"]
    assert body(out, "haproxy-service")["spec"] == {
        "type": "ClusterIP",
        "selector": {"app": "http-cache-cdn-haproxy"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}],
    }
    assert body(out, "cache-0-volume")["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
    }
    assert body(out, "nginx-pdb")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app": "http-cache-cdn-nginx-cache"}},
    }
    assert out.requirements == {}


def test_haproxy_hashes_uris_over_the_caches_with_origins_as_backups() -> None:
    out = compose({"endpoints": ["10.0.0.1:80", "[2001:db8::10]:8080"], "nginx": {"replicas": 3}})
    cfg = config(out, "haproxy-config", "haproxy.cfg")
    backend = cfg[cfg.index("\nbackend cache") + 1 :].splitlines()
    assert backend == [
        "backend cache",
        "    mode http",
        "    balance uri whole",
        "    hash-type consistent",
        "    retry-on conn-failure 503",
        "    retries 2",
        "    option redispatch 1",
        "    default-server observe layer7 error-limit 10 on-error mark-down",
        "    server cache0 http-cache-cdn-nginx-cache-0:80 check",
        "    server cache1 http-cache-cdn-nginx-cache-1:80 check",
        "    server cache2 http-cache-cdn-nginx-cache-2:80 check",
        "    server origin0 10.0.0.1:80 backup",
        "    server origin1 2001:db8::10:8080 backup",
    ]
    assert "    bind :::8080 v4v6" in cfg
    assert "default_backend cache" in cfg


def test_cloudflare_clients_are_taken_from_cf_connecting_ip() -> None:
    out = compose()
    cfg = config(out, "haproxy-config", "haproxy.cfg")
    assert "    acl from_cf src -f /usr/local/etc/haproxy/CF_ips.lst" in cfg
    assert (
        "    http-request set-header X-Forwarded-For %[req.hdr(CF-Connecting-IP)]"
        " if from_cf cf_ip_hdr" in cfg
    )
    assert "    http-request set-header X-Forwarded-For %[src] if !from_cf" in cfg
    ranges = config(out, "haproxy-config", "CF_ips.lst").splitlines()
    assert len(ranges) == 22
    assert ranges[0] == "173.245.48.0/20"
    assert ranges[-1] == "2c0f:f248::/32"
    mount = container(out, "haproxy")["volumeMounts"]
    assert mount == [{"name": "config", "mountPath": "/usr/local/etc/haproxy"}]


def test_nginx_caches_in_front_of_the_origins() -> None:
    out = compose({"endpoints": ["10.0.0.1:80", "[2001:db8::10]:8080"]})
    conf = config(out, "nginx-config", "nginx.conf")
    upstream = conf[conf.index("upstream origin_servers") :].splitlines()[:4]
    assert upstream == [
        "upstream origin_servers {",
        "        server 10.0.0.1:80;",
        "        server [2001:db8::10]:8080;",
        "    }",
    ]
    for line in (
        "proxy_cache_path /data/cache levels=1:2 keys_zone=mycache:400m max_size=100g",
        "inactive=30d use_temp_path=off;",
        "proxy_cache_key $scheme$http_host$request_uri;",
        "proxy_cache_purge PURGE from all;",
        "listen *:10253;",
        "vhost_traffic_status_display_format prometheus;",
        "proxy_pass http://origin_servers;",
    ):
        assert line in conf
    # The probes ask for /healthz, which the /health prefix location answers.
    assert "location /health {" in conf
    assert container(out, "cache-0")["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "metrics",
    }
    # The config is written once, in a stable order: the same claim, the same text.
    again = compose({"endpoints": ["10.0.0.1:80", "[2001:db8::10]:8080"]})
    assert conf == config(again, "nginx-config", "nginx.conf")


def test_cache_deployments_volumes_and_services() -> None:
    out = compose({"nginx": {"replicas": 3}})
    deployment = body(out, "cache-2")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    assert deployment["selector"] == {
        "matchLabels": {"app": "http-cache-cdn-nginx-cache", "instance": "2"}
    }
    pod = deployment["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["labelSelector"]["matchExpressions"][1] == {
        "key": "instance",
        "operator": "NotIn",
        "values": ["2"],
    }
    assert pod["shareProcessNamespace"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "http-cache-cdn-nginx-cache-2"}
    assert volumes["config"]["configMap"] == {"name": "http-cache-cdn-nginx-cache"}
    assert [c["name"] for c in pod["containers"]] == ["nginx", "reloader"]
    assert {p["containerPort"] for p in pod["containers"][0]["ports"]} == {80, 8087, 10253}
    assert pod["containers"][1]["resources"]["limits"] == {"cpu": "50m", "memory": "50Mi"}
    service = body(out, "cache-2-service")
    assert service["spec"]["selector"] == {"app": "http-cache-cdn-nginx-cache", "instance": "2"}
    assert [p["port"] for p in service["spec"]["ports"]] == [80, 10253]


def test_sizing_parameters() -> None:
    out = compose(
        {
            "size": "50Gi",
            "storageClass": "replicated",
            "haproxy": {
                "replicas": 3,
                "resourcesPreset": "t1.micro",
                "resources": {"memory": "1Gi"},
            },
            "nginx": {"replicas": 4, "resourcesPreset": "s1.small", "resources": {"cpu": 2}},
        }
    )
    assert body(out, "haproxy")["spec"]["replicas"] == 3
    assert container(out, "haproxy")["resources"]["limits"] == {
        "cpu": "500m",
        "ephemeral-storage": "2Gi",
        "memory": "1Gi",
    }
    caches = [k for k, d in out.resources.items() if d.body["kind"] == "Deployment"]
    assert caches == ["haproxy", "cache-0", "cache-1", "cache-2", "cache-3"]
    assert container(out, "cache-3")["resources"]["limits"] == {
        "cpu": "2",
        "ephemeral-storage": "2Gi",
        "memory": "2Gi",
    }
    assert container(out, "cache-3")["resources"]["requests"]["cpu"] == "0.2"
    assert body(out, "cache-3-volume")["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "replicated",
    }
    assert out.status["nginx"]["replicas"] == 4
    assert out.status["haproxy"]["replicas"] == 3


def test_external_load_balancer() -> None:
    out = compose({"external": True})
    spec = body(out, "haproxy-service")["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["allocateLoadBalancerNodePorts"] is False
    assert "Service http-cache-cdn-haproxy has no external address yet" in out.waiting
    observed = settled(out)
    again = compose({"external": True}, observed=observed)
    assert again.status["external"] == "192.0.2.20:80"
    assert again.waiting == []
    observed["haproxy-service"]["status"] = {"loadBalancer": {"ingress": [{"ip": "2001:db8::20"}]}}
    assert compose({"external": True}, observed=observed).status["external"] == "[2001:db8::20]:80"


def test_scrape_selects_this_release_s_nginx_services_in_the_claim_namespace() -> None:
    out = compose({"nginx": {"replicas": 3}})
    scrape = body(out, "nginx-scrape")
    assert scrape["apiVersion"] == "operator.victoriametrics.com/v1beta1"
    assert scrape["metadata"]["namespace"] == "tenant-dev"
    assert scrape["spec"]["namespaceSelector"] == {"matchNames": ["tenant-dev"]}
    selector = scrape["spec"]["selector"]["matchLabels"]
    endpoint = scrape["spec"]["endpoints"][0]
    selected = [
        d.body
        for d in out.resources.values()
        if d.body["kind"] == "Service"
        and selector.items() <= d.body["metadata"].get("labels", {}).items()
    ]
    assert [s["metadata"]["name"] for s in selected] == [
        f"http-cache-cdn-nginx-cache-{i}" for i in range(3)
    ]
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # Another release's caches carry another label.
    other = body(compose(name="other"), "cache-0-service")["metadata"]["labels"]
    assert not selector.items() <= other.items()


def test_config_changes_restart_the_pods_that_read_them() -> None:
    first, second = compose(), compose({"endpoints": ["10.100.3.2:80"]})

    def checksum(out: Outcome, key: str) -> str:
        value: str = body(out, key)["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    assert checksum(first, "cache-0") == checksum(compose(), "cache-0")
    assert checksum(first, "cache-0") != checksum(second, "cache-0")
    assert checksum(first, "haproxy") != checksum(second, "haproxy")
    assert checksum(first, "haproxy") != checksum(compose({"nginx": {"replicas": 3}}), "haproxy")


@pytest.mark.parametrize(
    "endpoints",
    [
        [],
        ["10.0.0.1"],
        ["256.0.0.1:80"],
        ["10.0.0.01:80"],
        ["10.0.0.1:0"],
        ["10.0.0.1:65536"],
        ["2001:db8::1:80"],
        ["example.org:80"],
        ["[10.0.0.1]:80"],
    ],
)
def test_endpoints_the_schema_refuses(endpoints: list[str]) -> None:
    with pytest.raises(ValidationError):
        HTTPCacheSpec.model_validate({"endpoints": endpoints})


def test_endpoints_are_required() -> None:
    with pytest.raises(ValidationError, match="endpoints"):
        HTTPCacheSpec.model_validate({})
    assert openapi_schema(HTTPCacheSpec)["required"] == ["endpoints"]


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("[2001:db8:::1]:80", "is not an IP address"),
        ("[10.0.0.1:8]:80", "is not an IP address"),
        ("127.0.0.1:80", "not reachable"),
        ("0.0.0.0:80", "not reachable"),
        ("[::1]:80", "not reachable"),
        ("224.0.0.1:80", "not reachable"),
    ],
)
def test_endpoints_the_function_refuses(endpoint: str, message: str) -> None:
    with pytest.raises(ComposeError, match=rf"spec\.endpoints\[1\]: .*{message}"):
        compose({"endpoints": ["10.0.0.1:80", endpoint]})


@pytest.mark.parametrize("size", ["0", "0Gi"])
def test_size_must_be_positive(size: str) -> None:
    with pytest.raises(ComposeError, match=r"spec\.size: must be positive"):
        compose({"size": size})


@pytest.mark.parametrize(
    "spec",
    [
        {"nginx": {"replicas": 0}},
        {"nginx": {"replicas": MAX_CACHES + 1}},
        {"haproxy": {"replicas": 0}},
        {"haproxy": {"resourcesPreset": "huge"}},
        {"size": "ten"},
        {"surprise": True},
    ],
)
def test_bad_parameters_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HTTPCacheSpec.model_validate(ORIGIN | spec)


def test_storage_class_is_immutable_in_the_xrd() -> None:
    rules = openapi_schema(HTTPCacheSpec)["properties"]["storageClass"]["x-kubernetes-validations"]
    assert rules == [{"rule": "self == oldSelf", "message": "storageClass is immutable"}]


def volume(size: str, storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "spec": spec}


def test_cache_volumes_may_grow_but_never_shrink() -> None:
    observed = {"cache-1-volume": volume("20Gi")}
    grown = compose({"size": "30Gi"}, observed=observed)
    assert body(grown, "cache-1-volume")["spec"]["resources"]["requests"]["storage"] == "30Gi"
    with pytest.raises(ComposeError, match=r"spec\.size: volumes cannot shrink from 20Gi to 10Gi"):
        compose({"size": "10Gi"}, observed=observed)


def test_cache_volume_class_cannot_change() -> None:
    observed = {"cache-0-volume": volume("10Gi", "replicated")}
    assert compose({"storageClass": "replicated"}, observed=observed).resources
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        compose({"storageClass": "local"}, observed=observed)
    # The API server writes the default class into a volume that asked for none.
    assert "storageClassName" not in body(compose(observed=observed), "cache-0-volume")["spec"]


def test_fewer_caches_drop_the_volumes_of_the_removed_ones() -> None:
    first = compose({"nginx": {"replicas": 3}})
    observed = settled(first)
    out = compose({"nginx": {"replicas": 2}}, observed=observed)
    assert "cache-2" not in out.resources
    assert "cache-2-volume" not in out.resources
    assert "cache-2-service" not in out.resources
    assert "nginx-cache-2" not in config(out, "haproxy-config", "haproxy.cfg")
    # A removed cache's volume is not guarded: it is going away.
    observed["cache-2-volume"] = volume("100Gi")
    assert compose({"nginx": {"replicas": 2}}, observed=observed).resources


def test_readiness_and_status() -> None:
    out = compose()
    assert not any(d.ready for d in out.resources.values() if d.body["kind"] == "Deployment")
    assert out.waiting == [
        "creating Deployment http-cache-cdn-haproxy",
        "creating Deployment http-cache-cdn-nginx-cache-0",
        "creating Deployment http-cache-cdn-nginx-cache-1",
    ]
    observed = settled(
        out,
        haproxy={"readyReplicas": 1, "conditions": [{"type": "Available", "status": "False"}]},
        **{"cache-1-volume": {"phase": "Pending"}},
    )
    waiting = compose(observed=observed)
    assert waiting.waiting == [
        "Deployment http-cache-cdn-haproxy: 1/2 replicas ready",
        "PersistentVolumeClaim http-cache-cdn-nginx-cache-1 is Pending",
    ]
    assert not waiting.resources["haproxy"].ready
    assert not waiting.resources["cache-1-volume"].ready
    assert waiting.resources["cache-0"].ready

    ready = compose(observed=settled(out))
    assert all(d.ready for d in ready.resources.values())
    assert ready.waiting == []
    assert ready.status == {
        "service": "http-cache-cdn-haproxy",
        "endpoint": "http-cache-cdn-haproxy.tenant-dev.svc:80",
        "external": "",
        "haproxy": {"replicas": 2, "readyReplicas": 2},
        "nginx": {"replicas": 2, "readyReplicas": 2},
    }


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "a" * HTTPCACHE.name_max_length
    out = compose({"nginx": {"replicas": MAX_CACHES}}, name=name)
    longest = max(len(d.body["metadata"]["name"]) for d in out.resources.values())
    assert longest == 63
    assert len(f"http-cache-{name}") <= 53  # Cozystack's Helm release limit
