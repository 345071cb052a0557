"""The Composition step input: platform-wide settings (Cozystack's `_cluster` values)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from functions.api.common import Model
from functions.domain.presets import AllocationRatios

INPUT_API_VERSION = "fn.cozyplane.io/v1alpha1"
INPUT_KIND = "Input"


class ChartSource(Model):
    """Where Flux finds the charts installed into tenant clusters: <namePrefix><chart>."""

    kind: Literal["ExternalArtifact", "OCIRepository", "HelmChart"] = "ExternalArtifact"
    namespace: str = Field("cozy-system", max_length=63)
    name_prefix: str = Field(
        "cozystack-kubernetes-application-kubevirt-kubernetes-", max_length=200
    )


class ChartRef(Model):
    """One Flux source holding a chart, as a HelmRelease's chartRef names it."""

    kind: Literal["ExternalArtifact", "OCIRepository", "HelmChart"] = "OCIRepository"
    namespace: str = Field("cozy-system", max_length=63)
    name: str = Field("cozyplane-tenant-bootstrap", max_length=253)


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
    cluster_domain: str = Field("cozy.local", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """DNS domain of the management cluster."""
    addon_charts: ChartSource = ChartSource()
    """Charts of the Kubernetes addons (Cozystack's ExternalArtifacts by default)."""
    bootstrap_chart: ChartRef = ChartRef()
    """Where Flux finds cozyplane's own tenant-bootstrap chart (see docs/release.md)."""
    oidc_issuer_url: str = Field("", max_length=512)
    """OIDC issuer of the platform (Kubernetes oidc.mode System); empty: System mode is off."""

    @property
    def ratios(self) -> AllocationRatios:
        return AllocationRatios(
            cpu=self.cpu_allocation_ratio,
            memory=self.memory_allocation_ratio,
            ephemeral_storage=self.ephemeral_storage_allocation_ratio,
        )
