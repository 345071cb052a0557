"""VirtualMachine compose: the KubeVirt VM, cloud-init Secrets and Service (§14.2)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from pydantic import ValidationError

from functions.api.config import PlatformConfig
from functions.api.kinds import VIRTUAL_MACHINE, VMDISK
from functions.api.rules import violations
from functions.api.virtualmachine import VirtualMachineSpec
from functions.domain import readiness
from functions.services import virtualmachine
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context
from tests.support.schemas import Catalog

NS = "tenant-dev"
R = "vm-instance-vm1"
UNSEEDED_UUID = "0779565b-df86-4f2e-9eb3-036b64e957bd"  # sha256("tenant-dev-vm-instance-vm1-")


def datavolume(name: str, *, optical: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": f"vm-disk-{name}",
            "namespace": NS,
            "annotations": {"vm-disk.cozystack.io/optical": "true" if optical else "false"},
        },
    }


def resolved(spec: dict[str, Any], **found: list[Any]) -> dict[str, list[Any]]:
    """Every requirement answered: the disks exist, nothing else does unless given."""
    answers: dict[str, list[Any]] = {
        f"disk-{d['name']}": [datavolume(d["name"])] for d in spec.get("disks", [])
    }
    answers |= {"ip": [], "vmi": [], "existing-service": []}
    for key in ("instancetype", "preference"):
        answers[key] = []
    return answers | found


def compose(
    spec: dict[str, Any] | None = None,
    *,
    name: str = "vm1",
    found: dict[str, list[Any]] | None = None,
    **kw: Any,
) -> Outcome:
    spec = spec or {}
    kw.setdefault("required", resolved(spec, **(found or {})))
    return virtualmachine.compose(VirtualMachineSpec.model_validate(spec), context(name, NS, **kw))


def vm(out: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = out.resources["vm"].body
    return body


def template(out: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = vm(out)["spec"]["template"]["spec"]
    return spec


def data(out: Outcome, key: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in out.resources[key].body["data"].items()}


ONE_DISK = {"disks": [{"name": "system"}]}
LABELS = {"app.kubernetes.io/instance": R, "app.kubernetes.io/name": "vm-instance"}


def test_defaults() -> None:
    out = compose(ONE_DISK)
    assert sorted(out.resources) == ["service", "vm"]
    body = vm(out)
    assert body["metadata"] == {"name": R, "namespace": NS, "labels": LABELS}
    spec = body["spec"]
    assert spec["runStrategy"] == "Always"
    assert spec["instancetype"] == {
        "kind": "VirtualMachineClusterInstancetype",
        "name": "u1.medium",
    }
    assert spec["preference"] == {"kind": "VirtualMachineClusterPreference", "name": "ubuntu"}
    assert spec["template"]["metadata"] == {
        "annotations": {"kubevirt.io/allow-pod-bridge-network-live-migration": "true"},
        "labels": LABELS,
    }
    assert template(out) == {
        "domain": {
            "firmware": {"uuid": UNSEEDED_UUID},
            "devices": {
                "disks": [{"name": "disk-system", "disk": {}, "bootOrder": 1}],
                "interfaces": [{"name": "default", "bridge": {}}],
            },
            "machine": {"type": ""},
        },
        "terminationGracePeriodSeconds": 30,
        "volumes": [{"name": "disk-system", "dataVolume": {"name": "vm-disk-system"}}],
        "networks": [{"name": "default", "pod": {}}],
    }
    service = out.resources["service"].body
    assert service["metadata"] == {
        "name": R,
        "namespace": NS,
        "labels": LABELS | {"apps.cozystack.io/user-service": "true"},
    }
    assert service["spec"] == {
        "type": "ClusterIP",
        "clusterIP": "None",
        "selector": LABELS,
        "ports": [{"port": 65535}],
    }
    # Cozystack's catalogue is trusted: only the disks, the IP, the instance and the
    # Service are read.
    assert sorted(out.requirements) == ["disk-system", "existing-service", "ip", "vmi"]
    assert out.requirements["ip"].name == f"{R}.{NS}"
    assert out.requirements["disk-system"].name == "vm-disk-system"
    assert out.waiting == [f"creating VirtualMachine {R}"]
    assert out.warnings == []


def test_nothing_is_composed_before_required_resources_are_read() -> None:
    out = compose(ONE_DISK, required={})
    assert out.resources == {}
    assert "disk-system" in out.requirements


def test_firmware_uuid_is_stable_seeded_and_never_changed_under_the_vm() -> None:
    assert virtualmachine.firmware_uuid(NS, R, "", None) == UNSEEDED_UUID
    seeded = virtualmachine.firmware_uuid(NS, R, "upd1", None)
    assert seeded != UNSEEDED_UUID
    assert seeded[14] == "4"
    assert seeded[19] == "9"
    observed = copy.deepcopy(vm(compose(ONE_DISK)))
    observed["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"] = (
        "11111111-2222-4333-9444-555555555555"
    )
    kept = compose(ONE_DISK, observed={"vm": observed})
    assert template(kept)["domain"]["firmware"]["uuid"] == "11111111-2222-4333-9444-555555555555"
    reseeded = compose(ONE_DISK | {"cloudInitSeed": "upd1"}, observed={"vm": observed})
    assert template(reseeded)["domain"]["firmware"]["uuid"] == seeded


def instancetype(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineClusterInstancetype",
        "metadata": {"name": name},
        "spec": {"cpu": {"guest": 2}, "memory": {"guest": "4Gi"}} | spec,
    }


def preference(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineClusterPreference",
        "metadata": {"name": name},
        "spec": {},
    }


@pytest.mark.parametrize("name", ["u1.nano", "cx1.8xlarge1gi", "gn1.xlarge", "d1.2xmedium"])
def test_catalogue_instancetypes_are_not_read(name: str) -> None:
    out = compose(ONE_DISK | {"instanceType": name})
    assert vm(out)["spec"]["instancetype"]["name"] == name
    assert "instancetype" not in out.requirements


@pytest.mark.parametrize(
    "name", ["windows.2k22.virtio", "centos.stream8", "alpine", "rhel.9.s390x"]
)
def test_catalogue_preferences_are_not_read(name: str) -> None:
    out = compose(ONE_DISK | {"instanceProfile": name})
    assert vm(out)["spec"]["preference"]["name"] == name
    assert "preference" not in out.requirements


def test_the_catalogues_are_complete() -> None:
    assert len(virtualmachine.PREFERENCES) == 59


def test_other_instancetypes_and_preferences_are_read_and_must_exist() -> None:
    spec = ONE_DISK | {"instanceType": "x1.large", "instanceProfile": "ubuntu.efi"}
    out = compose(
        spec,
        found={
            "instancetype": [instancetype("x1.large")],
            "preference": [preference("ubuntu.efi")],
        },
    )
    assert out.requirements["instancetype"].name == "x1.large"
    assert out.requirements["instancetype"].kind == "VirtualMachineClusterInstancetype"
    assert out.requirements["preference"].kind == "VirtualMachineClusterPreference"
    assert vm(out)["spec"]["instancetype"]["name"] == "x1.large"
    with pytest.raises(ComposeError, match=r"spec\.instanceType: .*'x1\.large' does not exist"):
        compose(spec, found={"preference": [preference("ubuntu.efi")]})
    with pytest.raises(
        ComposeError, match=r"spec\.instanceProfile: .*'ubuntu\.efi' does not exist"
    ):
        compose(spec, found={"instancetype": [instancetype("x1.large")]})


def test_explicit_resources_instead_of_an_instancetype() -> None:
    spec = ONE_DISK | {
        "instanceType": "",
        "instanceProfile": "",
        "resources": {"cpu": "4", "memory": "8Gi", "sockets": 2},
        "cpuModel": "host-passthrough",
    }
    out = compose(spec)
    assert "instancetype" not in vm(out)["spec"]
    assert "preference" not in vm(out)["spec"]
    domain = template(out)["domain"]
    assert domain["cpu"] == {"cores": 4, "sockets": 2, "model": "host-passthrough"}
    assert domain["resources"] == {"requests": {"memory": "8Gi"}}


def test_cpu_model_alone() -> None:
    out = compose(ONE_DISK | {"cpuModel": "Haswell-noTSX"})
    assert template(out)["domain"]["cpu"] == {"model": "Haswell-noTSX"}
    assert "resources" not in template(out)["domain"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"instanceType": ""}, "are required when instanceType is empty"),
        (
            {"instanceType": "", "resources": {"cpu": 2, "memory": "4Gi"}},
            "are required when instanceType is empty",
        ),
        ({"resources": {"memory": "4Gi"}}, "resources cannot be combined with an instanceType"),
        ({"disks": [{"name": "a"}, {"name": "a"}]}, "disks must name each VMDisk once"),
        ({"networks": [{"name": "n"}, {"name": "n"}]}, "networks must name each network once"),
        ({"subnets": [{"name": "n"}, {"name": "n"}]}, "subnets must name each network once"),
        ({"networks": [{"name": "default"}]}, "reserved for the pod network"),
        ({"externalPorts": [22, 22]}, "externalPorts must list each port once"),
    ],
)
def test_cel_rules(spec: dict[str, Any], message: str) -> None:
    found = violations(VirtualMachineSpec.model_validate(spec))
    assert any(message in v for v in found), found


def test_valid_specs_break_no_rule() -> None:
    for spec in (
        {},
        {"instanceType": "", "resources": {"cpu": 1, "memory": "1Gi", "sockets": 1}},
        {"disks": [{"name": "a"}, {"name": "b"}], "externalPorts": [22, 80]},
    ):
        assert violations(VirtualMachineSpec.model_validate(spec)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"resources": {"cpu": "500m"}},
        {"resources": {"sockets": 0}},
        {"runStrategy": "Sometimes"},
        {"externalMethod": "Everything"},
        {"externalPorts": [70000]},
        {"disks": [{"name": "a", "bus": "ide"}]},
        {"instanceType": "U1.Medium"},
        {"gpus": [{"name": "nvidia.com/ bad"}]},
    ],
)
def test_bad_values_are_refused_by_the_schema(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VirtualMachineSpec.model_validate(spec)


def test_gpus() -> None:
    out = compose(ONE_DISK | {"gpus": [{"name": "nvidia.com/A10"}, {"name": "nvidia.com/L40S"}]})
    assert template(out)["domain"]["devices"]["gpus"] == [
        {"name": "gpu1", "deviceName": "nvidia.com/A10"},
        {"name": "gpu2", "deviceName": "nvidia.com/L40S"},
    ]


def test_gpus_conflict_with_instancetypes_that_attach_their_own() -> None:
    gpus = {"gpus": [{"name": "nvidia.com/A10"}]}
    with pytest.raises(ComposeError, match=r"spec\.gpus: instancetype gn1\.xlarge attaches"):
        compose(ONE_DISK | gpus | {"instanceType": "gn1.xlarge"})
    own = instancetype("g2.large", gpus=[{"name": "gpu1", "deviceName": "nvidia.com/A400"}])
    with pytest.raises(ComposeError, match=r"spec\.gpus: instancetype g2\.large attaches"):
        compose(ONE_DISK | gpus | {"instanceType": "g2.large"}, found={"instancetype": [own]})


def test_disks_in_boot_order_optical_ones_as_cdroms() -> None:
    spec = {
        "disks": [
            {"name": "system", "bus": "virtio"},
            {"name": "iso", "bus": "sata"},
            {"name": "data"},
        ]
    }
    out = compose(spec, found={"disk-iso": [datavolume("iso", optical=True)]})
    assert template(out)["domain"]["devices"]["disks"] == [
        {"name": "disk-system", "disk": {"bus": "virtio"}, "bootOrder": 1},
        {"name": "disk-iso", "cdrom": {"bus": "sata"}, "bootOrder": 2},
        {"name": "disk-data", "disk": {}, "bootOrder": 3},
    ]
    assert [v["dataVolume"]["name"] for v in template(out)["volumes"]] == [
        "vm-disk-system",
        "vm-disk-iso",
        "vm-disk-data",
    ]


def test_an_optical_disk_cannot_use_virtio() -> None:
    spec = {"disks": [{"name": "system"}, {"name": "iso", "bus": "virtio"}]}
    with pytest.raises(ComposeError, match=r"spec\.disks\[1\]\.bus: VMDisk iso is optical"):
        compose(spec, found={"disk-iso": [datavolume("iso", optical=True)]})


def test_a_new_vm_waits_for_its_disks() -> None:
    out = compose(ONE_DISK, found={"disk-system": []})
    assert "vm" not in out.resources
    assert out.ready is False
    assert out.waiting == ["waiting for VMDisk system: DataVolume vm-disk-system does not exist"]
    assert "service" in out.resources


def test_an_existing_vm_keeps_the_device_of_a_vanished_disk() -> None:
    spec = {"disks": [{"name": "iso", "bus": "sata"}]}
    observed = vm(compose(spec, found={"disk-iso": [datavolume("iso", optical=True)]}))
    out = compose(spec, found={"disk-iso": []}, observed={"vm": observed})
    assert template(out)["domain"]["devices"]["disks"][0]["cdrom"] == {"bus": "sata"}
    assert "waiting for VMDisk iso: DataVolume vm-disk-iso does not exist" in out.waiting


def test_networks_and_the_deprecated_subnets() -> None:
    out = compose(ONE_DISK | {"networks": [{"name": "private"}, {"name": "storage"}]})
    assert template(out)["domain"]["devices"]["interfaces"] == [
        {"name": "default", "bridge": {}},
        {"name": "private", "bridge": {}},
        {"name": "storage", "bridge": {}},
    ]
    assert template(out)["networks"] == [
        {"name": "default", "pod": {}},
        {"name": "private", "multus": {"networkName": "tenant-dev/private"}},
        {"name": "storage", "multus": {"networkName": "tenant-dev/storage"}},
    ]
    alias = compose(ONE_DISK | {"subnets": [{"name": "legacy"}]})
    assert template(alias)["networks"][1] == {
        "name": "legacy",
        "multus": {"networkName": "tenant-dev/legacy"},
    }
    assert alias.warnings == ["spec.subnets is deprecated: use networks"]
    both = compose(ONE_DISK | {"subnets": [{"name": "legacy"}], "networks": [{"name": "new"}]})
    assert [n["name"] for n in template(both)["networks"]] == ["default", "new"]
    assert both.warnings == ["spec.subnets is deprecated and ignored because spec.networks is set"]


KEYS = ["ssh-ed25519 AAAA1 alice@example.org", "ssh-rsa AAAA2 bob"]


def test_ssh_keys_alone_generate_cloud_init() -> None:
    out = compose(ONE_DISK | {"sshKeys": KEYS})
    assert data(out, "ssh-keys") == {"key0": KEYS[0], "key1": KEYS[1]}
    assert out.resources["ssh-keys"].body["metadata"]["name"] == f"{R}-ssh-keys"
    assert data(out, "cloud-init") == {
        "userdata": "#cloud-config\nssh_authorized_keys:\n"
        '  - "ssh-ed25519 AAAA1 alice@example.org"\n  - "ssh-rsa AAAA2 bob"\n'
    }
    spec = template(out)
    assert spec["accessCredentials"] == [
        {
            "sshPublicKey": {
                "source": {"secret": {"secretName": f"{R}-ssh-keys"}},
                "propagationMethod": {"noCloud": {}},
            }
        }
    ]
    assert spec["domain"]["devices"]["disks"][-1] == {"name": "cloudinitdisk", "disk": {}}
    assert spec["volumes"][-1] == {
        "name": "cloudinitdisk",
        "cloudInitNoCloud": {"secretRef": {"name": f"{R}-cloud-init"}},
    }
    assert out.status["sshKeysSecret"] == f"{R}-ssh-keys"
    assert out.status["cloudInitSecret"] == f"{R}-cloud-init"


def test_cloud_init_is_taken_as_written() -> None:
    out = compose(ONE_DISK | {"cloudInit": "#cloud-config\npassword: x\n\n", "sshKeys": KEYS})
    assert data(out, "cloud-init") == {"userdata": "#cloud-config\npassword: x\n"}
    plain = compose(ONE_DISK | {"cloudInit": "#cloud-config"})
    assert "ssh-keys" not in plain.resources
    assert "accessCredentials" not in template(plain)
    assert data(plain, "cloud-init") == {"userdata": "#cloud-config\n"}
    # Secrets stay out of the status.
    assert "password" not in str(out.status)


def test_external_port_list() -> None:
    out = compose(ONE_DISK | {"external": True, "externalPorts": [22, 443]})
    service = out.resources["service"].body
    assert service["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] == "cozy-proxy"
    assert service["metadata"]["annotations"] == {
        "networking.cozystack.io/allowICMP": "true",
        "networking.cozystack.io/wholeIP": "false",
    }
    assert service["spec"] == {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "allocateLoadBalancerNodePorts": False,
        "selector": LABELS,
        "ports": [
            {"name": "port-22", "port": 22, "targetPort": 22},
            {"name": "port-443", "port": 443, "targetPort": 443},
        ],
    }
    assert f"Service {R} has no external address yet" in out.waiting
    no_ping = compose(ONE_DISK | {"external": True, "externalAllowICMP": False})
    annotations = no_ping.resources["service"].body["metadata"]["annotations"]
    assert annotations["networking.cozystack.io/allowICMP"] == "false"


@pytest.mark.parametrize(
    ("ports", "expected"),
    [([], [{"port": 65535}]), ([22], [{"name": "port-22", "port": 22, "targetPort": 22}])],
)
def test_external_whole_ip(ports: list[int], expected: list[Any]) -> None:
    out = compose(
        ONE_DISK | {"external": True, "externalMethod": "WholeIP", "externalPorts": ports}
    )
    service = out.resources["service"].body
    assert service["metadata"]["annotations"] == {"networking.cozystack.io/wholeIP": "true"}
    assert service["spec"]["ports"] == expected


def test_external_address_in_status() -> None:
    spec = ONE_DISK | {"external": True}
    observed = {
        "service": {
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
        }
    }
    out = compose(spec, observed=observed)
    assert out.status["externalAddress"] == "192.0.2.10"
    assert out.status["service"] == R
    assert out.resources["service"].ready


@pytest.mark.parametrize("external", [True, False])
def test_the_service_is_replaced_when_its_type_changes(external: bool) -> None:
    current = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"type": "ClusterIP" if external else "LoadBalancer"},
    }
    out = compose(ONE_DISK | {"external": external}, found={"existing-service": [current]})
    assert "service" not in out.resources
    wanted = "LoadBalancer" if external else "ClusterIP"
    assert f"replacing Service {R} by a {wanted} Service" in out.waiting
    assert out.status["service"] == ""


def ovn_ip(**spec: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeovn.io/v1",
        "kind": "IP",
        "metadata": {"name": f"{R}.{NS}"},
        "spec": spec,
    }


def test_kube_ovn_addresses_are_pinned() -> None:
    ip = ovn_ip(ipAddress="10.244.0.9", macAddress="0a:58:0a:f4:00:09")
    out = compose(ONE_DISK, found={"ip": [ip]})
    assert vm(out)["spec"]["template"]["metadata"]["annotations"] == {
        "kubevirt.io/allow-pod-bridge-network-live-migration": "true",
        "ovn.kubernetes.io/ip_address": "10.244.0.9",
        "ovn.kubernetes.io/mac_address": "0a:58:0a:f4:00:09",
    }
    assert out.status["ipAddresses"] == ["10.244.0.9"]
    dual = compose(ONE_DISK, found={"ip": [ovn_ip(v4IpAddress="10.0.0.1", v6IpAddress="fd00::1")]})
    assert dual.status["ipAddresses"] == ["10.0.0.1", "fd00::1"]


def test_addresses_of_the_running_instance() -> None:
    vmi = {
        "status": {
            "interfaces": [
                {"name": "private", "ipAddress": "192.168.1.5"},
                {
                    "name": "default",
                    "ipAddress": "10.244.0.9",
                    "ipAddresses": ["10.244.0.9", "fd00::9"],
                },
            ]
        }
    }
    out = compose(ONE_DISK, found={"vmi": [vmi], "ip": [ovn_ip(ipAddress="10.244.0.1")]})
    assert out.status["ipAddresses"] == ["10.244.0.9", "fd00::9"]


def test_a_new_instancetype_name_drops_a_legacy_revision_name() -> None:
    observed = copy.deepcopy(vm(compose(ONE_DISK)))
    observed["spec"]["instancetype"]["revisionName"] = "vm-instance-vm1-u1.medium-v1beta1-uid-1"
    observed["spec"]["preference"]["revisionName"] = "vm-instance-vm1-ubuntu-v1beta1-uid-2"
    out = compose(ONE_DISK | {"instanceType": "u1.large"}, observed={"vm": observed})
    assert vm(out)["spec"]["instancetype"] == {
        "kind": "VirtualMachineClusterInstancetype",
        "name": "u1.large",
        "revisionName": "",
    }
    # The preference did not change: its revision stays KubeVirt's business.
    assert vm(out)["spec"]["preference"] == {
        "kind": "VirtualMachineClusterPreference",
        "name": "ubuntu",
    }
    modern = copy.deepcopy(vm(compose(ONE_DISK)))
    changed = compose(ONE_DISK | {"instanceType": "u1.large"}, observed={"vm": modern})
    assert "revisionName" not in vm(changed)["spec"]["instancetype"]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            "windows.2k22.virtio",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "scheduling.cozystack.io/vm-windows",
                                        "operator": "In",
                                        "values": ["true"],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
        ),
        (
            "ubuntu",
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": "scheduling.cozystack.io/vm-windows",
                                        "operator": "NotIn",
                                        "values": ["true"],
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
        ),
    ],
)
def test_windows_nodes_when_the_platform_dedicates_them(
    profile: str, expected: dict[str, Any]
) -> None:
    spec = ONE_DISK | {"instanceProfile": profile}
    assert "affinity" not in template(compose(spec))
    out = compose(spec, config=PlatformConfig.model_validate({"dedicatedNodesForWindowsVMs": True}))
    assert template(out)["affinity"] == expected


@pytest.mark.parametrize(
    ("strategy", "status", "ready"),
    [
        (
            "Always",
            {"printableStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            True,
        ),
        (
            "Always",
            {"printableStatus": "Starting", "conditions": [{"type": "Ready", "status": "False"}]},
            False,
        ),
        ("Always", {"printableStatus": "Stopped"}, False),
        ("Halted", {"printableStatus": "Stopped"}, True),
        ("Halted", {"printableStatus": "Stopping"}, False),
        ("Manual", {"printableStatus": "Stopped"}, True),
        (
            "Manual",
            {"printableStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            True,
        ),
        ("Manual", {"printableStatus": "Starting"}, False),
        ("RerunOnFailure", {"printableStatus": "Stopped"}, False),
        (
            "Once",
            {"printableStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            True,
        ),
        ("Once", {"printableStatus": "Stopped"}, False),
    ],
)
def test_readiness_follows_the_run_strategy(
    strategy: str, status: dict[str, Any], ready: bool
) -> None:
    assert readiness.virtual_machine({"spec": {"runStrategy": strategy}, "status": status}) is ready


def test_status_and_waiting_from_kubevirt() -> None:
    observed_vm = copy.deepcopy(vm(compose(ONE_DISK)))
    observed_vm["status"] = {"printableStatus": "Provisioning", "conditions": []}
    service = copy.deepcopy(compose(ONE_DISK).resources["service"].body)
    out = compose(ONE_DISK, observed={"vm": observed_vm, "service": service})
    assert out.waiting == [f"VirtualMachine {R}: Provisioning (runStrategy Always)"]
    assert not out.resources["vm"].ready
    observed_vm["status"] = {
        "printableStatus": "Running",
        "ready": True,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    out = compose(ONE_DISK, observed={"vm": observed_vm, "service": service})
    assert out.resources["vm"].ready
    assert out.resources["service"].ready
    assert out.waiting == []
    assert out.status == {
        "printableStatus": "Running",
        "ready": True,
        "restartRequired": False,
        "ipAddresses": [],
        "service": R,
        "externalAddress": "",
        "sshKeysSecret": "",
        "cloudInitSecret": "",
    }
    observed_vm["status"]["conditions"].append({"type": "RestartRequired", "status": "True"})
    out = compose(ONE_DISK | {"instanceType": "u1.large"}, observed={"vm": observed_vm})
    assert out.status["restartRequired"] is True
    assert out.status["ready"] is True


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "v" * VIRTUAL_MACHINE.name_max_length
    disk = "d" * VMDISK.name_max_length
    spec = {"disks": [{"name": disk}], "sshKeys": KEYS, "cloudInit": "#cloud-config"}
    out = compose(spec, name=name)
    names = [d.body["metadata"]["name"] for d in out.resources.values()]
    assert f"vm-instance-{name}-cloud-init" in names
    names += [v["name"] for v in template(out)["volumes"]]
    names += [v["dataVolume"]["name"] for v in template(out)["volumes"] if "dataVolume" in v]
    assert f"vm-disk-{disk}" in names
    assert all(len(n) <= 63 for n in names), names


def claim(name: str = "vm1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def test_the_xrd_refuses_what_the_function_refuses(catalog: Catalog) -> None:
    unsized = catalog.validate(claim(instanceType=""))
    assert any("are required when instanceType is empty" in e for e in unsized), unsized
    sized = claim(instanceType="", resources={"cpu": "2", "memory": "4Gi", "sockets": 1})
    assert catalog.validate(sized) == []
    assert any("cannot be combined" in e for e in catalog.validate(claim(resources={"cpu": 2})))
    assert catalog.validate(claim(resources={"cpu": "2m"}, instanceType="")) != []
    assert catalog.validate(claim("v" * VIRTUAL_MACHINE.name_max_length)) == []
    assert catalog.validate(claim("v" * (VIRTUAL_MACHINE.name_max_length + 1))) != []
