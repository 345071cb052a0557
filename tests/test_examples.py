"""Every example claim: rendered through the real function, golden, and schema-valid."""

from __future__ import annotations

import os

import pytest
import yaml

from functions.render import load
from tests.conftest import (
    ALL_EXAMPLES,
    CLAIMS,
    ENVIRONMENT,
    EXAMPLES,
    ROOT,
    Example,
    render_example,
)
from tests.support.schemas import Catalog

GOLDEN = ROOT / "tests" / "golden"


def _dump(docs: list[dict[str, object]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=True, explicit_start=True)


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda e: e.id)
def test_golden(example: Example) -> None:
    rendered = render_example(example)
    text = _dump([rendered.composite, *rendered.resources])
    golden = GOLDEN / f"{example.id}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no golden file for {example.id}: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"render of {example.id} differs from {golden}"


def test_no_stale_golden_files() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(e.id for e in ALL_EXAMPLES)


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda e: e.id)
def test_every_composed_object_is_valid_upstream(example: Example, catalog: Catalog) -> None:
    rendered = render_example(example)
    assert rendered.resources
    errors = [
        e
        for obj in [example.claim(), rendered.composite, *rendered.resources]
        for e in catalog.validate(obj)
    ]
    assert errors == []


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda e: e.id)
def test_scope_of_composed_objects(example: Example, catalog: Catalog) -> None:
    for obj in render_example(example).resources:
        has_namespace = "namespace" in obj["metadata"]
        assert has_namespace is catalog.namespaced(obj), f"{obj['kind']} {obj['metadata']['name']}"


def test_day2_examples_are_settled() -> None:
    """Observed examples hold healthy operator status: the claim renders Ready, nothing pending."""
    for example in (e for e in ALL_EXAMPLES if e.observed):
        rendered = render_example(example)
        conditions = {c["type"]: c["status"] for c in rendered.composite["status"]["conditions"]}
        assert conditions == {"Ready": "True", "Available": "True"}, example.id


def test_environment_matches_what_tenants_compose() -> None:
    """Each non-root namespace in examples/environment is what some example Tenant composes."""
    composed = {
        o["metadata"]["name"]: o
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
        if o["kind"] == "Namespace"
    }
    for fixture in load(ENVIRONMENT):
        name = fixture["metadata"]["name"]
        if fixture["kind"] != "Namespace" or name == "tenant-root":
            continue
        labels = {
            k: v
            for k, v in composed[name]["metadata"]["labels"].items()
            if not k.startswith("crossplane.io/")
        }
        assert labels == fixture["metadata"]["labels"], name


def test_examples_cover_every_kind_minimal_and_full() -> None:
    names = {p.name for p in CLAIMS}
    assert {"tenant-root.yaml", "tenant-nested.yaml", "tenant-modules.yaml"} <= names
    for stem in (
        "postgres",
        "kubernetes",
        "mariadb",
        "redis",
        "rabbitmq",
        "httpcache",
        "vpn",
        "vmdisk",
        "virtualmachine",
    ):
        assert {f"{stem}-minimal.yaml", f"{stem}-full.yaml"} <= names, stem
    assert (EXAMPLES / "observed" / "postgres-full").is_dir()
