"""Readiness rules, one per composed kind: when Crossplane may count an object ready."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Object = Mapping[str, Any]
Rule = Callable[[Object], bool]


def exists(_: Object) -> bool:
    return True


def condition_true(kind: str) -> Rule:
    def rule(obj: Object) -> bool:
        conditions = obj.get("status", {}).get("conditions", [])
        return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)

    return rule


def service(obj: Object) -> bool:
    """A LoadBalancer is ready once it has an address; other Services once they exist."""
    if obj.get("spec", {}).get("type") != "LoadBalancer":
        return True
    return bool(obj.get("status", {}).get("loadBalancer", {}).get("ingress"))


def cnpg_database(obj: Object) -> bool:
    return obj.get("status", {}).get("applied") is True


@dataclass(frozen=True)
class ComposedKind:
    """A kind cozyplane composes: its REST plural, its scope and its readiness rule."""

    plural: str
    namespaced: bool
    ready: Rule


# (API group, kind) -> facts. Composing a kind missing here is a bug (KeyError), and
# the ClusterRole Crossplane needs is generated from exactly this table.
COMPOSED: dict[tuple[str, str], ComposedKind] = {
    ("", "Namespace"): ComposedKind("namespaces", False, exists),
    ("", "Secret"): ComposedKind("secrets", True, exists),
    ("", "ServiceAccount"): ComposedKind("serviceaccounts", True, exists),
    ("", "ResourceQuota"): ComposedKind("resourcequotas", True, exists),
    ("", "LimitRange"): ComposedKind("limitranges", True, exists),
    ("", "Service"): ComposedKind("services", True, service),
    ("rbac.authorization.k8s.io", "RoleBinding"): ComposedKind("rolebindings", True, exists),
    ("cilium.io", "CiliumNetworkPolicy"): ComposedKind("ciliumnetworkpolicies", True, exists),
    ("cilium.io", "CiliumClusterwideNetworkPolicy"): ComposedKind(
        "ciliumclusterwidenetworkpolicies", False, exists
    ),
    ("postgresql.cnpg.io", "Cluster"): ComposedKind("clusters", True, condition_true("Ready")),
    ("postgresql.cnpg.io", "Database"): ComposedKind("databases", True, cnpg_database),
    ("postgresql.cnpg.io", "ScheduledBackup"): ComposedKind("scheduledbackups", True, exists),
    ("barmancloud.cnpg.io", "ObjectStore"): ComposedKind("objectstores", True, exists),
}


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def is_ready(desired: Object, observed: Object | None) -> bool:
    """Ready when the object exists and its kind's rule holds for what is observed."""
    facts = COMPOSED[(group_of(desired["apiVersion"]), desired["kind"])]
    return observed is not None and facts.ready(observed)
