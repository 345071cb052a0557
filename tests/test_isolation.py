"""Network isolation (reference §6.6), evaluated over the composed Cilium policies.

A tree of tenants root -> a, b; a -> a1; b -> b1 is composed through the real Tenant
function (the root runs the shared modules, as Cozystack's does), and a Postgres, MariaDB,
Redis and RabbitMQ through theirs in tenant-a. tests/support/cilium.py evaluates every
composed policy at once, with Cilium's both-ends, default-deny semantics.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from functions.api.mariadb import MariaDBSpec
from functions.api.postgres import PostgresSpec
from functions.api.rabbitmq import RabbitMQSpec
from functions.api.redis import RedisSpec
from functions.domain import naming
from functions.services import mariadb, postgres, rabbitmq, redis
from functions.services.base import Context, Outcome
from tests.support.cilium import (
    KUBE_APISERVER,
    NAMESPACE,
    NAMESPACE_LABELS,
    REMOTE_NODE,
    WORLD,
    Endpoint,
    Network,
    pod,
)
from tests.support.compose import context
from tests.support.tenants import Tenant, compose_tree

TREE = {"root": ["a", "b"], "a": ["a1"], "b": ["b1"]}
NAMESPACES = ("tenant-root", "tenant-a", "tenant-a-a1", "tenant-b", "tenant-b-b1")
ROOT_MODULES = {"etcd": True, "ingress": True, "monitoring": True}
DATABASE_TENANT = "tenant-a"
PORTS = (53, 80, 2379, 5432, 6443, 8080)
ALLOW_TO_APISERVER = {"policy.cozystack.io/allow-to-apiserver": "true"}


@cache
def tenants() -> dict[str, Tenant]:
    return compose_tree(TREE, ROOT_MODULES)


def _dig(obj: dict[str, Any], path: tuple[str, ...] | None) -> dict[str, str]:
    for key in path or ():
        obj = obj.get(key) or {}
    return dict(obj) if path else {}


# Each database kind composed with its defaults: how it composes, which composed object
# carries its pods' labels and where (RedisFailover has no such field), the labels its
# operator adds (operator behaviour, not composed) and the port it serves.
Compose = Callable[[Context], Outcome]
DATABASES: dict[str, tuple[Compose, str, tuple[str, ...] | None, dict[str, str], int]] = {
    "postgres": (
        lambda ctx: postgres.compose(PostgresSpec.model_validate({}), ctx),
        "cluster",
        ("spec", "inheritedMetadata", "labels"),
        {"cnpg.io/cluster": "postgres-db", "cnpg.io/instanceRole": "primary"},
        5432,
    ),
    "mariadb": (
        lambda ctx: mariadb.compose(MariaDBSpec.model_validate({}), ctx),
        "mariadb",
        ("spec", "podMetadata", "labels"),
        {"app.kubernetes.io/name": "mariadb", "app.kubernetes.io/instance": "mariadb-db"},
        3306,
    ),
    "redis": (
        lambda ctx: redis.compose(RedisSpec.model_validate({}), ctx),
        "failover",
        None,
        {"app.kubernetes.io/component": "redis", "app.kubernetes.io/name": "redis-db"},
        6379,
    ),
    "rabbitmq": (
        lambda ctx: rabbitmq.compose(RabbitMQSpec.model_validate({}), ctx),
        "cluster",
        ("spec", "override", "statefulSet", "spec", "template", "metadata", "labels"),
        {"app.kubernetes.io/name": "rabbitmq-db"},
        5672,
    ),
}


@dataclass(frozen=True)
class Database:
    labels: dict[str, str]
    port: int
    objects: list[dict[str, Any]]

    def pod_in(self, ns: str) -> Endpoint:
        return in_tenant(ns, "database", **self.labels)


@cache
def databases() -> dict[str, Database]:
    """Each database kind as composed in tenant-a: its pods' labels, port and objects."""
    found = {}
    for kind, (compose, key, path, operator_labels, port) in DATABASES.items():
        out = compose(context("db", DATABASE_TENANT))
        labels = _dig(out.resources[key].body, path) | operator_labels
        found[kind] = Database(labels, port, [r.body for r in out.resources.values()])
    return found


@cache
def network() -> Network:
    composed = [o for t in tenants().values() for o in t.objects]
    composed += [o for db in databases().values() for o in db.objects]
    return Network(composed)


def in_tenant(ns: str, name: str, **labels: str) -> Endpoint:
    return pod(ns, tenants()[ns].labels, labels, f"{ns}/{name}")


def clients(ns: str) -> list[Endpoint]:
    """A plain pod, and one that may reach the API server (as database pods may)."""
    return [
        in_tenant(ns, "client", app="client"),
        in_tenant(ns, "client-to-apiserver", app="client", **ALLOW_TO_APISERVER),
    ]


KUBE_DNS = pod("kube-system", {}, {"k8s-app": "kube-dns"}, "kube-system/kube-dns")
OPERATOR = pod(
    "cozy-postgres-operator",
    {"cozystack.io/system": "true"},
    {"app.kubernetes.io/name": "cloudnative-pg"},
    "cozy-postgres-operator/cloudnative-pg",
)
DASHBOARD = pod("cozy-dashboard", {"cozystack.io/system": "true"}, {}, "cozy-dashboard/dashboard")
# A pod in a namespace that is neither a tenant's nor labelled as the platform's: only the
# platform team can run one there, and no tenant policy restricts what it sends.
UNMANAGED = pod("default", {}, {"app": "debug"}, "default/debug")


def test_the_tree() -> None:
    assert sorted(tenants()) == sorted(NAMESPACES)


def test_a_tenant_reaches_itself_and_its_descendants_never_a_sibling() -> None:
    """Nor its ancestors (but their shared modules, below), on any port, whether or not
    its pods may reach the API server."""
    wrong = []
    for src_ns, dst_ns in itertools.product(tenants(), repeat=2):
        server = in_tenant(dst_ns, "server", app="server")
        expected = src_ns in naming.lineage(dst_ns)
        for client, port in itertools.product(clients(src_ns), PORTS):
            if network().allows(client, server, port) != expected:
                wrong.append(f"{client} -> {server}:{port} should be {expected}")
    assert wrong == []


# Who may reach a database in tenant-a: its tenant and the tenant's ancestors, the platform
# (operators in system namespaces, kube-system, the API server, nodes and unmanaged
# namespaces, which the `cluster` entity of allow-external-communication admits) and the
# world (the policies admit it into every tenant; only an external LoadBalancer Service
# actually exposes a database). Never a sibling, a sibling's descendant or a descendant.
DATABASE_PEERS: dict[str, bool] = {
    **{
        f"{ns}/{client}": ns in ("tenant-root", "tenant-a")
        for ns in NAMESPACES
        for client in ("client", "client-to-apiserver")
    },
    str(OPERATOR): True,
    str(KUBE_DNS): True,
    str(KUBE_APISERVER): True,
    str(REMOTE_NODE): True,
    str(UNMANAGED): True,
    str(WORLD): True,
}


@pytest.mark.parametrize("kind", sorted(DATABASES))
def test_a_database_is_reachable_only_from_its_tenant_its_ancestors_and_the_platform(
    kind: str,
) -> None:
    database = databases()[kind]
    db, port = database.pod_in(DATABASE_TENANT), database.port
    peers = [
        *(c for ns in tenants() for c in clients(ns)),
        OPERATOR,
        KUBE_DNS,
        KUBE_APISERVER,
        REMOTE_NODE,
        UNMANAGED,
        WORLD,
    ]
    reach = {str(p): network().allows(p, db, port) for p in peers}
    assert reach == DATABASE_PEERS
    # Nor can the same database in a sibling or a descendant, on any port.
    for other in (database.pod_in("tenant-b"), database.pod_in("tenant-a-a1")):
        assert not any(network().allows(other, db, p) for p in (*PORTS, port)), f"{other}"


@pytest.mark.parametrize(
    ("module", "labels", "port"),
    [
        ("vminsert", {"app.kubernetes.io/name": "vminsert"}, 8480),
        ("vlinsert", {"app.kubernetes.io/name": "vlinsert"}, 9481),
        ("etcd", {"app.kubernetes.io/instance": "etcd", "cozystack.io/service": "etcd"}, 2379),
        ("ingress", {"cozystack.io/service": "ingress"}, 443),
    ],
)
def test_every_tenant_reaches_the_shared_modules_of_the_root(
    module: str, labels: dict[str, str], port: int
) -> None:
    target = in_tenant("tenant-root", module, **labels)
    for client in (c for ns in tenants() for c in clients(ns)):
        assert network().allows(client, target, port), f"{client} -> {module}"


def test_what_tenant_pods_reach_outside_the_tenants() -> None:
    plain, to_apiserver = clients("tenant-b-b1")
    allows = network().allows
    assert allows(plain, KUBE_DNS, 53, "UDP")
    assert allows(plain, DASHBOARD, 443)
    assert allows(plain, WORLD, 443)
    assert allows(to_apiserver, KUBE_APISERVER, 6443)
    assert allows(to_apiserver, REMOTE_NODE, 6443)
    assert not allows(plain, KUBE_APISERVER, 6443)
    assert not allows(plain, OPERATOR, 443)
    assert not allows(plain, UNMANAGED, 80)
    assert not allows(to_apiserver, OPERATOR, 6443)


# The evaluator itself, on hand-written policies.


def _cnp(ns: str, spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _ccnp(spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


X = pod("x", {}, {"app": "a"}, "x/a")
Y = pod("y", {"team": "blue"}, {"app": "b"}, "y/b")
Y2 = pod("y", {"team": "blue"}, {"app": "c"}, "y/c")


def test_nothing_is_denied_until_a_policy_selects_an_endpoint_in_that_direction() -> None:
    assert Network([]).allows(X, Y, 80)
    egress_only = Network(
        [_cnp("x", {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]})]
    )
    assert not egress_only.allows(X, Y, 80)
    assert egress_only.allows(Y, X, 80)
    assert egress_only.allows(X, WORLD, 80)


def test_namespaced_peer_selectors_stay_in_their_namespace() -> None:
    same = _cnp("y", {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]})
    assert Network([same]).allows(Y2, Y, 80)
    assert not Network([same]).allows(X, Y, 80)
    other = _cnp(
        "y",
        {
            "endpointSelector": {},
            "ingress": [{"fromEndpoints": [{"matchLabels": {NAMESPACE: "x"}}]}],
        },
    )
    assert Network([other]).allows(X, Y, 80)


def test_clusterwide_selectors_match_pods_by_namespace_labels_but_not_the_world() -> None:
    policy = _ccnp(
        {
            "endpointSelector": {"matchLabels": {"k8s:app": "a"}},
            "egress": [{"toEndpoints": [{"matchLabels": {f"{NAMESPACE_LABELS}team": "blue"}}]}],
            "ingress": [{"fromEndpoints": [{}]}],
        }
    )
    net = Network([policy])
    assert net.allows(X, Y, 80)
    assert not net.allows(X, WORLD, 80)
    assert net.allows(Y, X, 80)
    assert not net.allows(WORLD, X, 80)


def test_ports_narrow_a_rule_and_a_rule_of_ports_alone_admits_every_peer() -> None:
    ports = {"toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]}
    l4_only = Network([_cnp("x", {"endpointSelector": {}, "egress": [ports]})])
    assert l4_only.allows(X, Y, 6443)
    assert l4_only.allows(X, WORLD, 6443)
    assert not l4_only.allows(X, Y, 6443, "UDP")
    assert not l4_only.allows(X, Y, 443)
    empty = Network([_cnp("x", {"endpointSelector": {}, "egress": [{}]})])
    assert not empty.allows(X, Y, 6443)


def test_entities_match_what_they_contain() -> None:
    cluster = Network(
        [_cnp("y", {"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]})]
    )
    assert cluster.allows(X, Y, 80)
    assert cluster.allows(REMOTE_NODE, Y, 80)
    assert cluster.allows(KUBE_APISERVER, Y, 80)
    assert not cluster.allows(WORLD, Y, 80)


@pytest.mark.parametrize(
    "rule",
    [
        {"toCIDR": ["10.0.0.0/8"]},
        {"toFQDNs": [{"matchName": "example.org"}]},
        {"toEndpoints": [{}], "toPorts": [{"ports": [{"port": "80"}], "rules": {"http": [{}]}}]},
        {"toEntities": ["unmanaged"]},
        {"toEndpoints": [{"matchLabels": {"foo:app": "a"}}]},
    ],
)
def test_what_the_evaluator_does_not_know_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"unsupported|unknown"):
        Network([_cnp("x", {"endpointSelector": {}, "egress": [rule]})])
    with pytest.raises(ValueError, match="unsupported"):
        Network([_cnp("x", {"endpointSelector": {}, "egressDeny": [rule]})])
