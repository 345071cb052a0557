"""Tenant access levels (reference §6.7): each may do what Cozystack grants it and no more.

The expected permissions are written out here from the reference, independently of
functions/rbac.py, and compared with the generated ClusterRoles (package/rbac) through an
RBAC evaluator, request by request, for every claim kind and every kind cozyplane composes
or reads. Mapping from Cozystack: `apps.cozystack.io` resources are the cozyplane claim
kinds in `cozyplane.io`; Cozystack-only resources (securitygroups, workloadmonitors,
tenantmodules, tenantsecrets, options) have no cozyplane counterpart. Deviations:
- Cozystack names `persistentvolumes`, which are cluster-scoped, so its namespaced
  RoleBindings grant nothing on them; cozyplane grants the same verbs on the tenant's own
  `persistentvolumeclaims` (docs/cozystack-differences.md).
- Cozystack's super-admin and service-account rules name `apps.cozystack.io` resources `*`,
  subresources included; cozyplane lists its claim kinds, so nobody writes a claim's status.
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import pytest
import yaml

from functions.api.kinds import GROUP, KINDS
from functions.domain import naming
from functions.domain.readiness import COMPOSED, REQUIRED
from tests.conftest import ROOT
from tests.support.rbac import READ, VERBS, Request, allows
from tests.support.tenants import compose_tree

ROLES = ROOT / "package" / "rbac" / "tenant-roles.yaml"
RBAC = "rbac.authorization.k8s.io"
KUBEVIRT = "kubevirt.io"
SUBRESOURCES = "subresources.kubevirt.io"
LEVELS = ("view", "use", "admin", "super-admin")
WRITE = ("create", "update", "patch", "delete")

CLAIMS = {
    "tenants",
    "kuberneteses",
    "postgreses",
    "mariadbs",
    "redises",
    "rabbitmqs",
    "httpcaches",
    "vpns",
    "virtualmachines",
    "vmdisks",
}
APPS = CLAIMS - {"tenants"}
# Cozystack's "pods/services/PVs/endpoints/events/resourcequotas", PVs read as PVCs.
INSPECTED = ("pods", "services", "persistentvolumeclaims", "endpoints", "events", "resourcequotas")
DELETABLE = ("pods", "services", "persistentvolumeclaims", "endpoints", "events")


def _grant(
    group: str, resources: tuple[str, ...] | set[str], verbs: tuple[str, ...]
) -> set[Request]:
    return {Request(v, group, r) for r in resources for v in verbs}


# What a tenant may look at, whatever its level (the `cozy:tenant` base).
_BASE = (
    _grant("", INSPECTED, READ)
    | _grant("discovery.k8s.io", ("endpointslices",), READ)
    | _grant("networking.k8s.io", ("ingresses",), READ)
    | {Request("get", RBAC, "roles")}
)
_VIEW = _BASE | _grant(GROUP, CLAIMS, READ)
_USE = (
    _VIEW
    | _grant(
        SUBRESOURCES,
        ("virtualmachineinstances/console", "virtualmachineinstances/vnc"),
        ("get", "list"),
    )
    | _grant(SUBRESOURCES, ("virtualmachineinstances/portforward",), ("get", "update"))
    | _grant(
        SUBRESOURCES,
        ("virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart"),
        ("update",),
    )
)
_ADMIN = (
    _USE
    | _grant("", DELETABLE, ("delete",))
    | _grant(KUBEVIRT, ("virtualmachines",), ("get", "list"))
    | _grant(GROUP, APPS, WRITE)
)
_SUPER_ADMIN = _ADMIN | _grant(KUBEVIRT, ("virtualmachines",), VERBS) | _grant(GROUP, CLAIMS, VERBS)
REFERENCE: dict[str, set[Request]] = {
    "cozyplane:tenant": _BASE | _grant(GROUP, CLAIMS, VERBS),
    "cozyplane:tenant:view": _VIEW,
    "cozyplane:tenant:use": _USE,
    "cozyplane:tenant:admin": _ADMIN,
    "cozyplane:tenant:super-admin": _SUPER_ADMIN,
}

# Every resource a request is checked against: the claims (with their status and their
# cluster-scoped composites), what tenants see in Cozystack, RBAC, the namespace itself,
# KubeVirt and its subresources, and every kind cozyplane composes or reads.
RESOURCES: set[tuple[str, str]] = (
    {(GROUP, c) for c in CLAIMS}
    | {(GROUP, f"{c}/status") for c in CLAIMS}
    | {(GROUP, f"x{c}") for c in CLAIMS}
    | {
        ("", r)
        for r in (
            *INSPECTED,
            "pods/exec",
            "pods/log",
            "pods/portforward",
            "pods/attach",
            "services/proxy",
            "persistentvolumes",
            "limitranges",
            "secrets",
            "configmaps",
            "serviceaccounts",
            "serviceaccounts/token",
            "namespaces",
            "nodes",
        )
    }
    | {
        ("events.k8s.io", "events"),
        ("discovery.k8s.io", "endpointslices"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "networkpolicies"),
    }
    | {(RBAC, r) for r in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")}
    | {(KUBEVIRT, r) for r in ("virtualmachines", "virtualmachineinstances")}
    | {
        (SUBRESOURCES, r)
        for r in (
            "virtualmachineinstances/console",
            "virtualmachineinstances/vnc",
            "virtualmachineinstances/portforward",
            "virtualmachineinstances/pause",
            "virtualmachines/start",
            "virtualmachines/stop",
            "virtualmachines/restart",
            "virtualmachines/migrate",
            "virtualmachines/addvolume",
        )
    }
    | {(group, facts.plural) for (group, _), facts in COMPOSED.items()}
    | {(group, plural) for (group, _), plural in REQUIRED.items()}
)
REQUESTS = frozenset(Request(v, g, r) for g, r in RESOURCES for v in VERBS)


@cache
def roles() -> dict[str, list[dict[str, Any]]]:
    docs = yaml.safe_load_all(ROLES.read_text())
    return {d["metadata"]["name"]: d["rules"] for d in docs if d}


def permitted(rules: list[dict[str, Any]]) -> set[Request]:
    return {r for r in REQUESTS if allows(rules, r)}


def test_the_claim_kinds_are_the_ten_the_table_covers() -> None:
    assert {k.plural for k in KINDS} == CLAIMS


def test_the_roles_are_the_tenant_role_and_one_per_level() -> None:
    assert roles().keys() == REFERENCE.keys()
    assert all(expected <= REQUESTS for expected in REFERENCE.values())


@pytest.mark.parametrize("role", sorted(REFERENCE))
def test_rules_name_only_resources_the_table_covers(role: str) -> None:
    """So that comparing over RESOURCES compares everything a role can grant."""
    for rule in roles()[role]:
        assert "resourceNames" not in rule, rule
        assert {(g, r) for g in rule["apiGroups"] for r in rule["resources"]} <= RESOURCES, rule


@pytest.mark.parametrize("role", sorted(REFERENCE))
def test_each_role_grants_what_the_reference_says_and_no_more(role: str) -> None:
    granted = permitted(roles()[role])
    assert sorted(granted - REFERENCE[role], key=str) == [], "granted beyond the reference"
    assert sorted(REFERENCE[role] - granted, key=str) == [], "missing from the role"


def test_levels_are_cumulative_and_each_adds_something() -> None:
    allowed = [permitted(roles()[f"cozyplane:tenant:{level}"]) for level in LEVELS]
    for weaker, stronger in itertools.pairwise(allowed):
        assert weaker < stronger


# Composed kinds the reference lets tenants act on directly: reading Services, PVCs,
# quotas, Ingresses and Roles, deleting Services and PVCs, and KubeVirt VMs (read by admin,
# everything for super-admin).
SANCTIONED = {
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "resourcequotas"),
    ("networking.k8s.io", "ingresses"),
    (RBAC, "roles"),
    (KUBEVIRT, "virtualmachines"),
}


@pytest.mark.parametrize("role", sorted(REFERENCE))
def test_no_role_touches_rbac_quotas_namespaces_secrets_or_operator_objects(role: str) -> None:
    granted = permitted(roles()[role])
    touched = {(r.group, r.resource) for r in granted}
    assert {(r.group, r.resource, r.verb) for r in granted if r.group == RBAC} == {
        (RBAC, "roles", "get")
    }
    assert {r.verb for r in granted if r.resource == "resourcequotas"} == set(READ)
    assert {("", "namespaces"), ("", "secrets"), ("", "serviceaccounts")}.isdisjoint(touched)
    operator_objects = {(g, f.plural) for (g, _), f in COMPOSED.items()} - SANCTIONED
    assert operator_objects.isdisjoint(touched)
    # Creating or changing the objects Crossplane composes is left to Crossplane.
    assert not {
        r
        for r in granted
        if (r.group, r.resource) in SANCTIONED - {(KUBEVIRT, "virtualmachines")}
        and r.verb in ("create", "update", "patch")
    }


def test_groups_and_service_accounts_get_their_level_through_the_bindings() -> None:
    """Compose root -> a -> a1 (and a sibling b): in tenant-a-a1, the group `<ns>-<level>`
    of a1 and of every ancestor holds exactly that level; a sibling's groups hold nothing;
    the tenant service accounts of the lineage hold everything the levels grant."""
    tenants = compose_tree({"root": ["a", "b"], "a": ["a1"]}, {})
    bindings = [o for o in tenants["tenant-a-a1"].objects if o["kind"] == "RoleBinding"]

    def effective(kind: str, name: str) -> set[Request]:
        rules = [
            rule
            for b in bindings
            if any(s["kind"] == kind and s["name"] == name for s in b["subjects"])
            for rule in roles()[b["roleRef"]["name"]]
        ]
        return permitted(rules)

    lineage = naming.lineage("tenant-a-a1")
    assert lineage == ["tenant-root", "tenant-a", "tenant-a-a1"]
    for ns, level in itertools.product(lineage, LEVELS):
        expected = REFERENCE[f"cozyplane:tenant:{level}"]
        assert effective("Group", f"{ns}-{level}") == expected, f"{ns}-{level}"
    everything = REFERENCE["cozyplane:tenant"] | _SUPER_ADMIN
    for ns in lineage:
        assert effective("ServiceAccount", ns) == everything, ns
    for level in LEVELS:
        assert effective("Group", f"tenant-b-{level}") == set()
    assert effective("ServiceAccount", "tenant-b") == set()
