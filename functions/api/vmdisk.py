"""The VMDisk claim (Cozystack `packages/apps/vm-disk`, reference §14.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from functions.api.common import (
    DNS_LABEL,
    Model,
    Quantity,
    cel,
    storage_class,
    volume_size,
    with_rules,
)

# vm-disk-<name>-resize-<6 hex> (the resize Job) must stay a 63-character label value.
VMDISK_NAME_MAX = 41

# The golden images Cozystack's vm-default-images package keeps in cozy-public.
GoldenImage = Literal[
    "ubuntu-20.04",
    "ubuntu-22.04",
    "ubuntu-24.04",
    "rocky-8",
    "rocky-9",
    "rocky-10",
    "almalinux-8",
    "almalinux-9",
    "almalinux-10",
    "debian-12",
    "debian-13",
    "centos-stream-9",
    "centos-stream-10",
    "opensuse-leap-15.6",
    "opensuse-leap-16.0",
    "alpine-3.21",
]
STORAGE_CLASS = r"^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class ImageSource(Model):
    """Clone a golden image of the platform (PVC vm-default-images-<name> in cozy-public)."""

    name: GoldenImage
    """Golden image to clone."""


class HttpSource(Model):
    """Import an image (qcow2, raw, iso, optionally compressed) from a URL."""

    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    """HTTP or HTTPS URL of the image."""


class UploadSource(Model):
    """Wait for an upload: virtctl image-upload dv -n <namespace> vm-disk-<name>."""


class CloneSource(Model):
    """Clone another VMDisk of the same namespace."""

    name: str = Field(pattern=DNS_LABEL, max_length=VMDISK_NAME_MAX)
    """Name of the VMDisk whose volume is copied."""


class DiskSource(Model):
    """Where the data comes from: at most one source; none makes a blank disk."""

    model_config = with_rules(
        cel(
            "(has(self.image) ? 1 : 0) + (has(self.http) ? 1 : 0) + "
            "(has(self.upload) ? 1 : 0) + (has(self.disk) ? 1 : 0) <= 1",
            "source takes at most one of image, http, upload and disk",
        )
    )

    image: ImageSource | None = None
    http: HttpSource | None = None
    upload: UploadSource | None = None
    disk: CloneSource | None = None


class VMDiskSpec(Model):
    """A virtual machine disk: a CDI DataVolume, blank or filled from an image."""

    source: DiskSource = DiskSource()
    """Where the disk's data comes from; it only matters when the disk is created."""
    optical: bool = False
    """A CD-ROM: VirtualMachines attach it as a cdrom device."""
    storage: Quantity = volume_size("5Gi", "storage")
    """Size of the disk; it may grow but never shrink."""
    storage_class: str = storage_class("replicated", pattern=STORAGE_CLASS)
    """LINSTOR StorageClass of the volume (replicated or local); empty means the cluster
    default. Immutable."""


class VMDiskStatus(Model):
    phase: str = ""
    """DataVolume phase (Succeeded once the data is in place)."""
    progress: str = ""
    """Import, clone or upload progress reported by CDI."""
    pvc: str = ""
    """PersistentVolumeClaim holding the disk."""
    size: str = ""
    """Capacity of the volume."""
    storage_class: str = ""
    """StorageClass of the volume."""
