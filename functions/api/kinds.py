"""The catalogue of claim kinds: the one place an API kind is declared."""

from __future__ import annotations

from dataclasses import dataclass

from functions.api.common import Model
from functions.api.httpcache import HTTPCacheSpec, HTTPCacheStatus
from functions.api.kubernetes import KubernetesSpec, KubernetesStatus
from functions.api.mariadb import MariaDBSpec, MariaDBStatus
from functions.api.postgres import PostgresSpec, PostgresStatus
from functions.api.rabbitmq import RabbitMQSpec, RabbitMQStatus
from functions.api.redis import RedisSpec, RedisStatus
from functions.api.tenant import TenantSpec, TenantStatus
from functions.api.virtualmachine import (
    VIRTUAL_MACHINE_NAME_MAX,
    VirtualMachineSpec,
    VirtualMachineStatus,
)
from functions.api.vmdisk import VMDISK_NAME_MAX, VMDiskSpec, VMDiskStatus
from functions.api.vpn import VPNSpec, VPNStatus

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

MARIADB = Kind(
    claim="MariaDB",
    plural="mariadbs",
    spec=MariaDBSpec,
    status=MariaDBStatus,
    columns=(
        Column("VERSION", ".spec.version"),
        Column("REPLICAS", ".spec.replicas", "integer"),
        Column("READY-REPLICAS", ".status.readyReplicas", "integer"),
        Column("SIZE", ".spec.size"),
        Column("PRIMARY", ".status.primary", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # The Grant mariadb-<name>-<database>-<user> must stay a valid 63-character name; the
    # spec bounds database and user names to match (functions/api/mariadb.py).
    name_max_length=24,
    name_rule="a MariaDB name is a DNS label of at most 24 characters",
)

REDIS = Kind(
    claim="Redis",
    plural="redises",
    spec=RedisSpec,
    status=RedisStatus,
    columns=(
        Column("VERSION", ".spec.version"),
        Column("REPLICAS", ".spec.replicas", "integer"),
        Column("READY-REPLICAS", ".status.readyReplicas", "integer"),
        Column("READY-SENTINELS", ".status.readySentinels", "integer", 1),
        Column("SIZE", ".spec.size", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # The operator's StatefulSet rfr-redis-<name> plus a 11-character revision hash must
    # stay a valid 63-character label value on its pods.
    name_max_length=42,
    name_rule="a Redis name is a DNS label of at most 42 characters",
)

RABBITMQ = Kind(
    claim="RabbitMQ",
    plural="rabbitmqs",
    spec=RabbitMQSpec,
    status=RabbitMQStatus,
    columns=(
        Column("VERSION", ".spec.version"),
        Column("REPLICAS", ".spec.replicas", "integer"),
        Column("SERVICE", ".status.service"),
        Column("EXTERNAL", ".status.endpoints.externalAMQP", priority=1),
        Column("SIZE", ".spec.size", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # The operator's StatefulSet rabbitmq-<name>-server plus a 11-character revision hash
    # must stay a valid 63-character label value on its pods.
    name_max_length=36,
    name_rule="a RabbitMQ name is a DNS label of at most 36 characters",
)

HTTPCACHE = Kind(
    claim="HTTPCache",
    plural="httpcaches",
    spec=HTTPCacheSpec,
    status=HTTPCacheStatus,
    columns=(
        Column("ENDPOINT", ".status.endpoint"),
        Column("EXTERNAL", ".status.external"),
        Column("CACHES", ".spec.nginx.replicas", "integer"),
        Column("READY-CACHES", ".status.nginx.readyReplicas", "integer"),
        Column("SIZE", ".spec.size", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # http-cache-<name>-nginx-cache-<15> must stay a valid 63-character Service name.
    name_max_length=37,
    name_rule="an HTTPCache name is a DNS label of at most 37 characters",
)

VPN = Kind(
    claim="VPN",
    plural="vpns",
    spec=VPNSpec,
    status=VPNStatus,
    columns=(
        Column("HOST", ".status.host"),
        Column("REPLICAS", ".spec.replicas", "integer"),
        Column("READY-REPLICAS", ".status.readyReplicas", "integer"),
        Column("URLS", ".status.urlsSecret", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # vpn-<name>-selfsigned (the Issuer) must stay a valid 63-character name.
    name_max_length=48,
    name_rule="a VPN name is a DNS label of at most 48 characters",
)

VMDISK = Kind(
    claim="VMDisk",
    plural="vmdisks",
    spec=VMDiskSpec,
    status=VMDiskStatus,
    columns=(
        Column("PHASE", ".status.phase"),
        Column("PROGRESS", ".status.progress"),
        Column("SIZE", ".status.size"),
        Column("STORAGE", ".spec.storage", priority=1),
        Column("STORAGE-CLASS", ".status.storageClass", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # vm-disk-<name>-resize-<6 hex> (the resize Job) must stay a 63-character label value.
    name_max_length=VMDISK_NAME_MAX,
    name_rule=f"a VMDisk name is a DNS label of at most {VMDISK_NAME_MAX} characters",
)

VIRTUAL_MACHINE = Kind(
    claim="VirtualMachine",
    plural="virtualmachines",
    spec=VirtualMachineSpec,
    status=VirtualMachineStatus,
    columns=(
        Column("STATUS", ".status.printableStatus"),
        Column("INSTANCETYPE", ".spec.instanceType"),
        Column("IP", ".status.ipAddresses[0]"),
        Column("EXTERNAL", ".status.externalAddress", priority=1),
        Column("RUN-STRATEGY", ".spec.runStrategy", priority=1),
    ),
    name_pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    # vm-instance-<name>-cloud-init must stay a valid 63-character name.
    name_max_length=VIRTUAL_MACHINE_NAME_MAX,
    name_rule=(
        f"a VirtualMachine name is a DNS label of at most {VIRTUAL_MACHINE_NAME_MAX} characters"
    ),
)


KINDS: tuple[Kind, ...] = (
    TENANT,
    POSTGRES,
    KUBERNETES,
    MARIADB,
    REDIS,
    RABBITMQ,
    HTTPCACHE,
    VPN,
    VMDISK,
    VIRTUAL_MACHINE,
)
BY_COMPOSITE: dict[str, Kind] = {k.composite: k for k in KINDS}
