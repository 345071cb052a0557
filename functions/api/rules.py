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


# The fields of `self` a group of rules reads, as a tree: each name maps to the fields read
# under it, or to None where the value is read whole.
Reads = dict[str, "Reads | None"]


@dataclass(frozen=True)
class _Group:
    """The rules on one schema node, also compiled as one list: CEL converts `self` once."""

    path: tuple[str, ...]
    rules: tuple[Rule, ...]
    program: Any
    reads: Reads | None
    """What of `self` the rules read; None when one reads `self` as a whole."""

    def self_of(self, value: Any) -> Any:
        # Converting `self` into CEL values is most of a rule's cost; fields no rule reads
        # cannot change an outcome.
        return value if self.reads is None else _project(value, self.reads)


def _project(value: Any, reads: Reads) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        name: value[name] if under is None else _project(value[name], under)
        for name, under in reads.items()
        if name in value
    }


# `self`, the fields selected from it, and whether the last name is a call: `self.a.all(`
# and `self.a.startsWith(` read all of `self.a`, `self.size()` all of `self`.
_SELECT = re.compile(r"\bself((?:\s*\.\s*\w+)*)(\s*\()?")


def _reads(rules: tuple[Rule, ...]) -> Reads | None:
    reads: Reads = {}
    for rule in rules:
        for chain, call in _SELECT.findall(rule.source):
            names = [name.strip() for name in chain.split(".")[1:]]
            if call:
                names = names[:-1]
            if not names:
                return None
            node = reads
            for name in names[:-1]:
                under = node.setdefault(name, {})
                if under is None:  # Already read whole.
                    break
                node = under
            else:
                node[names[-1]] = None
    return reads


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
            _reads(tuple(rules)),
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
