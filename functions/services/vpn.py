"""VPN: an Outline (Shadowsocks) server with one access key per user (reference §13)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from typing import Any

from functions.api.vpn import VPNSpec, VPNStatus
from functions.domain import presets, secrets
from functions.domain.addresses import load_balancer_address, usable_ip
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta

IMAGE = "quay.io/outline/shadowbox:stable"
PORT = 40000
API_PORT = 60000
METHOD = "chacha20-ietf-poly1305"
NAMESPACE = "namespace"
HOST_LABEL = "namespace.cozystack.io/host"
CONFIG = "shadowbox_config.json"
SERVER_CONFIG = "shadowbox_server_config.json"
STATE = "/root/shadowbox/persisted-state"
TLS_DURATION = "87600h"  # ten years, as Cozystack's generated certificate
SERVER_SETTINGS: Object = {
    "rollouts": [{"id": "single-port", "enabled": True}],
    "portForNewAccessKeys": PORT,
    "hostname": "localhost",
}


def compose(spec: VPNSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XVPN is created through a VPN claim")
    release = f"vpn-{name}"
    external_ips = [
        str(usable_ip(ip, f"spec.externalIPs[{i}]")) for i, ip in enumerate(spec.external_ips)
    ]
    host = spec.host
    if not host:
        tenant = out.require(NAMESPACE, Requirement("v1", "Namespace", ns))
        if not ctx.required.resolved(NAMESPACE):
            return out
        if tenant is None:
            raise ComposeError("metadata.namespace", f"namespace {ns!r} does not exist")
        tenant_host = (tenant.get("metadata", {}).get("labels") or {}).get(HOST_LABEL, "")
        if not tenant_host:
            raise ComposeError(
                "spec.host", f"namespace {ns} has no {HOST_LABEL} label to derive it from: set it"
            )
        host = f"{release}.{tenant_host}"
    elif ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ComposeError("spec.host", f"{host!r} is neither a DNS name nor an IP") from None

    passwords = _passwords(spec, ctx)
    config = {
        CONFIG: json.dumps(
            {
                "accessKeys": [
                    {
                        "id": str(i),
                        "metricsId": user,
                        "name": user,
                        "password": passwords[user],
                        "port": PORT,
                        "encryptionMethod": METHOD,
                    }
                    for i, user in enumerate(sorted(passwords), start=1)
                ],
                "nextId": len(passwords) + 1,
            },
            indent=2,
        )
        + "\n",
        SERVER_CONFIG: json.dumps(SERVER_SETTINGS, indent=2) + "\n",
    }
    out.add("config", secrets.secret(f"{release}-vpn", ns, config))
    out.add(
        "urls",
        secrets.secret(
            f"{release}-urls",
            ns,
            {user: access_url(password, host, release) for user, password in passwords.items()},
        ),
    )
    _tls(out, release, ns)
    deployment = out.add_observed("server", _deployment(spec, ctx, release, ns, _checksum(spec)))

    ports = [
        {"name": "accessport-tcp", "protocol": "TCP", "port": PORT, "targetPort": PORT},
        {"name": "accessport-udp", "protocol": "UDP", "port": PORT, "targetPort": PORT},
    ]
    service_spec: Object = {
        "ports": ports,
        "selector": {"app": f"{release}-vpn"},
        "internalTrafficPolicy": "Cluster",
    }
    if external_ips:
        service_spec |= {
            "type": "ClusterIP",
            "externalIPs": external_ips,
            "externalTrafficPolicy": "Cluster",
        }
    else:
        service_spec |= {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local" if spec.external else "Cluster",
        }
    service = out.add_observed(
        "service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(
                f"{release}-vpn",
                ns,
                {"app": f"{release}-vpn", "app.kubernetes.io/instance": release},
            ),
            "spec": service_spec,
        },
    )

    ready = int((deployment or {}).get("status", {}).get("readyReplicas") or 0)
    if deployment is None:
        out.wait(f"creating Deployment {release}-vpn")
    elif not out.resources["server"].ready:
        out.wait(f"Deployment {release}-vpn: {ready}/{spec.replicas} replicas ready")
    address = load_balancer_address(service)
    if not external_ips and not address:
        out.wait(f"Service {release}-vpn has no external address yet")
    out.status = VPNStatus.model_validate(
        {
            "service": f"{release}-vpn",
            "ports": [{k: p[k] for k in ("name", "port", "protocol")} for p in ports],
            "host": host,
            "externalAddresses": external_ips or ([address] if address else []),
            "urlsSecret": f"{release}-urls",
            "users": sorted(passwords),
            "replicas": spec.replicas,
            "readyReplicas": ready,
        }
    ).model_dump(by_alias=True)
    return out


def access_url(password: str, host: str, release: str) -> str:
    """The ss:// URL Outline clients import (SIP002, userinfo in unpadded base64url)."""
    userinfo = base64.urlsafe_b64encode(f"{METHOD}:{password}".encode()).decode().rstrip("=")
    if ":" in host:
        host = f"[{host}]"
    return f"ss://{userinfo}@{host}:{PORT}/?outline=1#{release}"


def _passwords(spec: VPNSpec, ctx: Context) -> dict[str, str]:
    """Claim passwords, else those of the running configuration, else new ones."""
    config = _observed_keys(secrets.decoded_value(ctx.observed.data("config"), CONFIG) or "")
    urls = secrets.decoded(ctx.observed.data("urls"))
    return {
        user: secrets.stable(
            settings.password,
            config.get(user),
            _url_password(urls.get(user, "")),
            generate=ctx.passwords,
        )
        for user, settings in sorted(spec.users.items())
    }


def _observed_keys(text: str) -> dict[str, str]:
    """User -> password from an observed shadowbox_config.json; unreadable parts are skipped."""
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json parses.
        return {}
    keys = document.get("accessKeys") if isinstance(document, dict) else None
    found: dict[str, str] = {}
    for key in keys if isinstance(keys, list) else []:
        if not isinstance(key, dict):
            continue
        user, password = key.get("name"), key.get("password")
        if isinstance(user, str) and isinstance(password, str) and password:
            found.setdefault(user, password)
    return found


def _url_password(url: str) -> str | None:
    """The password inside an observed ss:// URL, if it is one this function wrote."""
    userinfo = url.removeprefix("ss://").partition("@")[0]
    if not url.startswith("ss://") or not userinfo:
        return None
    try:
        decoded = base64.urlsafe_b64decode(userinfo + "=" * (-len(userinfo) % 4)).decode()
    except ValueError:
        return None
    method, sep, password = decoded.partition(":")
    return password if sep and method == METHOD and password else None


def _checksum(spec: VPNSpec) -> str:
    """Changes with the configuration, since shadowbox reads it only when it starts.

    Generated passwords never change once made, so the users and the passwords the
    claim sets decide the configuration; hashing them keeps the annotation the same
    in every render, whichever passwords a first render generates.
    """
    settings = {
        "server": SERVER_SETTINGS,
        "users": {user: u.password or "" for user, u in sorted(spec.users.items())},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _tls(out: Outcome, release: str, ns: str) -> None:
    """The certificate of the management API, issued once and renewed by cert-manager."""
    out.add(
        "tls-issuer",
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": meta(f"{release}-selfsigned", ns),
            "spec": {"selfSigned": {}},
        },
    )
    out.add(
        "tls-certificate",
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": meta(f"{release}-vpn-tls", ns),
            "spec": {
                "secretName": f"{release}-vpn-tls",
                "commonName": "outline",
                "duration": TLS_DURATION,
                "privateKey": {"algorithm": "RSA", "size": 2048},
                "issuerRef": {
                    "group": "cert-manager.io",
                    "kind": "Issuer",
                    "name": f"{release}-selfsigned",
                },
            },
        },
    )


def _deployment(spec: VPNSpec, ctx: Context, release: str, ns: str, checksum: str) -> Object:
    app = f"{release}-vpn"
    selector = {"app": app, "name": app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(app, ns, {"app.kubernetes.io/instance": release}),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": selector | {"app.kubernetes.io/instance": release},
                    "annotations": {"checksum/config": checksum},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "outline-vpn",
                            "image": IMAGE,
                            "resources": presets.resources(
                                spec.resources_preset, spec.resources.overrides(), ctx.config.ratios
                            ),
                            "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                            "env": [
                                {"name": "SB_API_PORT", "value": str(API_PORT)},
                                {"name": "SB_CERTIFICATE_FILE", "value": "/tmp/shadowbox.crt"},
                                {"name": "SB_PRIVATE_KEY_FILE", "value": "/tmp/shadowbox.key"},
                            ],
                            "volumeMounts": [
                                {"name": "cache", "mountPath": "/cache"},
                                {"name": "shadowbox-config", "mountPath": "/opt/outline"},
                                {"name": "shadowbox-config", "mountPath": "/root/shadowbox"},
                                *(
                                    {
                                        "name": "shadowbox-server-config",
                                        "readOnly": True,
                                        "mountPath": f"{STATE}/{key}",
                                        "subPath": key,
                                    }
                                    for key in (SERVER_CONFIG, CONFIG)
                                ),
                                *(
                                    {
                                        "name": "tls",
                                        "readOnly": True,
                                        "mountPath": f"/tmp/{path}",
                                        "subPath": path,
                                    }
                                    for path in ("shadowbox.crt", "shadowbox.key")
                                ),
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "shadowbox-config", "emptyDir": {}},
                        {
                            "name": "tls",
                            "secret": {
                                "secretName": f"{release}-vpn-tls",
                                "items": [
                                    {"key": "tls.crt", "path": "shadowbox.crt"},
                                    {"key": "tls.key", "path": "shadowbox.key"},
                                ],
                                "defaultMode": 420,
                            },
                        },
                        {
                            "name": "shadowbox-server-config",
                            "secret": {
                                "secretName": app,
                                "items": [
                                    {"key": key, "path": key} for key in (CONFIG, SERVER_CONFIG)
                                ],
                            },
                        },
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
