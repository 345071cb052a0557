"""`cozyplane render`: the main job, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from functions.api.kinds import POSTGRES
from functions.api.manifests import composition
from functions.cli import main
from tests.conftest import ENVIRONMENT, EXAMPLES

RESOURCE_NAME = "crossplane.io/composition-resource-name"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_render_prints_composed_objects_in_stable_order() -> None:
    code, out, _ = run(
        "render", str(EXAMPLES / "postgres-full.yaml"), "--required", str(ENVIRONMENT)
    )
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    keys = [d["metadata"]["annotations"][RESOURCE_NAME] for d in docs]
    assert keys == sorted(keys)
    assert "cluster" in keys


def test_include_xr_puts_the_composite_first_with_status() -> None:
    code, out, _ = run(
        "render",
        str(EXAMPLES / "tenant-nested.yaml"),
        "--required",
        str(ENVIRONMENT),
        "--include-xr",
    )
    assert code == 0
    xr = next(yaml.safe_load_all(out))
    assert xr["kind"] == "XTenant"
    assert xr["status"]["namespace"] == "tenant-dev"
    assert {c["type"] for c in xr["status"]["conditions"]} == {"Ready", "Available"}


def test_json_output() -> None:
    code, out, _ = run("render", str(EXAMPLES / "postgres-minimal.yaml"), "-o", "json")
    assert code == 0
    (cluster,) = json.loads(out)
    assert cluster["kind"] == "Cluster"
    assert cluster["spec"]["instances"] == 2


def test_observed_state_previews_an_update(tmp_path: Path) -> None:
    code, out, _ = run(
        "render", str(EXAMPLES / "postgres-full.yaml"), "--required", str(ENVIRONMENT)
    )
    assert code == 0
    observed = tmp_path / "observed.yaml"
    observed.write_text(out)
    first = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out)}
    code, again, _ = run(
        "render",
        str(EXAMPLES / "postgres-full.yaml"),
        "--required",
        str(ENVIRONMENT),
        "--observed",
        str(observed),
    )
    assert code == 0
    second = {d["metadata"]["name"]: d for d in yaml.safe_load_all(again)}
    # Generated passwords are read back from the observed Secrets, not made anew.
    assert (
        second["postgres-orders-user-reporting"]["data"]
        == first["postgres-orders-user-reporting"]["data"]
    )


def test_fatal_results_exit_non_zero_with_the_message_on_stderr(tmp_path: Path) -> None:
    claim = tmp_path / "bad.yaml"
    claim.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "cozyplane.io/v1alpha1",
                "kind": "Postgres",
                "metadata": {"name": "x", "namespace": "tenant-dev"},
                "spec": {"users": {"postgres": {}}},
            }
        )
    )
    code, out, err = run("render", str(claim))
    assert code == 1
    assert out == ""
    assert "users.postgres is forbidden" in err


def test_a_file_must_hold_one_claim(tmp_path: Path) -> None:
    two = tmp_path / "two.yaml"
    two.write_text(
        (EXAMPLES / "postgres-minimal.yaml").read_text()
        + "---\n"
        + (EXAMPLES / "postgres-minimal.yaml").read_text()
    )
    code, _, err = run("render", str(two))
    assert code == 1
    assert "exactly one claim" in err


def test_foreign_objects_are_refused(tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, _, err = run("render", str(cm))
    assert code == 1
    assert "not a cozyplane claim or composite: v1/ConfigMap" in err


def test_a_composite_renders_like_its_claim(tmp_path: Path) -> None:
    code, out, _ = run("render", str(EXAMPLES / "postgres-minimal.yaml"), "--include-xr")
    xr = next(yaml.safe_load_all(out))
    xr.pop("status")
    path = tmp_path / "xr.yaml"
    path.write_text(yaml.safe_dump(xr))
    code2, out2, _ = run("render", str(path))
    assert code == code2 == 0
    assert list(yaml.safe_load_all(out))[1:] == list(yaml.safe_load_all(out2))


def test_custom_composition_input(tmp_path: Path) -> None:
    comp = composition(POSTGRES)
    comp["spec"]["pipeline"][0]["input"]["cpuAllocationRatio"] = 2
    path = tmp_path / "composition.yaml"
    path.write_text(yaml.safe_dump(comp))
    code, out, _ = run(
        "render", str(EXAMPLES / "postgres-minimal.yaml"), "--composition", str(path)
    )
    assert code == 0
    (cluster,) = yaml.safe_load_all(out)
    assert cluster["spec"]["resources"]["requests"]["cpu"] == "0.25"


def test_namespace_flag_places_a_claim_without_one() -> None:
    claim = EXAMPLES / "gitops" / "tenants" / "dev" / "orders-db.yaml"
    code, _, err = run("render", str(claim))
    assert code == 1
    assert "needs metadata.name and metadata.namespace" in err
    code, out, _ = run("render", str(claim), "-n", "tenant-dev")
    assert code == 0
    assert all(d["metadata"]["namespace"] == "tenant-dev" for d in yaml.safe_load_all(out))
    code, _, err = run("render", str(EXAMPLES / "postgres-minimal.yaml"), "-n", "tenant-other")
    assert code == 1
    assert "is in namespace tenant-dev, not tenant-other" in err
