"""The Composition step input: platform-wide settings (Cozystack's `_cluster` values)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from functions.api.common import Model
from functions.domain.presets import AllocationRatios

INPUT_API_VERSION = "fn.cozyplane.io/v1alpha1"
INPUT_KIND = "Input"


class PlatformConfig(Model):
    """Settings of function-cozyplane given in each Composition's pipeline step."""

    api_version: Literal["fn.cozyplane.io/v1alpha1"] = "fn.cozyplane.io/v1alpha1"
    kind: Literal["Input"] = "Input"
    cpu_allocation_ratio: float = Field(10, gt=0)
    """CPU over-commit: requests are limits divided by this (cozy-lib default 10)."""
    memory_allocation_ratio: float = Field(1, gt=0)
    """Memory over-commit ratio (default 1: requests equal limits)."""
    ephemeral_storage_allocation_ratio: float = Field(40, gt=0)
    """Ephemeral-storage over-commit ratio (default 40)."""

    @property
    def ratios(self) -> AllocationRatios:
        return AllocationRatios(
            cpu=self.cpu_allocation_ratio,
            memory=self.memory_allocation_ratio,
            ephemeral_storage=self.ephemeral_storage_allocation_ratio,
        )
