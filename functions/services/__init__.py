"""One pure compose function per claim kind, keyed by composite kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.api.kinds import (
    HTTPCACHE,
    KUBERNETES,
    MARIADB,
    POSTGRES,
    RABBITMQ,
    REDIS,
    TENANT,
    VIRTUAL_MACHINE,
    VMDISK,
    VPN,
)
from functions.services import (
    httpcache,
    kubernetes,
    mariadb,
    postgres,
    rabbitmq,
    redis,
    tenant,
    virtualmachine,
    vmdisk,
    vpn,
)
from functions.services.base import Context, Outcome

Compose = Callable[[Any, Context], Outcome]

COMPOSERS: dict[str, Compose] = {
    TENANT.composite: tenant.compose,
    POSTGRES.composite: postgres.compose,
    KUBERNETES.composite: kubernetes.compose,
    MARIADB.composite: mariadb.compose,
    REDIS.composite: redis.compose,
    RABBITMQ.composite: rabbitmq.compose,
    HTTPCACHE.composite: httpcache.compose,
    VPN.composite: vpn.compose,
    VMDISK.composite: vmdisk.compose,
    VIRTUAL_MACHINE.composite: virtualmachine.compose,
}
