"""Evaluate the XRD's CEL rules in the function, so bad specs fail the same way offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from functions.api.celext import compile_rule
from functions.api.common import MODEL_CHECKED, Model
from functions.api.schema import openapi_schema


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    """Property names from the spec root; "*" steps into every map value or list item."""
    source: str
    message: str
    program: Any


def _collect(schema: dict[str, Any], path: tuple[str, ...]) -> Iterator[Rule]:
    for rule in schema.get("x-kubernetes-validations", []):
        # Transition rules compare with the stored object, which only the API server has.
        if "oldSelf" not in rule["rule"] and rule["rule"] not in MODEL_CHECKED:
            yield Rule(path, rule["rule"], rule["message"], compile_rule(rule["rule"]))
    for name, prop in schema.get("properties", {}).items():
        yield from _collect(prop, (*path, name))
    for key in ("additionalProperties", "items"):
        if isinstance(schema.get(key), dict):
            yield from _collect(schema[key], (*path, "*"))


@cache
def rules_for(model: type[Model]) -> tuple[Rule, ...]:
    return tuple(_collect(openapi_schema(model), ()))


@dataclass(frozen=True)
class _Group:
    """The rules on one schema node, also compiled as one list: CEL converts `self` once."""

    path: tuple[str, ...]
    rules: tuple[Rule, ...]
    program: Any
    fields: frozenset[str] | None
    """The fields of `self` the rules read; None when one reads `self` as a whole."""

    def self_of(self, value: Any) -> Any:
        # Converting `self` into CEL values is most of a rule's cost; fields no rule names
        # cannot change an outcome.
        if self.fields is None or not isinstance(value, dict):
            return value
        return {k: value[k] for k in self.fields if k in value}


# `self.name` not followed by a call: `self.all(...)` or `self.size()` read all of `self`.
_FIELD = re.compile(r"\bself\.(\w+)\b(?!\s*\()")
_SELF = re.compile(r"\bself\b")


def _fields(rules: tuple[Rule, ...]) -> frozenset[str] | None:
    names: set[str] = set()
    for rule in rules:
        found = _FIELD.findall(rule.source)
        if len(found) != len(_SELF.findall(rule.source)):
            return None
        names.update(found)
    return frozenset(names)


@cache
def _groups(model: type[Model]) -> tuple[_Group, ...]:
    by_path: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules_for(model):
        by_path.setdefault(rule.path, []).append(rule)
    return tuple(
        _Group(
            path,
            tuple(rules),
            compile_rule("[" + ", ".join(f"({r.source})" for r in rules) + "]"),
            _fields(tuple(rules)),
        )
        for path, rules in by_path.items()
    )


def _targets(value: Any, path: tuple[str, ...], at: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield at, value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        # Sorted: Crossplane's Structs carry no map order, and messages must not flap.
        items = sorted(value.items()) if isinstance(value, dict) else enumerate(value or [])
        for key, item in items:
            yield from _targets(item, rest, f"{at}[{key}]")
    elif isinstance(value, dict) and head in value:
        yield from _targets(value[head], rest, f"{at}.{head}")


def _each(rules: tuple[Rule, ...], at: str, value: Any) -> Iterator[str]:
    for rule in rules:
        try:
            ok = rule.program.execute({"self": value})
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            yield f"{at}: rule {rule.source!r} could not be evaluated: {err}"
            continue
        if ok is not True:
            yield f"{at}: {rule.message}"


def violations(spec: Model) -> list[str]:
    """Messages of every rule the spec breaks, each prefixed with the field it is on."""
    document = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    found: list[str] = []
    for group in _groups(type(spec)):
        for at, whole in _targets(document, group.path, "spec"):
            value = group.self_of(whole)
            try:
                passed = group.program.execute({"self": value})
            except (KeyError, ValueError, TypeError, RuntimeError):
                passed = None
            if passed != [True] * len(group.rules):
                # Something failed: evaluate one by one to say which rule, and why.
                found.extend(_each(group.rules, at, value))
    return found
