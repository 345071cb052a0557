"""Build service contexts directly, for table-driven tests of one compose function."""

from __future__ import annotations

from typing import Any

from functions.api.config import PlatformConfig
from functions.services.base import Composite, Context, Observed, Required
from tests.conftest import counter_passwords


def context(
    name: str,
    namespace: str,
    *,
    observed: dict[str, dict[str, Any]] | None = None,
    required: dict[str, list[dict[str, Any]]] | None = None,
    config: PlatformConfig | None = None,
) -> Context:
    return Context(
        composite=Composite(
            name=f"{name}-abcde", uid="uid-1", claim_name=name, claim_namespace=namespace
        ),
        observed=Observed.of(observed or {}),
        required=Required(required or {}),
        config=config or PlatformConfig(),
        passwords=counter_passwords(),
    )


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
