"""MariaDB compose: server, tuned my.cnf, users, databases, grants, backups (§9)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import re
from typing import Any

import pytest

from functions.api.config import PlatformConfig
from functions.api.kinds import MARIADB
from functions.api.mariadb import MAX_GRANT_PAIR, MAX_IDENTIFIER, MariaDBSpec
from functions.api.rules import violations
from functions.domain.secrets import PasswordSource
from functions.services import mariadb
from functions.services.base import ComposeError, Outcome
from functions.services.mariadb import (
    MIB,
    Tuning,
    buffer_pool_bytes,
    duration_seconds,
    io_threads,
    key_buffer_bytes,
    log_file_bytes,
    max_connections,
    my_cnf,
    read_rnd_buffer_bytes,
    table_open_cache,
    thread_pool_size,
    tmp_table_bytes,
    tuning,
)
from tests.support.compose import context
from tests.support.schemas import Catalog

GIB = 1024 * MIB


def compose(
    spec: dict[str, Any] | None = None,
    name: str = "db",
    passwords: PasswordSource | None = None,
    **kw: Any,
) -> Outcome:
    ctx = context(name, "tenant-dev", **kw)
    if passwords is not None:
        ctx = dataclasses.replace(ctx, passwords=passwords)
    return mariadb.compose(MariaDBSpec.model_validate(spec or {}), ctx)


def other_passwords(length: int) -> str:
    """A generator unlike the tests' default one."""
    return "z" * length


def server(out: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = out.resources["mariadb"].body["spec"]
    return spec


def data(out: Outcome, key: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in out.resources[key].body["data"].items()}


def config(out: Outcome) -> dict[str, str]:
    """The [mysqld] settings of the composed my.cnf."""
    lines = out.resources["my-cnf"].body["data"]["config"].splitlines()
    assert lines[0] == "[mysqld]"
    return dict(line.split("=", 1) for line in lines[1:])


def ready(obj: dict[str, Any], status: str = "True", message: str = "") -> dict[str, Any]:
    """An observed copy of `obj` with the operator's Ready condition."""
    observed = copy.deepcopy(obj)
    observed["status"] = {"conditions": [{"type": "Ready", "status": status, "message": message}]}
    return observed


# --- the MariaDB object ---


def test_defaults() -> None:
    out = compose()
    assert list(out.resources) == ["my-cnf", "credentials", "mariadb"]
    body = out.resources["mariadb"].body
    assert body["apiVersion"] == "k8s.mariadb.com/v1alpha1"
    assert body["metadata"] == {"name": "mariadb-db", "namespace": "tenant-dev"}
    assert body["spec"] == {
        "rootPasswordSecretKeyRef": {"name": "mariadb-db-credentials", "key": "root"},
        "image": "mariadb:11.8.5",
        "port": 3306,
        "startupProbe": {"failureThreshold": 30},
        "replicas": 2,
        "replicasAllowEvenNumber": True,
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {
                            "matchExpressions": [
                                {
                                    "key": "app.kubernetes.io/name",
                                    "operator": "In",
                                    "values": ["mariadb"],
                                },
                                {
                                    "key": "app.kubernetes.io/instance",
                                    "operator": "In",
                                    "values": ["mariadb-db"],
                                },
                            ]
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "replication": {"enabled": True},
        "podMetadata": {"labels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
        "metrics": {
            "enabled": True,
            "exporter": {
                "image": "prom/mysqld-exporter:v0.15.1",
                "args": ["--web.listen-address=0.0.0.0:9104"],
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "300m", "memory": "512Mi"},
                },
                "port": 9104,
            },
            "serviceMonitor": {"interval": "10s", "scrapeTimeout": "10s"},
        },
        "myCnfConfigMapKeyRef": {"name": "mariadb-db-my-cnf", "key": "config"},
        "service": {"metadata": {"labels": {"app.kubernetes.io/instance": "mariadb-db"}}},
        "storage": {"size": "10Gi", "resizeInUseVolumes": True, "waitForVolumeResize": True},
        "resources": {
            "limits": {"cpu": "250m", "ephemeral-storage": "2Gi", "memory": "128Mi"},
            "requests": {"cpu": "0.025", "ephemeral-storage": "53687091", "memory": "134217728"},
        },
    }
    assert out.resources["my-cnf"].body["metadata"] == {
        "name": "mariadb-db-my-cnf",
        "namespace": "tenant-dev",
    }
    assert out.requirements == {}
    assert out.ready is None


@pytest.mark.parametrize(
    ("version", "image"),
    [
        ("v11.8", "mariadb:11.8.5"),
        ("v11.4", "mariadb:11.4.9"),
        ("v10.11", "mariadb:10.11.15"),
        ("v10.6", "mariadb:10.6.24"),
    ],
)
def test_versions(version: str, image: str) -> None:
    assert server(compose({"version": version}))["image"] == image


@pytest.mark.parametrize(("replicas", "replicated"), [(1, False), (2, True), (3, True)])
def test_more_than_one_replica_turns_on_replication(replicas: int, replicated: bool) -> None:
    out = compose({"replicas": replicas})
    spec = server(out)
    assert spec["replicas"] == replicas
    assert spec["replicasAllowEvenNumber"] is True
    assert ("replication" in spec) is replicated
    endpoints = out.status["endpoints"]
    assert endpoints["service"] == "mariadb-db.tenant-dev.svc:3306"
    assert bool(endpoints["primary"]) is replicated
    assert bool(endpoints["secondary"]) is replicated
    if replicated:
        assert spec["replication"] == {"enabled": True}
        assert endpoints["primary"] == "mariadb-db-primary.tenant-dev.svc:3306"
        assert endpoints["secondary"] == "mariadb-db-secondary.tenant-dev.svc:3306"


def test_resources_preset_and_overrides() -> None:
    out = compose({"resourcesPreset": "u1.large", "resources": {"memory": "10Gi"}})
    assert server(out)["resources"] == {
        "limits": {"cpu": "4", "ephemeral-storage": "2Gi", "memory": "10Gi"},
        "requests": {"cpu": "0.4", "ephemeral-storage": "53687091", "memory": "10737418240"},
    }
    assert config(out)["innodb_buffer_pool_size"] == "5120M"
    assert config(out)["innodb_read_io_threads"] == "4"


def test_platform_ratios_shape_requests_but_not_my_cnf() -> None:
    plain = compose()
    ratio = compose(config=PlatformConfig(cpu_allocation_ratio=5, memory_allocation_ratio=2))
    assert server(ratio)["resources"]["requests"]["cpu"] == "0.05"
    assert server(ratio)["resources"]["requests"]["memory"] == "67108864"
    assert config(ratio) == config(plain)


def test_size_and_storage_class() -> None:
    spec = server(compose({"size": "50Gi", "storageClass": "local"}))
    assert spec["storage"] == {
        "size": "50Gi",
        "resizeInUseVolumes": True,
        "waitForVolumeResize": True,
        "storageClassName": "local",
    }


def test_storage_may_grow_but_never_shrink() -> None:
    observed = {"mariadb": {"spec": {"storage": {"size": "20Gi"}}}}
    assert server(compose({"size": "30Gi"}, observed=observed))["storage"]["size"] == "30Gi"
    with pytest.raises(ComposeError, match=r"spec\.size: volumes cannot shrink from 20Gi to 10Gi"):
        compose({"size": "10Gi"}, observed=observed)


def test_storage_class_cannot_change() -> None:
    observed = {"mariadb": {"spec": {"storage": {"size": "10Gi", "storageClassName": "local"}}}}
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        compose({"storageClass": "replicated"}, observed=observed)
    with pytest.raises(ComposeError, match=r"spec\.storageClass"):
        compose({}, observed=observed)
    assert compose({"storageClass": "local"}, observed=observed).resources["mariadb"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"resources": {"memory": "0"}}, r"spec\.resources\.memory"),
        ({"resources": {"cpu": "0m"}}, r"spec\.resources\.cpu"),
        ({"size": "0Gi"}, r"spec\.size"),
    ],
)
def test_sizes_must_be_positive(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ComposeError, match=f"{field}: must be greater than zero"):
        compose(spec)


def test_compose_needs_a_claim() -> None:
    with pytest.raises(ComposeError, match="through a MariaDB claim"):
        compose(name="")


# --- external access ---

LB = {
    "type": "LoadBalancer",
    "externalTrafficPolicy": "Local",
    "allocateLoadBalancerNodePorts": False,
}


def test_external_with_one_replica_exposes_the_service() -> None:
    out = compose({"replicas": 1, "external": True})
    spec = server(out)
    assert spec["service"] == {
        "metadata": {"labels": {"app.kubernetes.io/instance": "mariadb-db"}},
        **LB,
    }
    assert "primaryService" not in spec
    requirement = out.requirements["external-service"]
    assert (requirement.kind, requirement.name, requirement.namespace) == (
        "Service",
        "mariadb-db",
        "tenant-dev",
    )
    assert "Service mariadb-db has no external address yet" in out.waiting
    assert out.ready is False


def test_external_with_replicas_exposes_the_primary() -> None:
    out = compose({"replicas": 3, "external": True})
    spec = server(out)
    assert spec["primaryService"] == LB
    assert "type" not in spec["service"]
    assert out.requirements["external-service"].name == "mariadb-db-primary"


@pytest.mark.parametrize("address", [{"ip": "192.0.2.7"}, {"hostname": "lb.example.org"}])
def test_external_address_in_status(address: dict[str, str]) -> None:
    service = {"status": {"loadBalancer": {"ingress": [address]}}}
    out = compose({"external": True}, required={"external-service": [service]})
    assert out.status["endpoints"]["external"] == f"{next(iter(address.values()))}:3306"
    assert not any("external address" in w for w in out.waiting)
    assert out.ready is None


def test_not_external_has_no_load_balancer() -> None:
    out = compose({"replicas": 1})
    assert "type" not in server(out)["service"]
    assert out.status["endpoints"]["external"] == ""


# --- users, passwords, databases and grants ---

USERS: dict[str, Any] = {
    "users": {
        "root": {"password": "r00t"},
        "app": {"password": "s3cret", "maxUserConnections": 100},
        "report_ro": {"maxUserConnections": 0},
    },
    "databases": {
        "shop": {"roles": {"admin": ["app"], "readonly": ["report_ro"]}},
        "audit_log": {"roles": {"readonly": ["app", "report_ro", "app"]}},
    },
}


def test_users_are_declared_except_root() -> None:
    out = compose(USERS)
    assert "user-root" not in out.resources
    user = out.resources["user-report-ro"].body
    assert user["metadata"] == {"name": "mariadb-db-report-ro", "namespace": "tenant-dev"}
    assert user["spec"] == {
        "name": "report_ro",
        "mariaDbRef": {"name": "mariadb-db"},
        "passwordSecretKeyRef": {"name": "mariadb-db-credentials", "key": "report_ro"},
        "maxUserConnections": 0,
        "cleanupPolicy": "Delete",
    }
    assert out.resources["user-app"].body["spec"]["maxUserConnections"] == 100


def test_credentials_hold_every_password_and_root() -> None:
    out = compose(USERS)
    secret = out.resources["credentials"].body
    assert secret["metadata"]["name"] == "mariadb-db-credentials"
    assert secret["metadata"]["labels"] == {"k8s.mariadb.com/watch": ""}
    passwords = data(out, "credentials")
    assert sorted(passwords) == ["app", "report_ro", "root"]
    assert (passwords["app"], passwords["root"]) == ("s3cret", "r00t")
    assert len(passwords["report_ro"]) == 16
    assert out.status["secrets"] == {"credentials": "mariadb-db-credentials"}


@pytest.mark.parametrize("spec", [{}, {"users": {"root": {}}}])
def test_root_password_is_generated_when_not_given(spec: dict[str, Any]) -> None:
    passwords = data(compose(spec, passwords=other_passwords), "credentials")
    assert passwords == {"root": "z" * 16}


def test_passwords_are_generated_once_and_reused_from_observed() -> None:
    spec = {"users": {"app": {"maxUserConnections": 5}}}
    first = compose(spec)
    observed = {"credentials": first.resources["credentials"].body}
    assert data(compose(spec, passwords=other_passwords), "credentials") == {
        "app": "z" * 16,
        "root": "z" * 16,
    }
    again = compose(spec, passwords=other_passwords, observed=observed)
    assert data(again, "credentials") == data(first, "credentials")
    given = compose(
        {"users": {"app": {"maxUserConnections": 5, "password": "new"}}},
        passwords=other_passwords,
        observed=observed,
    )
    assert data(given, "credentials") == {"app": "new", "root": data(first, "credentials")["root"]}


def test_a_removed_user_leaves_the_credentials_and_is_dropped() -> None:
    first = compose(USERS)
    observed = {"credentials": first.resources["credentials"].body}
    out = compose({"users": {"app": {"maxUserConnections": 1}}}, observed=observed)
    assert sorted(data(out, "credentials")) == ["app", "root"]
    assert "user-report-ro" not in out.resources
    assert data(out, "credentials")["root"] == "r00t"


def test_databases_never_drop_data() -> None:
    out = compose(USERS)
    db = out.resources["database-audit-log"].body
    assert db["metadata"]["name"] == "mariadb-db-audit-log"
    assert db["spec"] == {
        "name": "audit_log",
        "mariaDbRef": {"name": "mariadb-db"},
        "characterSet": "utf8",
        "collate": "utf8_general_ci",
        "cleanupPolicy": "Skip",
    }


def test_grants_per_role() -> None:
    out = compose(USERS)
    grants = {k: d.body for k, d in out.resources.items() if k.startswith("grant-")}
    assert sorted(grants) == [
        "grant-audit-log-app",
        "grant-audit-log-report-ro",
        "grant-shop-app",
        "grant-shop-report-ro",
    ]
    assert grants["grant-shop-app"]["metadata"]["name"] == "mariadb-db-shop-app"
    assert grants["grant-shop-app"]["spec"] == {
        "mariaDbRef": {"name": "mariadb-db"},
        "privileges": ["ALL"],
        "database": "shop",
        "table": "*",
        "username": "app",
        "grantOption": True,
        "cleanupPolicy": "Delete",
    }
    readonly = grants["grant-audit-log-report-ro"]
    assert readonly["metadata"]["name"] == "mariadb-db-audit-log-report-ro"
    assert (readonly["spec"]["privileges"], readonly["spec"]["database"]) == (
        ["SELECT"],
        "audit_log",
    )
    assert readonly["spec"]["username"] == "report_ro"


@pytest.mark.parametrize(
    ("databases", "message"),
    [
        (
            {"a_b": {"roles": {"admin": ["c"]}}, "a": {"roles": {"admin": ["b_c"]}}},
            r"spec\.databases\.a_b\.roles\.admin: c: its Grant would be named "
            r"mariadb-db-a-b-c, like the one of b_c on a",
        ),
        (
            {"mariadb_sys": {"roles": {"readonly": ["global_priv"]}}},
            r"global_priv: its Grant would be named mariadb-db-mariadb-sys-global-priv, "
            r"like the one of mariadb-operator",
        ),
    ],
)
def test_grant_names_must_not_collide(databases: dict[str, Any], message: str) -> None:
    users = {u: {"maxUserConnections": 1} for u in ("c", "b_c", "global_priv")}
    with pytest.raises(ComposeError, match=message):
        compose({"users": users, "databases": databases})


# --- validation rules (the XRD's CEL, evaluated by the function too) ---


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"users": {"repl": {"maxUserConnections": 1}}}, "reserved by mariadb-operator"),
        ({"users": {"metrics": {"maxUserConnections": 1}}}, "reserved by mariadb-operator"),
        ({"users": {"mariadb_sys": {"maxUserConnections": 1}}}, "reserved by mariadb-operator"),
        ({"users": {"app": {}}}, "maxUserConnections is required"),
        ({"users": {"root": {"maxUserConnections": 5}}}, "takes no maxUserConnections"),
        ({"databases": {"d": {"roles": {"admin": ["ghost"]}}}}, "only name users defined"),
        ({"databases": {"d": {"roles": {"readonly": ["root"]}}}}, "other than root"),
        (
            {
                "users": {"a": {"maxUserConnections": 1}},
                "databases": {"d": {"roles": {"admin": ["a"], "readonly": ["a"]}}},
            },
            "admin or readonly on a database, not both",
        ),
        (
            {
                "users": {"u" * 15: {"maxUserConnections": 1}},
                "databases": {"d" * 15: {"roles": {"admin": ["u" * 15]}}},
            },
            f"at most {MAX_GRANT_PAIR} characters together",
        ),
        ({"backup": {"enabled": True}}, "backup.enabled needs"),
        (
            {"backup": {"enabled": True, "s3Endpoint": "https://s3", "s3Bucket": "bkt"}},
            "backup.enabled needs",
        ),
        (
            {
                "backup": {
                    "s3AccessKey": "a",
                    "s3SecretKey": "b",
                    "s3CredentialsSecret": {"name": "s"},
                }
            },
            "not both",
        ),
        ({"backup": {"maxRetention": "0h"}}, "maxRetention must be longer than zero"),
        ({"backup": {"maxRetention": ""}}, "maxRetention must be longer than zero"),
        ({"backup": {"cleanupStrategy": "--keep-last=3"}}, "cleanupStrategy (restic flags)"),
        ({"backup": {"resticPassword": "x"}}, "resticPassword has no meaning here"),
    ],
)
def test_rules(spec: dict[str, Any], message: str) -> None:
    found = violations(MariaDBSpec.model_validate(spec))
    assert any(message in v for v in found), found


@pytest.mark.parametrize(
    "spec",
    [
        {},
        USERS,
        {"users": {"root": {}}},
        {
            "users": {"u" * 14: {"maxUserConnections": 1}},
            "databases": {"d" * 15: {"roles": {"admin": ["u" * 14]}}},
        },
        {
            "backup": {
                "enabled": True,
                "s3Endpoint": "http://minio.tenant-dev.svc:9000",
                "s3Bucket": "bkt",
                "s3AccessKey": "a",
                "s3SecretKey": "b",
            }
        },
    ],
)
def test_valid_specs_break_no_rule(spec: dict[str, Any]) -> None:
    assert violations(MariaDBSpec.model_validate(spec)) == []


CLAIM: dict[str, Any] = {
    "apiVersion": "cozyplane.io/v1alpha1",
    "kind": "MariaDB",
    "metadata": {"name": "db", "namespace": "tenant-dev"},
    "spec": {},
}


def _claim(name: str = "db", **spec: Any) -> dict[str, Any]:
    claim = copy.deepcopy(CLAIM)
    claim["metadata"]["name"] = name
    claim["spec"] = spec
    return claim


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"version": "v11.9"}, "is not one of"),
        ({"resourcesPreset": "x1.huge"}, "is not one of"),
        ({"replicas": 0}, "less than the minimum"),
        ({"size": "ten"}, "does not match"),
        ({"users": {"app": {"maxUserConnections": -1}}}, "less than the minimum"),
        ({"users": {"app": {}}}, "maxUserConnections is required"),
        ({"backup": {"schedule": "@daily"}}, "does not match"),
        ({"backup": {"schedule": "0 0 2 * * *"}}, "does not match"),
        ({"backup": {"maxRetention": "30d"}}, "does not match"),
        ({"backup": {"s3Endpoint": "s3.example.org"}}, "does not match"),
        ({"backup": {"s3Prefix": "/abs"}}, "does not match"),
        ({"backup": {"compression": "xz"}}, "is not one of"),
        ({"backup": {"s3Bucket": "host/bucket"}}, "s3Bucket is the bucket name alone"),
        ({"backup": {"cleanupStrategy": "--keep-last=3"}}, "has no meaning here"),
        ({"bogus": 1}, "Additional properties"),
    ],
)
def test_bad_claims_are_refused_by_the_xrd(
    spec: dict[str, Any], message: str, catalog: Catalog
) -> None:
    errors = catalog.validate(_claim(**spec))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("name", "ok"),
    [("db", True), ("a" * 24, True), ("a" * 25, False), ("Db", False), ("db-1", True)],
)
def test_claim_names(name: str, ok: bool, catalog: Catalog) -> None:
    assert (catalog.validate(_claim(name)) == []) is ok


def test_storage_class_is_immutable_in_the_xrd(catalog: Catalog) -> None:
    old = _claim(storageClass="replicated")
    assert catalog.validate(_claim(storageClass="local"), old=old)
    assert catalog.validate(_claim(storageClass="replicated"), old=old) == []


def test_names_fit_at_the_longest() -> None:
    """Claim name, identifiers and grant pairs at their bounds: every name is a DNS label."""
    name = "n" * MARIADB.name_max_length
    user = "u" * (MAX_GRANT_PAIR - 1)
    db = "d"
    lone = "l" * MAX_IDENTIFIER
    spec = {
        "replicas": 3,
        "external": True,
        "users": {user: {"maxUserConnections": 1}, lone: {"maxUserConnections": 1}},
        "databases": {db: {"roles": {"admin": [user]}}, "e" * MAX_IDENTIFIER: {}},
        "backup": {
            "enabled": True,
            "s3Endpoint": "https://s3.example.org",
            "s3Bucket": "bkt",
            "s3AccessKey": "a",
            "s3SecretKey": "b",
        },
    }
    assert violations(MariaDBSpec.model_validate(spec)) == []
    out = compose(spec, name=name)
    names = [d.body["metadata"]["name"] for d in out.resources.values()]
    release = f"mariadb-{name}"
    # What mariadb-operator derives from the MariaDB and the Backup.
    names += [
        f"{release}-{s}"
        for s in ("primary", "secondary", "internal", "metrics-password", "mariadb-sys-global-priv")
    ]
    assert max(len(n) for n in names) == 63
    assert all(len(n) <= 63 for n in names), [n for n in names if len(n) > 63]


# --- my.cnf ---


@pytest.mark.parametrize(
    ("memory", "pool"),
    [
        (10 * MIB, 8 * MIB),  # half is below the 8 MiB floor
        (16 * MIB, 8 * MIB),
        (128 * MIB, 64 * MIB),
        (255 * MIB, 255 * MIB // 2),  # below one chunk: not rounded
        (256 * MIB, 128 * MIB),
        (300 * MIB, 128 * MIB),  # 150 MiB rounds down to one chunk
        (511 * MIB, 128 * MIB),
        (512 * MIB, 256 * MIB),
        (6 * GIB, 3 * GIB),
        (256 * GIB, 128 * GIB),  # no cap
    ],
)
def test_buffer_pool(memory: int, pool: int) -> None:
    assert buffer_pool_bytes(memory) == pool


@pytest.mark.parametrize(
    ("pool", "volume", "log"),
    [
        (64 * MIB, 10 * GIB, 96 * MIB),  # floor
        (16 * GIB, 10 * GIB, 512 * MIB),  # 5% of the volume
        (256 * MIB, 10 * GIB, 256 * MIB),  # the pool
        (16 * GIB, 4 * GIB, 4 * GIB // 20),  # 204.8 MiB, kept in bytes
        (16 * GIB, 500 * GIB, 4096 * MIB),  # cap
        (8 * GIB, 1920 * MIB, 96 * MIB),
    ],
)
def test_log_file(pool: int, volume: int, log: int) -> None:
    assert log_file_bytes(pool, volume) == log


@pytest.mark.parametrize(
    ("function", "memory", "expected"),
    [
        (key_buffer_bytes, 128 * MIB, 8 * MIB),
        (key_buffer_bytes, 320 * MIB, 10 * MIB),
        (key_buffer_bytes, 4 * GIB, 128 * MIB),
        (key_buffer_bytes, 8 * GIB, 128 * MIB),
        (max_connections, 128 * MIB, 151),
        (max_connections, 604 * MIB, 151),
        (max_connections, 608 * MIB, 152),
        (max_connections, 16 * GIB, 4096),
        (max_connections, 32 * GIB, 4096),
        (max_connections, 1000 * 1000 * 1000, 238),  # 953 MiB: integer MiB first
        (tmp_table_bytes, 128 * MIB, 16 * MIB),
        (tmp_table_bytes, 1 * GIB, 32 * MIB),
        (tmp_table_bytes, 16 * GIB, 512 * MIB),
        (tmp_table_bytes, 32 * GIB, 512 * MIB),
        (read_rnd_buffer_bytes, 32 * MIB, 256 * 1024),
        (read_rnd_buffer_bytes, 128 * MIB, 512 * 1024),
        (read_rnd_buffer_bytes, 4 * GIB, 16 * MIB),
        (read_rnd_buffer_bytes, 8 * GIB, 16 * MIB),
        (table_open_cache, 128 * MIB, 2000),
        (table_open_cache, 500 * MIB, 2000),
        (table_open_cache, 501 * MIB, 2004),
        (table_open_cache, 10178 * MIB, 40712),
        (table_open_cache, 10179 * MIB, 40714),
        (table_open_cache, 32 * GIB, 40714),
    ],
)
def test_memory_formulas(function: Any, memory: int, expected: int) -> None:
    assert function(memory) == expected


@pytest.mark.parametrize(
    ("cores", "pool", "io"),
    [(1, 1, 2), (2, 2, 2), (3, 3, 3), (12, 12, 12), (13, 13, 12), (25, 24, 12)],
)
def test_thread_formulas(cores: int, pool: int, io: int) -> None:
    assert (thread_pool_size(cores), io_threads(cores)) == (pool, io)


# Cases worked by hand from the formulas; Cozystack's own chart tests assert the same.
@pytest.mark.parametrize(
    ("memory", "cpu", "size", "expected"),
    [
        ("128Mi", "250m", "10Gi", Tuning(64, 96, 8, 16, 512, 151, 2000, 1, 2)),
        ("32Gi", "4", "10Gi", Tuning(16384, 512, 128, 512, 16384, 4096, 40714, 4, 4)),
        ("4Gi", "2", "10Gi", Tuning(2048, 512, 128, 128, 16384, 1024, 16384, 2, 2)),
        ("32Gi", "4", "500Gi", Tuning(16384, 4096, 128, 512, 16384, 4096, 40714, 4, 4)),
        ("32Gi", "4", "4Gi", Tuning(16384, 204, 128, 512, 16384, 4096, 40714, 4, 4)),
        ("256Gi", "32", "10Gi", Tuning(131072, 512, 128, 512, 16384, 4096, 40714, 24, 12)),
        # 1G = 953.67 MiB: pool 476.8 MiB rounds down to 384 MiB; 1.5 CPUs are 2 cores.
        ("1G", "1500m", "20G", Tuning(384, 384, 29, 29, 3814, 238, 3812, 2, 2)),
        ("1.5Gi", "1", "10Gi", Tuning(768, 512, 48, 48, 6144, 384, 6144, 1, 2)),
    ],
)
def test_tuning(memory: str, cpu: str, size: str, expected: Tuning) -> None:
    assert tuning(memory, cpu, size) == expected


def test_my_cnf_text() -> None:
    assert my_cnf(Tuning(64, 96, 8, 16, 512, 151, 2000, 1, 2)) == (
        "[mysqld]\n"
        "sql-mode=NO_ENGINE_SUBSTITUTION\n"
        "max_connections=151\n"
        "default_authentication_plugin=mysql_native_password\n"
        "innodb_buffer_pool_size=64M\n"
        "innodb_fast_shutdown=0\n"
        "innodb_flush_method=O_DIRECT_NO_FSYNC\n"
        "innodb_flush_log_at_trx_commit=2\n"
        "innodb_io_capacity=10000\n"
        "innodb_io_capacity_max=50000\n"
        "innodb_log_file_size=96M\n"
        "join_buffer_size=2M\n"
        "key_buffer_size=8M\n"
        "read_rnd_buffer_size=512K\n"
        "table_open_cache=2000\n"
        "table_definition_cache=4000\n"
        "thread_pool_size=1\n"
        "tmp_table_size=16M\n"
        "master_info_repository=TABLE\n"
        "relay_log_info_repository=TABLE\n"
        "innodb_read_io_threads=2\n"
        "innodb_write_io_threads=2\n"
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {"innodb_buffer_pool_size": "64M", "innodb_log_file_size": "96M"}),
        (
            {"resourcesPreset": "m1.large", "size": "4Gi"},
            {"innodb_buffer_pool_size": "16384M", "innodb_log_file_size": "204M"},
        ),
        (
            {"resourcesPreset": "t1.nano", "resources": {"cpu": 2, "memory": "4Gi"}},
            {"max_connections": "1024", "thread_pool_size": "2", "table_open_cache": "16384"},
        ),
        ({"resourcesPreset": "medium"}, {"innodb_buffer_pool_size": "512M"}),
    ],
)
def test_my_cnf_follows_the_effective_limits_and_size(
    spec: dict[str, Any], expected: dict[str, str]
) -> None:
    settings = config(compose(spec))
    assert {k: settings[k] for k in expected} == expected


# --- backups ---

BACKUP: dict[str, Any] = {
    "enabled": True,
    "s3Endpoint": "https://s3.example.org",
    "s3Bucket": "backups",
    "s3CredentialsSecret": {"name": "s3", "accessKeyIdKey": "id", "secretAccessKeyKey": "key"},
}


def test_no_backup_by_default() -> None:
    out = compose({"backup": BACKUP | {"enabled": False}})
    assert not {"backup", "backup-credentials"} & out.resources.keys()
    assert out.status["backup"] == {"name": "", "state": ""}


def test_backup_with_a_credentials_secret() -> None:
    out = compose({"backup": BACKUP})
    assert "backup-credentials" not in out.resources
    backup = out.resources["backup"].body
    assert backup["apiVersion"] == "k8s.mariadb.com/v1alpha1"
    assert backup["metadata"] == {"name": "mariadb-db-backup", "namespace": "tenant-dev"}
    assert backup["spec"] == {
        "mariaDbRef": {"name": "mariadb-db"},
        "schedule": {"cron": "0 2 * * *"},
        "maxRetention": "720h",
        "compression": "gzip",
        "storage": {
            "s3": {
                "bucket": "backups",
                "endpoint": "s3.example.org",
                "region": "us-east-1",
                "prefix": "tenant-dev/db/",
                "accessKeyIdSecretKeyRef": {"name": "s3", "key": "id"},
                "secretAccessKeySecretKeyRef": {"name": "s3", "key": "key"},
                "tls": {"enabled": True},
            }
        },
    }
    assert out.resources["backup"].ready is False
    assert out.status["backup"] == {"name": "mariadb-db-backup", "state": ""}


def test_backup_with_inline_keys_plain_http_and_every_setting() -> None:
    out = compose(
        {
            "backup": {
                "enabled": True,
                "schedule": "30 1 * * 0",
                "maxRetention": "168h",
                "compression": "bzip2",
                "s3Endpoint": "http://minio.tenant-dev.svc:9000/",
                "s3Bucket": "bkt",
                "s3Prefix": "team/mariadb",
                "s3Region": "eu-west-1",
                "s3AccessKey": "AK",
                "s3SecretKey": "SK",
                "s3CA": {"name": "ca", "key": "bundle.pem"},
            }
        }
    )
    assert data(out, "backup-credentials") == {"s3AccessKey": "AK", "s3SecretKey": "SK"}
    assert out.resources["backup-credentials"].body["metadata"]["name"] == "mariadb-db-backup"
    spec = out.resources["backup"].body["spec"]
    assert spec["schedule"] == {"cron": "30 1 * * 0"}
    assert (spec["maxRetention"], spec["compression"]) == ("168h", "bzip2")
    assert spec["storage"]["s3"] == {
        "bucket": "bkt",
        "endpoint": "minio.tenant-dev.svc:9000",
        "region": "eu-west-1",
        "prefix": "team/mariadb/",
        "accessKeyIdSecretKeyRef": {"name": "mariadb-db-backup", "key": "s3AccessKey"},
        "secretAccessKeySecretKeyRef": {"name": "mariadb-db-backup", "key": "s3SecretKey"},
        "tls": {"enabled": False, "caSecretKeyRef": {"name": "ca", "key": "bundle.pem"}},
    }


def test_backup_credentials_never_reach_status_or_messages() -> None:
    out = compose({"backup": {**BACKUP, "s3CredentialsSecret": {}, "s3SecretKey": "SK-secret"}})
    assert data(out, "backup-credentials")["s3SecretKey"] == "SK-secret"
    assert "SK-secret" not in repr((out.status, out.waiting, out.warnings))


@pytest.mark.parametrize(
    ("message", "warned"), [("Scheduled", False), ("Success", False), ("Failed", True)]
)
def test_backup_state_from_the_operator(message: str, warned: bool) -> None:
    first = compose({"backup": BACKUP})
    observed = copy.deepcopy(first.resources["backup"].body)
    observed["status"] = {
        "conditions": [
            {
                "type": "Complete",
                "status": "False",
                "reason": "CronJobScheduled",
                "message": message,
            }
        ]
    }
    out = compose({"backup": BACKUP}, observed={"backup": observed})
    assert out.status["backup"]["state"] == message
    assert out.resources["backup"].ready
    assert bool(out.warnings) is warned
    if warned:
        assert out.warnings == [
            "the last backup of mariadb-db failed: see the Jobs of CronJob mariadb-db-backup"
        ]


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"s3Bucket": "other"}, "s3Bucket"),
        ({"s3Endpoint": "https://s3.other.org"}, "s3Endpoint"),
        ({"s3Endpoint": "http://s3.example.org"}, "s3Endpoint (scheme) and s3CA"),
        ({"s3Region": "eu-west-1"}, "s3Region"),
        ({"s3Prefix": "elsewhere"}, "s3Prefix"),
        (
            {"s3CredentialsSecret": {}, "s3AccessKey": "a", "s3SecretKey": "b"},
            "the S3 credentials",
        ),
    ],
)
def test_backup_target_cannot_change(change: dict[str, Any], fields: str) -> None:
    first = compose({"backup": BACKUP})
    observed = {"backup": first.resources["backup"].body}
    with pytest.raises(ComposeError, match=rf"spec\.backup: .*\({re.escape(fields)}\)"):
        compose({"backup": BACKUP | change}, observed=observed)


def test_backup_retention_cannot_change_but_may_be_respelled() -> None:
    observed = {"backup": compose({"backup": BACKUP}).resources["backup"].body}
    respelled = compose({"backup": BACKUP | {"maxRetention": "720h0m0s"}}, observed=observed)
    assert respelled.resources["backup"].body["spec"]["maxRetention"] == "720h0m0s"
    with pytest.raises(ComposeError, match=r"spec\.backup\.maxRetention: cannot change from 720h"):
        compose({"backup": BACKUP | {"maxRetention": "24h"}}, observed=observed)


def test_backup_schedule_and_compression_may_change() -> None:
    observed = {"backup": compose({"backup": BACKUP}).resources["backup"].body}
    out = compose(
        {"backup": BACKUP | {"schedule": "0 4 * * *", "compression": "none"}}, observed=observed
    )
    assert out.resources["backup"].body["spec"]["schedule"] == {"cron": "0 4 * * *"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("720h", 2592000), ("720h0m0s", 2592000), ("90m", 5400), ("1h30m", 5400), ("45s", 45)],
)
def test_duration_seconds(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "30d", "1.5h", "h"])
def test_duration_seconds_of_other_forms(text: str) -> None:
    assert duration_seconds(text) is None


# --- readiness and status ---


def test_waits_for_the_server_then_its_sql_objects() -> None:
    spec = {"users": {"app": {"maxUserConnections": 1}}, "databases": {"d": {"roles": {}}}}
    first = compose(spec)
    assert first.waiting == ["creating MariaDB mariadb-db"]
    observed = {k: d.body for k, d in first.resources.items()}

    observed["mariadb"] = ready(observed["mariadb"], "False", "Provisioning")
    observed["mariadb"]["status"]["replicas"] = 1
    starting = compose(spec, observed=observed)
    assert not starting.resources["mariadb"].ready
    assert starting.waiting == ["MariaDB mariadb-db: Provisioning (1/2 replicas ready)"]

    observed["mariadb"] = ready(observed["mariadb"])
    observed["mariadb"]["status"].update(replicas=2, currentPrimary="mariadb-db-0")
    observed["user-app"] = ready(observed["user-app"], "False", "Error creating User")
    sql = compose(spec, observed=observed)
    assert sql.resources["mariadb"].ready
    assert sql.waiting == [
        "User mariadb-db-app: Error creating User",
        "Database mariadb-db-d: not ready",
    ]
    assert not sql.resources["database-d"].ready

    observed["user-app"] = ready(observed["user-app"])
    observed["database-d"] = ready(observed["database-d"])
    done = compose(spec, observed=observed)
    assert done.waiting == []
    assert all(d.ready for d in done.resources.values())
    assert done.ready is None


def test_status_from_the_operator() -> None:
    observed = {
        "mariadb": {
            "spec": {"image": "mariadb:11.8.5", "storage": {"size": "10Gi"}},
            "status": {
                "replicas": 2,
                "currentPrimary": "mariadb-db-0",
                "conditions": [{"type": "Ready", "status": "True", "message": "Running"}],
            },
        }
    }
    out = compose(observed=observed)
    assert out.status == {
        "version": "11.8.5",
        "readyReplicas": 2,
        "primary": "mariadb-db-0",
        "endpoints": {
            "service": "mariadb-db.tenant-dev.svc:3306",
            "primary": "mariadb-db-primary.tenant-dev.svc:3306",
            "secondary": "mariadb-db-secondary.tenant-dev.svc:3306",
            "external": "",
        },
        "secrets": {"credentials": "mariadb-db-credentials"},
        "backup": {"name": "", "state": ""},
    }
    assert out.waiting == []


def test_passwords_never_reach_status_or_messages() -> None:
    out = compose(USERS)
    text = repr((out.status, out.waiting, out.warnings))
    assert "s3cret" not in text
    assert "r00t" not in text
