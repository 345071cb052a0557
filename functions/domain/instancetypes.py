"""KubeVirt instancetypes Cozystack installs (reference §4.1): name -> vCPUs and memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instancetype:
    cpu: int
    """Guest vCPUs (spec.cpu.guest)."""
    memory: str
    """Guest memory (spec.memory.guest)."""


_GENERAL = {
    "nano": (1, "512Mi"),
    "micro": (1, "1Gi"),
    "small": (1, "2Gi"),
    "medium": (1, "4Gi"),
    "2xmedium": (2, "4Gi"),
    "large": (2, "8Gi"),
    "xlarge": (4, "16Gi"),
    "2xlarge": (8, "32Gi"),
    "4xlarge": (16, "64Gi"),
    "8xlarge": (32, "128Gi"),
}
_COMPUTE = {
    "medium": (1, "2Gi"),
    "large": (2, "4Gi"),
    "xlarge": (4, "8Gi"),
    "2xlarge": (8, "16Gi"),
    "4xlarge": (16, "32Gi"),
    "8xlarge": (32, "64Gi"),
}
_MEMORY = {
    "large": (2, "16Gi"),
    "xlarge": (4, "32Gi"),
    "2xlarge": (8, "64Gi"),
    "4xlarge": (16, "128Gi"),
    "8xlarge": (32, "256Gi"),
}
_NETWORK = {
    "medium": (4, "4Gi"),
    "large": (4, "8Gi"),
    "xlarge": (8, "16Gi"),
    "2xlarge": (16, "32Gi"),
    "4xlarge": (32, "64Gi"),
    "8xlarge": (64, "128Gi"),
}


def _series(prefix: str, sizes: dict[str, tuple[int, str]], *skip: str) -> dict[str, Instancetype]:
    return {f"{prefix}.{s}": Instancetype(c, m) for s, (c, m) in sizes.items() if s not in skip}


def _build() -> dict[str, Instancetype]:
    table: dict[str, Instancetype] = {}
    table |= _series("u1", _GENERAL)
    table |= _series("o1", _GENERAL, "2xmedium")
    table |= _series("cx1", _COMPUTE)
    table |= _series("cx1", {f"{s}1gi": v for s, v in _COMPUTE.items()})
    table |= _series("m1", _MEMORY)
    table |= _series("m1", {f"{s}1gi": v for s, v in _MEMORY.items()})
    table |= _series("rt1", _GENERAL, "nano", "2xmedium")
    table |= _series("n1", _NETWORK)
    table |= _series("d1", _GENERAL)
    table |= _series("gn1", {s: _GENERAL[s] for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge")})
    return table


INSTANCETYPES: dict[str, Instancetype] = _build()
