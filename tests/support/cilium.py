"""A small, explicit evaluator of CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.

It follows Cilium's semantics for the subset cozyplane composes, and refuses anything else
(CIDRs, services, FQDNs, L7 rules, deny rules, ...) rather than misjudge it:

- A connection passes when the source's egress and the destination's ingress both allow it.
  An endpoint is default-deny in a direction as soon as one policy selecting it has rules in
  that direction; then only what some such rule allows passes. Policies only ever add.
- Only pods are policed here; the world, nodes and the API server are peers, not subjects.
- Selector keys carry a source (`k8s:app`); a key without one matches any source. A
  namespaced policy's endpoint selector, and every peer selector in it that names no
  namespace, is confined to the policy's namespace; a clusterwide policy's peer selectors
  that name no namespace match only pods (any namespace).
- `toPorts` narrows a rule to the ports it lists; a rule with ports but no peer
  (`fromEndpoints`/`fromEntities`/`toEndpoints`/`toEntities`) allows every peer on them,
  and an empty rule allows nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Object = Mapping[str, Any]

NAMESPACE = "k8s:io.kubernetes.pod.namespace"
NAMESPACE_LABELS = "k8s:io.cilium.k8s.namespace.labels."
SOURCES = ("k8s", "any", "reserved")
POLICY_FIELDS = {"endpointSelector", "ingress", "egress", "description"}
PEERS = {"ingress": ("fromEndpoints", "fromEntities"), "egress": ("toEndpoints", "toEntities")}
ENTITIES = {"all", "world", "cluster", "host", "remote-node", "kube-apiserver"}


@dataclass(frozen=True)
class Endpoint:
    """A peer: its identity labels (`source:key`) and the reserved entities it belongs to."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    entities: frozenset[str] = frozenset({"cluster", "all"})
    pod: bool = True

    def __str__(self) -> str:
        return self.name


def pod(
    namespace: str, namespace_labels: Mapping[str, str], labels: Mapping[str, str], name: str
) -> Endpoint:
    """A pod's identity as Cilium derives it from its namespace and its own labels."""
    identity = {NAMESPACE: namespace}
    identity |= {f"{NAMESPACE_LABELS}{k}": v for k, v in namespace_labels.items()}
    identity |= {f"k8s:{k}": v for k, v in labels.items()}
    return Endpoint(name, identity)


WORLD = Endpoint("world", entities=frozenset({"world", "all"}), pod=False)
REMOTE_NODE = Endpoint(
    "remote-node", entities=frozenset({"remote-node", "cluster", "all"}), pod=False
)
KUBE_APISERVER = Endpoint(
    "kube-apiserver",
    entities=frozenset({"kube-apiserver", "remote-node", "cluster", "all"}),
    pod=False,
)


def _key(key: str) -> str:
    """A selector key with its source; keys without one match any source."""
    source, sep, _ = key.partition(":")
    if sep and source in SOURCES:
        return key
    if sep:
        raise ValueError(f"unknown label source in selector key {key!r}")
    return f"any:{key}"


def _value(labels: Mapping[str, str], key: str) -> str | None:
    source, _, name = _key(key).partition(":")
    if source != "any":
        return labels.get(f"{source}:{name}")
    return next((labels[f"{s}:{name}"] for s in SOURCES if f"{s}:{name}" in labels), None)


@dataclass(frozen=True)
class Selector:
    """matchLabels and matchExpressions, both required to hold."""

    labels: Mapping[str, str]
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...]

    @staticmethod
    def parse(raw: Object) -> Selector:
        unknown = set(raw) - {"matchLabels", "matchExpressions"}
        if unknown:
            raise ValueError(f"unsupported selector fields {unknown}")
        expressions = tuple(
            (e["key"], e["operator"], tuple(e.get("values") or ()))
            for e in raw.get("matchExpressions") or ()
        )
        return Selector(dict(raw.get("matchLabels") or {}), expressions)

    def names_namespace(self) -> bool:
        keys = {_key(k) for k in self.labels} | {_key(k) for k, _, _ in self.expressions}
        return bool(keys & {NAMESPACE, "any:io.kubernetes.pod.namespace"})

    def scoped(self, namespace: str | None) -> Selector:
        """Cilium's implicit scope for a peer selector that names no namespace."""
        if self.names_namespace():
            return self
        if namespace is None:
            return Selector(self.labels, (*self.expressions, (NAMESPACE, "Exists", ())))
        return Selector({**self.labels, NAMESPACE: namespace}, self.expressions)

    def matches(self, endpoint: Endpoint) -> bool:
        if any(_value(endpoint.labels, k) != v for k, v in self.labels.items()):
            return False
        for key, operator, values in self.expressions:
            value = _value(endpoint.labels, key)
            if operator == "In":
                ok = value is not None and value in values
            elif operator == "NotIn":
                ok = value is None or value not in values
            elif operator == "Exists":
                ok = value is not None
            elif operator == "DoesNotExist":
                ok = value is None
            else:
                raise ValueError(f"unknown selector operator {operator!r}")
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule: the peers it admits and the ports it narrows to."""

    selectors: tuple[Selector, ...]
    entities: frozenset[str]
    ports: tuple[tuple[int, str], ...]
    l4_only: bool

    @staticmethod
    def parse(raw: Object, direction: str, namespace: str | None) -> Rule:
        endpoints_field, entities_field = PEERS[direction]
        unknown = set(raw) - {endpoints_field, entities_field, "toPorts"}
        if unknown:
            raise ValueError(f"unsupported {direction} rule fields {unknown}")
        entities = frozenset(raw.get(entities_field) or ())
        if entities - ENTITIES:
            raise ValueError(f"unknown entities {entities - ENTITIES}")
        ports: list[tuple[int, str]] = []
        for item in raw.get("toPorts") or ():
            if set(item) != {"ports"}:
                raise ValueError(f"unsupported toPorts fields {set(item) - {'ports'}}")
            for p in item["ports"]:
                if set(p) - {"port", "protocol"}:
                    raise ValueError(f"unsupported port fields {set(p)}")
                ports.append((int(p["port"]), p.get("protocol", "ANY")))
        return Rule(
            selectors=tuple(
                Selector.parse(s).scoped(namespace) for s in raw.get(endpoints_field) or ()
            ),
            entities=entities,
            ports=tuple(ports),
            # An L4-only rule admits every peer on its ports; an empty rule admits nothing.
            l4_only=endpoints_field not in raw and entities_field not in raw and bool(ports),
        )

    def allows(self, peer: Endpoint, port: int, protocol: str) -> bool:
        peer_ok = (
            self.l4_only
            or bool(self.entities & peer.entities)
            or any(s.matches(peer) for s in self.selectors)
        )
        port_ok = not self.ports or any(
            p == port and proto in ("ANY", protocol) for p, proto in self.ports
        )
        return peer_ok and port_ok


@dataclass(frozen=True)
class Policy:
    """The endpoints a policy selects and its rules by direction."""

    subjects: Selector
    rules: Mapping[str, tuple[Rule, ...]]

    @staticmethod
    def parse(obj: Object) -> Policy:
        kind, spec = obj["kind"], obj["spec"]
        namespace = obj["metadata"].get("namespace")
        if (kind == "CiliumNetworkPolicy") != (namespace is not None):
            raise ValueError(f"{kind} {obj['metadata']['name']}: wrong scope")
        if set(spec) - POLICY_FIELDS:
            raise ValueError(f"unsupported policy fields {set(spec) - POLICY_FIELDS}")
        subjects = Selector.parse(spec["endpointSelector"])
        if namespace is not None:
            subjects = Selector({**subjects.labels, NAMESPACE: namespace}, subjects.expressions)
        return Policy(
            subjects=subjects,
            rules={
                d: tuple(Rule.parse(r, d, namespace) for r in spec.get(d) or ())
                for d in ("ingress", "egress")
            },
        )


class Network:
    """Every composed policy in force at once."""

    def __init__(self, objects: Iterable[Object]) -> None:
        self.policies = [
            Policy.parse(o)
            for o in objects
            if o["kind"] in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
        ]

    def _admits(
        self, subject: Endpoint, direction: str, peer: Endpoint, port: int, proto: str
    ) -> bool:
        if not subject.pod:
            return True
        rules = [
            rule
            for policy in self.policies
            if policy.subjects.matches(subject)
            for rule in policy.rules[direction]
        ]
        return not rules or any(rule.allows(peer, port, proto) for rule in rules)

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._admits(src, "egress", dst, port, protocol) and self._admits(
            dst, "ingress", src, port, protocol
        )
