"""Worker node groups: sizing, machine templates, deployments, health checks (§7.1.1, §7.3)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from functions.api.kubernetes import KubernetesSpec, NodeGroup
from functions.domain import presets
from functions.domain.errors import ComposeError
from functions.domain.instancetypes import INSTANCETYPES
from functions.domain.quantity import helm_to_float
from functions.domain.text import to_yaml
from functions.services.base import Object, Outcome, Requirement, meta

CAPI = "cluster.x-k8s.io/v1beta1"
CAPK = "infrastructure.cluster.x-k8s.io/v1alpha1"
TALOS_BOOTSTRAP = "bootstrap.cluster.x-k8s.io/v1alpha3"
KUBEADM_BOOTSTRAP = "bootstrap.cluster.x-k8s.io/v1beta1"
POD_CIDR = "10.243.0.0/16"
SERVICE_CIDR = "10.95.0.0/16"
TENANT_DNS_DOMAIN = "cluster.local"
TEMPLATE_KEY = "machinetemplate-"
# The bootstrap config template kind of each way workers boot.
CONFIG_TEMPLATES = {"talos": "TalosConfigTemplate", "kubeadm": "KubeadmConfigTemplate"}
MIB = 1048576.0

DEFAULT_GROUP = NodeGroup.model_validate(
    {
        "minReplicas": 0,
        "maxReplicas": 10,
        "instanceType": "u1.medium",
        "diskSize": "20Gi",
        "roles": ["ingress-nginx"],
    }
)


@dataclass(frozen=True)
class Sizing:
    """What a group's workers offer, and what the kubelet keeps for itself."""

    memory: str | None
    cpu: str | None
    system_reserved_memory: str
    kube_reserved_memory: str
    system_reserved_cpu: str
    kube_reserved_cpu: str
    eviction_hard_memory: str
    eviction_soft_memory: str
    allocatable_mi: int | None
    allocatable_cpu_millis: int | None


def groups(spec: KubernetesSpec) -> dict[str, NodeGroup]:
    """The groups in force: the claim's, else md0 alone (never merged with the claim's)."""
    return dict(sorted(spec.node_groups.items())) or {"md0": DEFAULT_GROUP}


def millicores(value: str) -> int:
    """The chart's cpuToMillicores: `500m` -> 500, `1.5` -> 1500; the other suffixes of a
    quantity (`1n`, `1.5m`, `2k`) as cozy-lib reads them, so no valid quantity fails."""
    if value.endswith("m") and value[:-1].isdecimal():
        return int(value[:-1])
    return int(helm_to_float(value) * 1000)


def _percent(value: str) -> float | None:
    return float(value[:-1]) if value.endswith("%") else None


def instancetype(out: Outcome, group: str, name: str) -> tuple[str | None, str | None]:
    """vCPUs and memory of an instancetype: the built-in table, else the cluster's object."""
    known = INSTANCETYPES.get(name)
    if known is not None:
        return str(known.cpu), known.memory
    found = out.require(
        f"instancetype-{name}",
        Requirement("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype", name),
    )
    if not out.ctx.required.resolved(f"instancetype-{name}"):
        return None, None
    if found is None:
        raise ComposeError(
            f"spec.nodeGroups.{group}.instanceType", f"instancetype {name!r} does not exist"
        )
    guest = found.get("spec", {})
    cpu = guest.get("cpu", {}).get("guest")
    memory = guest.get("memory", {}).get("guest")
    return (str(int(cpu)) if cpu is not None else None), (
        str(memory) if memory is not None else None
    )


def size(out: Outcome, name: str, group: NodeGroup) -> Sizing:
    """Validate a group and work out its reservations and autoscaler capacity (§7.1.1)."""
    at = f"spec.nodeGroups.{name}"
    sized = group.resources.cpu is not None and group.resources.memory is not None
    cpu, memory = (group.resources.cpu, group.resources.memory) if sized else (None, None)
    if not sized and group.instance_type:
        cpu, memory = instancetype(out, name, group.instance_type)
    _check_pod_cpu(at, group)

    kubelet = group.kubelet
    reserved_mi, reserved_millis = 256, 50
    if memory:
        reserved_mi = min(max(int(int(helm_to_float(memory) / MIB) * 0.05), 256), 1024)
    if cpu:
        reserved_millis = min(max(int(millicores(cpu) * 0.05), 50), 500)
    sys_mem = kubelet.system_reserved_memory or f"{reserved_mi}Mi"
    kube_mem = kubelet.kube_reserved_memory or f"{reserved_mi}Mi"
    sys_cpu = kubelet.system_reserved_cpu or f"{reserved_millis}m"
    kube_cpu = kubelet.kube_reserved_cpu or f"{reserved_millis}m"
    for field, value in (
        ("systemReservedMemory", kubelet.system_reserved_memory),
        ("kubeReservedMemory", kubelet.kube_reserved_memory),
    ):
        if value is not None and helm_to_float(value) <= 0:
            raise ComposeError(f"{at}.kubelet.{field}", f"must be positive, not {value}")
    for field, value in (
        ("systemReservedCpu", kubelet.system_reserved_cpu),
        ("kubeReservedCpu", kubelet.kube_reserved_cpu),
    ):
        if value is not None and millicores(value) <= 0:
            raise ComposeError(f"{at}.kubelet.{field}", f"must be positive, not {value}")
    hard, soft = kubelet.eviction_hard_memory, kubelet.eviction_soft_memory
    _check_eviction(at, hard, soft)

    allocatable_mi = allocatable_millis = None
    if memory:
        total = memory_bytes = helm_to_float(memory)
        hard_pct = _percent(hard)
        hard_bytes = total * hard_pct / 100 if hard_pct is not None else helm_to_float(hard)
        reserved = helm_to_float(sys_mem) + helm_to_float(kube_mem) + hard_bytes
        if reserved >= memory_bytes:
            raise ComposeError(
                f"{at}.kubelet",
                f"reserved memory (systemReservedMemory={sys_mem} + kubeReservedMemory={kube_mem} "
                f"+ evictionHardMemory={hard}) must be less than the node's memory ({memory})",
            )
        allocatable_mi = math.floor((memory_bytes - reserved) / MIB)
    elif any((kubelet.system_reserved_memory, kubelet.kube_reserved_memory)):
        raise ComposeError(
            f"{at}.kubelet", "memory reservations need resources.memory or an instanceType"
        )
    if cpu:
        reserved_cpu = millicores(sys_cpu) + millicores(kube_cpu)
        if reserved_cpu >= millicores(cpu):
            raise ComposeError(
                f"{at}.kubelet",
                f"reserved CPU (systemReservedCpu={sys_cpu} + kubeReservedCpu={kube_cpu}) "
                f"must be less than the node's CPU ({cpu} cores)",
            )
        allocatable_millis = millicores(cpu) - reserved_cpu
    elif any((kubelet.system_reserved_cpu, kubelet.kube_reserved_cpu)):
        raise ComposeError(
            f"{at}.kubelet", "CPU reservations need resources.cpu or an instanceType"
        )
    return Sizing(
        memory,
        cpu,
        sys_mem,
        kube_mem,
        sys_cpu,
        kube_cpu,
        hard,
        soft,
        allocatable_mi,
        allocatable_millis,
    )


def _check_pod_cpu(at: str, group: NodeGroup) -> None:
    limit, request = group.pod_cpu_limit, group.pod_cpu_request
    if limit is not None and request is None and helm_to_float(limit) == 0:
        raise ComposeError(f"{at}.podCpuLimit", "0 needs podCpuRequest 0 beside it")
    if limit is not None and request is not None:
        if helm_to_float(request) == 0 and helm_to_float(limit) != 0:
            raise ComposeError(
                f"{at}.podCpuRequest", f"0 beside podCpuLimit {limit} would request the whole limit"
            )
        if helm_to_float(request) > helm_to_float(limit):
            raise ComposeError(f"{at}.podCpuRequest", f"{request} exceeds podCpuLimit {limit}")


def _check_eviction(at: str, hard: str, soft: str) -> None:
    hard_pct, soft_pct = _percent(hard), _percent(soft)
    if (hard_pct is None) != (soft_pct is None):
        raise ComposeError(
            f"{at}.kubelet",
            f"evictionHardMemory ({hard}) and evictionSoftMemory ({soft}) must both be percentages "
            "or both quantities",
        )
    if hard_pct is not None and soft_pct is not None:
        for field, pct in (("evictionHardMemory", hard_pct), ("evictionSoftMemory", soft_pct)):
            if not 0 < pct <= 100:
                raise ComposeError(
                    f"{at}.kubelet.{field}", "a percentage must be above 0 and at most 100"
                )
        lower = hard_pct < soft_pct
    else:
        lower = helm_to_float(hard) < helm_to_float(soft)
    if not lower:
        raise ComposeError(
            f"{at}.kubelet.evictionHardMemory",
            f"must be below evictionSoftMemory ({hard} >= {soft})",
        )


@dataclass(frozen=True)
class Cluster:
    """Facts of the cluster every group's objects need."""

    release: str
    namespace: str
    name: str
    version: str
    bootstrap: str
    cluster_domain: str


def machine_template(
    c: Cluster, spec: KubernetesSpec, name: str, group: NodeGroup, ratios: presets.AllocationRatios
) -> Object:
    """The content of a group's KubevirtMachineTemplate (spec.template); it names the template."""
    roles = {f"node-role.kubernetes.io/{r}": "" for r in group.roles}
    sized = group.resources.cpu is not None and group.resources.memory is not None
    storage_class = group.storage_class or spec.storage_class
    if c.bootstrap == "talos":
        factory = spec.talos.image_factory_url.rstrip("/")
        source: Object = {
            "http": {
                "url": f"{factory}/image/{spec.talos.schematic_id}/{spec.talos.version}/"
                "openstack-amd64.raw.xz"
            }
        }
    else:
        image = spec.kubeadm.disk_image or f"quay.io/capk/ubuntu-2404-container-disk:{c.version}"
        source = {"registry": {"url": f"docker://{image}"}}
    storage: Object = {"resources": {"requests": {"storage": group.disk_size}}}
    if storage_class:
        storage["storageClassName"] = storage_class
    devices: Object = {}
    if group.gpus:
        devices["gpus"] = [
            {"name": f"gpu{i + 1}", "deviceName": g.name} for i, g in enumerate(group.gpus)
        ]
    devices["disks"] = [
        {
            "name": "system",
            "disk": {"bus": "virtio", "pciAddress": "0000:07:00.0"},
            "blockSize": {"custom": {"logical": 512, "physical": 4096}},
        }
    ]
    devices["interfaces"] = [{"name": "default", "bridge": {}}]
    if group.log_serial_console:
        devices["logSerialConsole"] = True
    pod = presets.sanitize({"ephemeral-storage": "2Gi"}, ratios)
    if group.pod_cpu_limit is not None:
        pod["limits"]["cpu"] = group.pod_cpu_limit
    if group.pod_cpu_request is not None:
        pod["requests"]["cpu"] = group.pod_cpu_request
    domain: Object = {}
    if group.resources.cpu is not None:
        domain["cpu"] = {"threads": 1, "cores": _cores(group.resources.cpu), "sockets": 1}
    domain["devices"] = devices
    if group.resources.memory is not None:
        domain["memory"] = {"guest": group.resources.memory}
    domain["resources"] = pod
    vm: Object = {}
    if group.instance_type and not sized:
        vm["instancetype"] = {
            "kind": "VirtualMachineClusterInstancetype",
            "name": group.instance_type,
        }
    vm |= {
        "runStrategy": "Always",
        "dataVolumeTemplates": [
            {
                "metadata": {
                    "name": "disk-system",
                    "annotations": {"cdi.kubevirt.io/storage.usePopulator": "false"},
                },
                "spec": {"source": source, "storage": storage},
            }
        ],
        "template": {
            "metadata": {
                "annotations": {"kubevirt.io/allow-pod-bridge-network-live-migration": "true"},
                "labels": {
                    "apps.cozystack.io/application.group": "apps.cozystack.io",
                    "apps.cozystack.io/application.kind": "Kubernetes",
                    "apps.cozystack.io/application.name": c.name,
                    **roles,
                    "cluster.x-k8s.io/deployment-name": f"{c.release}-{name}",
                },
            },
            "spec": {
                "domain": domain,
                "evictionStrategy": "External",
                "volumes": [{"name": "system", "dataVolume": {"name": "disk-system"}}],
                "networks": [{"name": "default", "pod": {}}],
            },
        },
    }
    return {
        "spec": {
            "virtualMachineBootstrapCheck": {"checkStrategy": "none"},
            "virtualMachineTemplate": {
                "metadata": {"namespace": c.namespace, "labels": roles},
                "spec": vm,
            },
        }
    }


def _cores(cpu: str) -> int:
    """KubeVirt cores are whole: `2` -> 2, `2000m` -> 2."""
    millis = millicores(cpu)
    if millis % 1000:
        raise ComposeError(
            "spec.nodeGroups", f"resources.cpu {cpu} must be a whole number of cores"
        )
    return millis // 1000


def content_hash(template: Object) -> str:
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:6]


def compose_group(
    out: Outcome,
    c: Cluster,
    spec: KubernetesSpec,
    name: str,
    group: NodeGroup,
    sizing: Sizing,
    bootstrap: Object | None,
) -> str:
    """A group's machine template, deployment, health check and bootstrap template.

    Returns the machine template's name.
    """
    deployment = f"{c.release}-{name}"
    template = machine_template(c, spec, name, group, out.ctx.config.ratios)
    digest = content_hash(template)
    template_name = f"{deployment}-{digest}"
    out.add(
        f"{TEMPLATE_KEY}{name}-{digest}",
        {
            "apiVersion": CAPK,
            "kind": "KubevirtMachineTemplate",
            "metadata": meta(template_name, c.namespace),
        }
        | {"spec": {"template": template}},
    )
    annotations = {
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": str(group.min_replicas),
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": str(group.max_replicas),
        "cluster.x-k8s.io/autoscaling-options-maxnodeprovisiontime": spec.max_node_provision_time,
    }
    if sizing.allocatable_mi is not None:
        annotations["capacity.cluster-autoscaler.kubernetes.io/memory"] = (
            f"{sizing.allocatable_mi}Mi"
        )
    if sizing.allocatable_cpu_millis is not None:
        annotations["capacity.cluster-autoscaler.kubernetes.io/cpu"] = (
            f"{sizing.allocatable_cpu_millis}m"
        )
    selector = {
        "cluster.x-k8s.io/cluster-name": c.release,
        "cluster.x-k8s.io/deployment-name": deployment,
    }
    talos = c.bootstrap == "talos"
    out.add(
        f"machinedeployment-{name}",
        {
            "apiVersion": CAPI,
            "kind": "MachineDeployment",
            "metadata": meta(deployment, c.namespace) | {"annotations": annotations},
            # No replicas: the autoscaler owns them; CAPI seeds them from the min-size annotation.
            "spec": {
                "clusterName": c.release,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": group.max_replicas, "maxUnavailable": 1},
                },
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": selector
                        | {f"node-role.kubernetes.io/{r}": "" for r in group.roles}
                    },
                    "spec": {
                        "bootstrap": {
                            "configRef": {
                                "apiVersion": TALOS_BOOTSTRAP if talos else KUBEADM_BOOTSTRAP,
                                "kind": CONFIG_TEMPLATES[c.bootstrap],
                                "name": deployment,
                                "namespace": c.namespace,
                            }
                        },
                        "clusterName": c.release,
                        "infrastructureRef": {
                            "apiVersion": CAPK,
                            "kind": "KubevirtMachineTemplate",
                            "name": template_name,
                            "namespace": c.namespace,
                        },
                        "version": c.version,
                    },
                },
            },
        },
    )
    health = spec.node_health_check
    max_unhealthy = group.max_unhealthy or health.max_unhealthy
    out.add(
        f"healthcheck-{name}",
        {
            "apiVersion": CAPI,
            "kind": "MachineHealthCheck",
            "metadata": meta(deployment, c.namespace),
            "spec": {
                "clusterName": c.release,
                "maxUnhealthy": max_unhealthy
                if max_unhealthy.endswith("%")
                else int(max_unhealthy),
                "nodeStartupTimeout": group.node_startup_timeout or health.node_startup_timeout,
                "selector": {"matchLabels": selector},
                "unhealthyConditions": [
                    {"type": "Ready", "status": "Unknown", "timeout": health.ready_unknown_timeout},
                    {"type": "Ready", "status": "False", "timeout": health.ready_false_timeout},
                ],
            },
        },
    )
    if talos and bootstrap is not None:
        out.add(
            f"bootstrap-{name}",
            {
                "apiVersion": TALOS_BOOTSTRAP,
                "kind": "TalosConfigTemplate",
                "metadata": meta(deployment, c.namespace),
                "spec": {"template": {"spec": talos_config(spec, group, sizing, bootstrap)}},
            },
        )
    elif not talos:
        out.add(
            f"bootstrap-{name}",
            {
                "apiVersion": KUBEADM_BOOTSTRAP,
                "kind": "KubeadmConfigTemplate",
                "metadata": meta(deployment, c.namespace),
                "spec": {"template": {"spec": kubeadm_config(group, sizing)}},
            },
        )
    return template_name


def talos_config(spec: KubernetesSpec, group: NodeGroup, sizing: Sizing, inputs: Object) -> Object:
    """A worker machine configuration, as cozystack's talos-reconcile Job writes it."""
    machine: Object = {
        "type": "worker",
        "token": inputs["token"],
        "network": {
            "nameservers": [inputs["dns_ip"]],
            "searchDomains": inputs["search_domains"],
            "extraHostEntries": [{"ip": inputs["service_ip"], "aliases": inputs["service_names"]}],
        },
        "ca": {"crt": inputs["talos_ca"]},
    }
    if group.gpus:
        machine["nodeLabels"] = {"gpu": "on"}
    machine["kubelet"] = {
        "image": f"ghcr.io/siderolabs/kubelet:{inputs['version']}",
        "extraConfig": {
            "systemReserved": {
                "cpu": sizing.system_reserved_cpu,
                "memory": sizing.system_reserved_memory,
            },
            "kubeReserved": {
                "cpu": sizing.kube_reserved_cpu,
                "memory": sizing.kube_reserved_memory,
            },
            "evictionHard": {
                "memory.available": sizing.eviction_hard_memory,
                "nodefs.available": "10%",
                "imagefs.available": "15%",
                "nodefs.inodesFree": "5%",
            },
            "evictionSoft": {
                "memory.available": sizing.eviction_soft_memory,
                "nodefs.available": "15%",
                "imagefs.available": "20%",
            },
            "evictionSoftGracePeriod": {
                "memory.available": "1m30s",
                "nodefs.available": "1m30s",
                "imagefs.available": "1m30s",
            },
            "evictionMinimumReclaim": {"memory.available": "256Mi"},
        },
    }
    installer = spec.talos.installer_repository.rstrip("/")
    machine["install"] = {
        "disk": "/dev/vda",
        "image": f"{installer}/{spec.talos.schematic_id}:{spec.talos.version}",
        "wipe": False,
    }
    machine["features"] = {"rbac": True, "kubePrism": {"enabled": False}}
    if spec.talos.registry_mirrors:
        machine["registries"] = {"mirrors": spec.talos.registry_mirrors}
    cluster = {
        "id": inputs["cluster_id"],
        "secret": inputs["cluster_secret"],
        "controlPlane": {"endpoint": inputs["endpoint"]},
        "clusterName": inputs["cluster_name"],
        "network": {
            "dnsDomain": TENANT_DNS_DOMAIN,
            "podSubnets": [POD_CIDR],
            "serviceSubnets": [SERVICE_CIDR],
        },
        "token": inputs["bootstrap_token"],
        "ca": {"crt": inputs["kubernetes_ca"]},
        "discovery": {
            "enabled": True,
            "registries": {"kubernetes": {"disabled": True}, "service": {"disabled": True}},
        },
    }
    document = {"version": "v1alpha1", "persist": True, "machine": machine, "cluster": cluster}
    return {
        "generateType": "none",
        "talosVersion": spec.talos.version,
        "data": to_yaml(document, sort_keys=False, width=1000),
    }


def kubeadm_config(group: NodeGroup, sizing: Sizing) -> Object:
    """A kubeadm join configuration carrying the same kubelet reservations as the Talos one."""
    labels = [f"node-role.kubernetes.io/{r}=" for r in group.roles]
    if group.gpus:
        labels.append("gpu=on")
    args: dict[str, Any] = {
        "system-reserved": f"cpu={sizing.system_reserved_cpu},"
        f"memory={sizing.system_reserved_memory}",
        "kube-reserved": f"cpu={sizing.kube_reserved_cpu},memory={sizing.kube_reserved_memory}",
        "eviction-hard": f"memory.available<{sizing.eviction_hard_memory},nodefs.available<10%,"
        "imagefs.available<15%,nodefs.inodesFree<5%",
        "eviction-soft": f"memory.available<{sizing.eviction_soft_memory},nodefs.available<15%,"
        "imagefs.available<20%",
        "eviction-soft-grace-period": "memory.available=1m30s,nodefs.available=1m30s,"
        "imagefs.available=1m30s",
        "eviction-minimum-reclaim": "memory.available=256Mi",
    }
    if labels:
        args["node-labels"] = ",".join(labels)
    return {"joinConfiguration": {"nodeRegistration": {"kubeletExtraArgs": args}}}


def keep_referenced_templates(out: Outcome, c: Cluster, machine_sets: list[Object]) -> None:
    """Re-compose earlier machine templates a MachineSet still uses, so rollouts can finish."""
    referenced = {
        ms.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("infrastructureRef", {})
        .get("name")
        for ms in machine_sets
    }
    for key in sorted(out.ctx.observed.keys()):
        if not key.startswith(TEMPLATE_KEY) or key in out.resources:
            continue
        old = out.ctx.observed.get(key) or {}
        name = old.get("metadata", {}).get("name")
        if name in referenced:
            out.add(
                key,
                {
                    "apiVersion": CAPK,
                    "kind": "KubevirtMachineTemplate",
                    "metadata": meta(name, c.namespace),
                }
                | {"spec": old.get("spec", {})},
            )
