"""The catalogue of claim kinds: the one place an API kind is declared."""

from __future__ import annotations

from dataclasses import dataclass

from functions.api.common import Model
from functions.api.kubernetes import KubernetesSpec, KubernetesStatus
from functions.api.postgres import PostgresSpec, PostgresStatus
from functions.api.tenant import TenantSpec, TenantStatus

GROUP = "cozyplane.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    """A claim kind and its composite (X-prefixed, cluster-scoped, legacy claim model)."""

    claim: str
    plural: str
    spec: type[Model]
    status: type[Model]
    columns: tuple[Column, ...]
    name_pattern: str
    name_max_length: int
    name_rule: str
    """Why claim names are restricted, shown when one is rejected."""

    @property
    def composite(self) -> str:
        return f"X{self.claim}"

    @property
    def composite_plural(self) -> str:
        return f"x{self.plural}"

    @property
    def xrd_name(self) -> str:
        return f"{self.composite_plural}.{GROUP}"


TENANT = Kind(
    claim="Tenant",
    plural="tenants",
    spec=TenantSpec,
    status=TenantStatus,
    columns=(
        Column("NAMESPACE", ".status.namespace"),
        Column("HOST", ".status.host"),
        Column("ETCD", ".spec.etcd", "boolean", 1),
        Column("MONITORING", ".spec.monitoring", "boolean", 1),
        Column("INGRESS", ".spec.ingress", "boolean", 1),
    ),
    name_pattern=r"^[a-z][a-z0-9]*$",
    name_max_length=56,
    name_rule="a tenant name is a lower-case letter followed by letters and digits (no dashes)",
)

POSTGRES = Kind(
    claim="Postgres",
    plural="postgreses",
    spec=PostgresSpec,
    status=PostgresStatus,
    columns=(
        Column("VERSION", ".spec.version"),
        Column("REPLICAS", ".spec.replicas", "integer"),
        Column("READY-REPLICAS", ".status.readyInstances", "integer"),
        Column("SIZE", ".spec.size"),
        Column("PHASE", ".status.phase", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # postgres-<name>-external-write must stay a valid 63-character Service name.
    name_max_length=39,
    name_rule="a Postgres name is a DNS label of at most 39 characters",
)

KUBERNETES = Kind(
    claim="Kubernetes",
    plural="kuberneteses",
    spec=KubernetesSpec,
    status=KubernetesStatus,
    columns=(
        Column("VERSION", ".spec.version"),
        Column("HOST", ".status.host"),
        Column("CONTROL-PLANE", ".status.readyControlPlaneReplicas", "integer"),
        Column("DATASTORE", ".status.dataStore", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # kubernetes-<name>-ingress-nginx must stay a valid 63-character Service name.
    name_max_length=38,
    name_rule="a Kubernetes name is a DNS label of at most 38 characters",
)

KINDS: tuple[Kind, ...] = (TENANT, POSTGRES, KUBERNETES)
BY_COMPOSITE: dict[str, Kind] = {k.composite: k for k in KINDS}
