"""The HTTPCache claim (Cozystack `packages/apps/http-cache`, reference §12)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from functions.api.common import (
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    storage_class,
    volume_size,
)
from functions.domain.addresses import ENDPOINT_PATTERN

# Cache indices go up to MAX_CACHES - 1: two digits in <release>-nginx-cache-<i>.
MAX_CACHES = 16
MAX_ENDPOINTS = 64

Endpoint = Annotated[str, Field(pattern=ENDPOINT_PATTERN, max_length=64)]


class HAProxy(Model):
    """The HAProxy tier: spreads requests over the caches by URI."""

    replicas: int = Field(2, ge=1, le=32)
    """Number of HAProxy replicas."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset of each HAProxy; explicit `resources` keys override it."""


class Nginx(Model):
    """The nginx caches: one Deployment and one volume per cache."""

    replicas: int = Field(2, ge=1, le=MAX_CACHES)
    """Number of nginx caches, each with its own volume of `size`."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset of each cache; explicit `resources` keys override it."""


class HTTPCacheSpec(Model):
    """A caching HTTP proxy: HAProxy in front of nginx caches in front of the origins."""

    size: Quantity = volume_size("10Gi")
    """Volume size of each nginx cache; it may grow but never shrink."""
    storage_class: str = storage_class()
    """StorageClass of the cache volumes; empty means the cluster default. Immutable."""
    external: bool = False
    """Expose HAProxy through a LoadBalancer Service."""
    endpoints: list[Endpoint] = Field(min_length=1, max_length=MAX_ENDPOINTS)
    """Origin servers, at least one, as ip:port (IPv6 as [addr]:port); HAProxy sends
    requests straight to them when every cache is down."""
    haproxy: HAProxy = HAProxy()
    nginx: Nginx = Nginx()


class Replicas(Model):
    replicas: int = 0
    """Desired replicas."""
    ready_replicas: int = 0
    """Replicas ready, as their Deployments report."""


class HTTPCacheStatus(Model):
    service: str = ""
    """Service in front of the caches (<release>-haproxy)."""
    endpoint: str = ""
    """In-cluster address of the cache."""
    external: str = ""
    """Address of the LoadBalancer, once assigned."""
    haproxy: Replicas = Replicas()
    nginx: Replicas = Replicas()
