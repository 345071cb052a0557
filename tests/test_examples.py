"""Every example claim: rendered through the real function, golden, and schema-valid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from functions.render import load
from tests.conftest import CLAIMS, ENVIRONMENT, ROOT, RenderFn
from tests.support.schemas import Catalog

GOLDEN = ROOT / "tests" / "golden"


def _dump(docs: list[dict[str, object]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=True, explicit_start=True)


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.name)
def test_golden(path: Path, render_example: RenderFn) -> None:
    rendered = render_example(path)
    text = _dump([rendered.composite, *rendered.resources])
    golden = GOLDEN / path.name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no golden file for {path.name}: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"render of {path.name} differs from {golden}"


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.name)
def test_every_composed_object_is_valid_upstream(
    path: Path, render_example: RenderFn, catalog: Catalog
) -> None:
    rendered = render_example(path)
    assert rendered.resources
    errors = [e for obj in [rendered.composite, *rendered.resources] for e in catalog.validate(obj)]
    assert errors == []


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.name)
def test_scope_of_composed_objects(path: Path, render_example: RenderFn, catalog: Catalog) -> None:
    for obj in render_example(path).resources:
        has_namespace = "namespace" in obj["metadata"]
        assert has_namespace is catalog.namespaced(obj), f"{obj['kind']} {obj['metadata']['name']}"


def test_environment_matches_what_tenants_compose(render_example: RenderFn) -> None:
    """examples/environment/tenant-dev.yaml is the Namespace the dev Tenant composes."""
    (fixture,) = [d for d in load(ENVIRONMENT) if d["metadata"]["name"] == "tenant-dev"]
    composed = next(
        o
        for o in render_example(ROOT / "examples" / "tenant-nested.yaml").resources
        if o["kind"] == "Namespace"
    )
    labels = {
        k: v
        for k, v in composed["metadata"]["labels"].items()
        if not k.startswith("crossplane.io/")
    }
    assert labels == fixture["metadata"]["labels"]


def test_examples_cover_the_issue() -> None:
    names = {p.name for p in CLAIMS}
    assert {
        "tenant-root.yaml",
        "tenant-nested.yaml",
        "postgres-minimal.yaml",
        "postgres-full.yaml",
    } <= names
