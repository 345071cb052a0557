"""What every service's compose function receives and returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.api.config import PlatformConfig
from functions.domain import readiness, shape
from functions.domain.errors import ComposeError, StateError
from functions.domain.secrets import PasswordSource

Object = dict[str, Any]

__all__ = [
    "ComposeError",
    "Composite",
    "Context",
    "Observed",
    "Outcome",
    "Required",
    "Requirement",
    "StateError",
]


@dataclass(frozen=True)
class Composite:
    """What a service may know of the composite resource (XR) and its claim."""

    name: str
    uid: str
    claim_name: str
    claim_namespace: str

    def claim(self, refusal: str) -> tuple[str, str]:
        """The claim's name and namespace; every kind is created through a claim."""
        if not self.claim_name or not self.claim_namespace:
            raise ComposeError("metadata", refusal)
        return self.claim_name, self.claim_namespace


STATE_FIELDS = frozenset(("apiVersion", "kind", "metadata", "status"))
DATA_FIELDS = frozenset(("data",))


def _checked(obj: Object, what: str, name: str, index: int | None = None) -> Object:
    """`obj` if its fields are of the types services read them as; else a StateError naming
    it and the field (`observed resource "cluster": status.conditions[0] must be an
    object`). A malformed object is refused, never read as absent: that could make new
    passwords."""
    wrong = shape.problem(obj)
    if wrong is not None:
        item = "" if index is None else f"[{index}]"
        raise StateError("", f"{what} {json.dumps(name, ensure_ascii=False)}{item}: {wrong}")
    return obj


class Observed:
    """Observed composed resources by composition-resource name, converted on first read.

    An object a service reads whole (`get`: the objects data guards compare) is checked
    when first read. Readiness needs only an object's apiVersion, kind, metadata and
    status (`state`), which the runner decodes alone, unchecked: converting and checking
    every observed object in full was most of a call's cost. A state field of an
    impossible type can only mislead readiness; when a rule trips on one, the runner
    names it (functions/runner.py). A Secret is read for its `data` alone (`data`),
    decoded and checked without the metadata and managed fields around it.
    """

    def __init__(
        self,
        keys: Iterable[str],
        load: Callable[[str], Object],
        load_fields: Callable[[str, frozenset[str]], Object] | None = None,
    ) -> None:
        """`load_fields(key, names)` decodes only the named top-level fields; without it,
        parts are cut from the whole object."""
        self._keys = frozenset(keys)
        self._load = load
        self._load_fields = load_fields
        self._cache: dict[str, Object] = {}
        self._states: dict[str, Object] = {}
        self._data: dict[str, Mapping[str, Any]] = {}

    @classmethod
    def of(cls, objects: Mapping[str, Object]) -> Observed:
        return cls(objects, objects.__getitem__)

    def get(self, key: str) -> Object | None:
        if key not in self._keys:
            return None
        if key not in self._cache:
            self._cache[key] = _checked(self._load(key), "observed resource", key)
        return self._cache[key]

    def state(self, key: str) -> Object | None:
        """The object's apiVersion, kind, metadata and status: what readiness reads."""
        if key not in self._keys:
            return None
        if key not in self._states:
            self._states[key] = self._part(key, STATE_FIELDS)
        return self._states[key]

    def data(self, key: str) -> Mapping[str, Any]:
        """An observed Secret's `data` (base64 strings), checked; empty while it does not
        exist or holds nothing."""
        if key not in self._keys:
            return {}
        if key not in self._data:
            part = _checked(self._part(key, DATA_FIELDS), "observed resource", key)
            self._data[key] = part.get("data") or {}
        return self._data[key]

    def _part(self, key: str, names: frozenset[str]) -> Object:
        if self._load_fields is None or key in self._cache:
            full = self.get(key) or {}
            return {f: v for f, v in full.items() if f in names}
        return self._load_fields(key, names)

    def keys(self) -> frozenset[str]:
        return self._keys

    def exists(self, key: str) -> bool:
        return key in self._keys

    def check(self) -> None:
        """Read every object whole, in name order: the first malformed one raises."""
        for key in sorted(self._keys):
            self.get(key)


@dataclass(frozen=True)
class Requirement:
    """A resource to fetch: by name, by labels, or every one of the kind (neither)."""

    api_version: str
    kind: str
    name: str | None = None
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()


class Required:
    """Resources the function asked Crossplane to fetch (required resources), checked on
    first read."""

    def __init__(self, resolved: Mapping[str, list[Object]]) -> None:
        self._resolved = resolved
        self._read: dict[str, list[Object]] = {}

    def resolved(self, name: str) -> bool:
        return name in self._resolved

    def one(self, name: str) -> Object | None:
        items = self._items(name)
        return items[0] if items else None

    def all(self, name: str) -> list[Object]:
        return list(self._items(name))

    def check(self) -> None:
        """Read every object, in name order: the first malformed one raises."""
        for name in sorted(self._resolved):
            self._items(name)

    def _items(self, name: str) -> list[Object]:
        if name not in self._read:
            items = self._resolved.get(name) or []
            many = len(items) > 1
            self._read[name] = [
                _checked(item, "required resource", name, i if many else None)
                for i, item in enumerate(items)
            ]
        return self._read[name]


@dataclass(frozen=True)
class Context:
    composite: Composite
    observed: Observed
    required: Required
    config: PlatformConfig
    passwords: PasswordSource


@dataclass
class Desired:
    body: Object
    ready: bool


@dataclass
class Outcome:
    """A service's answer: desired objects with readiness, status, and what it waits on."""

    ctx: Context
    resources: dict[str, Desired] = field(default_factory=dict)
    status: Object = field(default_factory=dict)
    requirements: dict[str, Requirement] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ready: bool | None = None
    """Overrides Crossplane's derivation (all composed objects ready) when set."""

    def add(self, key: str, body: Object) -> None:
        """Compose `body` under `key`. A kind ready once it exists is judged without
        decoding what is observed of it (RBAC, Secrets, network policies...)."""
        rule = readiness.rule_of(body)
        if rule is readiness.exists:
            self._put(key, Desired(body, self.ctx.observed.exists(key)))
        else:
            self._viewed(key, body, rule)

    def add_observed(self, key: str, body: Object) -> Object | None:
        """`add`, returning, once it exists, the object as observed with the spec asked
        for: its observed metadata and status with `body`'s spec."""
        return self._viewed(key, body, readiness.rule_of(body))

    def _viewed(self, key: str, body: Object, rule: readiness.Rule) -> Object | None:
        state = self.ctx.observed.state(key)
        view = None if state is None else state | {"spec": body.get("spec", {})}
        self._put(key, Desired(body, view is not None and rule(view)))
        return view

    def _put(self, key: str, desired: Desired) -> None:
        if key in self.resources:
            raise ValueError(f"composed twice: {key}")
        self.resources[key] = desired

    def require(self, name: str, requirement: Requirement) -> Object | None:
        """Ask for a resource; returns it once Crossplane has fetched it."""
        self.requirements[name] = requirement
        return self.ctx.required.one(name)

    def require_all(self, name: str, requirement: Requirement) -> list[Object]:
        """Ask for every resource a selector matches; returns those fetched so far."""
        self.requirements[name] = requirement
        return self.ctx.required.all(name)

    def resolved(self) -> bool:
        """Whether Crossplane has answered every requirement made so far."""
        return all(self.ctx.required.resolved(name) for name in self.requirements)

    def wait(self, message: str) -> None:
        self.waiting.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def meta(
    name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
) -> Object:
    out: Object = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(sorted(labels.items()))
    return out


def copied(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists and scalars): what copy.deepcopy gives it,
    without deepcopy's memo and dispatch, at a fifth of the cost."""
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copied(v) for v in value]
    return value
