"""VMDisk compose: the DataVolume, never replaced, and its growth through a Job (§14.1)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from functions.api.kinds import VMDISK
from functions.api.rules import violations
from functions.api.vmdisk import VMDiskSpec
from functions.domain import readiness
from functions.services import vmdisk
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context
from tests.support.schemas import Catalog

NS = "tenant-dev"


def storage_class(name: str, provisioner: str = vmdisk.LINSTOR, **annotations: str) -> Any:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": provisioner,
    }


def pvc(name: str, size: str, *, ns: str = NS, phase: str = "Bound", capacity: str = "") -> Any:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"storageClassName": "replicated", "resources": {"requests": {"storage": size}}},
        "status": {"phase": phase, "capacity": {"storage": capacity or size}},
    }


REPLICATED = storage_class("replicated")


def compose(spec: dict[str, Any] | None = None, *, name: str = "data", **kw: Any) -> Outcome:
    kw.setdefault("required", {"storage-class": [REPLICATED]})
    return vmdisk.compose(VMDiskSpec.model_validate(spec or {}), context(name, NS, **kw))


def dv(out: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = out.resources["datavolume"].body
    return body


def existing(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    """The DataVolume as CDI keeps it after the first compose of `spec`."""
    body = copy.deepcopy(dv(compose(spec)))
    body["status"] = {"phase": "Succeeded", "progress": "100.0%", "claimName": "vm-disk-data"}
    body["status"].update(status)
    return body


def day2(spec: dict[str, Any], created: dict[str, Any], volume: Any = None) -> Outcome:
    return compose(
        spec,
        observed={"datavolume": created},
        required={"pvc": [volume] if volume is not None else []},
    )


def test_defaults_make_a_blank_replicated_disk() -> None:
    out = compose()
    assert list(out.resources) == ["datavolume"]
    assert dv(out) == {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": "vm-disk-data",
            "namespace": NS,
            "labels": {"app.kubernetes.io/instance": "vm-disk-data"},
            "annotations": {"vm-disk.cozystack.io/optical": "false"},
        },
        "spec": {
            "contentType": "kubevirt",
            "source": {"blank": {}},
            "storage": {
                "resources": {"requests": {"storage": "5Gi"}},
                "storageClassName": "replicated",
            },
        },
    }
    assert out.requirements["storage-class"].name == "replicated"
    assert out.waiting == ["creating DataVolume vm-disk-data"]
    assert out.status == {
        "phase": "",
        "progress": "",
        "pvc": "",
        "size": "",
        "storageClass": "replicated",
    }


@pytest.mark.parametrize(
    ("source", "expected", "reads"),
    [
        (
            {"image": {"name": "ubuntu-24.04"}},
            {"pvc": {"name": "vm-default-images-ubuntu-24.04", "namespace": "cozy-public"}},
            ("vm-default-images-ubuntu-24.04", "cozy-public"),
        ),
        (
            {"http": {"url": "https://example.org/a.qcow2"}},
            {"http": {"url": "https://example.org/a.qcow2"}},
            None,
        ),
        ({"upload": {}}, {"upload": {}}, None),
        (
            {"disk": {"name": "golden"}},
            {"pvc": {"name": "vm-disk-golden", "namespace": NS}},
            ("vm-disk-golden", NS),
        ),
        ({}, {"blank": {}}, None),
    ],
)
def test_each_source(
    source: dict[str, Any], expected: dict[str, Any], reads: tuple[str, str] | None
) -> None:
    required: dict[str, list[Any]] = {"storage-class": [REPLICATED]}
    if reads:
        required["source"] = [pvc(reads[0], "5Gi", ns=reads[1])]
    out = compose({"source": source}, required=required)
    assert dv(out)["spec"]["source"] == expected
    requirement = out.requirements.get("source")
    assert (None if requirement is None else (requirement.name, requirement.namespace)) == reads
    annotations = dv(out)["metadata"]["annotations"]
    assert ("cdi.kubevirt.io/storage.bind.immediate.requested" in annotations) is (
        "upload" in source
    )


def test_optical_size_and_class() -> None:
    local = storage_class("local")
    out = compose(
        {"optical": True, "storage": "20Gi", "storageClass": "local"},
        required={"storage-class": [local]},
    )
    assert dv(out)["metadata"]["annotations"]["vm-disk.cozystack.io/optical"] == "true"
    assert dv(out)["spec"]["storage"] == {
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "local",
    }
    assert out.status["storageClass"] == "local"


def test_empty_class_means_the_cluster_default_linstor_class() -> None:
    default = storage_class("local", **{vmdisk.DEFAULT_CLASS: "true"})
    out = compose({"storageClass": ""}, required={"storage-classes": [REPLICATED, default]})
    assert "storageClassName" not in dv(out)["spec"]["storage"]
    assert out.requirements["storage-classes"].name is None
    assert out.status["storageClass"] == "local"


@pytest.mark.parametrize(
    ("spec", "classes", "message"),
    [
        ({}, {"storage-class": []}, "StorageClass 'replicated' does not exist"),
        (
            {"storageClass": "standard"},
            {"storage-class": [storage_class("standard", "rancher.io/local-path")]},
            "not a LINSTOR class",
        ),
        ({"storageClass": ""}, {"storage-classes": [REPLICATED]}, "no default StorageClass"),
    ],
)
def test_only_linstor_classes(
    spec: dict[str, Any], classes: dict[str, list[Any]], message: str
) -> None:
    with pytest.raises(ComposeError, match=rf"spec\.storageClass: .*{message}"):
        compose(spec, required=classes)


def test_nothing_is_composed_before_required_resources_are_read() -> None:
    out = compose({"source": {"image": {"name": "debian-12"}}}, required={})
    assert out.resources == {}
    assert set(out.requirements) == {"storage-class", "source"}


def test_missing_or_small_clone_source() -> None:
    spec = {"source": {"image": {"name": "debian-13"}}}
    missing = compose(spec, required={"storage-class": [REPLICATED], "source": []})
    assert "datavolume" in missing.resources
    assert missing.waiting[0].startswith(
        "golden image debian-13 does not exist (PVC vm-default-images-debian-13 in cozy-public)"
    )
    small = compose(
        spec,
        required={
            "storage-class": [REPLICATED],
            "source": [pvc("vm-default-images-debian-13", "20Gi", ns="cozy-public")],
        },
    )
    assert small.warnings == [
        "spec.storage 5Gi is smaller than golden image debian-13 (20Gi): CDI refuses to "
        "clone into a smaller volume"
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {"disk": {"name": "data"}}}, r"spec\.source\.disk\.name: .*from itself"),
        ({"storage": "0"}, r"spec\.storage: must be positive"),
        ({"storage": "0Gi"}, r"spec\.storage: must be positive"),
    ],
)
def test_function_rules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose(spec)


def test_at_most_one_source() -> None:
    spec = VMDiskSpec.model_validate(
        {"source": {"upload": {}, "http": {"url": "https://example.org/x.iso"}}}
    )
    assert violations(spec) == [
        "spec.source: source takes at most one of image, http, upload and disk"
    ]
    assert violations(VMDiskSpec.model_validate({"source": {"upload": {}}})) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"source": {"image": {"name": "windows-11"}}},
        {"source": {"http": {"url": "ftp://example.org/x.iso"}}},
        {"source": {"disk": {"name": "Bad_Name"}}},
        {"storage": "ten"},
        {"storageClass": "Not A Class"},
    ],
)
def test_bad_values_are_refused_by_the_schema(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VMDiskSpec.model_validate(spec)


def test_existing_disk_keeps_its_spec_and_source_changes_only_warn() -> None:
    created = existing({"source": {"http": {"url": "https://example.org/a.img"}}})
    out = day2({"source": {"image": {"name": "rocky-9"}}}, created, pvc("vm-disk-data", "5Gi"))
    assert dv(out)["spec"] == created["spec"]
    assert out.warnings == [
        "spec.source has no effect once the disk exists: DataVolume vm-disk-data keeps the "
        "source it was created from"
    ]
    assert "storage-class" not in out.requirements
    assert out.requirements["pvc"].name == "vm-disk-data"
    assert out.resources["datavolume"].ready
    assert out.waiting == []
    assert out.status == {
        "phase": "Succeeded",
        "progress": "100.0%",
        "pvc": "vm-disk-data",
        "size": "5Gi",
        "storageClass": "replicated",
    }


def test_optical_follows_the_claim_on_an_existing_disk() -> None:
    out = day2({"optical": True}, existing(), pvc("vm-disk-data", "5Gi"))
    assert dv(out)["metadata"]["annotations"]["vm-disk.cozystack.io/optical"] == "true"


@pytest.mark.parametrize(
    ("storage", "volume"),
    [("4Gi", pvc("vm-disk-data", "5Gi")), ("8Gi", pvc("vm-disk-data", "10Gi")), ("4Gi", None)],
)
def test_disks_never_shrink(storage: str, volume: Any) -> None:
    with pytest.raises(ComposeError, match=r"spec\.storage: a disk cannot shrink"):
        day2({"storage": storage}, existing(), volume)


def test_storage_class_cannot_change() -> None:
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        day2({"storageClass": "local"}, existing(), pvc("vm-disk-data", "5Gi"))


def test_growth_patches_the_pvc_through_a_job() -> None:
    out = day2({"storage": "20Gi"}, existing(), pvc("vm-disk-data", "5Gi"))
    # The DataVolume keeps its original request: CDI refuses any change to its spec.
    assert dv(out)["spec"]["storage"]["resources"]["requests"]["storage"] == "5Gi"
    (job_key,) = [k for k in out.resources if k.startswith("resize-") and len(k) == 13]
    job = out.resources[job_key].body
    assert job["metadata"]["name"] == f"vm-disk-data-{job_key}"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "kubectl",
        "patch",
        "persistentvolumeclaim",
        "vm-disk-data",
        "--namespace=tenant-dev",
        "--type=merge",
        '--patch={"spec":{"resources":{"requests":{"storage":"20Gi"}}}}',
    ]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "vm-disk-data-resize"
    role = out.resources["resize-role"].body
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims"],
            "resourceNames": ["vm-disk-data"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = out.resources["resize-binding"].body
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "vm-disk-data-resize", "namespace": NS}
    ]
    assert out.resources["resize-account"].body["metadata"]["name"] == "vm-disk-data-resize"
    assert out.waiting == [
        f"growing PVC vm-disk-data from 5Gi to 20Gi (Job vm-disk-data-{job_key})"
    ]
    assert not out.resources[job_key].ready
    # Another size is another Job: a Job's template cannot change.
    again = day2({"storage": "30Gi"}, existing(), pvc("vm-disk-data", "5Gi"))
    assert job_key not in again.resources


def test_growth_is_done_once_the_pvc_asks_for_the_size() -> None:
    expanding = day2({"storage": "20Gi"}, existing(), pvc("vm-disk-data", "20Gi", capacity="5Gi"))
    assert not [k for k in expanding.resources if k.startswith("resize")]
    assert expanding.waiting == ["PVC vm-disk-data is expanding to 20Gi (capacity 5Gi)"]
    done = day2({"storage": "20Gi"}, existing(), pvc("vm-disk-data", "20Gi"))
    assert list(done.resources) == ["datavolume"]
    assert done.waiting == []
    assert done.status["size"] == "20Gi"


def test_the_job_that_grew_the_disk_stays_without_its_rights() -> None:
    growing = day2({"storage": "20Gi"}, existing(), pvc("vm-disk-data", "5Gi"))
    (key,) = [k for k in growing.resources if len(k) == 13 and k.startswith("resize-")]
    job = copy.deepcopy(growing.resources[key].body)
    observed = {"datavolume": existing(), key: job}
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    kept = compose(
        {"storage": "20Gi"}, observed=observed, required={"pvc": [pvc("vm-disk-data", "20Gi")]}
    )
    assert sorted(kept.resources) == ["datavolume", key]
    assert kept.resources[key].body == growing.resources[key].body
    assert kept.resources[key].ready
    assert kept.waiting == []
    # An unfinished Job is not kept once the PVC has its size: nothing would run it.
    job["status"] = {}
    dropped = compose(
        {"storage": "20Gi"}, observed=observed, required={"pvc": [pvc("vm-disk-data", "20Gi")]}
    )
    assert list(dropped.resources) == ["datavolume"]


@pytest.mark.parametrize(
    ("created", "volume", "message"),
    [
        (
            existing(phase="ImportInProgress"),
            pvc("vm-disk-data", "5Gi"),
            "growing to 20Gi waits until DataVolume vm-disk-data is populated",
        ),
        (
            existing(),
            pvc("vm-disk-data", "5Gi", phase="Pending"),
            "growing to 20Gi waits for PVC vm-disk-data to be bound",
        ),
        (existing(), None, "growing to 20Gi waits for PVC vm-disk-data to be bound"),
    ],
)
def test_growth_waits_for_cdi(created: dict[str, Any], volume: Any, message: str) -> None:
    out = day2({"storage": "20Gi"}, created, volume)
    assert message in out.waiting
    assert not [k for k in out.resources if k.startswith("resize")]


def test_a_failed_resize_job_is_reported() -> None:
    first = day2({"storage": "20Gi"}, existing(), pvc("vm-disk-data", "5Gi"))
    (job_key,) = [k for k in first.resources if len(k) == 13 and k.startswith("resize-")]
    job = copy.deepcopy(first.resources[job_key].body)
    job["status"] = {
        "conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]
    }
    out = compose(
        {"storage": "20Gi"},
        observed={"datavolume": existing(), job_key: job},
        required={"pvc": [pvc("vm-disk-data", "5Gi")]},
    )
    assert out.waiting == [
        f"Job vm-disk-data-{job_key} could not grow PVC vm-disk-data to 20Gi: "
        "BackoffLimitExceeded; see its logs"
    ]
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert readiness.job_succeeded(job)


@pytest.mark.parametrize(
    ("spec", "status", "message"),
    [
        (
            {"source": {"upload": {}}},
            {"phase": "UploadReady"},
            "DataVolume vm-disk-data waits for an upload (UploadReady): run virtctl "
            "image-upload dv vm-disk-data -n tenant-dev --image-path=<image file>",
        ),
        (
            {},
            {"phase": "WaitForFirstConsumer"},
            "DataVolume vm-disk-data waits for its first consumer (WaitForFirstConsumer): "
            "StorageClass replicated binds volumes where a pod first uses them; attach the "
            "disk to a VirtualMachine",
        ),
        (
            {"source": {"http": {"url": "https://example.org/a.img"}}},
            {
                "phase": "ImportInProgress",
                "progress": "42.0%",
                "conditions": [{"type": "Running", "status": "True", "message": "Import Running"}],
            },
            "DataVolume vm-disk-data: ImportInProgress (42.0%, Import Running)",
        ),
    ],
)
def test_waiting_messages(spec: dict[str, Any], status: dict[str, Any], message: str) -> None:
    created = existing(spec)
    created["status"] = status
    out = day2(spec, created, pvc("vm-disk-data", "5Gi"))
    assert out.waiting == [message]
    assert not out.resources["datavolume"].ready


def test_readiness_follows_the_datavolume_phase() -> None:
    assert readiness.data_volume_succeeded({"status": {"phase": "Succeeded"}})
    for phase in ("", "Pending", "ImportInProgress", "UploadReady", "Failed"):
        assert not readiness.data_volume_succeeded({"status": {"phase": phase}})


def test_names_fit_at_the_longest_claim_name() -> None:
    name = "d" * VMDISK.name_max_length
    out = compose(
        {"storage": "6Gi"},
        name=name,
        observed={"datavolume": existing()},
        required={"pvc": [pvc(f"vm-disk-{name}", "5Gi")]},
    )
    names = [d.body["metadata"]["name"] for d in out.resources.values()]
    assert any("-resize-" in n for n in names)
    assert all(len(n) <= 63 for n in names), names


def claim(name: str = "data", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "VMDisk",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def test_the_xrd_refuses_what_the_function_refuses(catalog: Catalog) -> None:
    old, new = claim(storageClass="replicated"), claim(storageClass="local")
    assert any("storageClass is immutable" in e for e in catalog.validate(new, old=old))
    assert catalog.validate(old, old=old) == []
    two = claim(source={"upload": {}, "image": {"name": "debian-12"}})
    assert any("at most one of image" in e for e in catalog.validate(two))
    assert any(
        "is not one of" in e for e in catalog.validate(claim(source={"image": {"name": "x"}}))
    )
    assert catalog.validate(claim("d" * VMDISK.name_max_length)) == []
    assert catalog.validate(claim("d" * (VMDISK.name_max_length + 1))) != []
