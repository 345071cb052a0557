"""Resource presets and the request maths of Cozystack's cozy-lib (reference §3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.domain.quantity import helm_float, helm_to_float

EPHEMERAL_STORAGE_LIMIT = "2Gi"

# Size -> CPU limit; the series fixes memory per size (reference §3.1).
SIZES: dict[str, str] = {
    "nano": "250m",
    "micro": "500m",
    "small": "1",
    "medium": "2",
    "large": "4",
    "xlarge": "8",
    "2xlarge": "16",
    "4xlarge": "32",
}
SERIES_MEMORY: dict[str, tuple[str, ...]] = {
    "t1": ("128Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi", "8Gi", "16Gi"),
    "c1": ("256Mi", "512Mi", "1Gi", "2Gi", "4Gi", "8Gi", "16Gi", "32Gi"),
    "s1": ("512Mi", "1Gi", "2Gi", "4Gi", "8Gi", "16Gi", "32Gi", "64Gi"),
    "u1": ("1Gi", "2Gi", "4Gi", "8Gi", "16Gi", "32Gi", "64Gi", "128Gi"),
    "m1": ("2Gi", "4Gi", "8Gi", "16Gi", "32Gi", "64Gi", "128Gi", "256Gi"),
}
# Deprecated flat names and the series preset each one equals.
LEGACY: dict[str, str] = {
    "nano": "t1.nano",
    "micro": "t1.micro",
    "small": "t1.small",
    "medium": "c1.small",
    "large": "c1.medium",
    "xlarge": "c1.large",
    "2xlarge": "c1.xlarge",
}


def _build() -> dict[str, tuple[str, str]]:
    table = {
        f"{series}.{size}": (cpu, memory[i])
        for series, memory in SERIES_MEMORY.items()
        for i, (size, cpu) in enumerate(SIZES.items())
    }
    table.update({legacy: table[series] for legacy, series in LEGACY.items()})
    return table


PRESETS: dict[str, tuple[str, str]] = _build()
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

# ResourceQuota keys that are object counts, passed through unprefixed (§6.5).
OBJECT_COUNT_KEYS = frozenset(
    {
        "pods",
        "services",
        "services.loadbalancers",
        "services.nodeports",
        "services.clusterip",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
    }
)


@dataclass(frozen=True)
class AllocationRatios:
    """Platform over-commit ratios: request = limit / ratio (cozy-lib defaults)."""

    cpu: float = 10.0
    memory: float = 1.0
    ephemeral_storage: float = 40.0


def preset_limits(preset: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """Preset limits with per-key overrides from `resources` (cozy-lib defaultingSanitize)."""
    cpu, memory = PRESETS[preset]
    limits = {"cpu": cpu, "memory": memory, "ephemeral-storage": EPHEMERAL_STORAGE_LIMIT}
    limits.update(overrides)
    return limits


def sanitize(limits: Mapping[str, str], ratios: AllocationRatios) -> dict[str, dict[str, str]]:
    """Turn a flat limits map into {limits, requests} exactly as cozy-lib's sanitize."""
    requests: dict[str, str] = {}
    for key, value in limits.items():
        if key == "cpu":
            requests[key] = helm_float(helm_to_float(value) / ratios.cpu)
        elif key == "memory":
            requests[key] = str(int(helm_to_float(value) / ratios.memory))
        elif key == "ephemeral-storage":
            requests[key] = str(int(helm_to_float(value) / ratios.ephemeral_storage))
        else:
            requests[key] = value
    return {"limits": dict(sorted(limits.items())), "requests": dict(sorted(requests.items()))}


def resources(
    preset: str, overrides: Mapping[str, str], ratios: AllocationRatios
) -> dict[str, dict[str, str]]:
    return sanitize(preset_limits(preset, overrides), ratios)


def flatten_quota(quotas: Mapping[str, str], ratios: AllocationRatios) -> dict[str, str]:
    """ResourceQuota `hard` from a tenant's resourceQuotas (cozy-lib flatten)."""
    hard: dict[str, str] = {}
    for section, values in sanitize(quotas, ratios).items():
        for key, value in values.items():
            if key in OBJECT_COUNT_KEYS:
                if section == "limits":
                    hard[key] = value
            elif not (section == "limits" and key == "storage"):
                hard[f"{section}.{key}"] = value
    return dict(sorted(hard.items()))
