"""The API models, the XRDs generated from them, and the rules both enforce."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import cel
import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.api import kubernetes, manifests, mariadb, postgres, rabbitmq, rules, tenant, vpn
from functions.api.common import MODEL_CHECKED, Keys
from functions.api.kinds import KINDS, POSTGRES, TENANT, Kind
from functions.cli import main
from functions.services.postgres import IMAGES
from tests.conftest import CLAIMS, ROOT
from tests.support import fuzz
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


# --- map keys: a CEL rule in the XRD, the same check in the model --------------------------

KEY_RULES = {
    "Tenant": tenant.QUOTA_KEYS,
    "Postgres": postgres.USER_KEYS,
    "MariaDB": mariadb.DATABASE_KEYS,
    "RabbitMQ": rabbitmq.VHOST_KEYS,
    "Kubernetes": kubernetes.NODE_GROUP_KEYS,
    "VPN": vpn.USER_KEYS,
}
ALL_KEY_RULES = (
    *KEY_RULES.values(),
    postgres.DATABASE_KEYS,
    mariadb.USER_KEYS,
    rabbitmq.USER_KEYS,
)


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("Tenant", "Bad Key"),
        ("Tenant", "cpu\n"),
        ("Postgres", "Bad-Name"),
        ("MariaDB", "x-y"),
        ("RabbitMQ", "v" * 51),
        ("RabbitMQ", "my/vhost"),
        ("Kubernetes", "Bad_Name"),
        ("Kubernetes", "g" * 41),
        ("VPN", "alice smith"),
        ("VPN", "u" * 254),
    ],
)
def test_bad_map_keys_are_refused_by_the_xrd_and_the_model(
    kind: str, key: str, catalog: Catalog
) -> None:
    keys = KEY_RULES[kind]
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "tenant-dev"},
        "spec": {keys.field: {key: "1" if kind == "Tenant" else {}}},
    }
    errors = catalog.validate(claim)
    assert any(keys.message in e for e in errors), errors
    spec_model = next(k.spec for k in KINDS if k.claim == kind)
    with pytest.raises(ValidationError, match=re.escape(keys.message)):
        spec_model.model_validate(claim["spec"])


@pytest.mark.parametrize("keys", ALL_KEY_RULES, ids=lambda k: k.message.split(" must")[0])
@settings(max_examples=300, deadline=None)
@given(
    key=st.text(alphabet="abz019-_./AZ\n é", max_size=45)
    | st.from_regex(r"[a-z][a-z0-9_-]{0,44}", fullmatch=True)
)
def test_the_model_checks_keys_as_the_xrds_cel_rule_does(keys: Keys, key: str) -> None:
    """Python's re and CEL's RE2 agree on every key rule, so skipping the rule in the
    function refuses nothing the API server accepts and accepts nothing it refuses."""
    program = cel.compile(keys.rule()["rule"])
    by_cel = program.execute({"self": {keys.field: {key: 1}}})
    try:
        keys(key)
        by_model = True
    except ValueError:
        by_model = False
    assert by_model is by_cel, key
    assert keys.rule()["rule"] in MODEL_CHECKED


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.claim)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_rules_read_only_the_fields_they_name(kind: Kind, data: st.DataObject) -> None:
    """A rule group evaluated on the fields its rules name answers as on all of `self`."""
    try:
        spec = kind.spec.model_validate(data.draw(fuzz.specs(kind)))
    except ValidationError:
        reject()
    document = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    for group in rules._groups(kind.spec):
        for _, value in rules._targets(document, group.path, "spec"):
            try:
                whole = group.program.execute({"self": value})
            except (KeyError, ValueError, TypeError, RuntimeError) as err:
                whole = type(err)
            try:
                pruned = group.program.execute({"self": group.self_of(value)})
            except (KeyError, ValueError, TypeError, RuntimeError) as err:
                pruned = type(err)
            assert pruned == whole, (group.path, group.reads)


def test_rule_fields_are_read_from_the_sources() -> None:
    def reads(*sources: str) -> rules.Reads | None:
        return rules._reads(tuple(rules.Rule((), src, "", None) for src in sources))

    assert reads("self.a == 1 || has(self.b.c)", "self.d.all(x, x != '')") == {
        "a": None,
        "b": {"c": None},
        "d": None,
    }
    assert reads("self.a.b.startsWith('x')", "self.a.c[0] == self . e . f") == {
        "a": {"b": None, "c": None},
        "e": {"f": None},
    }
    assert reads("has(self.a.b)", "self.a == {}") == {"a": None}
    assert reads("self.a == {}", "has(self.a.b)") == {"a": None}
    assert reads("self.a == 1", "self.all(k, k != 'x')") is None
    assert reads("size(self) < 3") is None
    assert reads("self.size() < 3") is None
    (group,) = (g for g in rules._groups(kubernetes.KubernetesSpec) if g.path == ("oidc",))
    assert group.reads == {
        "mode": None,
        "customConfig": {"config": None, "secretRef": {"name": None}},
    }
    (root,) = (g for g in rules._groups(kubernetes.KubernetesSpec) if g.path == ())
    assert root.self_of({"version": "v1.33", "controlPlane": {"replicas": 2, "apiServer": {}}}) == {
        "version": "v1.33",
        "controlPlane": {"apiServer": {}},
    }
