"""VirtualMachine: a KubeVirt VM on VMDisks, its cloud-init and its Service (reference §14.2)."""

from __future__ import annotations

import hashlib
import json

from functions.api.virtualmachine import VirtualMachineSpec, VirtualMachineStatus
from functions.domain import secrets
from functions.domain.addresses import load_balancer_address
from functions.domain.instancetypes import INSTANCETYPES
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta
from functions.services.vmdisk import CDI, OPTICAL
from functions.services.vmdisk import PREFIX as DISK_PREFIX

KUBEVIRT = "kubevirt.io/v1"
INSTANCETYPE_API = "instancetype.kubevirt.io/v1beta1"
CLUSTER_INSTANCETYPE = "VirtualMachineClusterInstancetype"
CLUSTER_PREFERENCE = "VirtualMachineClusterPreference"
PREFIX = "vm-instance-"
# The VirtualMachineClusterPreferences Cozystack installs (reference §4.2); the last five
# are its deprecated local ones.
PREFERENCES = frozenset(
    {
        "alpine",
        "centos.stream9",
        "centos.stream9.desktop",
        "centos.stream9.dpdk",
        "centos.stream10",
        "centos.stream10.desktop",
        "cirros",
        "debian",
        "fedora",
        "fedora.arm64",
        "fedora.s390x",
        "legacy",
        "linux",
        "linux.efi",
        "linux.virtiotransitional",
        "opensuse.leap",
        "opensuse.tumbleweed",
        "oraclelinux",
        "rhel.7",
        "rhel.7.desktop",
        "rhel.8",
        "rhel.8.desktop",
        "rhel.8.dpdk",
        "rhel.9",
        "rhel.9.arm64",
        "rhel.9.desktop",
        "rhel.9.dpdk",
        "rhel.9.realtime",
        "rhel.9.s390x",
        "rhel.10",
        "rhel.10.arm64",
        "rhel.10.s390x",
        "sles",
        "ubuntu",
        *(
            f"windows.{v}{s}"
            for v in ("7", "10", "11", "2k8", "2k12", "2k16", "2k19", "2k22", "2k25")
            for s in ("", ".virtio")
        ),
        "windows.xp",
        "windows.2k3",
        "centos.7",
        "centos.7.desktop",
        "centos.stream8",
        "centos.stream8.desktop",
        "centos.stream8.dpdk",
    }
)
# Cozystack-local instancetypes that attach a GPU themselves (reference §4.1).
GPU_SERIES = "gn1."
PORT_ALL = 65535
WINDOWS_LABEL = "scheduling.cozystack.io/vm-windows"
MAC_ANNOTATION = "ovn.kubernetes.io/mac_address"
IP_ANNOTATION = "ovn.kubernetes.io/ip_address"


def compose(spec: VirtualMachineSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XVirtualMachine is created through a VirtualMachine claim")
    release = f"{PREFIX}{name}"
    labels = {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "vm-instance"}
    observed_vm = ctx.observed.get("vm")

    # Every requirement first: Crossplane answers them all in one round trip.
    instancetype = _require_instancetype(out, spec)
    preference = _require_preference(out, spec)
    volumes = {
        d.name: out.require(
            f"disk-{d.name}", Requirement(CDI, "DataVolume", f"{DISK_PREFIX}{d.name}", ns)
        )
        for d in spec.disks
    }
    ip = out.require("ip", Requirement("kubeovn.io/v1", "IP", f"{release}.{ns}"))
    vmi = out.require("vmi", Requirement(KUBEVIRT, "VirtualMachineInstance", release, ns))
    current_service = out.require("existing-service", Requirement("v1", "Service", release, ns))
    if not out.resolved():
        return out
    _check_instancetype(spec, instancetype, preference)

    if spec.subnets:
        out.warn(
            "spec.subnets is deprecated"
            + (" and ignored because spec.networks is set" if spec.networks else ": use networks")
        )
    cloud_init = _secrets(out, spec, release, ns)
    missing = [d for d, dv in volumes.items() if dv is None]
    for disk in missing:
        out.wait(f"waiting for VMDisk {disk}: DataVolume {DISK_PREFIX}{disk} does not exist")

    vm = None
    composed = not missing or observed_vm is not None
    if composed:
        vm = out.add_observed(
            "vm",
            {
                "apiVersion": KUBEVIRT,
                "kind": "VirtualMachine",
                "metadata": meta(release, ns, labels),
                "spec": _vm_spec(spec, ctx, release, ns, labels, volumes, ip, cloud_init),
            },
        )
    else:
        out.ready = False

    vm_status = (vm or {}).get("status", {})
    printable = str(vm_status.get("printableStatus") or "")
    if composed and vm is None:
        out.wait(f"creating VirtualMachine {release}")
    elif composed and not out.resources["vm"].ready:
        out.wait(
            f"VirtualMachine {release}: {printable or 'starting'} (runStrategy {spec.run_strategy})"
        )
    service, external = _service(out, spec, release, ns, labels, current_service)
    conditions = {
        c.get("type"): c.get("status") == "True" for c in vm_status.get("conditions") or []
    }
    out.status = VirtualMachineStatus(
        printable_status=printable,
        ready=conditions.get("Ready", False),
        restart_required=conditions.get("RestartRequired", False),
        ip_addresses=_addresses(vmi, ip),
        service=service,
        external_address=external,
        ssh_keys_secret=f"{release}-ssh-keys" if spec.ssh_keys else "",
        cloud_init_secret=f"{release}-cloud-init" if cloud_init else "",
    ).model_dump(by_alias=True)
    return out


def _require_instancetype(out: Outcome, spec: VirtualMachineSpec) -> Object | None:
    """A cluster instancetype outside Cozystack's catalogue, read to check it exists."""
    if not spec.instance_type or spec.instance_type in INSTANCETYPES:
        return None
    return out.require(
        "instancetype",
        Requirement(INSTANCETYPE_API, CLUSTER_INSTANCETYPE, spec.instance_type),
    )


def _require_preference(out: Outcome, spec: VirtualMachineSpec) -> Object | None:
    if not spec.instance_profile or spec.instance_profile in PREFERENCES:
        return None
    return out.require(
        "preference", Requirement(INSTANCETYPE_API, CLUSTER_PREFERENCE, spec.instance_profile)
    )


def _check_instancetype(
    spec: VirtualMachineSpec, instancetype: Object | None, preference: Object | None
) -> None:
    name = spec.instance_type
    if name and name not in INSTANCETYPES and instancetype is None:
        raise ComposeError("spec.instanceType", f"{CLUSTER_INSTANCETYPE} {name!r} does not exist")
    if spec.instance_profile and spec.instance_profile not in PREFERENCES and preference is None:
        raise ComposeError(
            "spec.instanceProfile",
            f"{CLUSTER_PREFERENCE} {spec.instance_profile!r} does not exist",
        )
    attaches_gpus = (
        name.startswith(GPU_SERIES)
        if name in INSTANCETYPES
        else bool((instancetype or {}).get("spec", {}).get("gpus"))
    )
    if spec.gpus and attaches_gpus:
        raise ComposeError(
            "spec.gpus",
            f"instancetype {name} attaches its own GPUs; KubeVirt refuses more: leave gpus empty",
        )


def firmware_uuid(ns: str, release: str, seed: str, observed_vm: Object | None) -> str:
    """Cozystack's stable SMBIOS UUID: from namespace, name and seed; kept when unseeded.

    A changed UUID makes cloud-init run again, so without a seed the VM keeps the one it has.
    """
    if not seed:
        template = (observed_vm or {}).get("spec", {}).get("template", {}).get("spec", {})
        existing = template.get("domain", {}).get("firmware", {}).get("uuid")
        if existing:
            return str(existing)
    h = hashlib.sha256(f"{ns}-{release}-{seed}".encode()).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-9{h[17:20]}-{h[20:32]}"


def _matcher(kind: str, name: str, observed: Object | None) -> Object:
    """An instancetype/preference reference; a name change drops a legacy revisionName.

    KubeVirt 1.8 keeps the ControllerRevision in status and makes a new one when the name
    changes, but refuses a new name beside the revisionName KubeVirt 1.4 and older wrote.
    """
    matcher: Object = {"kind": kind, "name": name}
    if (observed or {}).get("revisionName") and (observed or {}).get("name") != name:
        matcher["revisionName"] = ""
    return matcher


def _vm_spec(
    spec: VirtualMachineSpec,
    ctx: Context,
    release: str,
    ns: str,
    labels: dict[str, str],
    volumes: dict[str, Object | None],
    ip: Object | None,
    cloud_init: bool,
) -> Object:
    observed_vm = ctx.observed.get("vm")
    observed_spec = (observed_vm or {}).get("spec", {})
    vm_spec: Object = {"runStrategy": spec.run_strategy}
    if spec.instance_type:
        vm_spec["instancetype"] = _matcher(
            CLUSTER_INSTANCETYPE, spec.instance_type, observed_spec.get("instancetype")
        )
    if spec.instance_profile:
        vm_spec["preference"] = _matcher(
            CLUSTER_PREFERENCE, spec.instance_profile, observed_spec.get("preference")
        )

    domain: Object = {}
    cpu: Object = {}
    if spec.resources.cpu is not None and spec.resources.sockets is not None:
        cpu = {"cores": spec.resources.cpu, "sockets": spec.resources.sockets}
    if spec.cpu_model:
        cpu["model"] = spec.cpu_model
    if cpu:
        domain["cpu"] = cpu
    if spec.resources.memory is not None:
        domain["resources"] = {"requests": {"memory": spec.resources.memory}}
    domain["firmware"] = {"uuid": firmware_uuid(ns, release, spec.cloud_init_seed, observed_vm)}
    devices: Object = {}
    if spec.gpus:
        devices["gpus"] = [
            {"name": f"gpu{i + 1}", "deviceName": gpu.name} for i, gpu in enumerate(spec.gpus)
        ]
    disks = _disks(spec, volumes, observed_spec)
    if cloud_init:
        disks.append({"name": "cloudinitdisk", "disk": {}})
    if disks:
        devices["disks"] = disks
    networks = spec.networks or spec.subnets
    devices["interfaces"] = [{"name": "default", "bridge": {}}] + [
        {"name": n.name, "bridge": {}} for n in networks
    ]
    domain["devices"] = devices
    domain["machine"] = {"type": ""}

    template: Object = {"domain": domain}
    if spec.ssh_keys:
        template["accessCredentials"] = [
            {
                "sshPublicKey": {
                    "source": {"secret": {"secretName": f"{release}-ssh-keys"}},
                    "propagationMethod": {"noCloud": {}},
                }
            }
        ]
    template["terminationGracePeriodSeconds"] = 30
    if ctx.config.dedicated_nodes_for_windows_vms:
        template["affinity"] = windows_affinity(spec.instance_profile)
    volume_list: list[Object] = [
        {"name": f"disk-{d.name}", "dataVolume": {"name": f"{DISK_PREFIX}{d.name}"}}
        for d in spec.disks
    ]
    if cloud_init:
        volume_list.append(
            {
                "name": "cloudinitdisk",
                "cloudInitNoCloud": {"secretRef": {"name": f"{release}-cloud-init"}},
            }
        )
    if volume_list:
        template["volumes"] = volume_list
    template["networks"] = [{"name": "default", "pod": {}}] + [
        {"name": n.name, "multus": {"networkName": f"{ns}/{n.name}"}} for n in networks
    ]

    annotations = {"kubevirt.io/allow-pod-bridge-network-live-migration": "true"}
    ip_spec = (ip or {}).get("spec", {})
    address = _ip_of(ip_spec)
    if ip_spec.get("macAddress"):
        annotations[MAC_ANNOTATION] = str(ip_spec["macAddress"])
    if address:
        annotations[IP_ANNOTATION] = address
    vm_spec["template"] = {
        "metadata": {"annotations": dict(sorted(annotations.items())), "labels": labels},
        "spec": template,
    }
    return vm_spec


def _disks(
    spec: VirtualMachineSpec, volumes: dict[str, Object | None], observed_spec: Object
) -> list[Object]:
    """Each VMDisk as a disk or, when its DataVolume is optical, a cdrom; boot by position."""
    previous = {
        d.get("name"): d
        for d in observed_spec.get("template", {})
        .get("spec", {})
        .get("domain", {})
        .get("devices", {})
        .get("disks", [])
    }
    out: list[Object] = []
    for i, ref in enumerate(spec.disks):
        dv = volumes.get(ref.name)
        if dv is not None:
            annotations = dv.get("metadata", {}).get("annotations") or {}
            device = "cdrom" if annotations.get(OPTICAL) == "true" else "disk"
        else:
            # The DataVolume is gone: keep the device the VM already has.
            device = "cdrom" if "cdrom" in previous.get(f"disk-{ref.name}", {}) else "disk"
        if device == "cdrom" and ref.bus == "virtio":
            raise ComposeError(
                f"spec.disks[{i}].bus",
                f"VMDisk {ref.name} is optical and a CD-ROM cannot use virtio: use sata or scsi",
            )
        out.append(
            {
                "name": f"disk-{ref.name}",
                device: {"bus": ref.bus} if ref.bus else {},
                "bootOrder": i + 1,
            }
        )
    return out


def windows_affinity(profile: str) -> Object:
    """Windows VMs only on the nodes set aside for them; other VMs preferably elsewhere."""
    windows = {"key": WINDOWS_LABEL, "operator": "In", "values": ["true"]}
    if profile.startswith("windows"):
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [windows]}]
                }
            }
        }
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {"matchExpressions": [windows | {"operator": "NotIn"}]},
                }
            ]
        }
    }


def user_data(spec: VirtualMachineSpec) -> str:
    """cloud-init user data: the claim's, else a minimal one carrying the SSH keys."""
    if spec.cloud_init:
        return spec.cloud_init.rstrip("\n") + "\n"
    keys = "".join(f"  - {json.dumps(k)}\n" for k in spec.ssh_keys)
    return f"#cloud-config\nssh_authorized_keys:\n{keys}"


def _secrets(out: Outcome, spec: VirtualMachineSpec, release: str, ns: str) -> bool:
    """The SSH keys and cloud-init Secrets; returns whether the VM gets a cloud-init disk."""
    if spec.ssh_keys:
        out.add(
            "ssh-keys",
            secrets.secret(
                f"{release}-ssh-keys", ns, {f"key{i}": k for i, k in enumerate(spec.ssh_keys)}
            ),
        )
    if not (spec.cloud_init or spec.ssh_keys):
        return False
    out.add(
        "cloud-init", secrets.secret(f"{release}-cloud-init", ns, {"userdata": user_data(spec)})
    )
    return True


def _service(
    out: Outcome,
    spec: VirtualMachineSpec,
    release: str,
    ns: str,
    labels: dict[str, str],
    current: Object | None,
) -> tuple[str, str]:
    """Service R: a LoadBalancer through cozy-proxy when external, else headless.

    A Service cannot switch between headless and LoadBalancer in place (clusterIP is
    immutable): while the other type still exists it is left out, Crossplane deletes it,
    and the new one is created once it is gone.
    """
    wanted = "LoadBalancer" if spec.external else "ClusterIP"
    if current is not None and current.get("spec", {}).get("type") != wanted:
        out.wait(f"replacing Service {release} by a {wanted} Service")
        return "", ""
    service_labels = labels | {"apps.cozystack.io/user-service": "true"}
    body: Object = {"apiVersion": "v1", "kind": "Service", "spec": {"type": wanted}}
    if spec.external:
        service_labels["service.kubernetes.io/service-proxy-name"] = "cozy-proxy"
        whole = spec.external_method == "WholeIP"
        annotations = {"networking.cozystack.io/wholeIP": "true" if whole else "false"}
        if not whole:
            annotations["networking.cozystack.io/allowICMP"] = (
                "true" if spec.external_allow_icmp else "false"
            )
        body["spec"] |= {"externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": False}
        if whole and not spec.external_ports:
            ports: list[Object] = [{"port": PORT_ALL}]
        else:
            ports = [{"name": f"port-{p}", "port": p, "targetPort": p} for p in spec.external_ports]
    else:
        annotations = {}
        body["spec"]["clusterIP"] = "None"
        ports = [{"port": PORT_ALL}]
    body["metadata"] = meta(release, ns, service_labels)
    if annotations:
        body["metadata"]["annotations"] = dict(sorted(annotations.items()))
    body["spec"] |= {"selector": dict(labels), "ports": ports}
    svc = out.add_observed("service", body)
    address = load_balancer_address(svc) if spec.external else ""
    if spec.external and not address:
        out.wait(f"Service {release} has no external address yet")
    return release, address


def _ip_of(ip_spec: Object) -> str:
    if ip_spec.get("ipAddress"):
        return str(ip_spec["ipAddress"])
    return ",".join(str(ip_spec[k]) for k in ("v4IpAddress", "v6IpAddress") if ip_spec.get(k))


def _addresses(vmi: Object | None, ip: Object | None) -> list[str]:
    """Pod-network addresses: what the running instance reports, else kube-ovn's record."""
    for interface in (vmi or {}).get("status", {}).get("interfaces") or []:
        if interface.get("name") == "default":
            found = interface.get("ipAddresses") or [interface.get("ipAddress")]
            return [str(a) for a in found if a]
    return [a for a in _ip_of((ip or {}).get("spec", {})).split(",") if a]
