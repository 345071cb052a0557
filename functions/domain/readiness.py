"""Readiness rules, one per composed kind: when Crossplane may count an object ready."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Object = Mapping[str, Any]
Rule = Callable[[Object], bool]


def exists(_: Object) -> bool:
    return True


def condition_true(kind: str) -> Rule:
    def rule(obj: Object) -> bool:
        conditions = obj.get("status", {}).get("conditions", [])
        return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)

    return rule


def service(obj: Object) -> bool:
    """A LoadBalancer is ready once it has an address; other Services once they exist."""
    if obj.get("spec", {}).get("type") != "LoadBalancer":
        return True
    return bool(obj.get("status", {}).get("loadBalancer", {}).get("ingress"))


def cnpg_database(obj: Object) -> bool:
    return obj.get("status", {}).get("applied") is True


def status_ready(obj: Object) -> bool:
    """Providers that report `status.ready: true` (Kamaji, CAPK)."""
    return obj.get("status", {}).get("ready") is True


def etcd_quorum(obj: Object) -> bool:
    """A majority of the members healthy, as Cozystack's etcd WorkloadMonitor counts it."""
    replicas = int(obj.get("spec", {}).get("replicas") or 1)
    return int(obj.get("status", {}).get("readyMembers") or 0) >= replicas // 2 + 1


MIN_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"


def machine_deployment(obj: Object) -> bool:
    """As Cozystack's worker WorkloadMonitor: at least the group's minimum of ready workers."""
    minimum = int(obj.get("metadata", {}).get("annotations", {}).get(MIN_SIZE, "0"))
    return int(obj.get("status", {}).get("readyReplicas") or 0) >= minimum


def pvc_bound(obj: Object) -> bool:
    return bool(obj.get("status", {}).get("phase") == "Bound")


def rabbitmq_cluster(obj: Object) -> bool:
    """Every node ready, as the cluster operator reports it for the current spec."""
    generation = obj.get("metadata", {}).get("generation")
    seen = obj.get("status", {}).get("observedGeneration")
    if generation is not None and seen is not None and seen < generation:
        return False
    return condition_true("AllReplicasReady")(obj)


def data_volume_succeeded(obj: Object) -> bool:
    """CDI has put the data in place (import, clone, upload or blank)."""
    return bool(obj.get("status", {}).get("phase") == "Succeeded")


def job_succeeded(obj: Object) -> bool:
    return condition_true("Complete")(obj)


def virtual_machine(obj: Object) -> bool:
    """Ready as its runStrategy wants it: Halted once Stopped, Manual Running or Stopped,
    the others (Always, RerunOnFailure, Once) once KubeVirt reports it Ready."""
    strategy = obj.get("spec", {}).get("runStrategy")
    stopped = bool(obj.get("status", {}).get("printableStatus") == "Stopped")
    if strategy == "Halted":
        return stopped
    running = condition_true("Ready")(obj)
    return running or stopped if strategy == "Manual" else running


def vm_operational(obj: Object) -> bool:
    """VictoriaMetrics operator objects: `updateStatus: operational` once rolled out."""
    return bool(obj.get("status", {}).get("updateStatus") == "operational")


@dataclass(frozen=True)
class ComposedKind:
    """A kind cozyplane composes: its REST plural, its scope and its readiness rule."""

    plural: str
    namespaced: bool
    ready: Rule


# (API group, kind) -> facts. Composing a kind missing here is a bug (KeyError), and
# the ClusterRole Crossplane needs is generated from exactly this table.
COMPOSED: dict[tuple[str, str], ComposedKind] = {
    ("", "Namespace"): ComposedKind("namespaces", False, exists),
    ("", "Secret"): ComposedKind("secrets", True, exists),
    ("", "ServiceAccount"): ComposedKind("serviceaccounts", True, exists),
    ("", "ResourceQuota"): ComposedKind("resourcequotas", True, exists),
    ("", "LimitRange"): ComposedKind("limitranges", True, exists),
    ("", "Service"): ComposedKind("services", True, service),
    ("rbac.authorization.k8s.io", "RoleBinding"): ComposedKind("rolebindings", True, exists),
    ("cilium.io", "CiliumNetworkPolicy"): ComposedKind("ciliumnetworkpolicies", True, exists),
    ("cilium.io", "CiliumClusterwideNetworkPolicy"): ComposedKind(
        "ciliumclusterwidenetworkpolicies", False, exists
    ),
    ("postgresql.cnpg.io", "Cluster"): ComposedKind("clusters", True, condition_true("Ready")),
    ("postgresql.cnpg.io", "Database"): ComposedKind("databases", True, cnpg_database),
    ("postgresql.cnpg.io", "ScheduledBackup"): ComposedKind("scheduledbackups", True, exists),
    ("barmancloud.cnpg.io", "ObjectStore"): ComposedKind("objectstores", True, exists),
    ("", "ConfigMap"): ComposedKind("configmaps", True, exists),
    ("apps", "Deployment"): ComposedKind("deployments", True, condition_true("Available")),
    ("networking.k8s.io", "Ingress"): ComposedKind("ingresses", True, exists),
    ("rbac.authorization.k8s.io", "Role"): ComposedKind("roles", True, exists),
    ("rbac.authorization.k8s.io", "ClusterRole"): ComposedKind("clusterroles", False, exists),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ComposedKind(
        "clusterrolebindings", False, exists
    ),
    ("cert-manager.io", "Issuer"): ComposedKind("issuers", True, condition_true("Ready")),
    ("cert-manager.io", "Certificate"): ComposedKind("certificates", True, condition_true("Ready")),
    ("cluster.x-k8s.io", "Cluster"): ComposedKind("clusters", True, condition_true("Ready")),
    ("cluster.x-k8s.io", "MachineDeployment"): ComposedKind(
        "machinedeployments", True, machine_deployment
    ),
    ("cluster.x-k8s.io", "MachineHealthCheck"): ComposedKind("machinehealthchecks", True, exists),
    ("controlplane.cluster.x-k8s.io", "KamajiControlPlane"): ComposedKind(
        "kamajicontrolplanes", True, status_ready
    ),
    ("infrastructure.cluster.x-k8s.io", "KubevirtCluster"): ComposedKind(
        "kubevirtclusters", True, status_ready
    ),
    ("infrastructure.cluster.x-k8s.io", "KubevirtMachineTemplate"): ComposedKind(
        "kubevirtmachinetemplates", True, exists
    ),
    ("bootstrap.cluster.x-k8s.io", "TalosConfigTemplate"): ComposedKind(
        "talosconfigtemplates", True, exists
    ),
    ("bootstrap.cluster.x-k8s.io", "KubeadmConfigTemplate"): ComposedKind(
        "kubeadmconfigtemplates", True, exists
    ),
    ("helm.toolkit.fluxcd.io", "HelmRelease"): ComposedKind(
        "helmreleases", True, condition_true("Ready")
    ),
    ("etcd-operator.cozystack.io", "EtcdCluster"): ComposedKind("etcdclusters", True, etcd_quorum),
    ("kamaji.clastix.io", "DataStore"): ComposedKind("datastores", False, status_ready),
    ("", "PersistentVolumeClaim"): ComposedKind("persistentvolumeclaims", True, pvc_bound),
    ("policy", "PodDisruptionBudget"): ComposedKind("poddisruptionbudgets", True, exists),
    ("operator.victoriametrics.com", "VMServiceScrape"): ComposedKind(
        "vmservicescrapes", True, exists
    ),
    ("k8s.mariadb.com", "MariaDB"): ComposedKind("mariadbs", True, condition_true("Ready")),
    ("k8s.mariadb.com", "User"): ComposedKind("users", True, condition_true("Ready")),
    ("k8s.mariadb.com", "Database"): ComposedKind("databases", True, condition_true("Ready")),
    ("k8s.mariadb.com", "Grant"): ComposedKind("grants", True, condition_true("Ready")),
    # A scheduled Backup's condition tells how its last run went, not whether it is set up.
    ("k8s.mariadb.com", "Backup"): ComposedKind("backups", True, exists),
    # RedisFailover has no status: services/redis.py judges the operator's workloads.
    ("databases.spotahome.com", "RedisFailover"): ComposedKind("redisfailovers", True, exists),
    ("rabbitmq.com", "RabbitmqCluster"): ComposedKind("rabbitmqclusters", True, rabbitmq_cluster),
    ("rabbitmq.com", "User"): ComposedKind("users", True, condition_true("Ready")),
    ("rabbitmq.com", "Vhost"): ComposedKind("vhosts", True, condition_true("Ready")),
    ("rabbitmq.com", "Permission"): ComposedKind("permissions", True, condition_true("Ready")),
    ("cdi.kubevirt.io", "DataVolume"): ComposedKind("datavolumes", True, data_volume_succeeded),
    ("batch", "Job"): ComposedKind("jobs", True, job_succeeded),
    ("kubevirt.io", "VirtualMachine"): ComposedKind("virtualmachines", True, virtual_machine),
    ("operator.victoriametrics.com", "VMCluster"): ComposedKind("vmclusters", True, vm_operational),
    ("operator.victoriametrics.com", "VLCluster"): ComposedKind("vlclusters", True, vm_operational),
    ("operator.victoriametrics.com", "VMAgent"): ComposedKind("vmagents", True, vm_operational),
    ("operator.victoriametrics.com", "VMPodScrape"): ComposedKind("vmpodscrapes", True, exists),
}


# Kinds the functions read as required resources: (group, kind) -> plural.
REQUIRED: dict[tuple[str, str], str] = {
    ("", "Namespace"): "namespaces",
    ("", "Service"): "services",
    ("", "Secret"): "secrets",
    ("storage.k8s.io", "StorageClass"): "storageclasses",
    ("cluster.x-k8s.io", "MachineSet"): "machinesets",
    (
        "instancetype.kubevirt.io",
        "VirtualMachineClusterInstancetype",
    ): "virtualmachineclusterinstancetypes",
    ("apps", "StatefulSet"): "statefulsets",
    ("apps", "Deployment"): "deployments",
    ("", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("cdi.kubevirt.io", "DataVolume"): "datavolumes",
    (
        "instancetype.kubevirt.io",
        "VirtualMachineClusterPreference",
    ): "virtualmachineclusterpreferences",
    ("kubevirt.io", "VirtualMachineInstance"): "virtualmachineinstances",
    ("kubeovn.io", "IP"): "ips",
}


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def rule_of(desired: Object) -> Rule:
    """The readiness rule of the desired object's kind."""
    return COMPOSED[(group_of(desired["apiVersion"]), desired["kind"])].ready
