"""Tenant namespace naming and lineage, exactly as Cozystack computes them (reference §6.2)."""

from __future__ import annotations

import pytest

from functions.domain import access, naming


@pytest.mark.parametrize(
    ("parent", "name", "namespace"),
    [
        ("tenant-root", "root", "tenant-root"),
        ("tenant-root", "dev", "tenant-dev"),
        ("tenant-dev", "team", "tenant-dev-team"),
        ("tenant-dev-team", "root", "tenant-dev-team-root"),
    ],
)
def test_tenant_namespace(parent: str, name: str, namespace: str) -> None:
    assert naming.tenant_namespace(parent, name) == namespace


@pytest.mark.parametrize(
    ("namespace", "chain"),
    [
        ("tenant-root", ["tenant-root"]),
        ("tenant-dev", ["tenant-root", "tenant-dev"]),
        (
            "tenant-dev-team-a1",
            ["tenant-root", "tenant-dev", "tenant-dev-team", "tenant-dev-team-a1"],
        ),
    ],
)
def test_lineage_runs_from_the_root(namespace: str, chain: list[str]) -> None:
    assert naming.lineage(namespace) == chain


def test_level_subjects_include_every_ancestor_and_stronger_levels() -> None:
    subjects = access.level_subjects("tenant-dev", "admin")
    groups = [s["name"] for s in subjects if s["kind"] == "Group"]
    assert groups == [
        "tenant-root-admin",
        "tenant-root-super-admin",
        "tenant-dev-admin",
        "tenant-dev-super-admin",
    ]
    accounts = [(s["namespace"], s["name"]) for s in subjects if s["kind"] == "ServiceAccount"]
    assert accounts == [("tenant-root", "tenant-root"), ("tenant-dev", "tenant-dev")]


def test_view_binding_lists_all_four_levels() -> None:
    groups = [
        s["name"] for s in access.level_subjects("tenant-root", "view") if s["kind"] == "Group"
    ]
    assert groups == [f"tenant-root-{lvl}" for lvl in access.LEVELS]
