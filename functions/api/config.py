"""The Composition step input: platform-wide settings (Cozystack's `_cluster` values)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from functions.api.common import Model
from functions.domain.addresses import IP_PATTERN, usable_ip
from functions.domain.errors import ComposeError
from functions.domain.presets import AllocationRatios


def _ip(value: str) -> str:
    try:
        usable_ip(value, "")
    except ComposeError as err:
        raise ValueError(str(err)) from None
    return value


IPAddress = Annotated[str, Field(pattern=IP_PATTERN, max_length=45), AfterValidator(_ip)]

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
    # At least 1: below it requests would exceed limits, which Kubernetes refuses, and tiny
    # ratios overflow the request maths.
    cpu_allocation_ratio: float = Field(10, ge=1)
    """CPU over-commit: requests are limits divided by this (cozy-lib default 10)."""
    memory_allocation_ratio: float = Field(1, ge=1)
    """Memory over-commit ratio (default 1: requests equal limits)."""
    ephemeral_storage_allocation_ratio: float = Field(40, ge=1)
    """Ephemeral-storage over-commit ratio (default 40)."""
    cluster_domain: str = Field("cozy.local", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """DNS domain of the management cluster."""
    addon_charts: ChartSource = ChartSource()
    """Charts of the Kubernetes addons (Cozystack's ExternalArtifacts by default)."""
    bootstrap_chart: ChartRef = ChartRef()
    """Where Flux finds cozyplane's own tenant-bootstrap chart (see docs/release.md)."""
    ingress_chart: ChartRef = ChartRef(
        kind="ExternalArtifact", name="cozystack-ingress-application-default-ingress-system"
    )
    """Chart of the tenant ingress module (Cozystack's ingress-nginx wrapper by default)."""
    expose_ingress: str = Field("tenant-root", max_length=63)
    """Namespace whose ingress controller publishes the platform (Cozystack expose-ingress)."""
    expose_external_ips: list[IPAddress] = Field(default_factory=list, max_length=16)
    """External IPs of that publishing controller; empty means a LoadBalancer Service."""
    cluster_issuer: str = Field("letsencrypt-prod", max_length=253)
    """cert-manager ClusterIssuer of the tenants' web UIs (Grafana)."""
    dedicated_nodes_for_windows_vms: bool = Field(False, alias="dedicatedNodesForWindowsVMs")
    """Run Windows VMs only on nodes labelled scheduling.cozystack.io/vm-windows=true, and
    keep other VMs off them (Cozystack's scheduling.dedicatedNodesForWindowsVMs)."""
    oidc_issuer_url: str = Field("", max_length=512)
    """OIDC issuer of the platform (Kubernetes oidc.mode System); empty: System mode is off."""

    @property
    def ratios(self) -> AllocationRatios:
        return AllocationRatios(
            cpu=self.cpu_allocation_ratio,
            memory=self.memory_allocation_ratio,
            ephemeral_storage=self.ephemeral_storage_allocation_ratio,
        )
