"""examples/gitops: a claim repository as a platform team keeps it, for Flux."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from functions.render import load
from tests.conftest import ALL_EXAMPLES, GITOPS, Example, render_example
from tests.support.schemas import Catalog

Object = dict[str, Any]
DOCUMENTS = [(p, d) for p in sorted(GITOPS.rglob("*.yaml")) for d in load(p)]
FLUX_KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
TENANT_DIRS = sorted(p for p in (GITOPS / "tenants").iterdir() if p.is_dir())
GITOPS_EXAMPLES = [e for e in ALL_EXAMPLES if e.path.is_relative_to(GITOPS)]


def kustomizations() -> list[Object]:
    return [d for _, d in DOCUMENTS if (d["apiVersion"], d["kind"]) == FLUX_KUSTOMIZATION]


def test_every_document_is_a_claim_or_a_flux_object() -> None:
    for path, doc in DOCUMENTS:
        group = doc["apiVersion"].split("/")[0]
        assert group in {
            "cozyplane.io",
            "kustomize.toolkit.fluxcd.io",
            "source.toolkit.fluxcd.io",
        }, path


def test_claims_carry_no_namespace() -> None:
    for path, doc in DOCUMENTS:
        if doc["apiVersion"].startswith("cozyplane.io/"):
            assert "namespace" not in doc["metadata"], f"{path}: the Kustomization sets it"


def test_each_tenant_folder_is_applied_once_into_its_namespace_as_its_account() -> None:
    sources = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for _, d in DOCUMENTS
        if d["kind"] == "GitRepository"
    }
    applied: dict[str, Object] = {}
    for k in kustomizations():
        spec = k["spec"]
        ref = spec["sourceRef"]
        assert (ref.get("namespace", k["metadata"]["namespace"]), ref["name"]) in sources
        path = (GITOPS / spec["path"]).resolve()
        assert path.is_dir(), spec["path"]
        if path.parent == (GITOPS / "tenants").resolve():
            assert path.name not in applied, f"{path.name} is applied twice"
            applied[path.name] = k
            namespace = f"tenant-{path.name}"
            assert spec["targetNamespace"] == k["metadata"]["namespace"] == namespace
            assert spec["serviceAccountName"] == namespace
            assert spec["prune"] is True
    assert sorted(applied) == [d.name for d in TENANT_DIRS]


def test_every_tenant_folder_has_a_tenant_composing_its_namespace() -> None:
    namespaces = {
        o["metadata"]["name"]
        for e in GITOPS_EXAMPLES
        for o in render_example(e).resources
        if o["kind"] == "Namespace"
    }
    for folder in TENANT_DIRS:
        if folder.name != "root":
            assert f"tenant-{folder.name}" in namespaces


def test_syncs_of_child_tenants_wait_for_the_parent() -> None:
    syncs = {k["metadata"]["name"]: k for k in kustomizations()}
    assert syncs["tenant-root"]["spec"]["wait"] is True
    assert syncs["tenant-syncs"]["spec"]["dependsOn"] == [
        {"name": "tenant-root", "namespace": "tenant-root"}
    ]
    child_syncs = load(GITOPS / "tenant-syncs")
    assert {k["metadata"]["namespace"] for k in child_syncs} == {
        f"tenant-{d.name}" for d in TENANT_DIRS
    } - {"tenant-root"}


@pytest.mark.parametrize("example", GITOPS_EXAMPLES, ids=lambda e: e.id)
def test_claims_validate_and_render(example: Example, catalog: Catalog) -> None:
    assert catalog.validate(example.claim()) == []
    rendered = render_example(example)
    assert rendered.resources
    assert [e for o in rendered.resources for e in catalog.validate(o)] == []


def test_gitops_examples_cover_every_claim_file() -> None:
    claim_files = {p for p, d in DOCUMENTS if d["apiVersion"].startswith("cozyplane.io/")}
    assert claim_files == {Path(e.path) for e in GITOPS_EXAMPLES}
