"""Structural OpenAPI v3 schemas (as Kubernetes wants them) from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

_KEY_ORDER = (
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "maxItems",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "items",
    "additionalProperties",
    "properties",
    "required",
    "x-kubernetes-validations",
)


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, but defaults made by a factory are written too.

    Kubernetes applies schema defaults before CEL rules run, so every field a rule
    reads needs its default in the schema, including maps and lists built by factories.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": factory()}  # type: ignore[call-arg]
            del schema["default_factory"]
        return super().default_schema(schema)


def _order(node: dict[str, Any]) -> dict[str, Any]:
    known = {k: node[k] for k in _KEY_ORDER if k in node}
    return known | {k: node[k] for k in sorted(node) if k not in known}


def _convert(node: dict[str, Any], defs: dict[str, Any], *, status: bool) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs, status=status)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return _convert({**options[0], **rest}, defs, status=status)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "additionalProperties", "properties", "items", "const"):
            continue
        out[key] = value
    if "const" in node:
        out["enum"] = [node["const"]]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema's numeric exclusive bounds are OpenAPI 3.0 booleans in Kubernetes.
        if bound in out:
            out[inclusive], out[bound] = out[bound], True
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    if status:
        out.pop("default", None)
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {
            name: _property(schema, defs, status=status)
            for name, schema in node["properties"].items()
        }
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], defs, status=status)
    if "items" in node:
        out["items"] = _convert(node["items"], defs, status=status)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return _order(out)


def _property(node: dict[str, Any], defs: dict[str, Any], *, status: bool) -> dict[str, Any]:
    prop = _convert(node, defs, status=status)
    # A nested object defaults to what {} becomes once its fields' defaults apply. The API
    # server checks a default against the CEL rules as written, without defaulting inside it.
    if "properties" in prop and "default" in prop:
        children = prop["properties"].items()
        prop["default"] = {name: c["default"] for name, c in children if "default" in c}
    return prop


def openapi_schema(model: type[BaseModel], *, status: bool = False) -> dict[str, Any]:
    """The structural schema of a model; status schemas carry no defaults."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, status=status)
