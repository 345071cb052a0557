"""The Kubernetes claim (Cozystack `packages/apps/kubernetes`, reference §7.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

from functions.api.common import (
    DNS_LABEL,
    Keys,
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    cel,
    immutable,
    ranks,
    storage_class,
    transition,
    with_rules,
)

KubernetesVersion = Literal["v1.35", "v1.34", "v1.33", "v1.32", "v1.31"]
# Minor versions by claim version: Kamaji refuses to downgrade a control plane or to skip
# a minor version on the way up.
MINORS: dict[str, int] = {v: int(v.split(".")[1]) for v in get_args(KubernetesVersion)}
_MINOR = ranks(MINORS)
# Minor versions -> the patch release Cozystack deploys (files/versions.yaml).
PATCH_VERSIONS: dict[str, str] = {
    "v1.35": "v1.35.6",
    "v1.34": "v1.34.9",
    "v1.33": "v1.33.13",
    "v1.32": "v1.32.13",
    "v1.31": "v1.31.14",
}
# Talos minor -> the Kubernetes minors it supports (Sidero support matrix).
TALOS_SUPPORT: dict[str, tuple[str, ...]] = {
    "v1.13": ("v1.31", "v1.32", "v1.33", "v1.34", "v1.35", "v1.36"),
}
# A whole number of s, m or h, up to three parts (e.g. 30m, 1h30m).
POSITIVE_DURATION = r"^[1-9][0-9]{0,4}[smh]([0-9]{1,5}[smh]){0,2}$"
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
MAX_UNHEALTHY = r"^([0-9]+|[0-9]+%)$"
NON_NEGATIVE_QUANTITY = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?[0-9]+))?$"
)
MEMORY_QUANTITY = r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
CPU_QUANTITY = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
PERCENT_OR_MEMORY = (
    r"^([0-9]+(\.[0-9]+)?%|[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?)$"
)
RESERVED_VOLUMES = ("talos-ca", "talos-tls-cert")
MAX_NODE_GROUPS = 100
NODE_GROUP_KEYS = Keys(
    "nodeGroups", DNS_LABEL, "nodeGroups keys must be DNS labels of at most 40 characters", 40
)

NonNegativeQuantity = Annotated[str, Field(pattern=NON_NEGATIVE_QUANTITY)]
Values = dict[str, Any]


class Kubelet(Model):
    """Kubelet reservations and eviction thresholds; unset reservations are derived."""

    system_reserved_memory: str | None = Field(None, pattern=MEMORY_QUANTITY)
    """Memory reserved for the system; default 5% of node memory, within [256Mi, 1Gi]."""
    kube_reserved_memory: str | None = Field(None, pattern=MEMORY_QUANTITY)
    """Memory reserved for Kubernetes; default as systemReservedMemory."""
    system_reserved_cpu: str | None = Field(None, pattern=CPU_QUANTITY)
    """CPU reserved for the system; default 5% of node CPU, within [50m, 500m]."""
    kube_reserved_cpu: str | None = Field(None, pattern=CPU_QUANTITY)
    """CPU reserved for Kubernetes; default as systemReservedCpu."""
    eviction_hard_memory: str = Field("7%", pattern=PERCENT_OR_MEMORY)
    """Hard eviction threshold on available memory, a percentage or a quantity."""
    eviction_soft_memory: str = Field("10%", pattern=PERCENT_OR_MEMORY)
    """Soft eviction threshold; above the hard one, in the same kind of unit."""


class Gpu(Model):
    name: str = Field(min_length=1, max_length=253)
    """Device name exposed by the device plugin, e.g. nvidia.com/AD102GL_L40S."""


class NodeGroup(Model):
    """A group of worker VMs scaled by the cluster autoscaler."""

    model_config = with_rules(
        cel(
            "has(self.resources.cpu) == has(self.resources.memory)",
            "resources: set both cpu and memory, or neither",
        ),
        cel(
            "!(has(self.podCpuLimit) || has(self.podCpuRequest)) || "
            "(has(self.resources.cpu) && has(self.resources.memory)) || self.instanceType == ''",
            "podCpuLimit and podCpuRequest need a group sized by resources.cpu and "
            "resources.memory: KubeVirt refuses them beside an instancetype",
        ),
        cel("self.maxReplicas >= self.minReplicas", "maxReplicas must be at least minReplicas"),
    )

    min_replicas: int = Field(0, ge=0, le=1000)
    """Fewest workers the autoscaler keeps."""
    max_replicas: int = Field(10, ge=0, le=1000)
    """Most workers the autoscaler may add; also the rollout surge."""
    instance_type: str = Field("u1.medium", max_length=253)
    """VirtualMachineClusterInstancetype sizing each worker, unless resources are set."""
    disk_size: Quantity = "20Gi"
    """System disk of each worker."""
    storage_class: str = Field("", max_length=253)
    """StorageClass of the worker disks; empty uses the cluster's storageClass."""
    roles: list[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]] = Field(
        default_factory=list, max_length=16
    )
    """Node roles: each labels the workers node-role.kubernetes.io/<role>."""
    resources: Resources = Resources()
    """Explicit vCPUs and memory per worker; both set replaces the instancetype."""
    pod_cpu_limit: NonNegativeQuantity | None = None
    """CPU limit of the worker's virt-launcher pod (resources sizing only)."""
    pod_cpu_request: NonNegativeQuantity | None = None
    """CPU request of the worker's virt-launcher pod (resources sizing only)."""
    gpus: list[Gpu] = Field(default_factory=list, max_length=16)
    """GPUs passed through to each worker."""
    kubelet: Kubelet = Kubelet()
    log_serial_console: bool = False
    """Log the VM serial console (virt-launcher guest-console-log container)."""
    max_unhealthy: str | None = Field(None, pattern=MAX_UNHEALTHY)
    """Overrides nodeHealthCheck.maxUnhealthy for this group."""
    node_startup_timeout: str | None = Field(None, pattern=GO_DURATION)
    """Overrides nodeHealthCheck.nodeStartupTimeout for this group."""


class Addon(Model):
    enabled: bool = False
    values_override: Values = Field(default_factory=dict)
    """Helm values merged over cozyplane's defaults for the chart (yours win)."""


class ValuesOnly(Model):
    values_override: Values = Field(default_factory=dict)
    """Helm values merged over cozyplane's defaults for the chart (yours win)."""


class GatewayAPI(Model):
    enabled: bool = False
    """Install the Gateway API CRDs and enable Cilium's Gateway API support."""


class IngressNginx(Addon):
    expose_method: Literal["Proxied", "LoadBalancer"] = "Proxied"
    """Proxied: node ports reached through the tenant's ingress; LoadBalancer: a Service."""
    hosts: list[Annotated[str, Field(pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]] = Field(
        default_factory=list, max_length=64
    )
    """Host names routed from the tenant's ingress into this cluster (Proxied)."""


class Addons(Model):
    """Components installed into the cluster with Flux."""

    model_config = with_rules(
        cel("!self.hami.enabled || self.gpuOperator.enabled", "hami needs gpuOperator enabled"),
        cel(
            "!self.ouroboros.enabled || self.ingressNginx.enabled",
            "ouroboros needs ingressNginx enabled (it fixes hairpin traffic to it)",
        ),
    )

    cert_manager: Addon = Addon()
    cilium: ValuesOnly = ValuesOnly()
    gateway_api: GatewayAPI = Field(GatewayAPI(), alias="gatewayAPI")
    ingress_nginx: IngressNginx = IngressNginx()
    gpu_operator: Addon = Addon()
    hami: Addon = Addon()
    monitoring_agents: Addon = Addon()
    vertical_pod_autoscaler: ValuesOnly = ValuesOnly()
    velero: Addon = Addon()
    coredns: ValuesOnly = ValuesOnly()
    ouroboros: Addon = Addon()


class Component(Model):
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.micro"


class ExtraVolume(Model):
    """A Secret or ConfigMap volume for the API server pods."""

    model_config = with_rules(
        cel("has(self.configMap) != has(self.secret)", "set exactly one of configMap or secret"),
    )

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    config_map: Values | None = None
    """A ConfigMap volume source (name, items, defaultMode, optional)."""
    secret: Values | None = None
    """A Secret volume source (secretName, items, defaultMode, optional)."""


class VolumeMount(Model):
    name: str = Field(pattern=DNS_LABEL, max_length=63)
    mount_path: str = Field(min_length=1, max_length=1024)
    read_only: bool | None = None
    sub_path: str | None = None


class ApiServer(Component):
    model_config = with_rules(
        cel(
            "self.extraVolumes.all(v, !(v.name in ["
            + ", ".join(f"'{n}'" for n in RESERVED_VOLUMES)
            + "]))",
            "extraVolumes: talos-ca and talos-tls-cert are reserved volume names",
        ),
        cel(
            "self.extraVolumes.all(v, self.extraVolumes.exists_one(w, w.name == v.name))",
            "extraVolumes: volume names must be unique",
        ),
        cel(
            "self.extraVolumeMounts.all(m, self.extraVolumes.exists(v, v.name == m.name))",
            "extraVolumeMounts: each mount must name a volume of extraVolumes",
        ),
    )

    resources_preset: ResourcesPreset = "c1.medium"
    extra_args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64
    )
    """Extra kube-apiserver flags, e.g. --audit-log-maxage=7."""
    extra_volumes: list[ExtraVolume] = Field(default_factory=list, max_length=16)
    extra_volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=16)


class Konnectivity(Model):
    server: Component = Component()


class ControlPlane(Model):
    """The Kamaji control plane: pods in the management cluster."""

    replicas: int = Field(2, ge=1, le=9)
    api_server: ApiServer = ApiServer()
    controller_manager: Component = Component()
    scheduler: Component = Component()
    konnectivity: Konnectivity = Konnectivity()


class Images(Model):
    """Image overrides; empty uses the pinned defaults."""

    wait_for_kubeconfig: str = Field("", max_length=512)
    talos_csr_signer: str = Field("", max_length=512)


class Talos(Model):
    """Talos Linux of the workers."""

    version: str = Field("v1.13.6", pattern=r"^v[0-9]+\.[0-9]+\.[0-9]+$")
    schematic_id: str = Field(
        "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515",
        alias="schematicID",
        pattern=r"^[0-9a-f]{64}$",
    )
    image_factory_url: str = Field(
        "https://factory.talos.dev", alias="imageFactoryURL", max_length=512
    )
    installer_repository: str = Field("factory.talos.dev/installer", max_length=512)
    registry_mirrors: Values = Field(default_factory=dict)
    """Talos machine.registries.mirrors, passed through."""


class Kubeadm(Model):
    """Workers booted from a kubeadm-ready disk image (bootstrap: kubeadm)."""

    disk_image: str = Field("", max_length=512)
    """Container-disk image of the workers; empty uses
    quay.io/capk/ubuntu-2404-container-disk:<Kubernetes patch version>."""


class NodeHealthCheck(Model):
    """When Cluster API replaces unhealthy workers."""

    max_unhealthy: str = Field("50%", pattern=MAX_UNHEALTHY)
    node_startup_timeout: str = Field("20m", pattern=GO_DURATION)
    ready_unknown_timeout: str = Field("5m", pattern=POSITIVE_DURATION)
    ready_false_timeout: str = Field("10m", pattern=POSITIVE_DURATION)


class SecretRef(Model):
    name: str = Field("", max_length=253)


class OidcCustomConfig(Model):
    config: str = Field("", max_length=65536)
    """An inline AuthenticationConfiguration (YAML)."""
    secret_ref: SecretRef = SecretRef()
    """An existing Secret with the AuthenticationConfiguration under config.yaml."""


class OidcUser(Model):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    role: Literal["admin", "view"]


class Oidc(Model):
    """Sign-in to the cluster's API with OpenID Connect."""

    model_config = with_rules(
        cel(
            "self.mode != 'CustomConfig' || "
            "((self.customConfig.config != '') != (self.customConfig.secretRef.name != ''))",
            "oidc.mode CustomConfig needs exactly one of customConfig.config or "
            "customConfig.secretRef.name",
        ),
    )

    mode: Literal["None", "System", "CustomConfig"] = "None"
    custom_config: OidcCustomConfig = OidcCustomConfig()
    users: list[OidcUser] = Field(default_factory=list, max_length=256)
    """Users bound in the cluster: admin to cluster-admin, view to view."""


def _talos_rule() -> str:
    clauses = []
    for talos, k8s in TALOS_SUPPORT.items():
        supported = ", ".join(repr(v) for v in k8s)
        clauses.append(
            f"(self.talos.version.startsWith('{talos}.') && !(self.version in [{supported}]))"
        )
    return "self.bootstrap != 'talos' || !(" + " || ".join(clauses) + ")"


class KubernetesSpec(Model):
    """A Kubernetes cluster: a Kamaji control plane and KubeVirt workers managed by Cluster API."""

    model_config = with_rules(
        cel(_talos_rule(), "talos.version does not support this Kubernetes version"),
        cel(
            "self.oidc.mode == 'None' || "
            "self.controlPlane.apiServer.extraArgs.all(a, !a.startsWith('--oidc-') && "
            "!a.startsWith('--authentication-config'))",
            "controlPlane.apiServer.extraArgs: --oidc-* and --authentication-config conflict "
            "with oidc.mode",
        ),
        cel(
            "self.oidc.mode == 'None' || "
            "self.controlPlane.apiServer.extraVolumes.all(v, v.name != 'authentication-config')",
            "controlPlane.apiServer.extraVolumes: authentication-config is reserved when oidc "
            "is on",
        ),
        NODE_GROUP_KEYS.rule(),
    )

    storage_class: str = storage_class("replicated")
    """Default StorageClass of worker disks and of the cluster's own volumes. Immutable."""
    node_groups: dict[Annotated[str, AfterValidator(NODE_GROUP_KEYS)], NodeGroup] = Field(
        default_factory=dict, max_length=MAX_NODE_GROUPS
    )
    """Worker groups; none given means one group md0 (0-10 u1.medium workers, role
    ingress-nginx)."""
    version: KubernetesVersion = Field(
        "v1.35",
        json_schema_extra=transition(
            cel(
                f"!(oldSelf in {_MINOR}) || {_MINOR}[self] >= {_MINOR}[oldSelf]",
                "version cannot go down: Kamaji refuses to downgrade a control plane",
            ),
            cel(
                f"!(oldSelf in {_MINOR}) || {_MINOR}[self] <= {_MINOR}[oldSelf] + 1",
                "version goes up one minor version at a time: Kamaji refuses to skip one",
            ),
        ),
    )
    """Kubernetes minor version. It is upgraded one minor version at a time, never
    downgraded."""
    host: str = Field("", max_length=253)
    """External API host name; empty means kubernetes-<name>.<tenant host>."""
    addons: Addons = Addons()
    control_plane: ControlPlane = ControlPlane()
    images: Images = Images()
    bootstrap: Literal["talos", "kubeadm"] = Field(
        "talos",
        json_schema_extra=immutable(
            "bootstrap is immutable: the workers' operating system is fixed when the cluster "
            "is created"
        ),
    )
    """How workers boot: Talos Linux (default, as Cozystack) or a kubeadm image. Immutable."""
    talos: Talos = Talos()
    kubeadm: Kubeadm = Kubeadm()
    node_health_check: NodeHealthCheck = NodeHealthCheck()
    max_node_provision_time: str = Field("30m", pattern=POSITIVE_DURATION)
    """How long the autoscaler waits for a new worker."""
    oidc: Oidc = Oidc()


class NodeGroupStatus(Model):
    replicas: int = 0
    ready_replicas: int = 0
    machine_template: str = ""
    """The KubevirtMachineTemplate new workers are made from."""


class KubeconfigStatus(Model):
    secret: str = ""
    """Secret Kamaji writes the cluster's kubeconfigs to."""
    keys: list[str] = Field(default_factory=list)
    """admin.conf and super-admin.conf reach the external host; *.svc the in-cluster Service."""


class KubernetesStatus(Model):
    version: str = ""
    """Kubernetes version of the control plane."""
    host: str = ""
    endpoint: str = ""
    """External API endpoint."""
    internal_endpoint: str = ""
    """API endpoint inside the management cluster."""
    data_store: str = ""
    """Kamaji DataStore (the etcd-running tenant's namespace)."""
    ready_control_plane_replicas: int = 0
    kubeconfig: KubeconfigStatus = KubeconfigStatus()
    node_groups: dict[str, NodeGroupStatus] = Field(default_factory=dict)
    addons: dict[str, bool] = Field(default_factory=dict)
    """Whether each addon's HelmRelease is Ready."""
