"""The Redis claim (Cozystack `packages/apps/redis`, reference §10)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from functions.api.common import (
    GROWS,
    QUANTITY_SCHEMA,
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    cel,
    storage_class,
    transition,
    with_rules,
)
from functions.domain.quantity import QUANTITY_PATTERN

RedisVersion = Literal["v8", "v7"]

SIZE_SCHEMA: dict[str, Any] = QUANTITY_SCHEMA | {"pattern": f"^$|{QUANTITY_PATTERN}"}

SizeOrEmpty = Annotated[Literal[""] | Quantity, WithJsonSchema(SIZE_SCHEMA)]
"""A quantity, or "" for none (Helm's `with .Values.size` is false for an empty string)."""


class RedisSpec(Model):
    """A Redis primary with replicas and three Sentinels, managed by the redis-operator."""

    model_config = with_rules(
        cel(
            "(self.size == '') == (oldSelf.size == '')",
            "size cannot switch between empty (no persistence) and a quantity: the data "
            "of the existing instance would be lost",
        ),
    )

    replicas: int = Field(2, ge=1, le=32)
    """Number of Redis pods: one primary, the rest replicas."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset of the Redis and Sentinel pods; explicit `resources` keys override it."""
    size: SizeOrEmpty = Field(
        "1Gi",
        json_schema_extra=transition(
            # Switching to or from "" is the spec-level rule's to refuse.
            cel(f"string(self) == '' || string(oldSelf) == '' || {GROWS}", "size cannot shrink")
        ),
    )
    """Volume size of each Redis pod; it may grow but never shrink. Empty ("") means no
    volume and no persistence (appendonly and snapshots off); fixed at creation."""
    storage_class: str = storage_class()
    """StorageClass of the volumes; empty means the cluster default. Immutable."""
    external: bool = False
    """Expose the primary through a LoadBalancer Service <release>-external-lb."""
    version: RedisVersion = "v8"
    """Redis major version."""
    auth_enabled: bool = True
    """Require a password, generated once into the Secret <release>-auth."""


class RedisServices(Model):
    master: str = ""
    """Service of the primary (rfrm-<release>), port 6379."""
    replicas: str = ""
    """Service of the replicas (rfrs-<release>), port 6379."""
    sentinel: str = ""
    """Service of the Sentinels (rfs-<release>), port 26379."""
    external: str = ""
    """LoadBalancer Service of the primary (<release>-external-lb), when external."""


class RedisEndpoints(Model):
    master: str = ""
    """In-cluster address of the primary."""
    replicas: str = ""
    """In-cluster address of the replicas."""
    sentinel: str = ""
    """In-cluster address of the Sentinels."""
    external: str = ""
    """Address of the LoadBalancer, once assigned."""


class RedisStatus(Model):
    version: str = ""
    """Running Redis version (image tag of the operator's StatefulSet)."""
    replicas: int = 0
    """Redis pods the operator's StatefulSet runs."""
    ready_replicas: int = 0
    """Redis pods ready (a replica is ready once in sync with the primary)."""
    ready_sentinels: int = 0
    """Sentinel pods ready, out of 3."""
    services: RedisServices = RedisServices()
    endpoints: RedisEndpoints = RedisEndpoints()
    auth_secret: str = ""
    """Secret holding the password (key `password`); empty when authEnabled is false."""
