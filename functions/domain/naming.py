"""Names of tenant namespaces and composed objects, as Cozystack derives them."""

from __future__ import annotations

ROOT_NAMESPACE = "tenant-root"
ROOT_TENANT = "root"


def tenant_namespace(parent: str, name: str) -> str:
    """tenant-root (the root tenant), tenant-<name> under it, else <parent>-<name>."""
    if parent == ROOT_NAMESPACE:
        return ROOT_NAMESPACE if name == ROOT_TENANT else f"tenant-{name}"
    return f"{parent}-{name}"


def is_tenant_namespace(namespace: str) -> bool:
    return namespace.startswith("tenant-")


def lineage(namespace: str) -> list[str]:
    """Tenant namespaces from tenant-root down to `namespace` itself, in order.

    Tenant names contain no dashes, so every dash-prefix of a tenant namespace
    (after the leading `tenant`) is an ancestor.
    """
    parts = namespace.split("-")
    chain = ["-".join(parts[: i + 1]) for i in range(1, len(parts))]
    return chain if chain[0] == ROOT_NAMESPACE else [ROOT_NAMESPACE, *chain]


def kebab(identifier: str) -> str:
    """A database or user identifier made fit for an object name."""
    return identifier.replace("_", "-")
