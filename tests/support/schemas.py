"""Offline Kubernetes validation: upstream CRDs, generated XRDs and core kinds.

It mirrors what the API server checks on create: defaults, the structural
schema, unknown fields (which the server prunes and strict clients reject),
object metadata syntax and CEL rules on XRDs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import cel
import jsonschema
import yaml

from functions.domain.quantity import parse as parse_quantity

Object = dict[str, Any]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kinds whose names must be DNS labels rather than subdomains.
LABEL_NAMED = {("", "Namespace"), ("", "Service")}
# RBAC objects take any path segment as a name (e.g. system:controller:x).
PATH_SEGMENT_NAMED = "rbac.authorization.k8s.io"

# Crossplane's own fields on legacy composites and claims (internal/xcrd).
XR_FIELDS: Object = {
    "compositionRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "compositionSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "compositionRevisionRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "compositionRevisionSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "compositionUpdatePolicy": {"type": "string", "enum": ["Automatic", "Manual"]},
    "claimRef": {
        "type": "object",
        "required": ["apiVersion", "kind", "namespace", "name"],
        "properties": {k: {"type": "string"} for k in ("apiVersion", "kind", "namespace", "name")},
    },
    "environmentConfigRefs": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
    "resourceRefs": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
    "publishConnectionDetailsTo": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "writeConnectionSecretToRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
CLAIM_FIELDS: Object = {
    k: XR_FIELDS[k]
    for k in (
        "compositionRef",
        "compositionSelector",
        "compositionRevisionRef",
        "compositionRevisionSelector",
        "compositionUpdatePolicy",
        "writeConnectionSecretToRef",
        "publishConnectionDetailsTo",
    )
} | {
    "compositeDeletePolicy": {"type": "string", "enum": ["Background", "Foreground"]},
    "resourceRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
STATUS_FIELDS: Object = {
    "conditions": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
    "claimConditionTypes": {"type": "array", "items": {"type": "string"}},
    "connectionDetails": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}

# KubeVirt publishes bare schemas named <plural>.<group>: plural -> kind, version, scope.
KUBEVIRT_KINDS = {
    "virtualmachines": ("VirtualMachine", "v1", "Namespaced"),
    "virtualmachineinstances": ("VirtualMachineInstance", "v1", "Namespaced"),
    "virtualmachineinstancetypes": ("VirtualMachineInstancetype", "v1beta1", "Namespaced"),
    "virtualmachineclusterinstancetypes": (
        "VirtualMachineClusterInstancetype",
        "v1beta1",
        "Cluster",
    ),
    "virtualmachinepreferences": ("VirtualMachinePreference", "v1beta1", "Namespaced"),
    "virtualmachineclusterpreferences": ("VirtualMachineClusterPreference", "v1beta1", "Cluster"),
}

_byte_checker = jsonschema.FormatChecker()


@_byte_checker.checks("byte", raises=(binascii.Error, ValueError))
def _is_base64(value: object) -> bool:
    if isinstance(value, str):
        base64.b64decode(value, validate=True)
    return True


def openapi_to_jsonschema(node: Object) -> Object:
    """A CRD's structural OpenAPI v3 schema as JSON Schema, strict about unknown fields."""
    out: Object = {}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    for key in (
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "uniqueItems",
        "multipleOf",
    ):
        if key in node:
            out[key] = node[key]
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if node.get(key) is True:
            out[key] = node["minimum" if key == "exclusiveMinimum" else "maximum"]
            out.pop("minimum" if key == "exclusiveMinimum" else "maximum", None)
    if node.get("format") == "int32":
        out.update(
            minimum=max(out.get("minimum", -(2**31)), -(2**31)),
            maximum=min(out.get("maximum", 2**31 - 1), 2**31 - 1),
        )
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out.setdefault("allOf", []).append({key: [openapi_to_jsonschema(n) for n in node[key]]})
    if "not" in node:
        out["not"] = openapi_to_jsonschema(node["not"])
    if "items" in node:
        out["items"] = openapi_to_jsonschema(node["items"])
    properties = dict(node.get("properties", {}))
    if node.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            properties.setdefault(key, {"type": "string"})
        properties.setdefault(
            "metadata", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
    if properties:
        out["properties"] = {k: openapi_to_jsonschema(v) for k, v in properties.items()}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = openapi_to_jsonschema(extra)
    elif extra is not None:
        out["additionalProperties"] = extra
    elif node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema: Object, value: Any) -> Any:
    """Structural defaulting, as the API server does before validation."""
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if key not in schema.get("properties", {}):
                    value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _compare_quantities(a: str, b: str) -> int:
    return (Decimal(a) > Decimal(b)) - (Decimal(a) < Decimal(b))


def _environment(variables: Object) -> cel.Context:
    """The variables, with what the XRDs use of Kubernetes' CEL quantity library.

    A quantity is carried as its exact decimal string; only compareTo reads it.
    """
    context = cel.Context()
    for name, value in variables.items():
        context.add_variable(name, value)
    context.add_function("quantity", lambda text: str(parse_quantity(text)))
    context.add_function("compareTo", _compare_quantities)
    return context


def cel_rules(schema: Object, value: Any, path: str, *, old: Any = None) -> Iterator[str]:
    """Evaluate every x-kubernetes-validations rule under `schema` against `value`.

    Transition rules (those naming oldSelf) run only when an old value is given.
    """
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"] and old is None:
            continue
        context = {"self": value} | ({"oldSelf": old} if old is not None else {})
        try:
            program = cel.compile(rule["rule"])
            ok = program.execute(_environment(context) if "quantity(" in rule["rule"] else context)
        except Exception as err:
            yield f"{path}: CEL rule {rule['rule']!r} failed to evaluate: {err}"
            continue
        if ok is not True:
            yield f"{path}: {rule.get('message', rule['rule'])}"
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in value:
                sub_old = old.get(name) if isinstance(old, dict) else None
                yield from cel_rules(prop, value[name], f"{path}.{name}", old=sub_old)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                sub_old = old.get(key) if isinstance(old, dict) else None
                yield from cel_rules(extra, item, f"{path}[{key}]", old=sub_old)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from cel_rules(schema["items"], item, f"{path}[{i}]")


@dataclass(frozen=True)
class Schema:
    openapi: Object
    namespaced: bool
    source: str

    @cached_property
    def validator(self) -> jsonschema.Draft7Validator:
        schema = openapi_to_jsonschema(self.openapi)
        # metadata is validated against ObjectMeta separately.
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        return jsonschema.Draft7Validator(schema, format_checker=_byte_checker)


def crd_files(crds_dir: Path) -> list[Path]:
    """The schema files in force: a file in a `*-patched` folder supersedes the upstream
    file of the same name one folder up (Cozystack's patched KamajiControlPlane)."""
    files = sorted(crds_dir.rglob("*.yaml"))
    patched = {p.name: p for p in files if p.parent.name.endswith("-patched")}
    return [p for p in files if p.name not in patched or p == patched[p.name]]


def _gvk(api_version: str, kind: str) -> tuple[str, str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version, kind


class Catalog:
    """Every schema the project validates against, indexed by group/version/kind."""

    def __init__(self, crds_dir: Path, xrds_dir: Path | None = None) -> None:
        self.crds_dir = crds_dir
        self.schemas: dict[tuple[str, str, str], Schema] = {}
        self.plurals: dict[tuple[str, str], str] = {}
        for path in crd_files(crds_dir):
            if path.name.endswith(".openAPIV3Schema.yaml"):
                self._add_bare_schema(path)
                continue
            for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    self._add_crd(doc, str(path.relative_to(crds_dir)))
        self.xrds: dict[tuple[str, str, str], tuple[Object, bool]] = {}
        if xrds_dir is not None:
            for path in sorted(xrds_dir.glob("*.yaml")):
                self._add_xrd(yaml.safe_load(path.read_text()))
        swagger = json.loads((crds_dir / "kubernetes-openapi" / "swagger.json").read_text())
        self._core = _core_schema(swagger)
        self._core_kinds = {
            (g["group"], g["version"], g["kind"]): name
            for name, d in swagger["definitions"].items()
            for g in d.get("x-kubernetes-group-version-kind", [])
        }
        self._core_validators: dict[str, jsonschema.Draft7Validator] = {}
        # A core kind's plural is the last segment of the collection it is created in.
        for path, ops in swagger["paths"].items():
            gvk = (ops.get("post") or {}).get("x-kubernetes-group-version-kind")
            if gvk and "{name}" not in path:
                self.plurals[(gvk["group"], gvk["kind"])] = path.rpartition("/")[2]

    def _add_crd(self, crd: Object, source: str) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                self.schemas.setdefault(key, Schema(schema, spec["scope"] == "Namespaced", source))
        self.plurals[(spec["group"], spec["names"]["kind"])] = spec["names"]["plural"]

    def _add_bare_schema(self, path: Path) -> None:
        """KubeVirt ships schemas, not CRDs: <plural>.<group>.openAPIV3Schema.yaml."""
        plural, _, group = path.name.removesuffix(".openAPIV3Schema.yaml").partition(".")
        schema = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)["openAPIV3Schema"]
        kind, version, scope = KUBEVIRT_KINDS[plural]
        self.schemas[(group, version, kind)] = Schema(schema, scope == "Namespaced", str(path))
        self.plurals[(group, kind)] = plural

    def _add_xrd(self, xrd: Object) -> None:
        spec = xrd["spec"]
        for version in spec["versions"]:
            root = version["schema"]["openAPIV3Schema"]
            for kind, fields, namespaced in (
                (spec["names"]["kind"], XR_FIELDS, False),
                (spec["claimNames"]["kind"], CLAIM_FIELDS, True),
            ):
                schema = copy.deepcopy(root)
                props = schema["properties"]
                props["apiVersion"] = {"type": "string"}
                props["kind"] = {"type": "string"}
                props["metadata"] = {"type": "object"}
                props["spec"].setdefault("properties", {}).update(copy.deepcopy(fields))
                props.setdefault("status", {"type": "object"}).setdefault("properties", {}).update(
                    STATUS_FIELDS
                )
                schema["required"] = ["spec"]
                key = (spec["group"], version["name"], kind)
                self.schemas[key] = Schema(schema, namespaced, f"XRD {xrd['metadata']['name']}")
                self.xrds[key] = (schema, namespaced)

    def _core_validator(self, definition: str) -> jsonschema.Draft7Validator:
        if definition not in self._core_validators:
            schema = {"definitions": self._core, "$ref": f"#/definitions/{definition}"}
            self._core_validators[definition] = jsonschema.Draft7Validator(
                schema, format_checker=_byte_checker
            )
        return self._core_validators[definition]

    def knows(self, obj: Object) -> bool:
        key = _gvk(obj.get("apiVersion", ""), obj.get("kind", ""))
        return key in self.schemas or key in self._core_kinds

    def validate(self, obj: Object, *, old: Object | None = None) -> list[str]:
        """Every problem the API server would report for creating (or updating to) `obj`."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        key = _gvk(api_version, kind)
        label = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
        errors = [
            f"{label}: metadata{_path(e)}: {e.message}"
            for e in self._core_validator(
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            ).iter_errors(obj.get("metadata", {}))
        ]
        errors += [f"{label}: {m}" for m in _metadata_syntax(obj, key)]
        if key in self.schemas:
            schema = self.schemas[key]
            obj = apply_defaults(schema.openapi, copy.deepcopy(obj))
            errors += [
                f"{label}: {_path(e)}: {e.message}" for e in schema.validator.iter_errors(obj)
            ]
            errors += [f"{label}: {m}" for m in cel_rules(schema.openapi, obj, "", old=old)]
        elif key in self._core_kinds:
            validator = self._core_validator(self._core_kinds[key])
            errors += [f"{label}: {_path(e)}: {e.message}" for e in validator.iter_errors(obj)]
        else:
            errors.append(f"{label}: no schema for {api_version}, Kind={kind}")
        return errors

    def namespaced(self, obj: Object) -> bool:
        key = _gvk(obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in self.schemas:
            return self.schemas[key].namespaced
        return key[2] not in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "PersistentVolume",
            "StorageClass",
            "CustomResourceDefinition",
        }


def _path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _metadata_syntax(obj: Object, key: tuple[str, str, str]) -> Iterator[str]:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not name and not meta.get("generateName"):
        yield "metadata.name is required"
    elif key[0] == PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            yield f"metadata.name {name!r} is not a valid path segment"
    elif name:
        pattern, limit = (
            (DNS_LABEL, 63) if (key[0], key[2]) in LABEL_NAMED else (DNS_SUBDOMAIN, 253)
        )
        if not pattern.match(name) or len(name) > limit:
            yield f"metadata.name {name!r} is not a valid name (max {limit})"
    for k, v in (meta.get("labels") or {}).items():
        prefix, _, label = k.rpartition("/")
        if (
            (prefix and (not DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253))
            or not LABEL_NAME.match(label)
            or len(label) > 63
        ):
            yield f"metadata.labels: invalid key {k!r}"
        if not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63:
            yield f"metadata.labels[{k}]: invalid value {v!r}"


def _core_schema(swagger: Object) -> Object:
    defs: Object = {}
    for name, definition in swagger["definitions"].items():
        defs[name] = _swagger_node(definition)
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    defs["io.k8s.apimachinery.pkg.runtime.RawExtension"] = {"type": "object"}
    return defs


def _swagger_node(node: Object) -> Object:
    out: Object = {}
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    if "type" in node:
        out["type"] = node["type"]
    if node.get("format") == "byte":
        out["format"] = "byte"
    for key in ("enum", "required"):
        if key in node:
            out[key] = node[key]
    if "items" in node:
        out["items"] = _swagger_node(node["items"])
    if "properties" in node:
        out["properties"] = {k: _swagger_node(v) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _swagger_node(node["additionalProperties"])
    return out
