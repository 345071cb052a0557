"""Kubernetes: a Kamaji control plane with KubeVirt workers under Cluster API (reference §7)."""

from __future__ import annotations

from functions.api.kubernetes import (
    MINORS,
    PATCH_VERSIONS,
    KubeconfigStatus,
    KubernetesSpec,
    KubernetesStatus,
    NodeGroupStatus,
)
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement
from functions.services.kubernetes import addons, controlplane, workers
from functions.services.kubernetes.workers import Cluster

LABEL = "namespace.cozystack.io/"
NAMESPACE = "namespace"


def compose(spec: KubernetesSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XKubernetes is created through a Kubernetes claim")
    release = f"kubernetes-{name}"
    for group in workers.groups(spec):
        if len(release) + 1 + len(group) > 63:
            raise ComposeError(
                f"spec.nodeGroups.{group}", f"{release}-{group} is longer than 63 characters"
            )

    tenant = out.require(NAMESPACE, Requirement("v1", "Namespace", ns))
    if not ctx.required.resolved(NAMESPACE):
        return out
    if tenant is None:
        raise ComposeError("metadata.namespace", f"namespace {ns!r} does not exist")
    labels: dict[str, str] = tenant.get("metadata", {}).get("labels") or {}
    c = Cluster(
        release, ns, name, PATCH_VERSIONS[spec.version], spec.bootstrap, ctx.config.cluster_domain
    )
    host = spec.host or f"{release}.{labels.get(LABEL + 'host', '')}".rstrip(".")
    observed_cp = ctx.observed.get("control-plane")
    _guard_version(spec, observed_cp)
    _guard_storage_class(spec, ctx.observed.get("addon-csi"))
    _guard_bootstrap(spec, ctx)
    data_store = labels.get(LABEL + "etcd", "")
    if not data_store and observed_cp is not None:
        # Never drop a running cluster because an ancestor stopped offering etcd.
        data_store = str(observed_cp.get("spec", {}).get("dataStoreName", ""))
        out.warn(f"no tenant above {ns} runs etcd any more; keeping DataStore {data_store!r}")
    status = KubernetesStatus(
        host=host,
        endpoint=f"https://{host}",
        internal_endpoint=f"https://{release}.{ns}.svc:6443",
        data_store=data_store,
    )
    if not data_store:
        if ctx.observed.keys():
            # Waiting with nothing composed would make Crossplane delete the cluster.
            raise ComposeError(
                "metadata.namespace",
                f"no tenant above {ns} runs etcd any more and the DataStore of the existing "
                "cluster is unknown; set etcd: true on an ancestor Tenant again",
            )
        out.wait(
            f"no etcd: no tenant above {ns} runs one; set etcd: true on an ancestor Tenant "
            "(usually the root) and this cluster is created"
        )
        out.ready = False
        out.status = status.model_dump(by_alias=True)
        return out

    sizes = {g: workers.size(out, g, group) for g, group in workers.groups(spec).items()}
    service = out.require("control-plane-service", Requirement("v1", "Service", release, ns))
    kamaji_ca = out.require("kamaji-ca", Requirement("v1", "Secret", f"{release}-ca", ns))
    classes = out.require_all("storage-classes", Requirement("storage.k8s.io/v1", "StorageClass"))
    machine_sets = out.require_all(
        "machine-sets",
        Requirement(
            "cluster.x-k8s.io/v1beta1",
            "MachineSet",
            namespace=ns,
            labels=(("cluster.x-k8s.io/cluster-name", release),),
        ),
    )
    service_ip = str((service or {}).get("spec", {}).get("clusterIP") or "") or None
    ca_crt = str(((kamaji_ca or {}).get("data") or {}).get("ca.crt") or "") or None

    oidc_secret = controlplane.oidc(out, c, spec, host, ca_crt)
    cp = controlplane.control_plane(
        out,
        c,
        spec,
        data_store=data_store,
        ingress_class=labels.get(LABEL + "ingress", ""),
        host=host,
        service_ip=service_ip,
        oidc_secret=oidc_secret,
    )
    controlplane.infrastructure(out, c)
    controlplane.workloads(out, c, spec)
    controlplane.ingress_exposure(out, c, spec, labels.get(LABEL + "ingress", ""))

    bootstrap: Object | None = None
    token: dict[str, str] | None = None
    if spec.bootstrap == "talos":
        token = controlplane.talos_secrets(out, c)
        controlplane.talos_pki(out, c)
        bootstrap = _talos_inputs(out, c, token, service_ip, ca_crt)
    templates = {
        g: workers.compose_group(out, c, spec, g, group, sizes[g], bootstrap)
        for g, group in workers.groups(spec).items()
    }
    workers.keep_referenced_templates(out, c, machine_sets)
    addons.compose_addons(
        out,
        spec,
        c,
        monitoring=labels.get(LABEL + "monitoring", ""),
        classes=classes,
        bootstrap_token=token,
    )

    cp_status = (cp or {}).get("status", {})
    node_groups = {}
    for g, template in templates.items():
        md = (ctx.observed.get(f"machinedeployment-{g}") or {}).get("status", {})
        node_groups[g] = NodeGroupStatus(
            replicas=int(md.get("replicas") or 0),
            ready_replicas=int(md.get("readyReplicas") or 0),
            machine_template=template,
        )
    status = status.model_copy(
        update={
            "version": str(cp_status.get("version") or ""),
            "ready_control_plane_replicas": int(cp_status.get("readyReplicas") or 0),
            "kubeconfig": KubeconfigStatus(
                secret=f"{release}-admin-kubeconfig", keys=list(controlplane.KUBECONFIG_KEYS)
            ),
            "node_groups": node_groups,
            "addons": {
                key.removeprefix("addon-"): d.ready
                for key, d in out.resources.items()
                if d.body["kind"] == "HelmRelease"
            },
        }
    )
    out.status = status.model_dump(by_alias=True)
    _readiness(out, spec, status)
    return out


def _guard_version(spec: KubernetesSpec, observed_cp: Object | None) -> None:
    """Refuse the version changes Kamaji's webhook refuses, naming the claim's field."""
    running = str((observed_cp or {}).get("spec", {}).get("version") or "")
    parts = running.removeprefix("v").split(".")
    # isdecimal, not isdigit: int() refuses digits such as "²".
    if len(parts) < 2 or not (parts[0].isdecimal() and parts[1].isdecimal()):
        return
    old, new = (int(parts[0]), int(parts[1])), (1, MINORS[spec.version])
    if new < old:
        raise ComposeError(
            "spec.version",
            f"cannot go down from v{old[0]}.{old[1]} to {spec.version}: Kamaji refuses to "
            "downgrade a control plane",
        )
    if new > (old[0], old[1] + 1):
        raise ComposeError(
            "spec.version",
            f"cannot go from v{old[0]}.{old[1]} to {spec.version} at once: Kamaji upgrades one "
            f"minor version at a time, so go to v{old[0]}.{old[1] + 1} first",
        )


def _guard_storage_class(spec: KubernetesSpec, observed_csi: Object | None) -> None:
    """The tenant's `kubevirt` StorageClass keeps its volumes on this class: it cannot move."""
    classes = (observed_csi or {}).get("spec", {}).get("values", {}).get("storageClasses", {})
    used = (classes.get(addons.KUBEVIRT_CLASS) or {}).get("infraStorageClass")
    # An infra class named kubevirt takes that entry over, and then it says nothing.
    if used not in (None, addons.KUBEVIRT_CLASS, addons.infra_class(spec)):
        raise ComposeError("spec.storageClass", f"is immutable: the cluster's volumes use {used!r}")


def _guard_bootstrap(spec: KubernetesSpec, ctx: Context) -> None:
    """Workers keep how they boot: each group's bootstrap-<group> object cannot change kind."""
    wanted = workers.CONFIG_TEMPLATES[spec.bootstrap]
    for key in sorted(ctx.observed.keys()):
        if not key.startswith("machinedeployment-"):
            continue
        md = (ctx.observed.get(key) or {}).get("spec", {})
        used = md.get("template", {}).get("spec", {}).get("bootstrap", {}).get("configRef", {})
        if used.get("kind") not in (None, wanted):
            raise ComposeError(
                "spec.bootstrap",
                f"is immutable: the workers boot from {used['kind']}s; create a new cluster "
                "to change how they boot",
            )


def _talos_inputs(
    out: Outcome,
    c: Cluster,
    token: dict[str, str],
    service_ip: str | None,
    kubernetes_ca: str | None,
) -> Object | None:
    """What a worker's Talos configuration needs from the cluster, once it all exists."""
    talos_ca = out.require(
        "talos-ca-secret", Requirement("v1", "Secret", f"{c.release}-talos-ca", c.namespace)
    )
    dns = out.require("cluster-dns", Requirement("v1", "Service", "kube-dns", "kube-system"))
    talos_crt = str(((talos_ca or {}).get("data") or {}).get("tls.crt") or "") or None
    dns_ip = str((dns or {}).get("spec", {}).get("clusterIP") or "") or None
    missing = [
        what
        for what, value in (
            (f"the ClusterIP of Service {c.release} (Kamaji creates it)", service_ip),
            (f"Secret {c.release}-ca (Kamaji's cluster CA)", kubernetes_ca),
            (f"Secret {c.release}-talos-ca (cert-manager issues it)", talos_crt),
            ("the ClusterIP of Service kube-system/kube-dns", dns_ip),
        )
        if not value
    ]
    if missing:
        out.wait("worker configuration waits for " + ", ".join(missing))
        return None
    domain = c.cluster_domain
    search = [f"svc.{domain}", domain] + (
        [] if domain == "cluster.local" else ["svc.cluster.local", "cluster.local"]
    )
    return {
        "token": token["token"],
        "cluster_id": token["clusterId"],
        "cluster_secret": token["clusterSecret"],
        "bootstrap_token": token["bootstrapToken"],
        "dns_ip": dns_ip,
        "search_domains": search,
        "service_ip": service_ip,
        "service_names": [
            f"{c.release}.{c.namespace}.svc",
            f"{c.release}.{c.namespace}.svc.cluster.local",
        ],
        "talos_ca": talos_crt,
        "kubernetes_ca": kubernetes_ca,
        "endpoint": f"https://{c.release}.{c.namespace}.svc:6443",
        "cluster_name": c.release,
        "version": c.version,
    }


def _readiness(out: Outcome, spec: KubernetesSpec, status: KubernetesStatus) -> None:
    """Ready when the control plane is and every group has its minimum of workers.

    Addons install only once workers exist (a group may have none), so they are
    reported in status but do not hold the cluster back, as in Cozystack.
    """
    control_plane = all(
        out.resources[k].ready for k in ("cluster", "control-plane", "infra-cluster")
    )
    if not control_plane:
        out.wait(
            f"control plane: {status.ready_control_plane_replicas}/"
            f"{spec.control_plane.replicas} replicas ready"
        )
    short = [
        f"{g}: {s.ready_replicas}/{workers.groups(spec)[g].min_replicas} workers ready"
        for g, s in status.node_groups.items()
        if not out.resources[f"machinedeployment-{g}"].ready
    ]
    if short:
        out.wait("node groups " + ", ".join(short))
    # Anything still awaited (the workers' Talos inputs too) holds readiness back.
    out.ready = not out.waiting
