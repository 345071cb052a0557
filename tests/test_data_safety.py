"""Data safety under change: every update a user can make, rendered with observed state.

Crossplane deletes a composed object that leaves the desired state and re-applies every
field on every call, so one bad render can destroy a database. Each case renders a claim,
feeds the result back as what the cluster then holds (uids, the API server's defaults, the
status operators report and the objects they create), renders the changed claim and checks
that nothing holding data was dropped or renamed, that no volume shrank, that no field its
operator treats as immutable changed, and that generated secrets kept their values.
Changes that would lose data are refused twice: by the XRD's CEL transition rules, and by
the function from observed state (see docs/data-safety.md).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.api import manifests
from functions.api.kinds import KINDS
from functions.domain.quantity import is_quantity, parse
from functions.render import RESOURCE_NAME, RenderError, load, render
from tests.conftest import ENVIRONMENT, EXAMPLES, counter_passwords
from tests.support.schemas import Catalog, apply_defaults, cel_rules

Object = dict[str, Any]
FieldPath = tuple[str | int, ...]

CREATED = "2026-01-01T00:00:00Z"
LOAD_BALANCER_IP = "203.0.113.10"
# The StorageClass the API server writes into a volume claim that names none.
DEFAULT_CLASS = "replicated"

# Objects whose deletion loses data or takes down what holds it, by (group, kind).
DATA_BEARING = frozenset(
    {
        ("postgresql.cnpg.io", "Cluster"),
        ("k8s.mariadb.com", "MariaDB"),
        ("databases.spotahome.com", "RedisFailover"),
        ("rabbitmq.com", "RabbitmqCluster"),
        # The topology operator deletes a vhost's queues and messages with its Vhost.
        ("rabbitmq.com", "Vhost"),
        ("cdi.kubevirt.io", "DataVolume"),
        ("kubevirt.io", "VirtualMachine"),
        ("", "PersistentVolumeClaim"),
        ("cluster.x-k8s.io", "Cluster"),
        ("controlplane.cluster.x-k8s.io", "KamajiControlPlane"),
        ("infrastructure.cluster.x-k8s.io", "KubevirtCluster"),
        ("cluster.x-k8s.io", "MachineDeployment"),
        # Kept while a MachineSet still makes machines from it (the world below has one).
        ("infrastructure.cluster.x-k8s.io", "KubevirtMachineTemplate"),
    }
)
# Database objects may leave the desired state only with a policy that keeps the data.
KEEPS_DATA: dict[tuple[str, str], tuple[FieldPath, str]] = {
    ("postgresql.cnpg.io", "Database"): (("spec", "databaseReclaimPolicy"), "retain"),
    ("k8s.mariadb.com", "Database"): (("spec", "cleanupPolicy"), "Skip"),
}
# Fields an operator refuses to change (webhooks, Kubernetes' own validation) or that only
# act at creation; the upstream CRDs' own CEL transition rules are evaluated on top.
IMMUTABLE: dict[tuple[str, str], tuple[FieldPath, ...]] = {
    # PersistentVolumeClaim spec is immutable but for the size request (apiserver).
    ("", "PersistentVolumeClaim"): (
        ("spec", "storageClassName"),
        ("spec", "accessModes"),
        ("spec", "volumeMode"),
    ),
    # CDI's webhook refuses any DataVolume spec update.
    ("cdi.kubevirt.io", "DataVolume"): (("spec",),),
    # CAPK's webhook: "KubevirtMachineTemplateSpec is immutable".
    ("infrastructure.cluster.x-k8s.io", "KubevirtMachineTemplate"): (("spec",),),
    # The volumes keep their class; bootstrap (recovery) only acts when the cluster is made.
    ("postgresql.cnpg.io", "Cluster"): (("spec", "storage", "storageClass"), ("spec", "bootstrap")),
    # mariadb-operator's `inmutable` webhook tags.
    ("k8s.mariadb.com", "MariaDB"): (
        ("spec", "storage", "storageClassName"),
        ("spec", "rootPasswordSecretKeyRef"),
    ),
    ("k8s.mariadb.com", "Database"): (
        ("spec", "name"),
        ("spec", "characterSet"),
        ("spec", "collate"),
        ("spec", "mariaDbRef"),
    ),
    ("k8s.mariadb.com", "Grant"): (
        ("spec", "database"),
        ("spec", "table"),
        ("spec", "username"),
        ("spec", "grantOption"),
        ("spec", "mariaDbRef"),
    ),
    ("k8s.mariadb.com", "Backup"): (
        ("spec", "storage"),
        ("spec", "maxRetention"),
        ("spec", "mariaDbRef"),
    ),
    # A StatefulSet's volumeClaimTemplates cannot change (the operators' StatefulSets).
    ("rabbitmq.com", "RabbitmqCluster"): (("spec", "persistence", "storageClassName"),),
    ("databases.spotahome.com", "RedisFailover"): (
        ("spec", "redis", "storage", "persistentVolumeClaim", "metadata", "name"),
        ("spec", "redis", "storage", "persistentVolumeClaim", "spec", "storageClassName"),
    ),
    # The messaging-topology operator's webhooks.
    ("rabbitmq.com", "Vhost"): (("spec", "name"), ("spec", "rabbitmqClusterReference")),
    ("rabbitmq.com", "User"): (("spec", "rabbitmqClusterReference"),),
    ("rabbitmq.com", "Permission"): (
        ("spec", "vhost"),
        ("spec", "user"),
        ("spec", "rabbitmqClusterReference"),
    ),
    # Cluster API's webhooks.
    ("cluster.x-k8s.io", "MachineDeployment"): (("spec", "clusterName"),),
    ("cluster.x-k8s.io", "MachineHealthCheck"): (("spec", "clusterName"),),
}


# --- the claims changed ---


def _example(name: str, **spec: Any) -> Object:
    (claim,) = load(EXAMPLES / f"{name}.yaml")
    out: Object = merged(claim, {"spec": spec})
    return out


def merged(base: Any, patch: Any) -> Any:
    """`base` with `patch` laid over it: maps merge key by key, None removes a key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out: Object = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


BASES: dict[str, Object] = {
    "postgres": _example("postgres-full"),
    "postgres-minimal": _example("postgres-minimal"),
    "postgres-restored": _example(
        "postgres-full",
        bootstrap={"enabled": True, "oldName": "orders-old", "recoveryTime": CREATED},
    ),
    "postgres-v14": _example("postgres-minimal", version="v14"),
    "mariadb": _example("mariadb-full"),
    "mariadb-minimal": _example("mariadb-minimal"),
    "mariadb-single": _example("mariadb-minimal", replicas=1),
    "redis": _example("redis-full"),
    "redis-minimal": _example("redis-minimal"),
    "redis-ephemeral": _example("redis-full", size=""),
    "rabbitmq": _example("rabbitmq-full"),
    "rabbitmq-minimal": _example("rabbitmq-minimal"),
    "vmdisk": _example("vmdisk-full"),
    "vmdisk-minimal": _example("vmdisk-minimal"),
    "vmdisk-upload": _example("vmdisk-upload"),
    "virtualmachine": _example("virtualmachine-full"),
    "virtualmachine-minimal": _example("virtualmachine-minimal"),
    "kubernetes": _example("kubernetes-full"),
    "kubernetes-minimal": _example("kubernetes-minimal"),
    "kubernetes-v1.33": _example("kubernetes-full", version="v1.33"),
    "kubernetes-kubeadm": _example("kubernetes-kubeadm"),
    "httpcache": _example("httpcache-full"),
    "httpcache-minimal": _example("httpcache-minimal"),
}


@dataclass(frozen=True)
class Case:
    id: str
    base: str
    """The claim of BASES the change is made to."""
    patch: Object
    """Laid over its spec (see merged)."""

    def claims(self) -> tuple[Object, Object]:
        before = BASES[self.base]
        return before, merged(before, {"spec": self.patch})


@dataclass(frozen=True)
class Change(Case):
    """A change the function must apply without losing anything."""

    dropped: frozenset[str] = frozenset()
    """Data-bearing keys the change removes on purpose."""
    rotated: frozenset[str] = frozenset()
    """Secrets whose values the change sets."""


@dataclass(frozen=True)
class Refusal(Case):
    """A change that would lose data: a Fatal result naming the field, and the XRD's rule."""

    field: str
    function: str
    """Part of what the function's Fatal result says about the field."""
    xrd: str | None
    """The message of the XRD rule refusing it; None where no CEL rule can see it."""


def _change(name: str, base: str, patch: Object, **kw: frozenset[str]) -> Change:
    return Change(f"{base}:{name}", base, patch, **kw)


def _keys(*keys: str) -> frozenset[str]:
    return frozenset(keys)


UNCHANGED = [_change("unchanged", base, {}) for base in BASES]

CHANGES = [
    *UNCHANGED,
    # Postgres
    _change("size grows", "postgres", {"size": "80Gi"}),
    _change("size grows, written as bytes", "postgres", {"size": 60_000_000_000}),
    _change("size grows from the default", "postgres-minimal", {"size": "20Gi"}),
    _change("more replicas", "postgres", {"replicas": 5}),
    _change("fewer replicas", "postgres", {"replicas": 2}),
    _change("preset", "postgres", {"resourcesPreset": "u1.large", "resources": None}),
    _change("resources", "postgres", {"resources": {"cpu": 8, "memory": "16Gi"}}),
    _change("major upgrade", "postgres", {"version": "v18"}),
    _change("upgrade to v16", "postgres-v14", {"version": "v16"}),
    _change("parameters", "postgres", {"postgresql": {"parameters": {"max_connections": 500}}}),
    _change("no quorum", "postgres", {"quorum": {"minSyncReplicas": 0, "maxSyncReplicas": 0}}),
    _change("add a user", "postgres", {"users": {"analyst": {}}}),
    _change("remove a user", "postgres", {"users": {"replicator": None}}),
    _change("user replication", "postgres", {"users": {"reporting": {"replication": True}}}),
    _change(
        "set a password",
        "postgres",
        {"users": {"reporting": {"password": "a-new-password"}}},
        rotated=_keys("user-reporting", "credentials"),
    ),
    _change(
        "add a database", "postgres", {"databases": {"billing": {"roles": {"admin": ["app"]}}}}
    ),
    _change("remove a database", "postgres", {"databases": {"audit": None}}),
    _change(
        "add an extension",
        "postgres",
        {"databases": {"orders": {"extensions": ["pg_trgm", "hstore", "citext"]}}},
    ),
    _change(
        "readonly to admin",
        "postgres",
        {"databases": {"orders": {"roles": {"admin": ["app", "reporting"], "readonly": []}}}},
    ),
    _change("backup off", "postgres", {"backup": {"enabled": False}}),
    _change("backup schedule", "postgres", {"backup": {"schedule": "0 30 3 * * *"}}),
    _change("backup retention", "postgres", {"backup": {"retentionPolicy": "60d"}}),
    _change(
        "backup destination", "postgres", {"backup": {"destinationPath": "s3://backups/orders2/"}}
    ),
    _change(
        "backup keys inline",
        "postgres",
        {"backup": {"s3CredentialsSecret": {"name": ""}, "s3AccessKey": "a", "s3SecretKey": "b"}},
    ),
    _change("bootstrap once running", "postgres", {"bootstrap": {"enabled": True, "oldName": "x"}}),
    _change("bootstrap off", "postgres-restored", {"bootstrap": {"enabled": False}}),
    _change("bootstrap source", "postgres-restored", {"bootstrap": {"oldName": "other"}}),
    _change("not external", "postgres", {"external": False}),
    _change("no TLS name", "postgres", {"tls": {"enabled": False}}),
    # MariaDB
    _change("size grows", "mariadb", {"size": "60Gi"}),
    _change("size grows from the default", "mariadb-minimal", {"size": "20Gi"}),
    _change("more replicas", "mariadb", {"replicas": 5}),
    _change("fewer replicas", "mariadb", {"replicas": 2}),
    _change("replicated", "mariadb-single", {"replicas": 3}),
    _change("preset", "mariadb", {"resourcesPreset": "u1.large", "resources": None}),
    _change("upgrade", "mariadb", {"version": "v11.8"}),
    _change("add a user", "mariadb", {"users": {"batch": {"maxUserConnections": 5}}}),
    _change(
        "remove a user",
        "mariadb",
        {
            "users": {"reporting": None},
            "databases": {
                "shop": {"roles": {"readonly": []}},
                "shop_audit": {"roles": {"readonly": ["app"]}},
            },
        },
    ),
    _change("connection limit", "mariadb", {"users": {"app": {"maxUserConnections": 200}}}),
    _change(
        "set a password",
        "mariadb",
        {"users": {"reporting": {"password": "a-new-password"}}},
        rotated=_keys("credentials"),
    ),
    _change("add a database", "mariadb", {"databases": {"orders": {"roles": {"admin": ["app"]}}}}),
    _change("remove a database", "mariadb", {"databases": {"shop_audit": None}}),
    _change(
        "readonly to admin",
        "mariadb",
        {"databases": {"shop_audit": {"roles": {"admin": ["app"], "readonly": ["reporting"]}}}},
    ),
    _change("backup off", "mariadb", {"backup": {"enabled": False}}),
    _change("backup schedule", "mariadb", {"backup": {"schedule": "0 4 * * *"}}),
    _change("backup compression", "mariadb", {"backup": {"compression": "gzip"}}),
    _change("not external", "mariadb", {"external": False}),
    # Redis
    _change("size grows", "redis", {"size": "16Gi"}),
    _change("size grows from the default", "redis-minimal", {"size": "2Gi"}),
    _change("more replicas", "redis", {"replicas": 5}),
    _change("fewer replicas", "redis", {"replicas": 2}),
    _change("preset", "redis", {"resourcesPreset": "u1.large", "resources": None}),
    _change("upgrade", "redis", {"version": "v8"}),
    _change("no password", "redis", {"authEnabled": False}),
    _change("not external", "redis", {"external": False}),
    _change("ephemeral, more replicas", "redis-ephemeral", {"replicas": 4}),
    # RabbitMQ
    _change("size grows", "rabbitmq", {"size": "40Gi"}),
    _change("size grows from the default", "rabbitmq-minimal", {"size": "20Gi"}),
    _change("more replicas", "rabbitmq", {"replicas": 7}),
    _change("preset", "rabbitmq", {"resourcesPreset": "u1.large", "resources": None}),
    _change("upgrade", "rabbitmq", {"version": "v4.2"}),
    _change("add a user", "rabbitmq", {"users": {"ops": {}}}),
    _change(
        "remove a user",
        "rabbitmq",
        {
            "users": {"auditor": None},
            "vhosts": {
                "orders": {"roles": {"readonly": []}},
                "billing": {"roles": {"readonly": ["orders_app"]}},
            },
        },
    ),
    _change("add a vhost", "rabbitmq", {"vhosts": {"audit": {"roles": {"admin": ["auditor"]}}}}),
    _change("remove a vhost", "rabbitmq", {"vhosts": {"billing": None}}),
    _change(
        "readonly to admin",
        "rabbitmq",
        {"vhosts": {"orders": {"roles": {"admin": ["orders_app", "auditor"], "readonly": []}}}},
    ),
    _change("not external", "rabbitmq", {"external": False}),
    # VMDisk
    _change("grows", "vmdisk", {"storage": "30Gi"}),
    _change("grows from the default", "vmdisk-minimal", {"storage": "10Gi"}),
    _change("optical", "vmdisk", {"optical": True}),
    _change("not optical", "vmdisk-upload", {"optical": False}),
    _change(
        "source", "vmdisk", {"source": {"image": None, "http": {"url": "https://x.org/a.img"}}}
    ),
    # VirtualMachine
    _change("instance type", "virtualmachine", {"instanceType": "u1.large"}),
    _change(
        "sized by resources",
        "virtualmachine",
        {"instanceType": "", "resources": {"cpu": 2, "memory": "8Gi", "sockets": 1}},
    ),
    _change("halted", "virtualmachine", {"runStrategy": "Halted"}),
    _change(
        "add a disk",
        "virtualmachine",
        {
            "disks": [
                {"name": "system", "bus": "virtio"},
                {"name": "installer"},
                {"name": "builder"},
            ]
        },
    ),
    _change("remove a disk", "virtualmachine", {"disks": [{"name": "system", "bus": "virtio"}]}),
    _change(
        "reorder the disks",
        "virtualmachine",
        {"disks": [{"name": "installer", "bus": "sata"}, {"name": "system", "bus": "virtio"}]},
    ),
    _change(
        "attach a disk not made yet",
        "virtualmachine-minimal",
        {"disks": [{"name": "ubuntu"}, {"name": "later"}]},
    ),
    _change("no networks", "virtualmachine", {"networks": []}),
    _change("no GPU", "virtualmachine", {"gpus": []}),
    _change(
        "SSH keys",
        "virtualmachine",
        {"sshKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOexample carol@example.org"]},
        rotated=_keys("ssh-keys"),
    ),
    _change(
        "cloud-init",
        "virtualmachine",
        {"cloudInit": "#cloud-config\npackages: [htop]\n"},
        rotated=_keys("cloud-init"),
    ),
    _change("cloud-init seed", "virtualmachine", {"cloudInitSeed": "v2"}),
    _change("not external", "virtualmachine", {"external": False}),
    # Kubernetes
    _change("upgrade", "kubernetes", {"version": "v1.35"}),
    _change("upgrade", "kubernetes-kubeadm", {"version": "v1.34"}),
    _change(
        "group instance type",
        "kubernetes",
        {"nodeGroups": {"general": {"instanceType": "u1.2xlarge"}}},
    ),
    _change("group disk grows", "kubernetes", {"nodeGroups": {"general": {"diskSize": "80Gi"}}}),
    _change("group disk shrinks", "kubernetes", {"nodeGroups": {"general": {"diskSize": "30Gi"}}}),
    _change(
        "group storage class",
        "kubernetes",
        {"nodeGroups": {"compute": {"storageClass": "replicated"}}},
    ),
    _change(
        "group scaling",
        "kubernetes",
        {"nodeGroups": {"general": {"minReplicas": 3, "maxReplicas": 9}}},
    ),
    _change("group roles", "kubernetes", {"nodeGroups": {"general": {"roles": ["web"]}}}),
    _change("add a group", "kubernetes", {"nodeGroups": {"batch": {"instanceType": "u1.large"}}}),
    _change(
        "remove a group",
        "kubernetes",
        {"nodeGroups": {"gpu": None}},
        dropped=_keys("machinedeployment-gpu"),
    ),
    _change(
        "groups replace md0",
        "kubernetes-minimal",
        {"nodeGroups": {"web": {"roles": ["ingress-nginx"]}}},
        dropped=_keys("machinedeployment-md0"),
    ),
    _change(
        "md0 named",
        "kubernetes-minimal",
        {"nodeGroups": {"md0": {"roles": ["ingress-nginx"]}, "web": {}}},
    ),
    _change("control plane replicas", "kubernetes", {"controlPlane": {"replicas": 5}}),
    _change("addon off", "kubernetes", {"addons": {"velero": {"enabled": False}}}),
    _change("talos mirrors", "kubernetes", {"talos": {"registryMirrors": {}}}),
    _change("health checks", "kubernetes", {"nodeHealthCheck": {"maxUnhealthy": "20%"}}),
    # HTTPCache
    _change("size grows", "httpcache", {"size": "80Gi"}),
    _change("size grows, default class", "httpcache-minimal", {"size": "20Gi"}),
    _change("more caches", "httpcache", {"nginx": {"replicas": 5}}),
    _change(
        "fewer caches",
        "httpcache",
        {"nginx": {"replicas": 2}},
        # Caches hold copies of what the origins serve: the volumes go with them.
        dropped=_keys("cache-2-volume"),
    ),
    _change("HAProxy replicas", "httpcache", {"haproxy": {"replicas": 1}}),
    _change("origins", "httpcache", {"endpoints": ["10.100.3.9:80"]}),
    _change("preset", "httpcache", {"nginx": {"resourcesPreset": "u1.large", "resources": None}}),
    _change("not external", "httpcache", {"external": False}),
]


def _refusal(
    name: str, base: str, patch: Object, field: str, function: str, xrd: str | None
) -> Refusal:
    return Refusal(f"{base}:{name}", base, patch, field, function, xrd)


SHRINK = "size cannot shrink"
CLASS = "storageClass is immutable"

REFUSALS = [
    # Postgres
    _refusal(
        "shrink", "postgres", {"size": "20Gi"}, "spec.size", "cannot shrink from 50Gi", SHRINK
    ),
    _refusal(
        "shrink, written as bytes",
        "postgres-minimal",
        {"size": 1_000_000_000},
        "spec.size",
        "cannot shrink from 10Gi",
        SHRINK,
    ),
    _refusal(
        "storage class",
        "postgres",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    _refusal(
        "storage class from the default",
        "postgres-minimal",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    _refusal(
        "downgrade",
        "postgres",
        {"version": "v16"},
        "spec.version",
        "cannot go down from v17 to v16",
        "version cannot go down",
    ),
    _refusal(
        "upgrade below v16",
        "postgres-v14",
        {"version": "v15"},
        "spec.version",
        "upgrades a major version only to v16 or later",
        "version can only be upgraded to v16 or later",
    ),
    # MariaDB
    _refusal("shrink", "mariadb", {"size": "20Gi"}, "spec.size", "cannot shrink from 40Gi", SHRINK),
    _refusal(
        "storage class",
        "mariadb",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    _refusal(
        "one replica once replicated",
        "mariadb",
        {"replicas": 1},
        "spec.replicas",
        "cannot go down to 1 once replicated",
        "replicas cannot go down to 1 once replicated",
    ),
    _refusal(
        "backup bucket",
        "mariadb",
        {"backup": {"s3Bucket": "elsewhere"}},
        "spec.backup",
        "the S3 target of the existing Backup cannot change (s3Bucket)",
        None,
    ),
    _refusal(
        "backup retention",
        "mariadb",
        {"backup": {"maxRetention": "720h"}},
        "spec.backup.maxRetention",
        "cannot change from 336h",
        None,
    ),
    # Redis
    _refusal("shrink", "redis", {"size": "4Gi"}, "spec.size", "cannot shrink from 8Gi", SHRINK),
    _refusal(
        "storage class",
        "redis",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    _refusal(
        "persistence off",
        "redis",
        {"size": ""},
        "spec.size",
        "an empty size would drop them and the data",
        "size cannot switch between empty",
    ),
    _refusal(
        "persistence on",
        "redis-ephemeral",
        {"size": "8Gi"},
        "spec.size",
        "created without persistence",
        "size cannot switch between empty",
    ),
    # RabbitMQ
    _refusal(
        "shrink", "rabbitmq", {"size": "10Gi"}, "spec.size", "cannot shrink from 20Gi", SHRINK
    ),
    _refusal(
        "storage class",
        "rabbitmq",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    _refusal(
        "fewer nodes",
        "rabbitmq",
        {"replicas": 3},
        "spec.replicas",
        "cannot go down from 5 to 3",
        "replicas cannot decrease",
    ),
    _refusal(
        "imported password",
        "rabbitmq",
        {"users": {"billing": {"password": "a-new-password"}}},
        "spec.users.billing.password",
        "RabbitMQ keeps the password it imported",
        None,
    ),
    # VMDisk
    _refusal(
        "shrink",
        "vmdisk",
        {"storage": "10Gi"},
        "spec.storage",
        "a disk cannot shrink",
        "storage cannot shrink",
    ),
    _refusal(
        "storage class",
        "vmdisk",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
    # Kubernetes
    _refusal(
        "storage class",
        "kubernetes",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable: the cluster's volumes use 'replicated'",
        CLASS,
    ),
    _refusal(
        "downgrade",
        "kubernetes",
        {"version": "v1.33"},
        "spec.version",
        "cannot go down from v1.34 to v1.33",
        "version cannot go down",
    ),
    _refusal(
        "skip a minor version",
        "kubernetes-v1.33",
        {"version": "v1.35"},
        "spec.version",
        "go to v1.34 first",
        "version goes up one minor version at a time",
    ),
    _refusal(
        "bootstrap",
        "kubernetes",
        {"bootstrap": "kubeadm"},
        "spec.bootstrap",
        "is immutable: the workers boot from TalosConfigTemplates",
        "bootstrap is immutable",
    ),
    # HTTPCache
    _refusal(
        "shrink", "httpcache", {"size": "20Gi"}, "spec.size", "cannot shrink from 50Gi", SHRINK
    ),
    _refusal(
        "storage class",
        "httpcache",
        {"storageClass": "local"},
        "spec.storageClass",
        "is immutable",
        CLASS,
    ),
]


# --- the cluster the changed claim meets ---


def _group_kind(obj: Object) -> tuple[str, str]:
    return str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", ""))


def _schema(catalog: Catalog, obj: Object) -> Object | None:
    group, version = (str(obj.get("apiVersion", "")).rpartition("/")[i] for i in (0, 2))
    found = catalog.schemas.get((group, version, str(obj.get("kind", ""))))
    return None if found is None else found.openapi


def defaulted(catalog: Catalog, obj: Object) -> Object:
    """`obj` as the API server stores it: with its schema's defaults."""
    schema = _schema(catalog, obj)
    out = copy.deepcopy(obj)
    if _group_kind(out) == ("", "PersistentVolumeClaim"):
        out["spec"].setdefault("storageClassName", DEFAULT_CLASS)
        out["spec"].setdefault("volumeMode", "Filesystem")
    return out if schema is None else dict(apply_defaults(schema, out))


def _ready(kind: str = "Ready") -> list[Object]:
    return [{"type": kind, "status": "True", "lastTransitionTime": CREATED}]


def _status(obj: Object) -> Object | None:
    """What the operators report once the object is settled and healthy."""
    spec, name = obj.get("spec", {}), obj["metadata"]["name"]
    match _group_kind(obj):
        case ("postgresql.cnpg.io", "Cluster"):
            image = str(spec["imageName"])
            major = int(image.rpartition(":")[2].partition(".")[0])
            return {
                "phase": "Cluster in healthy state",
                "instances": spec["instances"],
                "readyInstances": spec["instances"],
                "currentPrimary": f"{name}-1",
                "image": image,
                "pgDataImageInfo": {"image": image, "majorVersion": major},
                "conditions": _ready(),
            }
        case ("postgresql.cnpg.io", "Database"):
            return {"applied": True}
        case ("k8s.mariadb.com", "MariaDB"):
            return {
                "replicas": spec["replicas"],
                "currentPrimary": f"{name}-0",
                "conditions": _ready(),
            }
        case ("rabbitmq.com", "RabbitmqCluster"):
            return {"observedGeneration": 1, "conditions": _ready("AllReplicasReady")}
        case ("rabbitmq.com", "User"):
            # The topology operator has imported the credentials.
            return {"username": name, "conditions": _ready()}
        case ("cdi.kubevirt.io", "DataVolume"):
            return {"phase": "Succeeded", "progress": "100.0%", "claimName": name}
        case ("", "PersistentVolumeClaim"):
            return {"phase": "Bound", "capacity": {"storage": _request(obj)}}
        case ("kubevirt.io", "VirtualMachine"):
            return {"printableStatus": "Running", "conditions": _ready()}
        case ("controlplane.cluster.x-k8s.io", "KamajiControlPlane"):
            replicas = spec.get("replicas", 1)
            return {"ready": True, "initialized": True, "version": spec["version"]} | {
                "replicas": replicas,
                "readyReplicas": replicas,
            }
        case ("infrastructure.cluster.x-k8s.io", "KubevirtCluster"):
            return {"ready": True}
        case ("cluster.x-k8s.io", "MachineDeployment"):
            annotations = obj["metadata"].get("annotations", {})
            workers = int(
                annotations.get("cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size", 0)
            )
            return {"replicas": workers, "readyReplicas": workers}
        case ("apps", "Deployment"):
            replicas = spec.get("replicas", 1)
            return {
                "replicas": replicas,
                "readyReplicas": replicas,
                "conditions": _ready("Available"),
            }
        case ("batch", "Job"):
            return {"succeeded": 1, "conditions": _ready("Complete")}
        case ("", "Service") if spec.get("type") == "LoadBalancer":
            return {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}
        case (group, _) if group and group not in ("rbac.authorization.k8s.io", "policy"):
            return {"conditions": _ready()}
    return None


def _request(obj: Object) -> Any:
    spec = obj.get("spec", {})
    storage = spec.get("storage") or spec.get("pvc") or spec
    return storage.get("resources", {}).get("requests", {}).get("storage")


def observe(rendered: list[Object], catalog: Catalog) -> list[Object]:
    """What the cluster holds once Crossplane applied `rendered` and the operators settled."""
    live: list[Object] = []
    for obj in rendered:
        out = defaulted(catalog, obj)
        meta = out["metadata"]
        meta.update(
            uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{meta.get('namespace', '')}/{meta['name']}")),
            resourceVersion="1",
            generation=1,
            creationTimestamp=CREATED,
        )
        status = _status(out)
        if status is not None:
            out["status"] = status
        live.append(out)
    return live


def _made_by_operators(live: list[Object]) -> Iterator[Object]:
    """The objects operators create from the composed ones, which the function reads."""
    for obj in live:
        meta = obj["metadata"]
        match _group_kind(obj):
            case ("cdi.kubevirt.io", "DataVolume"):
                storage = obj["spec"].get("storage", {})
                yield {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                    "spec": {
                        "storageClassName": storage.get("storageClassName", DEFAULT_CLASS),
                        "resources": {"requests": {"storage": _request(obj)}},
                    },
                    "status": {"phase": "Bound", "capacity": {"storage": _request(obj)}},
                }
            case ("cluster.x-k8s.io", "MachineDeployment"):
                spec = obj["spec"]
                yield {
                    "apiVersion": obj["apiVersion"],
                    "kind": "MachineSet",
                    "metadata": {
                        "name": f"{meta['name']}-5d8f7",
                        "namespace": meta["namespace"],
                        "labels": {"cluster.x-k8s.io/cluster-name": spec["clusterName"]},
                    },
                    "spec": {"clusterName": spec["clusterName"], "template": spec["template"]},
                }


def _identity(obj: Object) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return (
        str(obj.get("apiVersion", "")).rpartition("/")[0],
        str(obj.get("kind", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )


def world(environment: list[Object], live: list[Object]) -> list[Object]:
    """What required resources resolve against: the environment, then what now exists."""
    found = list(environment)
    seen = {_identity(o) for o in found}
    for obj in [*live, *_made_by_operators(live)]:
        if _identity(obj) not in seen:
            seen.add(_identity(obj))
            found.append(obj)
    return found


def other_passwords(length: int) -> str:
    """Unlike the first render's generator, so a password made again shows."""
    return "z" * length


@dataclass(frozen=True)
class Update:
    before: dict[str, Object]
    """The first render, by composition-resource name."""
    after: dict[str, Object]
    """The render of the changed claim against what the first one made."""
    live: dict[str, Object]
    """The first render as the cluster holds it."""


def _by_key(objects: list[Object]) -> dict[str, Object]:
    return {o["metadata"]["annotations"][RESOURCE_NAME]: o for o in objects}


def update(before_claim: Object, after_claim: Object, catalog: Catalog) -> Update:
    """Render `before_claim`, apply it, then render `after_claim` against what exists."""
    environment = load(ENVIRONMENT)
    first = render(before_claim, required=environment, passwords=counter_passwords())
    live = observe(first.resources, catalog)
    second = render(
        after_claim, observed=live, required=world(environment, live), passwords=other_passwords
    )
    return Update(_by_key(first.resources), _by_key(second.resources), _by_key(live))


# --- what must hold across every change ---


def _at(obj: Any, path: FieldPath) -> Any:
    for step in path:
        if isinstance(obj, dict) and isinstance(step, str):
            obj = obj.get(step)
        elif isinstance(obj, list) and isinstance(step, int) and step < len(obj):
            obj = obj[step]
        else:
            return None
    return obj


def sizes(obj: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, str]]:
    """Every storage request or size in an object, by where it is."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = (*path, key)
            if key in ("storage", "size") and isinstance(value, str | int):
                if is_quantity(str(value)):
                    yield here, str(value)
            else:
                yield from sizes(value, here)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from sizes(item, (*path, i))


def check_update(change: Change, up: Update, catalog: Catalog) -> None:
    before, after = up.before, up.after
    both = sorted(before.keys() & after.keys())
    for key in both:
        assert _identity(after[key]) == _identity(before[key]), f"{key} was renamed"

    dropped = {k for k in before.keys() - after.keys() if _group_kind(before[k]) in DATA_BEARING}
    assert dropped == change.dropped, f"data-bearing objects dropped: {sorted(dropped)}"
    for key in before.keys() - after.keys():
        keeps = KEEPS_DATA.get(_group_kind(before[key]))
        if keeps is not None:
            assert _at(before[key], keeps[0]) == keeps[1], f"{key} went without keeping its data"

    for key in both:
        grown = dict(sizes(after[key]))
        for where, size in sizes(before[key]):
            assert where in grown, f"{key}: {where} went away"
            assert parse(grown[where]) >= parse(size), f"{key}: {where} shrank"

        old, new = up.live[key], defaulted(catalog, after[key])
        for path in IMMUTABLE.get(_group_kind(old), ()):
            assert _at(new, path) == _at(old, path), f"{key}: {'.'.join(map(str, path))} changed"
        # The upstream CRDs' own rules, transition rules (oldSelf) included.
        assert catalog.validate(after[key], old=old) == []

        if _group_kind(old) == ("", "Secret") and key not in change.rotated:
            kept = old.get("data", {}).keys() & after[key].get("data", {}).keys()
            changed = sorted(k for k in kept if old["data"][k] != after[key]["data"][k])
            assert not changed, f"{key}: values changed: {changed}"

    if not change.patch:
        # Nothing asked, nothing changes: the live objects are composed again as they are.
        assert sorted(after) == sorted(before)
        for key in both:
            assert defaulted(catalog, after[key]) == defaulted(catalog, before[key]), key


def xrd_errors(before: Object, after: Object, catalog: Catalog) -> list[str]:
    """What the API server says to the update of a claim stored as `before`."""
    return catalog.validate(after, old=defaulted(catalog, before))


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.id)
def test_a_change_loses_nothing(change: Change, catalog: Catalog) -> None:
    before, after = change.claims()
    assert xrd_errors(before, after, catalog) == []
    check_update(change, update(before, after, catalog), catalog)


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.id)
def test_the_function_refuses_what_would_lose_data(refusal: Refusal, catalog: Catalog) -> None:
    before, after = refusal.claims()
    with pytest.raises(RenderError) as refused:
        update(before, after, catalog)
    message = str(refused.value)
    assert f"{refusal.field}: " in message
    assert refusal.function in message


@pytest.mark.parametrize("refusal", [r for r in REFUSALS if r.xrd], ids=lambda r: r.id)
def test_the_xrd_refuses_what_would_lose_data(refusal: Refusal, catalog: Catalog) -> None:
    before, after = refusal.claims()
    assert refusal.xrd is not None
    errors = xrd_errors(before, after, catalog)
    assert any(refusal.xrd in e for e in errors), errors
    # The same claim is fine when nothing is stored yet: only the transition is refused.
    assert catalog.validate(after) == []


def _transition_rules(node: Object, path: str) -> Iterator[tuple[str, str]]:
    for rule in node.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            yield path, rule["message"]
    for name, prop in node.get("properties", {}).items():
        yield from _transition_rules(prop, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _transition_rules(node["additionalProperties"], f"{path}[*]")


TRANSITION_RULES = [
    (kind.claim, path, message)
    for kind in KINDS
    for path, message in _transition_rules(
        manifests.xrd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"], ""
    )
]


@pytest.mark.parametrize(("claim", "path", "message"), TRANSITION_RULES)
def test_every_transition_rule_has_a_refusal(claim: str, path: str, message: str) -> None:
    refused = [r.xrd for r in REFUSALS if r.xrd and BASES[r.base]["kind"] == claim]
    assert any(m in message for m in refused), f"no refusal case for {claim}{path}: {message}"


# --- the new CEL transition rules, evaluated as the API server does ---


def _field(catalog: Catalog, claim: str, *path: str) -> Object:
    node: Object = catalog.xrds[("cozyplane.io", "v1alpha1", claim)][0]["properties"]["spec"]
    for name in path:
        node = node["properties"][name]
    return node


@pytest.mark.parametrize(
    ("claim", "path", "old", "new", "ok"),
    [
        ("Postgres", ("size",), "10Gi", "10Gi", True),
        ("Postgres", ("size",), "10Gi", "11Gi", True),
        ("Postgres", ("size",), "1Ti", "1024Gi", True),
        ("Postgres", ("size",), "10Gi", 10737418240, True),
        ("Postgres", ("size",), 10737418240, "10Gi", True),
        ("Postgres", ("size",), "10Gi", "9Gi", False),
        ("Postgres", ("size",), "10Gi", "10G", False),
        ("Postgres", ("size",), "1Ti", 1000, False),
        ("VMDisk", ("storage",), "5Gi", "5Gi", True),
        ("VMDisk", ("storage",), "5Gi", "4Gi", False),
        ("Redis", ("size",), "1Gi", "2Gi", True),
        ("Redis", ("size",), "2Gi", "1Gi", False),
        ("Redis", ("size",), "", "", True),
        ("Postgres", ("version",), "v17", "v17", True),
        ("Postgres", ("version",), "v17", "v18", True),
        ("Postgres", ("version",), "v14", "v16", True),
        ("Postgres", ("version",), "v14", "v15", False),
        ("Postgres", ("version",), "v13", "v14", False),
        ("Postgres", ("version",), "v18", "v17", False),
        # A stored version the API no longer lists says nothing about the new one.
        ("Postgres", ("version",), "v12", "v13", True),
        ("Kubernetes", ("version",), "v1.34", "v1.35", True),
        ("Kubernetes", ("version",), "v1.33", "v1.35", False),
        ("Kubernetes", ("version",), "v1.35", "v1.34", False),
        ("Kubernetes", ("version",), "v1.30", "v1.35", True),
        ("Kubernetes", ("bootstrap",), "talos", "talos", True),
        ("Kubernetes", ("bootstrap",), "kubeadm", "talos", False),
        ("RabbitMQ", ("replicas",), 3, 5, True),
        ("RabbitMQ", ("replicas",), 3, 3, True),
        ("RabbitMQ", ("replicas",), 5, 3, False),
        ("MariaDB", ("replicas",), 1, 3, True),
        ("MariaDB", ("replicas",), 3, 2, True),
        ("MariaDB", ("replicas",), 1, 1, True),
        ("MariaDB", ("replicas",), 2, 1, False),
    ],
)
def test_transition_rule(
    claim: str, path: tuple[str, ...], old: Any, new: Any, ok: bool, catalog: Catalog
) -> None:
    node = _field(catalog, claim, *path)
    assert any("oldSelf" in r["rule"] for r in node["x-kubernetes-validations"])
    assert (list(cel_rules(node, new, "spec", old=old)) == []) is ok
