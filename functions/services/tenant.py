"""Tenant: namespace, quotas, access levels and network isolation (reference §6)."""

from __future__ import annotations

from typing import Any

from functions.api.tenant import TenantModules, TenantServices, TenantSpec, TenantStatus
from functions.domain import access, naming, presets
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta
from functions.services.etcd import compose_etcd
from functions.services.modules import compose_ingress, compose_monitoring

LABEL_TENANT = "tenant.cozystack.io/"
LABEL_SERVICE = "namespace.cozystack.io/"
LABEL_SCHEDULING = "scheduler.cozystack.io/scheduling-class"
SERVICES = ("etcd", "ingress", "gateway", "monitoring", "seaweedfs")
PARENT = "parent-namespace"

NS_LABEL = "k8s:io.kubernetes.pod.namespace"
CILIUM = "cilium.io/v2"
RBAC = "rbac.authorization.k8s.io/v1"
# Platform namespaces every tenant may reach (reference §6.6).
PLATFORM_EGRESS = {
    "allow-to-dashboard": "cozy-dashboard",
    "allow-to-linstor-gui": "cozy-linstor",
    "allow-to-keycloak": "cozy-keycloak",
    "allow-to-grafana-dashboards": "cozy-grafana-operator",
    "allow-to-cdi-upload-proxy": "cozy-kubevirt-cdi",
}
# Pods in ancestor namespaces a tenant may reach: the shared modules it inherits.
ANCESTOR_SERVICES = (
    {"k8s:app.kubernetes.io/name": "vminsert"},
    {"k8s:app.kubernetes.io/name": "vlinsert"},
    {"k8s:app.kubernetes.io/instance": "etcd"},
    {"cozystack.io/service": "ingress"},
)
LIMIT_RANGE = {
    "type": "Container",
    "default": {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "2Gi"},
    "defaultRequest": {"cpu": "25m", "memory": "128Mi", "ephemeral-storage": "50Mi"},
}


def compose(spec: TenantSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    claim, parent = ctx.composite.claim(
        "an XTenant is created through a Tenant claim in a tenant namespace"
    )
    if not naming.is_tenant_namespace(parent):
        raise ComposeError(
            "metadata.namespace",
            f"a Tenant belongs in a tenant namespace (tenant-root or tenant-*), not {parent!r}",
        )
    namespace = naming.tenant_namespace(parent, claim)
    if len(namespace) > 63:
        raise ComposeError("metadata.name", f"tenant namespace {namespace!r} is longer than 63")
    root = namespace == naming.ROOT_NAMESPACE

    parent_ns = out.require(PARENT, Requirement("v1", "Namespace", parent))
    if not ctx.required.resolved(PARENT):
        return out
    if parent_ns is None:
        raise ComposeError("metadata.namespace", f"namespace {parent!r} does not exist")
    inherited: dict[str, str] = parent_ns.get("metadata", {}).get("labels", {})
    if LABEL_TENANT + naming.ROOT_NAMESPACE not in inherited:
        raise ComposeError(
            "metadata.namespace",
            f"namespace {parent!r} is not a tenant namespace "
            f"(it lacks the label {LABEL_TENANT}{naming.ROOT_NAMESPACE})",
        )

    modules = TenantModules(
        etcd=spec.etcd,
        monitoring=spec.monitoring,
        ingress=spec.ingress,
        seaweedfs=spec.seaweedfs,
        gateway=bool(spec.gateway),
    )
    refs = {
        svc: namespace if getattr(modules, svc) else inherited.get(LABEL_SERVICE + svc, "")
        for svc in SERVICES
    }
    parent_host = inherited.get(LABEL_SERVICE + "host", "")
    if spec.host:
        host = spec.host
    elif root:
        host = parent_host
    else:
        host = f"{claim}.{parent_host}" if parent_host else ""
    scheduling = inherited.get(LABEL_SCHEDULING, "")
    if spec.scheduling_class and scheduling and spec.scheduling_class != scheduling:
        raise ComposeError(
            "spec.schedulingClass",
            f"the parent tenant already sets schedulingClass {scheduling!r}; it is inherited",
        )
    scheduling = scheduling or spec.scheduling_class

    if not root:
        labels = {LABEL_TENANT + ns: "" for ns in naming.lineage(namespace)}
        labels |= {LABEL_SERVICE + svc: ref for svc, ref in refs.items()}
        labels[LABEL_SERVICE + "host"] = host
        labels["alpha.kubevirt.io/auto-memory-limits-ratio"] = "1.0"
        if scheduling:
            labels[LABEL_SCHEDULING] = scheduling
        observed = out.add_observed(
            "namespace",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(namespace, labels=labels)},
        )
        # Crossplane applies composed objects in random order and stops at the first that
        # fails, so objects inside a namespace that does not exist yet would keep failing.
        # Once anything exists, everything stays composed: nothing is ever dropped.
        if observed is None and not ctx.observed.keys():
            out.wait(f"namespace {namespace} to be created")
            out.status = _status(namespace, parent, host, modules, refs, {})
            return out

    _access(out, namespace)
    quota = presets.flatten_quota(spec.resource_quotas, ctx.config.ratios)
    if quota:
        out.add(
            "quota", _namespaced("v1", "ResourceQuota", "tenant-quota", namespace, {"hard": quota})
        )
        out.add(
            "limitrange",
            _namespaced(
                "v1", "LimitRange", "tenant-range-limits", namespace, {"limits": [LIMIT_RANGE]}
            ),
        )
    _isolation(out, namespace, modules)
    if modules.etcd:
        compose_etcd(out, namespace)
    if modules.ingress:
        compose_ingress(out, namespace)
    if modules.monitoring:
        compose_monitoring(out, namespace, host, refs["ingress"])

    out.status = _status(namespace, parent, host, modules, refs, quota)
    return out


def _status(
    namespace: str,
    parent: str,
    host: str,
    modules: TenantModules,
    refs: dict[str, str],
    quota: dict[str, str],
) -> Object:
    return TenantStatus(
        namespace=namespace,
        parent=parent,
        host=host,
        modules=modules,
        services=TenantServices(**refs),
        quota=quota,
    ).model_dump(by_alias=True)


def _namespaced(api_version: str, kind: str, name: str, namespace: str, spec: Object) -> Object:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": meta(name, namespace),
        "spec": spec,
    }


def _role_binding(name: str, namespace: str, subjects: list[Object]) -> Object:
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    }


def _access(out: Outcome, namespace: str) -> None:
    out.add(
        "serviceaccount",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(namespace, namespace)},
    )
    out.add(
        "rolebinding-tenant",
        _role_binding(access.TENANT_ROLE, namespace, access.tenant_subjects(namespace)),
    )
    for level in access.LEVELS:
        out.add(
            f"rolebinding-{level}",
            _role_binding(
                access.level_role(level), namespace, access.level_subjects(namespace, level)
            ),
        )


def _policy(name: str, namespace: str | None, spec: Object) -> Object:
    kind = "CiliumNetworkPolicy" if namespace else "CiliumClusterwideNetworkPolicy"
    return {"apiVersion": CILIUM, "kind": kind, "metadata": meta(name, namespace), "spec": spec}


def _in_namespace(namespace: str, **labels: str) -> dict[str, Any]:
    return {"matchLabels": {NS_LABEL: namespace, **labels}}


def _isolation(out: Outcome, ns: str, modules: TenantModules) -> None:
    """Cilium policies: a tenant reaches itself and its descendants, never its siblings."""
    ancestors = naming.lineage(ns)[:-1]
    namespaced: dict[str, Object] = {
        "allow-internal-communication": {
            "endpointSelector": {},
            "ingress": [{"fromEndpoints": [{}]}],
            "egress": [{"toEndpoints": [{}]}],
        },
        "allow-external-communication": {
            "endpointSelector": {},
            "ingress": [{"fromEntities": ["world", "cluster"]}],
            "egress": [{"toEntities": ["world"]}],
        },
        "allow-to-apiserver": {
            "endpointSelector": {"matchLabels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
            # Cozystack's second rule names no peer, which opens port 6443 of every pod in
            # the cluster (other tenants' Kubernetes API servers too): only nodes serve the
            # API server there when its identity is not known.
            "egress": [
                {"toEntities": ["kube-apiserver"]},
                {
                    "toEntities": ["host", "remote-node"],
                    "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}],
                },
            ],
        },
        "allow-to-dns": {
            "endpointSelector": {},
            "egress": [{"toEndpoints": [_in_namespace("kube-system", **{"k8s-app": "kube-dns"})]}],
        },
        **{
            name: {"endpointSelector": {}, "egress": [{"toEndpoints": [_in_namespace(target)]}]}
            for name, target in PLATFORM_EGRESS.items()
        },
        "allow-to-ingress": {
            "endpointSelector": {},
            "egress": [{"toEndpoints": [{"matchLabels": {"cozystack.io/service": "ingress"}}]}],
        },
    }
    for name, spec in namespaced.items():
        out.add(f"cnp-{name}", _policy(name, ns, spec))

    own = {"matchLabels": {NS_LABEL: ns}}
    egress: list[Object] = [
        {
            "toEndpoints": [
                {"matchLabels": {f"k8s:io.cilium.k8s.namespace.labels.{LABEL_TENANT}{ns}": ""}}
            ]
        }
    ]
    ingress: list[Object] = [
        {"fromEntities": ["kube-apiserver"]},
        {
            "fromEndpoints": [
                {"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.cozystack.io/system": "true"}}
            ]
        },
        {"fromEndpoints": [_in_namespace("kube-system")]},
    ]
    if ancestors:
        egress += [
            {"toEndpoints": [_in_namespace(a, **selector) for a in ancestors]}
            for selector in ANCESTOR_SERVICES
        ]
        ingress.append({"fromEndpoints": [_in_namespace(a) for a in ancestors]})
    clusterwide: dict[str, Object] = {
        "egress": {"endpointSelector": own, "egress": egress},
        "ingress": {"endpointSelector": own, "ingress": ingress},
    }
    if modules.ingress:
        clusterwide["ingress-ingress"] = {
            "endpointSelector": _in_namespace(ns, **{"cozystack.io/service": "ingress"}),
            "ingress": [{"fromEndpoints": [{}]}],
        }
    if modules.etcd:
        clusterwide["ingress-etcd"] = {
            "endpointSelector": _in_namespace(ns, **{"cozystack.io/service": "etcd"}),
            "ingress": [
                {
                    "fromEndpoints": [
                        {
                            "matchLabels": {
                                f"k8s:io.cilium.k8s.namespace.labels.{LABEL_SERVICE}etcd": ns,
                                "policy.cozystack.io/allow-to-etcd": "true",
                            }
                        }
                    ]
                }
            ],
        }
    if modules.monitoring:
        clusterwide["egress-virt-handler"] = {
            "endpointSelector": _in_namespace(ns, **{"k8s:app.kubernetes.io/name": "vmagent"}),
            "egress": [
                {
                    "toEndpoints": [
                        _in_namespace("cozy-kubevirt", **{"k8s:kubevirt.io": "virt-handler"})
                    ],
                    "toPorts": [{"ports": [{"port": "8443", "protocol": "TCP"}]}],
                }
            ],
        }
    for suffix, spec in clusterwide.items():
        out.add(f"ccnp-{suffix}", _policy(f"{ns}-{suffix}", None, spec))
