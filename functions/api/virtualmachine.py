"""The VirtualMachine claim (Cozystack `packages/apps/vm-instance`, reference §14.2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from functions.api.common import DNS_LABEL, Model, Quantity, cel, with_rules
from functions.api.vmdisk import VMDISK_NAME_MAX

# vm-instance-<name>-cloud-init must stay a valid 63-character name.
VIRTUAL_MACHINE_NAME_MAX = 40
CLUSTER_OBJECT = r"^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_DISKS = 32
MAX_NETWORKS = 16

ExternalMethod = Literal["PortList", "WholeIP"]
RunStrategy = Literal["Always", "Halted", "Manual", "RerunOnFailure", "Once"]
DiskBus = Literal["virtio", "sata", "scsi", "usb"]


def _count(value: Any) -> int:
    # A whole quantity ("2" or 2): KubeVirt takes cores and sockets as integers.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number, e.g. 2")
    return value


Count = Annotated[
    int,
    BeforeValidator(_count),
    Field(ge=1, le=1024),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^[1-9][0-9]{0,3}$",
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A positive whole number, written as an integer or a string."""


class DiskRef(Model):
    """A VMDisk of the same namespace; disks boot in the order listed."""

    name: str = Field(pattern=DNS_LABEL, max_length=VMDISK_NAME_MAX)
    """Name of the VMDisk (DataVolume vm-disk-<name>)."""
    bus: DiskBus | None = None
    """Disk bus; unset lets the instance profile choose (optical disks cannot use virtio)."""


class Network(Model):
    """A secondary network: a Multus NetworkAttachmentDefinition of the namespace."""

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    """Name of the NetworkAttachmentDefinition; also the interface name."""


class Gpu(Model):
    """A GPU passed through to the VM."""

    name: str = Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$", max_length=253)
    """Device name exposed by the device plugin, e.g. nvidia.com/GA102GL_A10."""


class VMResources(Model):
    """Explicit sizing, used instead of an instanceType."""

    cpu: Count | None = None
    """Cores per socket."""
    memory: Quantity | None = None
    """Guest memory, e.g. 4Gi."""
    sockets: Count | None = None
    """CPU sockets."""


def _default_ports() -> list[int]:
    return [22]


_SIZED = "has(self.resources.cpu) && has(self.resources.memory) && has(self.resources.sockets)"
_ANY_SIZE = "has(self.resources.cpu) || has(self.resources.memory) || has(self.resources.sockets)"


def _unique(field: str, key: str = "") -> str:
    item = f"a{key}"
    return f"self.{field}.all(a, self.{field}.filter(b, b{key} == {item}).size() == 1)"


class VirtualMachineSpec(Model):
    """A KubeVirt virtual machine booting from VMDisks."""

    model_config = with_rules(
        cel(
            f"self.instanceType != '' || ({_SIZED})",
            "resources.cpu, resources.memory and resources.sockets are required when "
            "instanceType is empty",
        ),
        cel(
            f"self.instanceType == '' || !({_ANY_SIZE})",
            "resources cannot be combined with an instanceType (KubeVirt refuses the "
            "conflict): set instanceType to '' to size the VM yourself",
        ),
        cel(_unique("disks", ".name"), "disks must name each VMDisk once"),
        cel(_unique("networks", ".name"), "networks must name each network once"),
        cel(_unique("subnets", ".name"), "subnets must name each network once"),
        cel(
            "self.networks.all(n, n.name != 'default') && self.subnets.all(n, n.name != 'default')",
            "the network name default is reserved for the pod network",
        ),
        cel(_unique("externalPorts"), "externalPorts must list each port once"),
    )

    external: bool = False
    """Expose the VM through a LoadBalancer Service."""
    external_method: ExternalMethod = "PortList"
    """PortList forwards externalPorts only; WholeIP forwards all traffic for the IP."""
    external_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=_default_ports, max_length=64
    )
    """Ports forwarded from outside (WholeIP with no ports forwards everything)."""
    external_allow_icmp: bool = Field(True, alias="externalAllowICMP")
    """Accept ICMP (ping, path MTU discovery) in PortList mode; WholeIP always passes it."""
    run_strategy: RunStrategy = "Always"
    """Requested running state: Always, Halted, Manual, RerunOnFailure or Once."""
    instance_type: str = Field("u1.medium", max_length=253, pattern=CLUSTER_OBJECT)
    """VirtualMachineClusterInstancetype sizing the VM; empty: size it with resources."""
    instance_profile: str = Field("ubuntu", max_length=253, pattern=CLUSTER_OBJECT)
    """VirtualMachineClusterPreference (guest OS defaults); empty for none."""
    disks: list[DiskRef] = Field(default_factory=list, max_length=MAX_DISKS)
    """VMDisks to attach, in boot order."""
    networks: list[Network] = Field(default_factory=list, max_length=MAX_NETWORKS)
    """Secondary networks, besides the pod network."""
    subnets: list[Network] = Field(default_factory=list, max_length=MAX_NETWORKS)
    """Deprecated alias of networks, used only when networks is empty."""
    gpus: list[Gpu] = Field(default_factory=list, max_length=8)
    """GPUs to pass through (the NVIDIA driver needs at least 4Gi of memory)."""
    cpu_model: str = Field("", max_length=64, pattern=r"^$|^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    """CPU model of the guest, e.g. host-passthrough; empty uses the cluster default."""
    resources: VMResources = VMResources()
    ssh_keys: list[Annotated[str, Field(min_length=1, max_length=16384)]] = Field(
        default_factory=list, max_length=32
    )
    """SSH public keys, injected through cloud-init."""
    cloud_init: str = Field("", max_length=65536)
    """cloud-init user data; empty with sshKeys generates one holding the keys."""
    cloud_init_seed: str = Field("", max_length=253)
    """Seed of the SMBIOS UUID: change it to make cloud-init run again."""


class VirtualMachineStatus(Model):
    printable_status: str = ""
    """KubeVirt's summary: Running, Stopped, Provisioning, Starting..."""
    ready: bool = False
    """Whether KubeVirt reports the VM Ready (running and reachable)."""
    restart_required: bool = False
    """A spec change (instanceType, disks...) applies at the next restart (virtctl restart)."""
    ip_addresses: list[str] = Field(default_factory=list)
    """Addresses of the VM on the pod network."""
    service: str = ""
    """Service in front of the VM."""
    external_address: str = ""
    """Address of the LoadBalancer, once assigned."""
    ssh_keys_secret: str = ""
    """Secret holding the SSH public keys."""
    cloud_init_secret: str = ""
    """Secret holding the cloud-init user data."""
