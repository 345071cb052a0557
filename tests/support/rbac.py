"""A small Kubernetes RBAC evaluator: does a list of PolicyRules allow a request?

It follows the API server's rule matching (`k8s.io/component-helpers/auth/rbac`):
`*` in apiGroups, resources or verbs matches anything (subresources included), a
`resource/subresource` must be named exactly or as `*/subresource`, and resourceNames,
when present, match only requests for one of those names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Rule = Mapping[str, Any]

VERBS = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    # Verbs with a meaning of their own to the API server (RBAC, impersonation, PSP, CSRs).
    "bind",
    "escalate",
    "impersonate",
    "use",
    "approve",
)
READ = ("get", "list", "watch")


@dataclass(frozen=True)
class Request:
    """One API request as the authorizer sees it; `resource` may be `resource/subresource`."""

    verb: str
    group: str
    resource: str
    name: str = ""


def _resource_matches(granted: Iterable[str], requested: str) -> bool:
    _, _, sub = requested.partition("/")
    return any(r in ("*", requested) or (bool(sub) and r == f"*/{sub}") for r in granted)


def rule_allows(rule: Rule, req: Request) -> bool:
    if rule.get("nonResourceURLs"):
        raise ValueError(f"non-resource rules are not evaluated: {rule}")
    names = rule.get("resourceNames") or []
    return (
        any(v in ("*", req.verb) for v in rule["verbs"])
        and any(g in ("*", req.group) for g in rule["apiGroups"])
        and _resource_matches(rule["resources"], req.resource)
        and (not names or req.name in names)
    )


def allows(rules: Iterable[Rule], req: Request) -> bool:
    return any(rule_allows(rule, req) for rule in rules)


def grants(rules: Iterable[Rule]) -> set[Request]:
    """Every (verb, group, resource, name) a list of rules spells out, wildcards kept as `*`."""
    return {
        Request(verb, group, resource, name)
        for rule in rules
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in (rule.get("resourceNames") or [""])
    }
