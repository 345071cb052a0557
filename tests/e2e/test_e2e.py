"""End to end on a real control plane: claims applied with kubectl, composed by Crossplane
calling function-cozyplane over mTLS, operator status simulated by patching it.

The steps run in order and share one control plane (module scope)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import config as kube_config
from kubernetes import dynamic
from kubernetes.dynamic.exceptions import NotFoundError

from tests.conftest import EXAMPLES, crds_dir
from tests.e2e.controlplane import ControlPlane, running, wait_for

Object = dict[str, Any]
WAIT = 90.0


class Cluster:
    """Reads and patches through the Python client; applies through kubectl."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        api = kube_config.new_client_from_config(str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        self.client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Object | None:
        self.client.resources.invalidate_cache()
        try:
            api = self.client.resources.get(api_version=api_version, kind=kind)
            found: Object = api.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        return found

    def must(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object:
        holder: list[Object] = []

        def exists() -> bool:
            obj = self.get(api_version, kind, name, namespace)
            if obj is not None:
                holder.append(obj)
            return obj is not None

        wait_for(f"{kind} {namespace or ''}/{name}", exists, WAIT)
        return holder[-1]

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: Object
    ) -> None:
        api = self.client.resources.get(api_version=api_version, kind=kind)
        api.status.patch(
            body={"status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    def patch(self, api_version: str, kind: str, name: str, namespace: str, body: Object) -> None:
        api = self.client.resources.get(api_version=api_version, kind=kind)
        api.patch(
            body=body, name=name, namespace=namespace, content_type="application/merge-patch+json"
        )

    def gone(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> Callable[[], bool]:
        return lambda: self.get(api_version, kind, name, namespace) is None

    def composite(self, claim: Object) -> Object:
        ref = claim["spec"]["resourceRef"]
        return self.must(ref["apiVersion"], ref["kind"], ref["name"])

    def claim(self, kind: str, name: str, namespace: str) -> Object:
        return self.must("cozyplane.io/v1alpha1", kind, name, namespace)


def condition(obj: Object, kind: str) -> Object:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


READY = {"type": "Ready", "status": "True", "reason": "Simulated", "message": "e2e"}


def simulate_etcd(k8s: Cluster, ns: str) -> None:
    """What etcd-operator, cert-manager and Kamaji report once the tenant's etcd runs."""
    cluster = k8s.must("etcd-operator.cozystack.io/v1alpha2", "EtcdCluster", "etcd", ns)
    assert cluster["spec"]["replicas"] == 3
    store = k8s.must("kamaji.clastix.io/v1alpha1", "DataStore", ns)
    assert store["spec"]["endpoints"] == [f"etcd.{ns}.svc:2379"]
    k8s.patch_status(
        "etcd-operator.cozystack.io/v1alpha2", "EtcdCluster", "etcd", ns, {"readyMembers": 3}
    )
    k8s.patch_status("kamaji.clastix.io/v1alpha1", "DataStore", ns, None, {"ready": True})
    for kind, names in (
        ("Issuer", ("etcd-selfsigning-issuer", "etcd-peer-issuer", "etcd-issuer")),
        ("Certificate", ("etcd-peer-ca", "etcd-ca", "etcd-server", "etcd-peer", "etcd-client")),
    ):
        for name in names:
            k8s.must("cert-manager.io/v1", kind, name, ns)
            k8s.patch_status("cert-manager.io/v1", kind, name, ns, {"conditions": [READY]})


def simulate_modules(k8s: Cluster, ns: str) -> None:
    """What Flux, the VictoriaMetrics operator, CloudNativePG and Kubernetes report once a
    tenant's ingress and monitoring modules run."""
    k8s.patch_status(
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        "ingress-nginx-system",
        ns,
        {"conditions": [READY | {"lastTransitionTime": "2026-11-20T10:00:00Z"}]},
    )
    storages = [
        ("VMCluster", "shortterm", "v1beta1"),
        ("VMCluster", "longterm", "v1beta1"),
        ("VLCluster", "generic", "v1"),
    ]
    if ns != "tenant-root":
        storages.append(("VMAgent", "vmagent", "v1beta1"))
    for kind, name, version in storages:
        api = f"operator.victoriametrics.com/{version}"
        k8s.must(api, kind, name, ns)
        k8s.patch_status(api, kind, name, ns, {"updateStatus": "operational"})
    k8s.patch_status(
        "postgresql.cnpg.io/v1",
        "Cluster",
        "grafana-db",
        ns,
        {"conditions": [READY | {"lastTransitionTime": "2026-11-20T10:00:00Z"}]},
    )
    _deployment_ready(k8s, "grafana", ns)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running(tmp_path_factory.mktemp("controlplane")) as started:
        try:
            started.install(crds_dir())
        except BaseException:
            print(started.logs_tail())
            raise
        yield started


@pytest.fixture(scope="module")
def k8s(plane: ControlPlane) -> Cluster:
    return Cluster(plane)


def wait_ready(k8s: Cluster, kind: str, name: str, namespace: str) -> Object:
    holder: list[Object] = []

    def ready() -> bool:
        holder.append(k8s.claim(kind, name, namespace))
        return condition(holder[-1], "Ready").get("status") == "True"

    try:
        wait_for(f"{kind} {namespace}/{name} to be Ready", ready, WAIT, every=1)
    except TimeoutError as err:
        # Say why: the claim's and its composite's conditions as last seen.
        claim = holder[-1] if holder else {}
        ref = claim.get("spec", {}).get("resourceRef")
        xr = k8s.get(ref["apiVersion"], ref["kind"], ref["name"]) if ref else None
        seen = {
            "claim": claim.get("status", {}).get("conditions"),
            "composite": (xr or {}).get("status", {}).get("conditions"),
        }
        raise TimeoutError(f"{err}; last seen: {json.dumps(seen)}") from None
    return holder[-1]


def test_crds_xrds_and_compositions_apply_and_claims_are_offered(
    plane: ControlPlane, k8s: Cluster
) -> None:
    upstream = {
        d["metadata"]["name"]
        for p in crds_dir().rglob("*.yaml")
        if not p.name.endswith(".openAPIV3Schema.yaml")
        for d in yaml.safe_load_all(p.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    }
    installed = set(
        plane.kubectl("get", "crd", "-o", "name")
        .stdout.replace("customresourcedefinition.apiextensions.k8s.io/", "")
        .split()
    )
    assert upstream <= installed
    for xrd in ("xtenants.cozyplane.io", "xpostgreses.cozyplane.io", "xkuberneteses.cozyplane.io"):
        obj = k8s.must("apiextensions.crossplane.io/v1", "CompositeResourceDefinition", xrd)
        assert condition(obj, "Established")["status"] == "True"
        assert condition(obj, "Offered")["status"] == "True"
    claims = {"tenants.cozyplane.io", "postgreses.cozyplane.io", "kuberneteses.cozyplane.io"}
    assert claims <= installed | set(
        plane.kubectl("get", "crd", "-o", "name")
        .stdout.replace("customresourcedefinition.apiextensions.k8s.io/", "")
        .split()
    )


def test_tenants_compose_namespaces_rbac_and_policies(plane: ControlPlane, k8s: Cluster) -> None:
    plane.kubectl(
        "apply",
        "-f",
        str(EXAMPLES / "tenant-root.yaml"),
        "-f",
        str(EXAMPLES / "tenant-nested.yaml"),
    )
    dev = wait_ready(k8s, "Tenant", "dev", "tenant-root")
    xr = k8s.composite(dev)
    namespace = k8s.must("v1", "Namespace", "tenant-dev")
    labels = namespace["metadata"]["labels"]
    assert labels["tenant.cozystack.io/tenant-dev"] == ""
    assert labels["namespace.cozystack.io/host"] == "dev.example.org"
    assert labels["crossplane.io/claim-name"] == "dev"
    (owner,) = namespace["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "XTenant",
        xr["metadata"]["name"],
        xr["metadata"]["uid"],
        True,
    )
    quota = k8s.must("v1", "ResourceQuota", "tenant-quota", "tenant-dev")
    assert quota["spec"]["hard"]["requests.cpu"] == "800m"  # the API server canonicalises "0.8"
    binding = k8s.must(
        "rbac.authorization.k8s.io/v1", "RoleBinding", "cozyplane:tenant:admin", "tenant-dev"
    )
    assert binding["roleRef"]["name"] == "cozyplane:tenant:admin"
    k8s.must("cilium.io/v2", "CiliumClusterwideNetworkPolicy", "tenant-dev-egress")
    k8s.must("cilium.io/v2", "CiliumNetworkPolicy", "allow-to-dns", "tenant-dev")
    assert dev["status"]["namespace"] == "tenant-dev"
    assert condition(dev, "Available")["status"] == "True"
    simulate_etcd(k8s, "tenant-root")
    simulate_modules(k8s, "tenant-root")
    root = wait_ready(k8s, "Tenant", "root", "tenant-root")
    assert root["status"]["services"]["etcd"] == "tenant-root"
    k8s.must("rbac.authorization.k8s.io/v1", "RoleBinding", "cozyplane:tenant:view", "tenant-root")


def test_postgres_composes_cnpg_objects(plane: ControlPlane, k8s: Cluster) -> None:
    plane.kubectl("apply", "-f", str(EXAMPLES / "postgres-full.yaml"))
    cluster = k8s.must("postgresql.cnpg.io/v1", "Cluster", "postgres-orders", "tenant-dev")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["storage"]["size"] == "50Gi"
    assert cluster["spec"]["storage"]["storageClass"] == "replicated"
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    assert {"app", "reporting", "replicator", "orders_admin", "orders_readonly"} <= roles
    database = k8s.must("postgresql.cnpg.io/v1", "Database", "postgres-orders-orders", "tenant-dev")
    assert database["spec"]["owner"] == "orders_admin"
    secret = k8s.must("v1", "Secret", "postgres-orders-user-reporting", "tenant-dev")
    assert set(secret["data"]) == {"host", "port", "username", "password", "uri"}
    k8s.must("postgresql.cnpg.io/v1", "ScheduledBackup", "postgres-orders", "tenant-dev")
    k8s.must("barmancloud.cnpg.io/v1", "ObjectStore", "postgres-orders", "tenant-dev")
    service = k8s.must("v1", "Service", "postgres-orders-external-write", "tenant-dev")
    assert service["spec"]["type"] == "LoadBalancer"
    claim = k8s.claim("Postgres", "orders", "tenant-dev")
    assert condition(claim, "Ready").get("status") != "True"


def test_simulated_operator_status_makes_the_postgres_ready(k8s: Cluster) -> None:
    ns = "tenant-dev"
    k8s.patch_status(
        "postgresql.cnpg.io/v1",
        "Cluster",
        "postgres-orders",
        ns,
        {
            "phase": "Cluster in healthy state",
            "instances": 3,
            "readyInstances": 3,
            "currentPrimary": "postgres-orders-1",
            "image": "ghcr.io/cloudnative-pg/postgresql:17.7",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ClusterIsReady",
                    "message": "Cluster is Ready",
                    "lastTransitionTime": "2026-11-20T10:00:00Z",
                }
            ],
        },
    )
    for db in ("orders", "audit"):
        k8s.patch_status(
            "postgresql.cnpg.io/v1", "Database", f"postgres-orders-{db}", ns, {"applied": True}
        )
    k8s.patch_status(
        "v1",
        "Service",
        "postgres-orders-external-write",
        ns,
        {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
    )
    claim = wait_ready(k8s, "Postgres", "orders", ns)
    status = claim["status"]
    assert status["endpoints"] == {
        "readWrite": "postgres-orders-rw.tenant-dev.svc:5432",
        "readOnly": "postgres-orders-ro.tenant-dev.svc:5432",
        "read": "postgres-orders-r.tenant-dev.svc:5432",
        "external": "192.0.2.10:5432",
    }
    assert status["version"] == "17.7"
    assert status["readyInstances"] == 3
    assert status["secrets"]["users"]["app"] == "postgres-orders-user-app"
    assert condition(claim, "Available")["status"] == "True"


def _composed(k8s: Cluster, claim: Object) -> dict[str, Object]:
    """Composed objects of a claim's composite, by kind/name, from its resourceRefs."""
    xr = k8s.composite(claim)
    found = {}
    for ref in xr["spec"].get("resourceRefs", []):
        namespace = "tenant-dev" if ref["kind"] != "Namespace" else None
        obj = k8s.get(ref["apiVersion"], ref["kind"], ref["name"], namespace)
        if obj is not None:
            found[f"{ref['kind']}/{ref['name']}"] = obj
    return found


def test_updates_change_objects_in_place(plane: ControlPlane, k8s: Cluster) -> None:
    plane.kubectl("apply", "-f", str(EXAMPLES / "postgres-minimal.yaml"))
    k8s.must("postgresql.cnpg.io/v1", "Cluster", "postgres-db", "tenant-dev")
    plane.merge_patch("postgres", "db", "tenant-dev", {"spec": {"users": {"alice": {}}}})
    first = k8s.must("v1", "Secret", "postgres-db-user-alice", "tenant-dev")
    before = _composed(k8s, k8s.claim("Postgres", "db", "tenant-dev"))
    plane.merge_patch(
        "postgres", "db", "tenant-dev", {"spec": {"replicas": 3, "users": {"alice": {}, "bob": {}}}}
    )
    wait_for(
        "3 instances",
        lambda: (
            (k8s.get("postgresql.cnpg.io/v1", "Cluster", "postgres-db", "tenant-dev") or {})
            .get("spec", {})
            .get("instances")
            == 3
        ),
        WAIT,
    )
    k8s.must("v1", "Secret", "postgres-db-user-bob", "tenant-dev")
    after = _composed(k8s, k8s.claim("Postgres", "db", "tenant-dev"))
    for key, obj in before.items():
        assert after[key]["metadata"]["uid"] == obj["metadata"]["uid"], key
    alice = k8s.must("v1", "Secret", "postgres-db-user-alice", "tenant-dev")
    assert alice["data"]["password"] == first["data"]["password"]
    assert alice["metadata"]["uid"] == first["metadata"]["uid"]


def test_forbidden_updates_are_refused_and_nothing_is_deleted(
    plane: ControlPlane, k8s: Cluster
) -> None:
    ns = "tenant-dev"
    claim = k8s.claim("Postgres", "db", ns)
    before = _composed(k8s, claim)
    for change, rule in (
        ({"storageClass": "local"}, "storageClass is immutable"),
        ({"size": "5Gi"}, "size cannot shrink"),
    ):
        refused = plane.merge_patch("postgres", "db", ns, {"spec": change}, check=False)
        assert refused.returncode != 0
        assert rule in refused.stderr

    # The volumes grew behind the claim's back: its size is now a shrink the XRD cannot
    # see, and the function refuses it from the observed Cluster.
    plane.merge_patch(
        "cluster.postgresql.cnpg.io", "postgres-db", ns, {"spec": {"storage": {"size": "20Gi"}}}
    )
    plane.kubectl("annotate", "postgres", "db", "-n", ns, "e2e/nudge=resized", "--overwrite")
    xr_name = claim["spec"]["resourceRef"]["name"]

    def refused_by_function() -> bool:
        xr = k8s.must("cozyplane.io/v1alpha1", "XPostgres", xr_name)
        synced = condition(xr, "Synced")
        return synced.get(
            "status"
        ) == "False" and "volumes cannot shrink from 20Gi to 10Gi" in synced.get("message", "")

    wait_for("the shrink to be refused", refused_by_function, WAIT, every=1)
    cluster = k8s.must("postgresql.cnpg.io/v1", "Cluster", "postgres-db", ns)
    assert cluster["spec"]["storage"]["size"] == "20Gi"
    after = _composed(k8s, claim)
    assert {k: o["metadata"]["uid"] for k, o in after.items()} == {
        k: o["metadata"]["uid"] for k, o in before.items()
    }

    plane.merge_patch("postgres", "db", ns, {"spec": {"size": "20Gi"}})
    wait_for(
        "the composite to sync again",
        lambda: (
            condition(k8s.must("cozyplane.io/v1alpha1", "XPostgres", xr_name), "Synced").get(
                "status"
            )
            == "True"
        ),
        WAIT,
        every=1,
    )


KUBERNETES = "kubernetes-dev"
CAPI = "cluster.x-k8s.io/v1beta1"
CAPK = "infrastructure.cluster.x-k8s.io/v1alpha1"
KAMAJI = "controlplane.cluster.x-k8s.io/v1alpha1"
TALOS = "bootstrap.cluster.x-k8s.io/v1alpha3"


def _management_cluster(plane: ControlPlane) -> None:
    """The example's kube-dns Service and StorageClasses, with an address this API server gives."""
    docs = yaml.safe_load_all((EXAMPLES / "environment" / "management-cluster.yaml").read_text())
    objects = [d for d in docs if d]
    for obj in objects:
        obj.get("spec", {}).pop("clusterIP", None)
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def _infrastructure_ref(k8s: Cluster) -> str:
    md = k8s.must(CAPI, "MachineDeployment", f"{KUBERNETES}-md0", "tenant-dev")
    name: str = md["spec"]["template"]["spec"]["infrastructureRef"]["name"]
    return name


def test_kubernetes_composes_the_control_plane_and_waits_for_kamaji(
    plane: ControlPlane, k8s: Cluster
) -> None:
    ns = "tenant-dev"
    _management_cluster(plane)
    plane.kubectl("apply", "-f", str(EXAMPLES / "kubernetes-minimal.yaml"))
    control_plane = k8s.must(KAMAJI, "KamajiControlPlane", KUBERNETES, ns)
    assert control_plane["spec"]["dataStoreName"] == "tenant-root"
    cluster = k8s.must(CAPI, "Cluster", KUBERNETES, ns)
    assert cluster["spec"]["controlPlaneRef"]["name"] == KUBERNETES
    k8s.must(CAPK, "KubevirtCluster", KUBERNETES, ns)
    k8s.must(CAPK, "KubevirtMachineTemplate", _infrastructure_ref(k8s), ns)
    k8s.must("helm.toolkit.fluxcd.io/v2", "HelmRelease", f"{KUBERNETES}-cilium", ns)
    k8s.must("apps/v1", "Deployment", f"{KUBERNETES}-cluster-autoscaler", ns)
    k8s.must("rbac.authorization.k8s.io/v1", "ClusterRole", f"{ns}-{KUBERNETES}-kcsi")
    assert k8s.get(TALOS, "TalosConfigTemplate", f"{KUBERNETES}-md0", ns) is None

    def waits_for_kamaji() -> bool:
        message = condition(k8s.claim("Kubernetes", "dev", ns), "Available").get("message", "")
        return f"the ClusterIP of Service {KUBERNETES} (Kamaji creates it)" in message

    wait_for("the claim to say what it waits for", waits_for_kamaji, WAIT, every=1)
    claim = k8s.claim("Kubernetes", "dev", ns)
    assert condition(claim, "Ready").get("status") != "True"
    assert claim["status"]["kubeconfig"]["secret"] == f"{KUBERNETES}-admin-kubeconfig"


def test_talos_workers_are_configured_from_what_kamaji_and_cert_manager_made(
    plane: ControlPlane, k8s: Cluster
) -> None:
    ns = "tenant-dev"
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\ne2e\n-----END CERTIFICATE-----\n")
    crt = pem.decode()
    plane.kubectl("create", "service", "clusterip", KUBERNETES, "--tcp=6443", "-n", ns)
    plane.kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "namespace": ns},
                    "data": {key: crt},
                }
                for name, key in (
                    (f"{KUBERNETES}-ca", "ca.crt"),
                    (f"{KUBERNETES}-talos-ca", "tls.crt"),
                )
            ]
        ),
    )
    ip = k8s.must("v1", "Service", KUBERNETES, ns)["spec"]["clusterIP"]
    dns = k8s.must("v1", "Service", "kube-dns", "kube-system")["spec"]["clusterIP"]
    template = k8s.must(TALOS, "TalosConfigTemplate", f"{KUBERNETES}-md0", ns)
    data = yaml.safe_load(template["spec"]["template"]["spec"]["data"])
    assert data["machine"]["network"]["nameservers"] == [dns]
    assert data["machine"]["network"]["extraHostEntries"][0]["ip"] == ip
    assert data["cluster"]["ca"]["crt"] == crt
    secrets = k8s.must("v1", "Secret", f"{KUBERNETES}-talos-secrets", ns)["data"]
    assert data["machine"]["token"] == base64.b64decode(secrets["token"]).decode()
    sans = k8s.must(KAMAJI, "KamajiControlPlane", KUBERNETES, ns)["spec"]["network"]["certSANs"]
    assert ip in sans


def test_simulated_kamaji_and_cluster_api_status_make_the_cluster_ready(k8s: Cluster) -> None:
    ns = "tenant-dev"
    k8s.patch_status(
        CAPI,
        "Cluster",
        KUBERNETES,
        ns,
        {"conditions": [READY | {"lastTransitionTime": "2026-11-20T10:00:00Z"}]},
    )
    k8s.patch_status(
        KAMAJI,
        "KamajiControlPlane",
        KUBERNETES,
        ns,
        {
            "ready": True,
            "initialized": True,
            "replicas": 2,
            "readyReplicas": 2,
            "updatedReplicas": 2,
            "unavailableReplicas": 0,
            "selector": f"kamaji.clastix.io/name={KUBERNETES}",
            "version": "v1.35.6",
        },
    )
    k8s.patch_status(CAPK, "KubevirtCluster", KUBERNETES, ns, {"ready": True})
    claim = wait_ready(k8s, "Kubernetes", "dev", ns)
    assert claim["status"]["version"] == "v1.35.6"
    assert claim["status"]["readyControlPlaneReplicas"] == 2
    assert claim["status"]["nodeGroups"]["md0"]["machineTemplate"] == _infrastructure_ref(k8s)


def test_a_node_group_change_rolls_a_new_template_and_keeps_the_old_one_while_used(
    plane: ControlPlane, k8s: Cluster
) -> None:
    ns = "tenant-dev"
    old = _infrastructure_ref(k8s)
    old_uid = k8s.must(CAPK, "KubevirtMachineTemplate", old, ns)["metadata"]["uid"]
    # What Cluster API's MachineDeployment controller made from the current template.
    machine_set = {
        "apiVersion": CAPI,
        "kind": "MachineSet",
        "metadata": {
            "name": f"{KUBERNETES}-md0-old",
            "namespace": ns,
            "labels": {"cluster.x-k8s.io/cluster-name": KUBERNETES},
        },
        "spec": {
            "clusterName": KUBERNETES,
            "selector": {"matchLabels": {"set": "old"}},
            "template": {
                "metadata": {"labels": {"set": "old"}},
                "spec": {
                    "clusterName": KUBERNETES,
                    "bootstrap": {
                        "configRef": {
                            "apiVersion": TALOS,
                            "kind": "TalosConfigTemplate",
                            "name": f"{KUBERNETES}-md0",
                        }
                    },
                    "infrastructureRef": {
                        "apiVersion": CAPK,
                        "kind": "KubevirtMachineTemplate",
                        "name": old,
                    },
                },
            },
        },
    }
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(machine_set))
    patch = {
        "spec": {
            "nodeGroups": {"md0": {"minReplicas": 1, "maxReplicas": 4, "instanceType": "u1.large"}}
        }
    }
    plane.merge_patch("kuberneteses", "dev", ns, patch)
    wait_for(
        "the MachineDeployment to use a new template", lambda: _infrastructure_ref(k8s) != old, WAIT
    )
    new = _infrastructure_ref(k8s)
    vm = k8s.must(CAPK, "KubevirtMachineTemplate", new, ns)["spec"]["template"]["spec"]
    assert vm["virtualMachineTemplate"]["spec"]["instancetype"]["name"] == "u1.large"
    kept = k8s.must(CAPK, "KubevirtMachineTemplate", old, ns)
    assert kept["metadata"]["uid"] == old_uid

    def waits_for_a_worker() -> bool:
        message = condition(k8s.claim("Kubernetes", "dev", ns), "Available").get("message", "")
        return "md0: 0/1 workers ready" in message

    wait_for("the claim to wait for a worker", waits_for_a_worker, WAIT, every=1)
    plane.kubectl("delete", "machineset", f"{KUBERNETES}-md0-old", "-n", ns)
    wait_for(
        "the unused template to be deleted",
        k8s.gone(CAPK, "KubevirtMachineTemplate", old, ns),
        WAIT,
    )
    k8s.patch_status(
        CAPI, "MachineDeployment", f"{KUBERNETES}-md0", ns, {"replicas": 1, "readyReplicas": 1}
    )
    claim = wait_ready(k8s, "Kubernetes", "dev", ns)
    assert claim["status"]["nodeGroups"]["md0"] == {
        "replicas": 1,
        "readyReplicas": 1,
        "machineTemplate": new,
    }


AVAILABLE = {"type": "Available", "status": "True", "reason": "Simulated"}
LB = {"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}


def _apply_example(plane: ControlPlane, *names: str) -> None:
    for name in names:
        plane.kubectl("apply", "-f", str(EXAMPLES / f"{name}.yaml"))


def _deployment_ready(k8s: Cluster, name: str, ns: str) -> None:
    replicas = k8s.must("apps/v1", "Deployment", name, ns)["spec"].get("replicas", 1)
    k8s.patch_status(
        "apps/v1",
        "Deployment",
        name,
        ns,
        {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [AVAILABLE | {"lastTransitionTime": "2026-11-20T10:00:00Z"}],
        },
    )


def test_tenant_modules_ingress_and_monitoring(plane: ControlPlane, k8s: Cluster) -> None:
    _apply_example(plane, "tenant-modules")
    ns = "tenant-analytics"
    k8s.must("v1", "Namespace", ns)
    release = k8s.must("helm.toolkit.fluxcd.io/v2", "HelmRelease", "ingress-nginx-system", ns)
    controller = release["spec"]["values"]["ingress-nginx"]["controller"]
    assert controller["ingressClassResource"]["name"] == ns
    simulate_etcd(k8s, ns)
    simulate_modules(k8s, ns)
    ingress = k8s.must("networking.k8s.io/v1", "Ingress", "grafana-ingress", ns)
    assert ingress["spec"]["rules"][0]["host"] == "grafana.analytics.example.org"
    tenant = wait_ready(k8s, "Tenant", "analytics", "tenant-root")
    assert tenant["status"]["services"]["monitoring"] == ns


def test_mariadb_redis_and_rabbitmq(plane: ControlPlane, k8s: Cluster) -> None:
    ns = "tenant-dev"
    _apply_example(plane, "mariadb-minimal", "redis-minimal", "rabbitmq-minimal")
    mariadb = k8s.must("k8s.mariadb.com/v1alpha1", "MariaDB", "mariadb-db", ns)
    assert mariadb["spec"]["replication"]["enabled"] is True
    k8s.must("v1", "ConfigMap", "mariadb-db-my-cnf", ns)
    k8s.patch_status(
        "k8s.mariadb.com/v1alpha1",
        "MariaDB",
        "mariadb-db",
        ns,
        {
            "conditions": [READY | {"lastTransitionTime": "2026-11-20T10:00:00Z"}],
            "replicas": 2,
            "currentPrimary": "mariadb-db-0",
            "currentPrimaryPodIndex": 0,
        },
    )
    # What redis-operator makes from the RedisFailover; its workloads are the truth.
    failover = k8s.must("databases.spotahome.com/v1", "RedisFailover", "redis-cache", ns)
    assert failover["spec"]["sentinel"]["replicas"] == 3
    labels = {
        "app.kubernetes.io/name": "redis-cache",
        "app.kubernetes.io/part-of": "redis-failover",
    }
    for kind, name, component, replicas, image in (
        ("StatefulSet", "rfr-redis-cache", "redis", 2, "redis:8.4.0"),
        ("Deployment", "rfs-redis-cache", "sentinel", 3, "redis:6.2.6-alpine"),
    ):
        selector = labels | {"app.kubernetes.io/component": component}
        spec = {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": component, "image": image}]},
            },
        }
        if kind == "StatefulSet":
            spec["serviceName"] = name
        obj = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
        k8s.patch_status(
            "apps/v1", kind, name, ns, {"replicas": replicas, "readyReplicas": replicas}
        )
    k8s.must("rabbitmq.com/v1beta1", "RabbitmqCluster", "rabbitmq-queue", ns)
    k8s.patch_status(
        "rabbitmq.com/v1beta1",
        "RabbitmqCluster",
        "rabbitmq-queue",
        ns,
        {
            "conditions": [
                {
                    "type": "AllReplicasReady",
                    "status": "True",
                    "reason": "AllPodsAreReady",
                    "lastTransitionTime": "2026-11-20T10:00:00Z",
                }
            ]
        },
    )
    assert wait_ready(k8s, "MariaDB", "db", ns)["status"]["secrets"]["credentials"] == (
        "mariadb-db-credentials"
    )
    assert wait_ready(k8s, "Redis", "cache", ns)["status"]["version"] == "8.4.0"
    rabbit = wait_ready(k8s, "RabbitMQ", "queue", ns)
    assert rabbit["status"]["endpoints"]["amqp"] == "rabbitmq-queue.tenant-dev.svc:5672"


def test_http_cache_and_vpn(plane: ControlPlane, k8s: Cluster) -> None:
    ns = "tenant-dev"
    _apply_example(plane, "httpcache-minimal", "vpn-minimal")
    _deployment_ready(k8s, "http-cache-cdn-haproxy", ns)
    for i in (0, 1):
        _deployment_ready(k8s, f"http-cache-cdn-nginx-cache-{i}", ns)
        k8s.patch_status(
            "v1", "PersistentVolumeClaim", f"http-cache-cdn-nginx-cache-{i}", ns, {"phase": "Bound"}
        )
    cache = wait_ready(k8s, "HTTPCache", "cdn", ns)
    assert cache["status"]["endpoint"] == "http-cache-cdn-haproxy.tenant-dev.svc:80"
    _deployment_ready(k8s, "vpn-office-vpn", ns)
    k8s.patch_status("v1", "Service", "vpn-office-vpn", ns, LB)
    for kind, name in (("Issuer", "vpn-office-selfsigned"), ("Certificate", "vpn-office-vpn-tls")):
        k8s.must("cert-manager.io/v1", kind, name, ns)
        k8s.patch_status("cert-manager.io/v1", kind, name, ns, {"conditions": [READY]})
    vpn = wait_ready(k8s, "VPN", "office", ns)
    assert vpn["status"]["urlsSecret"] == "vpn-office-urls"
    assert "password" not in json.dumps(vpn["status"]).lower()


def test_a_disk_and_a_virtual_machine(plane: ControlPlane, k8s: Cluster) -> None:
    ns = "tenant-dev"
    _apply_example(plane, "vmdisk-minimal", "virtualmachine-minimal")
    disk = k8s.must("cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-ubuntu", ns)
    assert disk["spec"]["storage"]["storageClassName"] == "replicated"
    k8s.patch_status(
        "cdi.kubevirt.io/v1beta1",
        "DataVolume",
        "vm-disk-ubuntu",
        ns,
        {"phase": "Succeeded", "progress": "100.0%", "claimName": "vm-disk-ubuntu"},
    )
    wait_ready(k8s, "VMDisk", "ubuntu", ns)
    # The VirtualMachine waits for its disk, then runs on it.
    vm = k8s.must("kubevirt.io/v1", "VirtualMachine", "vm-instance-ubuntu", ns)
    volumes = vm["spec"]["template"]["spec"]["volumes"]
    assert {"name": "disk-ubuntu", "dataVolume": {"name": "vm-disk-ubuntu"}} in volumes
    k8s.patch_status(
        "kubevirt.io/v1",
        "VirtualMachine",
        "vm-instance-ubuntu",
        ns,
        {"printableStatus": "Running", "ready": True, "conditions": [READY]},
    )
    machine = wait_ready(k8s, "VirtualMachine", "ubuntu", ns)
    assert machine["status"]["printableStatus"] == "Running"


# Claims holding data whose composed objects must survive faults: (kind, name).
SURVIVORS = (("Postgres", "orders"), ("MariaDB", "db"), ("VMDisk", "ubuntu"))


def _uids(k8s: Cluster) -> dict[str, str]:
    """UIDs of everything the surviving claims compose, after checking for duplicates."""
    uids: dict[str, str] = {}
    for kind, name in SURVIVORS:
        claim = k8s.claim(kind, name, "tenant-dev")
        xr = k8s.composite(claim)
        refs = xr["spec"].get("resourceRefs", [])
        for api_version, ref_kind in sorted({(r["apiVersion"], r["kind"]) for r in refs}):
            api = k8s.client.resources.get(api_version=api_version, kind=ref_kind)
            listed = api.get(
                namespace="tenant-dev",
                label_selector=f"crossplane.io/composite={xr['metadata']['name']}",
            ).to_dict()["items"]
            names = sorted(o["metadata"]["name"] for o in listed)
            wanted = sorted(r["name"] for r in refs if r["kind"] == ref_kind)
            assert names == wanted, f"{kind} {name}: {ref_kind} {names} != {wanted}"
            uids |= {f"{ref_kind}/{o['metadata']['name']}": o["metadata"]["uid"] for o in listed}
    return uids


def _settled(k8s: Cluster) -> None:
    for kind, name in SURVIVORS:
        wait_ready(k8s, kind, name, "tenant-dev")
        wait_for(f"{kind} {name} to be Synced again", _synced(k8s, kind, name), WAIT)


def _synced(k8s: Cluster, kind: str, name: str) -> Callable[[], bool]:
    def check() -> bool:
        xr = k8s.composite(k8s.claim(kind, name, "tenant-dev"))
        return condition(xr, "Synced").get("status") == "True"

    return check


def test_faults_converge_to_the_same_objects(plane: ControlPlane, k8s: Cluster) -> None:
    _settled(k8s)
    before = _uids(k8s)

    # The function is killed and, while it is down, a claim changes: the reconcile fails,
    # nothing is deleted, and once the function is back the change lands beside the rest.
    def unreachable() -> None:
        patch: Object = {"spec": {"users": {"faulty": {}}}}
        plane.merge_patch("postgres", "orders", "tenant-dev", patch)
        # Crossplane waits for the function to come back (its call has a deadline of its
        # own): give the reconcile time to be under way, then check nothing was deleted.
        time.sleep(10)
        assert _uids(k8s) == before

    plane.restart("function-cozyplane", kill=True, while_down=unreachable)
    k8s.must("v1", "Secret", "postgres-orders-user-faulty", "tenant-dev")
    _settled(k8s)
    after = _uids(k8s)
    assert {k: after.get(k) for k in before} == before
    before = after

    # The API server restarts under Crossplane.
    plane.restart("kube-apiserver")
    _settled(k8s)
    assert _uids(k8s) == before

    # A composed object deleted by hand comes back, new; nothing else changes.
    gone = "Database/postgres-orders-orders"
    plane.kubectl(
        "delete", "database.postgresql.cnpg.io", "postgres-orders-orders", "-n", "tenant-dev"
    )
    recreated = k8s.must(
        "postgresql.cnpg.io/v1", "Database", "postgres-orders-orders", "tenant-dev"
    )
    assert recreated["metadata"]["uid"] != before[gone]
    k8s.patch_status(
        "postgresql.cnpg.io/v1",
        "Database",
        "postgres-orders-orders",
        "tenant-dev",
        {"applied": True},
    )
    _settled(k8s)
    after = _uids(k8s)
    assert after.pop(gone) == recreated["metadata"]["uid"]
    assert after == {k: v for k, v in before.items() if k != gone}


def test_deleting_the_catalogue_claims(plane: ControlPlane, k8s: Cluster) -> None:
    ns = "tenant-dev"
    kinds = (
        ("mariadbs", "db", "k8s.mariadb.com/v1alpha1", "MariaDB", "mariadb-db"),
        ("redises", "cache", "databases.spotahome.com/v1", "RedisFailover", "redis-cache"),
        ("rabbitmqs", "queue", "rabbitmq.com/v1beta1", "RabbitmqCluster", "rabbitmq-queue"),
        ("httpcaches", "cdn", "apps/v1", "Deployment", "http-cache-cdn-haproxy"),
        ("vpns", "office", "apps/v1", "Deployment", "vpn-office-vpn"),
        (
            "virtualmachines.cozyplane.io",
            "ubuntu",
            "kubevirt.io/v1",
            "VirtualMachine",
            "vm-instance-ubuntu",
        ),
        ("vmdisks", "ubuntu", "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-ubuntu"),
    )
    for plural, name, *_ in kinds:
        plane.kubectl("delete", plural, name, "-n", ns, "--wait=false")
    for _, _, api, kind, name in kinds:
        wait_for(f"{kind} {name} to be deleted", k8s.gone(api, kind, name, ns), WAIT)
    plane.kubectl("delete", "tenant", "analytics", "-n", "tenant-root", "--wait=false")
    wait_for(
        "namespace tenant-analytics to be deleted",
        k8s.gone("v1", "Namespace", "tenant-analytics", None),
        WAIT,
    )


def test_deleting_claims_removes_their_composed_objects(plane: ControlPlane, k8s: Cluster) -> None:
    ns = "tenant-dev"
    composed = _composed(k8s, k8s.claim("Postgres", "db", ns))
    assert "Cluster/postgres-db" in composed
    plane.kubectl("delete", "postgres", "db", "-n", ns, "--wait=false")
    for key, obj in composed.items():
        kind, name = key.split("/", 1)
        wait_for(f"{key} to be deleted", k8s.gone(obj["apiVersion"], kind, name, ns), WAIT)

    plane.kubectl("delete", "postgres", "orders", "-n", ns, "--wait=false")
    plane.kubectl("delete", "kuberneteses", "dev", "-n", ns, "--wait=false")
    plane.kubectl("delete", "tenant", "dev", "-n", "tenant-root", "--wait=false")
    try:
        wait_for(
            "namespace tenant-dev to be deleted",
            k8s.gone("v1", "Namespace", "tenant-dev", None),
            WAIT,
        )
    except TimeoutError as err:
        # Say what holds it: the namespace controller lists it in the conditions.
        namespace = k8s.get("v1", "Namespace", "tenant-dev") or {}
        raise TimeoutError(f"{err}; {json.dumps(namespace.get('status'))}") from None
    assert k8s.get("v1", "Namespace", "tenant-root") is not None
