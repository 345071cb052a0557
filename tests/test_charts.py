"""The tenant-bootstrap chart: lint, and what Flux renders from the values cozyplane composes."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.services.kubernetes.addons import merge
from tests.conftest import EXAMPLES, render_example
from tests.support import crank
from tests.support.schemas import Catalog

CHART = Path(__file__).resolve().parent.parent / "package" / "charts" / "cozyplane-tenant-bootstrap"


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(crank.tool("helm")), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def set_path(values: dict[str, Any], dotted: str, value: str) -> dict[str, Any]:
    for key in reversed(dotted.split(".")):
        value = {key: value}  # type: ignore[assignment]
    merged: dict[str, Any] = merge(values, value)
    return merged


def flux_values(example: Path) -> dict[str, Any]:
    """The values Flux passes to the chart: spec.values, then each valuesFrom in order."""
    objects = render_example(example).resources
    release = next(o for o in objects if o["metadata"]["name"].endswith("-tenant-bootstrap"))
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    values: dict[str, Any] = release["spec"].get("values", {})
    for ref in release["spec"].get("valuesFrom", []):
        data = secrets[ref["name"]]["data"][ref["valuesKey"]]
        values = set_path(values, ref["targetPath"], base64.b64decode(data).decode())
    return values


def template(values: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "values.yaml"
    file.write_text(json.dumps(values))
    return helm("template", "bootstrap", CHART, "--namespace", "kube-system", "-f", file)


def test_lint() -> None:
    result = helm("lint", "--strict", CHART)
    assert result.returncode == 0, result.stdout + result.stderr


def test_talos_cluster_gets_its_token_discovery_rbac_and_oidc_users(
    tmp_path: Path, catalog: Catalog
) -> None:
    values = flux_values(EXAMPLES / "kubernetes-full.yaml")
    result = template(values, tmp_path)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        assert catalog.validate(doc) == []
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    token_id = values["bootstrapToken"]["id"]
    secret = by_kind[("Secret", f"bootstrap-token-{token_id}")]
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["stringData"]["token-secret"] == values["bootstrapToken"]["secret"]
    assert ("RoleBinding", "talos:node-apiserver-endpoint-discovery") in by_kind
    bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert {(b["subjects"][0]["name"], b["roleRef"]["name"]) for b in bindings} == {
        ("alice@example.org", "cluster-admin"),
        ("bob@example.org", "view"),
    }


def test_without_a_token_only_oidc_users_are_bound(tmp_path: Path) -> None:
    # kubeadm clusters get no token from cozyplane (Cluster API's kubeadm provider makes one).
    objects = render_example(EXAMPLES / "kubernetes-kubeadm.yaml").resources
    assert not any(o["metadata"]["name"].endswith("-tenant-bootstrap") for o in objects)
    result = template({"oidcUsers": [{"email": "a@example.org", "role": "view"}]}, tmp_path)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in docs] == ["ClusterRoleBinding"]
    assert docs[0]["metadata"]["annotations"] == {"cozyplane.io/oidc-user": "a@example.org"}


@pytest.mark.parametrize(
    "values",
    [
        {"bootstrapToken": {"id": "TOOLONG1", "secret": "0123456789abcdef"}},
        {"oidcUsers": [{"email": "a@b.c", "role": "owner"}]},
        {"unknown": True},
    ],
)
def test_the_values_schema_rejects_bad_values(values: dict[str, Any], tmp_path: Path) -> None:
    result = template(values, tmp_path)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
