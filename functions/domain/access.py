"""Tenant access levels: names shared by the tenant RoleBindings and the shipped ClusterRoles."""

from __future__ import annotations

from typing import Any

from functions.domain.naming import lineage

LEVELS = ("view", "use", "admin", "super-admin")
"""Nested access levels, weakest first: each includes everything before it."""

TENANT_ROLE = "cozyplane:tenant"
"""ClusterRole bound to the tenant ServiceAccounts of a tenant and its ancestors."""


def level_role(level: str) -> str:
    return f"{TENANT_ROLE}:{level}"


def group(namespace: str, level: str) -> str:
    """The identity-provider group of a tenant level, as Cozystack names them."""
    return f"{namespace}-{level}"


def service_account(namespace: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": namespace, "namespace": namespace}


def tenant_subjects(namespace: str) -> list[dict[str, Any]]:
    """Tenant ServiceAccounts of the tenant and every ancestor."""
    return [service_account(ns) for ns in lineage(namespace)]


def level_subjects(namespace: str, level: str) -> list[dict[str, Any]]:
    """For the tenant and every ancestor: its ServiceAccount and its groups at `level` or above."""
    stronger = LEVELS[LEVELS.index(level) :]
    subjects: list[dict[str, Any]] = []
    for ns in lineage(namespace):
        subjects.append(service_account(ns))
        subjects.extend(
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group(ns, lvl)}
            for lvl in stronger
        )
    return subjects
