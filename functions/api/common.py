"""Building blocks shared by every claim model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from functions.domain import presets
from functions.domain.quantity import (
    QUANTITY_PATTERN,
    check_magnitude,
    helm_to_float,
    is_quantity,
)


class Model(BaseModel):
    """Strict camelCase model: unknown fields are errors, as in a structural schema."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        frozen=True,
    )


def _quantity(value: Any) -> str:
    # Structs carry every number as a float; integral floats are plain integers.
    if isinstance(value, bool):
        raise ValueError("must be an integer or a string")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer or a quantity string such as 500m")
        value = int(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not is_quantity(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 10Gi, 500m, 2)")
    # Every quantity of a claim is a size, a limit or a quota: Kubernetes refuses negatives.
    if helm_to_float(check_magnitude(value)) < 0:
        raise ValueError(f"{value!r} is negative")
    return value


QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True,
}

Quantity = Annotated[str, BeforeValidator(_quantity), WithJsonSchema(QUANTITY_SCHEMA)]
"""A Kubernetes quantity; integers are accepted and kept as their decimal string."""

ResourcesPreset = Literal[presets.PRESET_NAMES]  # type: ignore[valid-type]


def cel(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


MODEL_CHECKED: set[str] = set()
"""CEL rules the models also check in Python. The XRD needs them; the function skips them,
as pydantic has already refused what they refuse (cel-rust compiles a `matches` pattern
again for every key, about 20 µs each)."""


@dataclass(frozen=True)
class Keys:
    """What the keys of the map `field` must be: an anchored pattern and a length.

    `rule()` is the CEL rule for the XRD, since structural schemas cannot constrain keys;
    the instance itself validates a key, as `AfterValidator(keys)` on the map's key type.
    """

    field: str
    pattern: str
    message: str
    max_length: int | None = None

    @cached_property
    def _compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def __call__(self, key: str) -> str:
        # fullmatch: Python's `$` also matches before a final newline, RE2's does not.
        too_long = self.max_length is not None and len(key) > self.max_length
        if too_long or not self._compiled.fullmatch(key):
            raise ValueError(self.message)
        return key

    def rule(self) -> dict[str, str]:
        check = f"k.matches('{self.pattern}')"
        if self.max_length is not None:
            check = f"size(k) <= {self.max_length} && {check}"
        source = f"self.{self.field}.all(k, {check})"
        MODEL_CHECKED.add(source)
        return cel(source, self.message)


def with_rules(*rules: dict[str, str]) -> ConfigDict:
    """Model config carrying cross-field CEL rules; the XRD and the function share them."""
    validations: list[Any] = [dict(rule) for rule in rules]
    return ConfigDict(
        **Model.model_config, json_schema_extra={"x-kubernetes-validations": validations}
    )


def transition(*rules: dict[str, str]) -> dict[str, Any]:
    """Schema extra with CEL transition rules: `oldSelf` is the stored value, and the API
    server skips them when there is none (on create, or when the field was unset)."""
    return {"x-kubernetes-validations": [dict(rule) for rule in rules]}


def immutable(message: str) -> dict[str, Any]:
    """Schema extra that makes a field immutable once set (a CEL transition rule)."""
    return transition(cel("self == oldSelf", message))


# Kubernetes' CEL quantity library; string() because a quantity may be written as an integer.
GROWS = "quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0"


def grows_only(message: str) -> dict[str, Any]:
    """Schema extra refusing a quantity smaller than the stored one (a volume never shrinks)."""
    return transition(cel(GROWS, message))


def volume_size(default: str, name: str = "size") -> Any:
    """A volume's size field: it may grow but never shrink."""
    return Field(default, json_schema_extra=grows_only(f"{name} cannot shrink"))


def storage_class(default: str = "", **constraints: Any) -> Any:
    """A StorageClass field, immutable once set: data does not move between classes."""
    return Field(
        default,
        max_length=253,
        json_schema_extra=immutable("storageClass is immutable"),
        **constraints,
    )


def ranks(ranked: Mapping[str, int]) -> str:
    """A CEL map literal from each enum value to its rank, to compare versions in order."""
    return "{" + ", ".join(f"'{value}': {rank}" for value, rank in ranked.items()) + "}"


class Resources(Model):
    """Explicit CPU and memory limits; each set key overrides the preset's."""

    cpu: Quantity | None = None
    """CPU limit, e.g. 2 or 500m. Requests are derived with the platform CPU ratio."""
    memory: Quantity | None = None
    """Memory limit, e.g. 4Gi."""

    def overrides(self) -> dict[str, str]:
        return {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

SecretKey = Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]
