"""The API models, the XRDs generated from them, and the rules both enforce."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cel
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from functions.api import manifests
from functions.api.kinds import KINDS, POSTGRES, TENANT
from functions.cli import main
from functions.services.postgres import IMAGES
from tests.conftest import CLAIMS, ROOT
from tests.support.schemas import Catalog, cel_rules, openapi_to_jsonschema


def test_generated_files_match_the_models() -> None:
    result = CliRunner().invoke(main, ["generate", "--check", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output


def test_xrds_command_writes_only_xrds(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["xrds", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert written == sorted(f"xrds/{k.plural}.yaml" for k in KINDS)


def test_drift_is_detected(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    xrd = tmp_path / "xrds" / "postgreses.yaml"
    xrd.write_text(xrd.read_text().replace("default: 2", "default: 3"))
    result = CliRunner().invoke(main, ["generate", "--check", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "xrds/postgreses.yaml" in result.output


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, prop in node.get("properties", {}).items():
        nodes += _walk(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            nodes += _walk(node[key], f"{path}[*]")
    return nodes


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.claim)
def test_xrd_shape(kind: Any) -> None:
    xrd = manifests.xrd(kind)
    spec = xrd["spec"]
    assert xrd["apiVersion"] == "apiextensions.crossplane.io/v1"
    assert spec["scope"] == "LegacyCluster"
    assert spec["claimNames"] == {"kind": kind.claim, "plural": kind.plural}
    assert spec["names"] == {"kind": f"X{kind.claim}", "plural": f"x{kind.plural}"}
    assert spec["defaultCompositionRef"] == {"name": xrd["metadata"]["name"]}
    (version,) = spec["versions"]
    assert version["referenceable"]
    assert version["served"]
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    # Crossplane appends SYNCED, READY and AGE to every claim and composite itself.
    assert not columns & {"SYNCED", "READY", "AGE"}
    assert columns


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.claim)
def test_xrd_schema_is_structural(kind: Any) -> None:
    root = manifests.xrd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root):
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{kind.claim}{path} has no type"
        assert node.get("additionalProperties") is not False, path
        assert not ({"$ref", "title", "const"} & node.keys()), path
        if "properties" in node:
            assert node.get("type") == "object", path
        for rule in node.get("x-kubernetes-validations", []):
            cel.compile(rule["rule"])
            assert rule["message"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.claim)
def test_defaults_pass_their_own_rules_as_the_api_server_checks_them(kind: Any) -> None:
    # kube-apiserver refuses a CRD whose default breaks the schema or a CEL rule, judging
    # the default as written: defaults nested inside it are not applied first.
    root = manifests.xrd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root):
        if "default" in node:
            validator = jsonschema.Draft7Validator(openapi_to_jsonschema(node))
            assert [e.message for e in validator.iter_errors(node["default"])] == [], path
            assert list(cel_rules(node, node["default"], path)) == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.claim)
def test_status_schema_has_no_defaults(kind: Any) -> None:
    status = manifests.xrd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]
    assert all("default" not in node for _, node in _walk(status))


def test_postgres_defaults_follow_cozystack() -> None:
    spec = manifests.xrd(POSTGRES)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    props = spec["properties"]
    assert props["replicas"]["default"] == 2
    assert props["resourcesPreset"]["default"] == "t1.micro"
    assert len(props["resourcesPreset"]["enum"]) == 47
    assert props["size"]["default"] == "10Gi"
    assert props["storageClass"]["default"] == ""
    assert props["version"]["enum"] == ["v18", "v17", "v16", "v15", "v14", "v13"]
    assert props["version"]["default"] == "v18"
    assert props["postgresql"]["properties"]["parameters"]["default"] == {"max_connections": 100}
    backup = props["backup"]["properties"]
    assert backup["retentionPolicy"]["default"] == "30d"
    assert (
        backup["s3CredentialsSecret"]["properties"]["accessKeyIDKey"]["default"]
        == "AWS_ACCESS_KEY_ID"
    )
    assert backup["endpointCA"]["properties"]["key"]["default"] == "ca.crt"
    assert props["storageClass"]["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "storageClass is immutable"}
    ]


def test_every_postgres_version_has_an_image() -> None:
    enum = manifests.xrd(POSTGRES)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]["properties"]["version"]["enum"]
    assert sorted(IMAGES) == sorted(enum)


def test_tenant_defaults_follow_cozystack() -> None:
    props = manifests.xrd(TENANT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]
    assert {k: props[k].get("default") for k in props} == {
        "host": "",
        "etcd": False,
        "monitoring": False,
        "ingress": False,
        "seaweedfs": False,
        "gateway": None,
        "schedulingClass": "",
        "resourceQuotas": {},
    }


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.name)
def test_example_claims_validate_against_their_xrd(path: Path, catalog: Catalog) -> None:
    claim = yaml.safe_load(path.read_text())
    assert catalog.validate(claim) == []


POSTGRES_CLAIM = {
    "apiVersion": "cozyplane.io/v1alpha1",
    "kind": "Postgres",
    "metadata": {"name": "db", "namespace": "tenant-dev"},
    "spec": {},
}


def _postgres(**spec: Any) -> dict[str, Any]:
    claim = copy.deepcopy(POSTGRES_CLAIM)
    claim["spec"] = spec
    return claim


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"users": {"postgres": {}}}, "users.postgres is forbidden"),
        ({"users": {"Bad-Name": {}}}, "users keys must be lower-case identifiers"),
        ({"databases": {"x-y": {}}}, "databases keys must be lower-case identifiers"),
        (
            {"postgresql": {"parameters": {"shared_preload_libraries": "x"}}},
            "may not set archive_command",
        ),
        (
            {"databases": {"app": {"roles": {"admin": ["ghost"]}}}},
            "may only name users defined in users",
        ),
        (
            {
                "version": "v13",
                "users": {"a": {}},
                "databases": {"d": {"roles": {"readonly": ["a"]}}},
            },
            "readonly roles need version v14",
        ),
        (
            {"quorum": {"minSyncReplicas": 2, "maxSyncReplicas": 1}},
            "at least quorum.minSyncReplicas",
        ),
        ({"replicas": 2, "quorum": {"maxSyncReplicas": 2}}, "lower than replicas"),
        ({"backup": {"enabled": True}}, "backup.enabled needs"),
        ({"backup": {"enabled": True, "s3AccessKey": "a"}}, "backup.enabled needs"),
        ({"bootstrap": {"enabled": True, "oldName": "x"}}, "bootstrap.enabled needs"),
        ({"bootstrap": {"enabled": True, "backup": {}}}, "Additional properties"),
        ({"replicas": 0}, "less than the minimum"),
        ({"version": "v19"}, "is not one of"),
        ({"resourcesPreset": "x1.huge"}, "is not one of"),
        ({"size": "ten"}, "does not match"),
        ({"bogus": 1}, "Additional properties"),
    ],
)
def test_bad_postgres_claims_are_refused_by_the_xrd(
    spec: dict[str, Any], message: str, catalog: Catalog
) -> None:
    errors = catalog.validate(_postgres(**spec))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("db", True),
        ("a" * 39, True),
        ("a" * 40, False),
        ("Db", False),
        ("-db", False),
        ("db-1", True),
    ],
)
def test_postgres_claim_names(name: str, ok: bool, catalog: Catalog) -> None:
    claim = _postgres()
    claim["metadata"]["name"] = name
    assert (catalog.validate(claim) == []) is ok


@pytest.mark.parametrize(
    ("name", "ok"), [("dev", True), ("dev2", True), ("dev-team", False), ("2dev", False)]
)
def test_tenant_claim_names(name: str, ok: bool, catalog: Catalog) -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "namespace": "tenant-root"},
        "spec": {},
    }
    assert (catalog.validate(claim) == []) is ok


def test_composite_names_are_not_held_to_claim_name_rules(catalog: Catalog) -> None:
    xr = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "XTenant",
        "metadata": {"name": "dev-x1b2c"},
        "spec": {},
    }
    assert catalog.validate(xr) == []


def test_storage_class_is_immutable(catalog: Catalog) -> None:
    old = _postgres(storageClass="replicated")
    new = _postgres(storageClass="local")
    errors = catalog.validate(new, old=old)
    assert any("storageClass is immutable" in e for e in errors), errors
    assert catalog.validate(old, old=old) == []


def test_tenant_quota_keys_are_resource_names(catalog: Catalog) -> None:
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "dev", "namespace": "tenant-root"},
        "spec": {"resourceQuotas": {"CPU!": 1}},
    }
    assert any("resourceQuotas keys" in e for e in catalog.validate(claim))
