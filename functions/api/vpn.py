"""The VPN claim (Cozystack `packages/apps/vpn`, Outline/Shadowsocks, reference §13)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from functions.api.common import Keys, Model, Resources, ResourcesPreset, with_rules
from functions.domain.addresses import IP_PATTERN

USER_KEYS = Keys(
    "users",
    r"^[-._a-zA-Z0-9]{1,253}$",
    "users keys must be letters, digits, '-', '_' or '.' (they are Secret keys)",
)
# A DNS name or an IP address; IPv6 addresses are bracketed in the URLs.
HOST = r"^$|^[a-zA-Z0-9]([-a-zA-Z0-9.]{0,251}[a-zA-Z0-9])?$|^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$"
MAX_USERS = 128
MAX_EXTERNAL_IPS = 16

IP = Annotated[str, Field(pattern=IP_PATTERN, max_length=45)]


class VPNUser(Model):
    """A Shadowsocks access key."""

    password: str | None = Field(None, min_length=1, max_length=256)
    """Password; generated (16 letters and digits) and kept stable when unset."""


class VPNSpec(Model):
    """An Outline (Shadowsocks) VPN server."""

    model_config = with_rules(USER_KEYS.rule())

    replicas: int = Field(2, ge=1, le=32)
    """Number of VPN server replicas."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset of each replica; explicit `resources` keys override it."""
    external: bool = False
    """Keep client addresses (externalTrafficPolicy Local) on the LoadBalancer Service."""
    host: str = Field("", max_length=253, pattern=HOST)
    """Host written in the access URLs; empty means <release>.<tenant host>."""
    users: dict[Annotated[str, AfterValidator(USER_KEYS)], VPNUser] = Field(
        default_factory=dict, max_length=MAX_USERS
    )
    """Users, each with an access URL in the Secret <release>-urls."""
    external_ips: list[IP] = Field(
        default_factory=list, max_length=MAX_EXTERNAL_IPS, alias="externalIPs"
    )
    """Addresses routed to the nodes to serve on (a ClusterIP Service with externalIPs);
    empty means a LoadBalancer Service."""


class ServicePort(Model):
    name: str = ""
    port: int = 0
    protocol: str = ""


class VPNStatus(Model):
    service: str = ""
    """Service of the VPN server (<release>-vpn)."""
    ports: list[ServicePort] = Field(default_factory=list)
    """Ports of the Service."""
    host: str = ""
    """Host in the access URLs."""
    external_addresses: list[str] = Field(default_factory=list)
    """LoadBalancer addresses once assigned, or the externalIPs."""
    urls_secret: str = ""
    """Secret with one access URL (ss://) per user."""
    users: list[str] = Field(default_factory=list)
    """Users with an access URL."""
    replicas: int = 0
    """Desired replicas."""
    ready_replicas: int = 0
    """Replicas ready, as the Deployment reports."""
