"""VMDisk: a CDI DataVolume that no spec change replaces; it only grows (reference §14.1).

CDI refuses every change to a DataVolume's spec once it exists, so the spec observed is
composed again unchanged. Growth goes to the PersistentVolumeClaim CDI created, which CDI
owns: cozyplane cannot compose it, so a Job patches its size request, composed when the
PVC asks for less than the claim.
"""

from __future__ import annotations

import hashlib
import json

from functions.api.vmdisk import VMDiskSpec, VMDiskStatus
from functions.domain.quantity import parse
from functions.domain.readiness import job_succeeded
from functions.domain.storage import guard_volume
from functions.services.base import (
    ComposeError,
    Context,
    Object,
    Outcome,
    Requirement,
    copied,
    meta,
)

CDI = "cdi.kubevirt.io/v1beta1"
OPTICAL = "vm-disk.cozystack.io/optical"
BIND_IMMEDIATE = "cdi.kubevirt.io/storage.bind.immediate.requested"
GOLDEN_NAMESPACE = "cozy-public"
GOLDEN_PREFIX = "vm-default-images-"
PREFIX = "vm-disk-"
LINSTOR = "linstor.csi.linbit.com"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
KUBECTL_IMAGE = "docker.io/alpine/k8s:1.36.2"
INSTANCE = "app.kubernetes.io/instance"
# Phases where CDI waits for a pod to use the volume (WaitForFirstConsumer classes).
FIRST_CONSUMER = ("WaitForFirstConsumer", "PendingPopulation")


def compose(spec: VMDiskSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XVMDisk is created through a VMDisk claim")
    release = f"{PREFIX}{name}"
    if spec.source.disk is not None and spec.source.disk.name == name:
        raise ComposeError("spec.source.disk.name", "a disk cannot be cloned from itself")
    if parse(spec.storage) <= 0:
        raise ComposeError("spec.storage", f"must be positive, not {spec.storage}")

    observed = ctx.observed.get("datavolume")
    existing = (observed or {}).get("spec")
    pvc: Object | None = None
    current = ""
    if existing:
        dv_spec = copied(existing)
        pvc = out.require("pvc", Requirement("v1", "PersistentVolumeClaim", release, ns))
        if not out.resolved():
            return out
        storage_class, current = _existing(out, spec, release, ns, existing, pvc)
    else:
        dv_spec = _new_spec(spec, ns)
        checked = _check_new(out, spec, release, ns)
        if checked is None:
            return out
        storage_class = checked

    annotations = {OPTICAL: "true" if spec.optical else "false"}
    uploaded = "upload" in (dv_spec.get("source") or {})
    if uploaded:
        annotations[BIND_IMMEDIATE] = ""
    metadata = meta(release, ns, {INSTANCE: release})
    metadata["annotations"] = dict(sorted(annotations.items()))
    dv = out.add_observed(
        "datavolume",
        {"apiVersion": CDI, "kind": "DataVolume", "metadata": metadata, "spec": dv_spec},
    )
    status = (dv or {}).get("status", {})
    phase = str(status.get("phase") or "")
    if dv is None:
        out.wait(f"creating DataVolume {release}")
    elif phase != "Succeeded":
        out.wait(_waiting(release, ns, status, uploaded, storage_class))
    if existing:
        _grow(out, spec, release, ns, phase, current, pvc)

    capacity = (pvc or {}).get("status", {}).get("capacity", {}).get("storage")
    out.status = VMDiskStatus(
        phase=phase,
        progress=str(status.get("progress") or ""),
        pvc=str(status.get("claimName") or ""),
        size=str(capacity or ""),
        storage_class=storage_class,
    ).model_dump(by_alias=True)
    return out


def source(spec: VMDiskSpec, ns: str) -> Object:
    """The DataVolume source of a claim: exactly one kind, blank when none is given."""
    src = spec.source
    if src.image is not None:
        return {"pvc": {"name": f"{GOLDEN_PREFIX}{src.image.name}", "namespace": GOLDEN_NAMESPACE}}
    if src.http is not None:
        return {"http": {"url": src.http.url}}
    if src.upload is not None:
        return {"upload": {}}
    if src.disk is not None:
        return {"pvc": {"name": f"{PREFIX}{src.disk.name}", "namespace": ns}}
    return {"blank": {}}


def _new_spec(spec: VMDiskSpec, ns: str) -> Object:
    storage: Object = {"resources": {"requests": {"storage": spec.storage}}}
    if spec.storage_class:
        storage["storageClassName"] = spec.storage_class
    return {"contentType": "kubevirt", "source": source(spec, ns), "storage": storage}


def _check_new(out: Outcome, spec: VMDiskSpec, release: str, ns: str) -> str | None:
    """Before creating: the class must be a LINSTOR one, the clone source should exist.

    Returns the class the volume gets, or None while required resources are unknown.
    """
    sc = "storage.k8s.io/v1"
    if spec.storage_class:
        found = out.require("storage-class", Requirement(sc, "StorageClass", spec.storage_class))
        classes = [found] if found is not None else []
    else:
        everything = out.require_all("storage-classes", Requirement(sc, "StorageClass"))
        classes = [
            c
            for c in everything
            if (c.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true"
        ]
    src = source(spec, ns).get("pvc")
    origin = None
    if src is not None:
        origin = out.require(
            "source", Requirement("v1", "PersistentVolumeClaim", src["name"], src["namespace"])
        )
    if not out.resolved():
        return None

    if not classes:
        if spec.storage_class:
            raise ComposeError(
                "spec.storageClass", f"StorageClass {spec.storage_class!r} does not exist"
            )
        raise ComposeError(
            "spec.storageClass", "the cluster has no default StorageClass: name one (replicated)"
        )
    chosen = classes[0]
    class_name = str(chosen.get("metadata", {}).get("name", ""))
    if chosen.get("provisioner") != LINSTOR:
        raise ComposeError(
            "spec.storageClass",
            f"StorageClass {class_name!r} is not a LINSTOR class (provisioner "
            f"{chosen.get('provisioner')!r}): VM disks go on replicated or local",
        )
    if src is not None:
        what = (
            f"golden image {spec.source.image.name}"
            if spec.source.image is not None
            else f"VMDisk {src['name'].removeprefix(PREFIX)}"
        )
        if origin is None:
            out.wait(
                f"{what} does not exist (PVC {src['name']} in {src['namespace']}): "
                f"DataVolume {release} clones it once it does"
            )
        else:
            size = origin.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
            if size and parse(str(size)) > parse(spec.storage):
                out.warn(
                    f"spec.storage {spec.storage} is smaller than {what} ({size}): "
                    "CDI refuses to clone into a smaller volume"
                )
    return class_name


def _existing(
    out: Outcome,
    spec: VMDiskSpec,
    release: str,
    ns: str,
    existing: Object,
    pvc: Object | None,
) -> tuple[str, str]:
    """Refuse what would replace or shrink the disk; say that source changes are ignored.

    Returns the volume's class and its current size request.
    """
    storage = existing.get("storage") or existing.get("pvc") or {}
    observed_class = str(storage.get("storageClassName") or "")
    guard_volume(
        size=spec.storage,
        storage_class=spec.storage_class,
        observed_size=None,
        observed_class=observed_class,
    )
    current = _requested(pvc) or str(
        storage.get("resources", {}).get("requests", {}).get("storage") or spec.storage
    )
    if parse(spec.storage) < parse(current):
        raise ComposeError(
            "spec.storage", f"a disk cannot shrink: {release} holds {current}, not {spec.storage}"
        )
    if source(spec, ns) != existing.get("source"):
        out.warn(
            f"spec.source has no effect once the disk exists: DataVolume {release} keeps "
            "the source it was created from"
        )
    storage_class = str((pvc or {}).get("spec", {}).get("storageClassName") or observed_class)
    return storage_class, current


def _requested(pvc: Object | None) -> str:
    requests = (pvc or {}).get("spec", {}).get("resources", {}).get("requests", {})
    return str(requests.get("storage") or "")


def _waiting(release: str, ns: str, status: Object, uploaded: bool, storage_class: str) -> str:
    phase = str(status.get("phase") or "Pending")
    if uploaded:
        return (
            f"DataVolume {release} waits for an upload ({phase}): run "
            f"virtctl image-upload dv {release} -n {ns} --image-path=<image file>"
        )
    if phase in FIRST_CONSUMER:
        return (
            f"DataVolume {release} waits for its first consumer ({phase}): StorageClass "
            f"{storage_class} binds volumes where a pod first uses them; attach the disk to a "
            "VirtualMachine"
        )
    detail = str(status.get("progress") or "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Running" and condition.get("message"):
            detail = ", ".join(x for x in (detail, str(condition["message"])) if x)
    return f"DataVolume {release}: {phase}" + (f" ({detail})" if detail else "")


def _grow(
    out: Outcome,
    spec: VMDiskSpec,
    release: str,
    ns: str,
    phase: str,
    current: str,
    pvc: Object | None,
) -> None:
    """Patch the PVC's request up to spec.storage, through a Job, once CDI is done with it.

    The Job that grew the disk to its present size stays, complete, as the record of that
    growth (and its logs) until the next one; its ServiceAccount and Role go at once.
    """
    digest = hashlib.sha256(spec.storage.encode()).hexdigest()[:6]
    key, account = f"resize-{digest}", f"{release}-resize"
    job = _resize_job(release, ns, account, f"{account}-{digest}", spec.storage)
    capacity = str((pvc or {}).get("status", {}).get("capacity", {}).get("storage") or "")
    if parse(spec.storage) <= parse(current):
        previous = out.ctx.observed.get(key)
        if previous is not None and job_succeeded(previous):
            out.add(key, job)
        if capacity and parse(capacity) < parse(current):
            out.wait(f"PVC {release} is expanding to {current} (capacity {capacity})")
        return
    if phase != "Succeeded":
        out.wait(f"growing to {spec.storage} waits until DataVolume {release} is populated")
        return
    if pvc is None or pvc.get("status", {}).get("phase") != "Bound":
        out.wait(f"growing to {spec.storage} waits for PVC {release} to be bound")
        return
    out.add(
        "resize-account",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(account, ns)},
    )
    out.add(
        "resize-role",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(account, ns),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumeclaims"],
                    "resourceNames": [release],
                    "verbs": ["get", "patch"],
                }
            ],
        },
    )
    out.add(
        "resize-binding",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(account, ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": account,
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    )
    applied = out.add_observed(key, job)
    name = job["metadata"]["name"]
    failed = [
        c
        for c in (applied or {}).get("status", {}).get("conditions") or []
        if c.get("type") == "Failed" and c.get("status") == "True"
    ]
    if failed:
        out.wait(
            f"Job {name} could not grow PVC {release} to {spec.storage}: "
            f"{failed[0].get('message') or failed[0].get('reason') or 'failed'}; see its logs"
        )
    else:
        out.wait(f"growing PVC {release} from {current} to {spec.storage} (Job {name})")


def _resize_job(release: str, ns: str, account: str, name: str, size: str) -> Object:
    patch = json.dumps(
        {"spec": {"resources": {"requests": {"storage": size}}}}, separators=(",", ":")
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(name, ns, {INSTANCE: release}),
        "spec": {
            "backoffLimit": 3,
            "template": {
                "metadata": {"labels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
                "spec": {
                    "serviceAccountName": account,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "resize",
                            "image": KUBECTL_IMAGE,
                            "command": [
                                "kubectl",
                                "patch",
                                "persistentvolumeclaim",
                                release,
                                f"--namespace={ns}",
                                "--type=merge",
                                f"--patch={patch}",
                            ],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "100m", "memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
