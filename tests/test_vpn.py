"""VPN compose: Outline configuration and access URLs, TLS, Deployment and Service (§13)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from functions.api.kinds import VPN
from functions.api.rules import violations
from functions.api.vpn import VPNSpec
from functions.services import vpn
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context, namespace

DEV_NS = namespace("tenant-dev", **{"namespace.cozystack.io/host": "dev.example.org"})
USERS = {"users": {"bob": {}, "alice": {"password": "s3cret"}}}


def compose(spec: dict[str, Any] | None = None, name: str = "office", **kw: Any) -> Outcome:
    kw.setdefault("required", {vpn.NAMESPACE: [DEV_NS]})
    return vpn.compose(VPNSpec.model_validate(spec or {}), context(name, "tenant-dev", **kw))


def body(out: Outcome, key: str) -> dict[str, Any]:
    found: dict[str, Any] = out.resources[key].body
    return found


def data(out: Outcome, key: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in body(out, key)["data"].items()}


def access_keys(out: Outcome) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(data(out, "config")["shadowbox_config.json"])[
        "accessKeys"
    ]
    return keys


def url(password: str, host: str = "vpn-office.dev.example.org") -> str:
    userinfo = base64.b64encode(f"chacha20-ietf-poly1305:{password}".encode()).decode()
    userinfo = userinfo.replace("+", "-").replace("/", "_").replace("=", "")
    return f"ss://{userinfo}@{host}:40000/?outline=1#vpn-office"


def secret_data(values: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def test_defaults() -> None:
    out = compose()
    assert list(out.resources) == [
        "config",
        "urls",
        "tls-issuer",
        "tls-certificate",
        "server",
        "service",
    ]
    assert {k: d.body["metadata"]["name"] for k, d in out.resources.items()} == {
        "config": "vpn-office-vpn",
        "urls": "vpn-office-urls",
        "tls-issuer": "vpn-office-selfsigned",
        "tls-certificate": "vpn-office-vpn-tls",
        "server": "vpn-office-vpn",
        "service": "vpn-office-vpn",
    }
    config = json.loads(data(out, "config")["shadowbox_config.json"])
    assert config == {"accessKeys": [], "nextId": 1}
    assert json.loads(data(out, "config")["shadowbox_server_config.json"]) == {
        "rollouts": [{"id": "single-port", "enabled": True}],
        "portForNewAccessKeys": 40000,
        "hostname": "localhost",
    }
    assert data(out, "urls") == {}
    deployment = body(out, "server")["spec"]
    assert deployment["replicas"] == 2
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["image"] == "quay.io/outline/shadowbox:stable"
    assert container["ports"] == [{"containerPort": 40000, "protocol": "TCP"}]
    assert {"name": "SB_API_PORT", "value": "60000"} in container["env"]
    assert container["resources"]["limits"] == {
        "cpu": "250m",
        "ephemeral-storage": "2Gi",
        "memory": "128Mi",
    }
    service = body(out, "service")["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Cluster"
    assert "externalIPs" not in service
    assert service["selector"] == {"app": "vpn-office-vpn"}
    assert [(p["port"], p["protocol"]) for p in service["ports"]] == [
        (40000, "TCP"),
        (40000, "UDP"),
    ]
    assert out.requirements["namespace"].name == "tenant-dev"


def test_host_comes_from_the_tenant_namespace() -> None:
    assert compose().status["host"] == "vpn-office.dev.example.org"
    pending = compose(required={})
    assert pending.resources == {}
    assert pending.requirements["namespace"].kind == "Namespace"
    with pytest.raises(ComposeError, match=r"metadata\.namespace: namespace 'tenant-dev'"):
        compose(required={vpn.NAMESPACE: []})
    with pytest.raises(ComposeError, match=r"spec\.host: namespace tenant-dev has no"):
        compose(required={vpn.NAMESPACE: [namespace("tenant-dev")]})


def test_an_explicit_host_needs_no_namespace() -> None:
    out = compose({"host": "vpn.example.org", **USERS}, required={})
    assert out.requirements == {}
    assert out.status["host"] == "vpn.example.org"
    assert data(out, "urls")["alice"] == url("s3cret", "vpn.example.org")


def test_an_ipv6_host_is_bracketed_in_the_urls() -> None:
    out = compose({"host": "2001:db8::7", **USERS})
    assert data(out, "urls")["alice"] == url("s3cret", "[2001:db8::7]")
    with pytest.raises(ComposeError, match=r"spec\.host: '2001:db8:::7' is neither"):
        compose({"host": "2001:db8:::7"})


def test_access_keys_and_urls_per_user() -> None:
    out = compose(USERS)
    keys = access_keys(out)
    bob = keys[1]["password"]
    assert keys == [
        {
            "id": "1",
            "metricsId": "alice",
            "name": "alice",
            "password": "s3cret",
            "port": 40000,
            "encryptionMethod": "chacha20-ietf-poly1305",
        },
        {
            "id": "2",
            "metricsId": "bob",
            "name": "bob",
            "password": bob,
            "port": 40000,
            "encryptionMethod": "chacha20-ietf-poly1305",
        },
    ]
    assert len(bob) == 16
    assert json.loads(data(out, "config")["shadowbox_config.json"])["nextId"] == 3
    assert data(out, "urls") == {"alice": url("s3cret"), "bob": url(bob)}


def test_passwords_any_character_stay_valid_json_and_urls() -> None:
    password = 'a"b\\c/d+e?>'
    out = compose({"users": {"u": {"password": password}}})
    assert access_keys(out)[0]["password"] == password
    link = data(out, "urls")["u"]
    assert link == url(password)
    userinfo = link.removeprefix("ss://").split("@")[0]
    assert not {"+", "/", "="} & set(userinfo)


def test_generated_passwords_are_reused_from_the_observed_configuration() -> None:
    first = compose(USERS)
    observed = {k: d.body for k, d in first.resources.items()}
    again = compose(USERS, observed=observed)
    for key in ("config", "urls", "server"):
        assert again.resources[key].body == first.resources[key].body
    # The URLs alone are enough to recover a password.
    only_urls = compose(USERS, observed={"urls": observed["urls"]})
    assert access_keys(only_urls) == access_keys(first)


@pytest.mark.parametrize(
    "config",
    [
        "not json",
        "[]",
        '{"accessKeys": 5}',
        '{"accessKeys": [5, {"name": 1, "password": "x"}, {"name": "bob"}]}',
        '{"accessKeys": [{"name": "bob", "password": ""}]}',
    ],
)
def test_unreadable_observed_configuration_is_not_fatal(config: str) -> None:
    observed = {
        "config": secret_data({"shadowbox_config.json": config}),
        "urls": secret_data({"bob": "ss://%%%@host:40000/", "alice": "https://x"}),
    }
    out = compose(USERS, observed=observed)
    bob = access_keys(out)[1]
    assert bob["name"] == "bob"
    assert len(bob["password"]) == 16


def test_what_can_be_read_is_reused() -> None:
    config = json.dumps(
        {"accessKeys": ["junk", {"name": "bob", "password": "kept-password"}, {"id": 3}]}
    )
    observed: dict[str, Any] = {
        "config": secret_data({"shadowbox_config.json": config}),
    }
    observed["config"]["data"]["broken"] = "***not base64***"
    out = compose(USERS, observed=observed)
    assert [k["password"] for k in access_keys(out)] == ["s3cret", "kept-password"]


def test_a_url_of_another_method_is_not_a_password_source() -> None:
    other = base64.urlsafe_b64encode(b"aes-256-gcm:elsewhere").decode()
    out = compose(USERS, observed={"urls": secret_data({"bob": f"ss://{other}@h:1/"})})
    assert access_keys(out)[1]["password"] != "elsewhere"


def test_configuration_changes_restart_the_server() -> None:
    def checksum(out: Outcome) -> str:
        value: str = body(out, "server")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    first = compose(USERS)
    # Generated passwords are made once: another render generating others changes nothing.
    observed = {"config": secret_data({"shadowbox_config.json": '{"accessKeys": []}'})}
    observed["urls"] = secret_data({"bob": url("another-generated-one")})
    assert checksum(compose(USERS, observed=observed)) == checksum(first)
    changed_password = {"users": {"bob": {}, "alice": {"password": "changed"}}}
    assert checksum(compose(changed_password)) != checksum(first)
    added_user = {"users": {**USERS["users"], "carol": {}}}
    assert checksum(compose(added_user)) != checksum(first)


def test_tls_certificate_is_issued_by_cert_manager() -> None:
    out = compose()
    assert body(out, "tls-issuer")["spec"] == {"selfSigned": {}}
    assert body(out, "tls-certificate")["spec"] == {
        "secretName": "vpn-office-vpn-tls",
        "commonName": "outline",
        "duration": "87600h",
        "privateKey": {"algorithm": "RSA", "size": 2048},
        "issuerRef": {
            "group": "cert-manager.io",
            "kind": "Issuer",
            "name": "vpn-office-selfsigned",
        },
    }
    pod = body(out, "server")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "vpn-office-vpn-tls"
    assert volumes["shadowbox-server-config"]["secret"]["secretName"] == "vpn-office-vpn"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/tmp/shadowbox.key"]["subPath"] == "shadowbox.key"
    assert (
        mounts["/root/shadowbox/persisted-state/shadowbox_config.json"]["subPath"]
        == "shadowbox_config.json"
    )


def test_sizing() -> None:
    out = compose({"replicas": 3, "resourcesPreset": "t1.micro", "resources": {"memory": "1Gi"}})
    deployment = body(out, "server")["spec"]
    assert deployment["replicas"] == 3
    assert deployment["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "500m",
        "ephemeral-storage": "2Gi",
        "memory": "1Gi",
    }


def test_external_keeps_client_addresses() -> None:
    service = body(compose({"external": True}), "service")["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("external", [True, False])
def test_external_ips_replace_the_load_balancer(external: bool) -> None:
    out = compose({"external": external, "externalIPs": ["192.0.2.10", "2001:db8::10"]})
    service = body(out, "service")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["externalIPs"] == ["192.0.2.10", "2001:db8::10"]
    assert service["externalTrafficPolicy"] == "Cluster"
    assert out.status["externalAddresses"] == ["192.0.2.10", "2001:db8::10"]
    assert not any("external address" in w for w in out.waiting)


@pytest.mark.parametrize("ip", ["300.1.1.1", "10.0.0.1/24", "vpn.example.org", "01.2.3.4"])
def test_external_ips_the_schema_refuses(ip: str) -> None:
    with pytest.raises(ValidationError):
        VPNSpec.model_validate({"externalIPs": [ip]})


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("127.0.0.1", "not reachable"),
        ("169.254.1.1", "not reachable"),
        ("::", "not reachable"),
        ("2001:db8:::1", "is not an IP address"),
    ],
)
def test_external_ips_the_function_refuses(ip: str, message: str) -> None:
    with pytest.raises(ComposeError, match=rf"spec\.externalIPs\[1\]: .*{message}"):
        compose({"externalIPs": ["192.0.2.10", ip]})


@pytest.mark.parametrize(
    ("users", "broken"),
    [
        ({"alice": {}, "bob.smith_2-x": {}}, False),
        ({"bad name": {}}, True),
        ({"ünicode": {}}, True),
        ({"a/b": {}}, True),
    ],
)
def test_user_names_are_secret_keys(users: dict[str, Any], broken: bool) -> None:
    if not broken:
        assert violations(VPNSpec.model_validate({"users": users})) == []
        return
    rule = "users keys must be letters, digits, '-', '_' or '.' (they are Secret keys)"
    with pytest.raises(ValidationError, match=re.escape(rule)):
        VPNSpec.model_validate({"users": users})


@pytest.mark.parametrize(
    "spec",
    [
        {"replicas": 0},
        {"resourcesPreset": "huge"},
        {"users": {"a": {"password": ""}}},
        {"host": "bad host"},
        {"host": "-bad.example.org"},
        {"surprise": True},
    ],
)
def test_bad_parameters_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VPNSpec.model_validate(spec)


def test_readiness_and_status_without_secrets() -> None:
    out = compose(USERS)
    assert out.waiting == [
        "creating Deployment vpn-office-vpn",
        "Service vpn-office-vpn has no external address yet",
    ]
    observed = {k: dict(d.body) for k, d in out.resources.items()}
    observed["server"]["status"] = {
        "readyReplicas": 1,
        "conditions": [{"type": "Available", "status": "False"}],
    }
    waiting = compose(USERS, observed=observed)
    assert waiting.waiting == [
        "Deployment vpn-office-vpn: 1/2 replicas ready",
        "Service vpn-office-vpn has no external address yet",
    ]
    assert not waiting.resources["server"].ready
    assert not waiting.resources["service"].ready

    observed["server"]["status"] = {
        "readyReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    observed["service"]["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}
    for key in ("tls-issuer", "tls-certificate"):
        observed[key]["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    ready = compose(USERS, observed=observed)
    assert all(d.ready for d in ready.resources.values())
    assert ready.waiting == []
    assert ready.status == {
        "service": "vpn-office-vpn",
        "ports": [
            {"name": "accessport-tcp", "port": 40000, "protocol": "TCP"},
            {"name": "accessport-udp", "port": 40000, "protocol": "UDP"},
        ],
        "host": "vpn-office.dev.example.org",
        "externalAddresses": ["192.0.2.30"],
        "urlsSecret": "vpn-office-urls",
        "users": ["alice", "bob"],
        "replicas": 2,
        "readyReplicas": 2,
    }
    text = json.dumps(ready.status) + " ".join(ready.waiting + ready.warnings)
    for password in (k["password"] for k in access_keys(ready)):
        assert password not in text
    assert "ss://" not in text


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "a" * VPN.name_max_length
    out = compose(USERS, name=name)
    assert max(len(d.body["metadata"]["name"]) for d in out.resources.values()) == 63
    assert len(f"vpn-{name}") <= 53  # Cozystack's Helm release limit
