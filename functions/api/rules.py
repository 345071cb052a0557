"""Evaluate the XRD's CEL rules in the function, so bad specs fail the same way offline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import cel

from functions.api.common import Model
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
        if "oldSelf" not in rule["rule"]:
            yield Rule(path, rule["rule"], rule["message"], cel.compile(rule["rule"]))
    for name, prop in schema.get("properties", {}).items():
        yield from _collect(prop, (*path, name))
    for key in ("additionalProperties", "items"):
        if isinstance(schema.get(key), dict):
            yield from _collect(schema[key], (*path, "*"))


@cache
def rules_for(model: type[Model]) -> tuple[Rule, ...]:
    return tuple(_collect(openapi_schema(model), ()))


def _targets(value: Any, path: tuple[str, ...], at: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield at, value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        items = value.items() if isinstance(value, dict) else enumerate(value or [])
        for key, item in items:
            yield from _targets(item, rest, f"{at}[{key}]")
    elif isinstance(value, dict) and head in value:
        yield from _targets(value[head], rest, f"{at}.{head}")


def violations(spec: Model) -> list[str]:
    """Messages of every rule the spec breaks, each prefixed with the field it is on."""
    document = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    found: list[str] = []
    for rule in rules_for(type(spec)):
        for at, value in _targets(document, rule.path, "spec"):
            try:
                ok = rule.program.execute({"self": value})
            except (KeyError, ValueError, TypeError, RuntimeError) as err:
                found.append(f"{at}: rule {rule.source!r} could not be evaluated: {err}")
                continue
            if ok is not True:
                found.append(f"{at}: {rule.message}")
    return found
