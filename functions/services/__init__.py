"""One pure compose function per claim kind, keyed by composite kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.api.kinds import KUBERNETES, POSTGRES, TENANT
from functions.services import kubernetes, postgres, tenant
from functions.services.base import Context, Outcome

Compose = Callable[[Any, Context], Outcome]

COMPOSERS: dict[str, Compose] = {
    TENANT.composite: tenant.compose,
    POSTGRES.composite: postgres.compose,
    KUBERNETES.composite: kubernetes.compose,
}
