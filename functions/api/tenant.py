"""The Tenant claim (Cozystack `packages/apps/tenant`, reference §6.1)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from functions.api.common import Keys, Model, Quantity, with_rules

HOST_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUOTA_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"
QUOTA_KEYS = Keys(
    "resourceQuotas",
    QUOTA_KEY_PATTERN,
    "resourceQuotas keys must be resource names such as cpu, memory, storage, pods "
    "or services.loadbalancers",
)


class TenantSpec(Model):
    """A tenant: a namespace with its own quotas, access levels, isolation and modules."""

    model_config = with_rules(QUOTA_KEYS.rule())

    host: str = Field("", pattern=HOST_PATTERN, max_length=253)
    """Apex hostname of the tenant; empty means <name>.<parent tenant host>."""
    etcd: bool = False
    """Run an etcd of its own (the Kamaji DataStore used by Kubernetes claims below it)."""
    monitoring: bool = False
    """Run a monitoring stack of its own."""
    ingress: bool = False
    """Run an ingress controller of its own (IngressClass named after the namespace)."""
    seaweedfs: bool = False
    """Run an S3 gateway (SeaweedFS) of its own."""
    gateway: bool | None = None
    """Run a Gateway API gateway of its own; unset means inherit the parent's."""
    scheduling_class: str = Field("", max_length=253)
    """SchedulingClass for workloads; inherited, and settable only if the parent has none."""
    resource_quotas: dict[Annotated[str, AfterValidator(QUOTA_KEYS)], Quantity] = Field(
        default_factory=dict, max_length=128
    )
    """Tenant ResourceQuota: cpu and memory are limits (requests derived with the
    platform ratios), storage is a request total, object counts pass through."""


class TenantServices(Model):
    """Namespace of the tenant that provides each service to this one."""

    etcd: str = ""
    ingress: str = ""
    monitoring: str = ""
    seaweedfs: str = ""
    gateway: str = ""


class TenantModules(Model):
    """Modules this tenant runs itself."""

    etcd: bool = False
    monitoring: bool = False
    ingress: bool = False
    seaweedfs: bool = False
    gateway: bool = False


class TenantStatus(Model):
    namespace: str = ""
    """The tenant's namespace."""
    parent: str = ""
    """The parent tenant's namespace."""
    host: str = ""
    """The tenant's resolved apex hostname."""
    modules: TenantModules = TenantModules()
    services: TenantServices = TenantServices()
    quota: dict[str, str] = Field(default_factory=dict)
    """The ResourceQuota `hard` limits in force."""
