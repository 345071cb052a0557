"""ClusterRoles cozyplane ships (package/rbac): Crossplane's, and the tenant access levels."""

from __future__ import annotations

from typing import Any

from functions.api.kinds import GROUP, KINDS
from functions.domain import access
from functions.domain.readiness import COMPOSED, REQUIRED
from functions.services.kubernetes import controlplane

ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ = ["get", "list", "watch"]
CROSSPLANE_ROLE = "cozyplane:crossplane"


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def crossplane_role() -> dict[str, Any]:
    """What Crossplane needs for cozyplane, and nothing else: manage every composed kind,
    read every required kind, hold the permissions of the Roles it composes (the API server
    lets nobody grant what they lack) and bind the roles it refers to without composing."""
    by_group: dict[str, list[str]] = {}
    for (group, _), facts in sorted(COMPOSED.items()):
        by_group.setdefault(group, []).append(facts.plural)
    rules = [_rule(g, sorted(set(r)), ALL_VERBS) for g, r in sorted(by_group.items())]
    reads: dict[str, list[str]] = {}
    for (group, _), plural in sorted(REQUIRED.items()):
        reads.setdefault(group, []).append(plural)
    rules += [_rule(g, sorted(set(r)), READ) for g, r in sorted(reads.items())]
    for role in controlplane.ROLE_RULES:
        rules += [dict(rule) for rule in role]
    # CDI authorises a clone by whoever writes the DataVolume: Crossplane, for VMDisks.
    rules.append(
        {"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]}
    )
    rules.append(
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": [
                access.TENANT_ROLE,
                *(access.level_role(lvl) for lvl in access.LEVELS),
            ],
        }
    )
    rules.append(
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["bind"],
            "resourceNames": list(controlplane.BOUND_ROLES),
        }
    )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": CROSSPLANE_ROLE,
            "labels": {"rbac.crossplane.io/aggregate-to-crossplane": "true"},
        },
        "rules": rules,
    }


def tenant_roles() -> list[dict[str, Any]]:
    """The ClusterRoles tenant RoleBindings refer to; each level includes the weaker ones."""
    claims = sorted(k.plural for k in KINDS)
    apps = sorted(k.plural for k in KINDS if k.claim != "Tenant")
    view = [
        _rule(GROUP, claims, READ),
        _rule(
            "",
            ["endpoints", "events", "persistentvolumeclaims", "pods", "resourcequotas", "services"],
            READ,
        ),
        _rule("discovery.k8s.io", ["endpointslices"], READ),
        _rule("networking.k8s.io", ["ingresses"], READ),
        _rule("rbac.authorization.k8s.io", ["roles"], ["get"]),
    ]
    use = [
        *view,
        _rule(
            "subresources.kubevirt.io",
            ["virtualmachineinstances/console", "virtualmachineinstances/vnc"],
            ["get", "list"],
        ),
        _rule(
            "subresources.kubevirt.io", ["virtualmachineinstances/portforward"], ["get", "update"]
        ),
        _rule(
            "subresources.kubevirt.io",
            ["virtualmachines/restart", "virtualmachines/start", "virtualmachines/stop"],
            ["update"],
        ),
    ]
    admin = [
        *use,
        _rule(
            "", ["endpoints", "events", "persistentvolumeclaims", "pods", "services"], ["delete"]
        ),
        # KubeVirt VMs only, as Cozystack: their instances are the operator's to manage.
        _rule("kubevirt.io", ["virtualmachines"], ["get", "list"]),
        _rule(GROUP, apps, ["create", "update", "patch", "delete"]),
    ]
    super_admin = [
        *admin,
        _rule("kubevirt.io", ["virtualmachines"], ["*"]),
        _rule(GROUP, claims, ["*"]),
    ]
    tenant_sa = [*view[1:], _rule(GROUP, claims, ["*"])]
    roles = {
        access.TENANT_ROLE: tenant_sa,
        access.level_role("view"): view,
        access.level_role("use"): use,
        access.level_role("admin"): admin,
        access.level_role("super-admin"): super_admin,
    }
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        }
        for name, rules in roles.items()
    ]
