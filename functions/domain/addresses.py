"""IP addresses and ports in claims: patterns for the XRD, exact checks for the function."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from functions.domain.errors import ComposeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
# The pattern only shapes IPv6; `usable_ip` checks it exactly.
IPV6_SHAPE = r"[0-9a-fA-F:.]*:[0-9a-fA-F:.]*"
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
IP_PATTERN = rf"^({IPV4}|{IPV6_SHAPE})$"
ENDPOINT_PATTERN = rf"^({IPV4}|\[{IPV6_SHAPE}\]):{PORT}$"
"""`ip:port`, with IPv6 addresses in brackets as in URLs: 10.0.0.1:80, [2001:db8::1]:80."""


def usable_ip(value: str, field: str) -> IPAddress:
    """An IP address a Service or proxy can reach (what the API server accepts as externalIP)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ComposeError(field, f"{value!r} is not an IP address") from None
    if (
        address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
    ):
        raise ComposeError(
            field, f"{value} is unspecified, loopback, link-local or multicast: not reachable"
        )
    return address


def endpoint(value: str, field: str) -> tuple[IPAddress, int]:
    """Split and check an `ip:port` (IPv6 in brackets)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ComposeError(field, f"{value!r} is not ip:port with a port from 1 to 65535")
    return usable_ip(host.removeprefix("[").removesuffix("]"), field), int(port)


def load_balancer_address(service: Mapping[str, Any] | None) -> str:
    """The first address a LoadBalancer Service was given, or ""."""
    for ingress in (service or {}).get("status", {}).get("loadBalancer", {}).get("ingress", []):
        address = ingress.get("ip") or ingress.get("hostname")
        if address:
            return str(address)
    return ""
