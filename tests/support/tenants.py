"""Trees of tenants composed through the real Tenant function (access and isolation tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.api.tenant import TenantSpec
from functions.domain import naming
from functions.render import load
from functions.services import tenant
from tests.conftest import ENVIRONMENT
from tests.support.compose import context, namespace

Object = dict[str, Any]


@dataclass(frozen=True)
class Tenant:
    """A composed tenant: its Namespace (the root's comes from the platform) and objects."""

    namespace: Object
    objects: list[Object]

    @property
    def name(self) -> str:
        return str(self.namespace["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.namespace["metadata"].get("labels") or {})


def root_namespace() -> Object:
    """tenant-root as the platform team creates it (examples/environment)."""
    (ns,) = load(ENVIRONMENT / "tenant-root.yaml")
    return ns


def compose_tenant(name: str, parent: Object, spec: dict[str, Any] | None = None) -> Tenant:
    """The Tenant claim `name` in the parent's namespace, once its Namespace exists."""
    parent_name = parent["metadata"]["name"]
    ns = naming.tenant_namespace(parent_name, name)
    out = tenant.compose(
        TenantSpec.model_validate(spec or {}),
        context(
            name,
            parent_name,
            required={tenant.PARENT: [parent]},
            observed={"namespace": namespace(ns)},
        ),
    )
    objects = [r.body for r in out.resources.values()]
    composed = [o for o in objects if o["kind"] == "Namespace"]
    return Tenant(composed[0] if composed else parent, objects)


def compose_tree(children: dict[str, list[str]], modules: dict[str, Any]) -> dict[str, Tenant]:
    """The root tenant and its descendants by namespace; `children` maps a tenant's claim
    name to its children's, starting at `root`; `modules` is the root tenant's spec."""
    root = compose_tenant(naming.ROOT_TENANT, root_namespace(), modules)
    tenants = {root.name: root}
    pending = [(root, child) for child in children.get(naming.ROOT_TENANT, [])]
    while pending:
        parent, name = pending.pop(0)
        composed = compose_tenant(name, parent.namespace)
        tenants[composed.name] = composed
        pending += [(composed, child) for child in children.get(name, [])]
    return tenants
