"""Postgres compose: the CNPG Cluster, users, roles and databases declared, backups (§8)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from functions.api.postgres import PostgresSpec
from functions.services import postgres
from functions.services.base import ComposeError, Outcome
from tests.support.compose import context, namespace

DEV_NS = namespace("tenant-dev", **{"namespace.cozystack.io/host": "dev.example.org"})


def compose(spec: dict[str, Any] | None = None, **kw: Any) -> Outcome:
    kw.setdefault("required", {postgres.NAMESPACE: [DEV_NS]})
    return postgres.compose(
        PostgresSpec.model_validate(spec or {}), context("db", "tenant-dev", **kw)
    )


def cluster(out: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = out.resources["cluster"].body["spec"]
    return spec


def data(out: Outcome, key: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in out.resources[key].body["data"].items()}


def test_defaults() -> None:
    out = compose()
    assert list(out.resources) == ["cluster"]
    body = out.resources["cluster"].body
    assert body["metadata"] == {"name": "postgres-db", "namespace": "tenant-dev"}
    spec = body["spec"]
    assert spec["instances"] == 2
    assert spec["imageName"] == "ghcr.io/cloudnative-pg/postgresql:18.1"
    assert spec["enableSuperuserAccess"] is True
    assert spec["storage"] == {"size": "10Gi"}
    assert spec["postgresql"]["parameters"] == {"max_connections": "100", "max_wal_senders": "30"}
    assert spec["resources"]["limits"] == {
        "cpu": "500m",
        "ephemeral-storage": "2Gi",
        "memory": "256Mi",
    }
    assert spec["monitoring"] == {"enablePodMonitor": True}
    assert (spec["minSyncReplicas"], spec["maxSyncReplicas"]) == (0, 0)
    assert not {"managed", "certificates", "plugins"} & spec.keys()
    assert out.requirements == {}


@pytest.mark.parametrize(
    ("version", "image"),
    [
        ("v18", "18.1"),
        ("v17", "17.7"),
        ("v16", "16.11"),
        ("v15", "15.15"),
        ("v14", "14.20"),
        ("v13", "13.22"),
    ],
)
def test_versions(version: str, image: str) -> None:
    assert (
        cluster(compose({"version": version}))["imageName"]
        == f"ghcr.io/cloudnative-pg/postgresql:{image}"
    )


def test_sizing_parameters_and_quorum() -> None:
    spec = cluster(
        compose(
            {
                "replicas": 3,
                "resourcesPreset": "u1.large",
                "resources": {"memory": "10Gi"},
                "size": "50Gi",
                "storageClass": "local",
                "quorum": {"minSyncReplicas": 1, "maxSyncReplicas": 2},
                "postgresql": {"parameters": {"work_mem": "16MB", "max_wal_senders": 10}},
            }
        )
    )
    assert spec["instances"] == 3
    assert spec["resources"]["limits"] == {"cpu": "4", "ephemeral-storage": "2Gi", "memory": "10Gi"}
    assert spec["resources"]["requests"]["cpu"] == "0.4"
    assert spec["storage"] == {"size": "50Gi", "storageClass": "local"}
    assert (spec["minSyncReplicas"], spec["maxSyncReplicas"]) == (1, 2)
    # Like Helm's values merge: the claim's parameters go over the defaults, key by key.
    assert spec["postgresql"]["parameters"] == {
        "max_connections": "100",
        "max_wal_senders": "10",
        "work_mem": "16MB",
    }


def test_external_service_and_tls_name() -> None:
    out = compose({"external": True})
    svc = out.resources["external-service"].body
    assert svc["metadata"]["name"] == "postgres-db-external-write"
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == {
        "cnpg.io/cluster": "postgres-db",
        "cnpg.io/instanceRole": "primary",
    }
    assert svc["spec"]["ports"][0]["port"] == 5432
    assert cluster(out)["certificates"] == {"serverAltDNSNames": ["postgres-db.dev.example.org"]}
    assert out.requirements["namespace"].name == "tenant-dev"
    assert any("no external address" in w for w in out.waiting)


@pytest.mark.parametrize(
    ("external", "tls", "san"),
    [
        (True, None, True),
        (True, True, True),
        (True, False, False),
        (False, True, False),
        (False, None, False),
    ],
)
def test_tls_follows_external_unless_set(external: bool, tls: bool | None, san: bool) -> None:
    spec: dict[str, Any] = {"external": external}
    if tls is not None:
        spec["tls"] = {"enabled": tls}
    assert ("certificates" in cluster(compose(spec))) is san


def test_external_address_in_status() -> None:
    observed = {
        "external-service": {
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}},
        }
    }
    out = compose({"external": True}, observed=observed)
    assert out.status["endpoints"]["external"] == "192.0.2.7:5432"
    assert out.resources["external-service"].ready


USERS = {
    "users": {"app": {"password": "s3cret"}, "reporting": {}, "repl": {"replication": True}},
    "databases": {
        "orders": {
            "roles": {"admin": ["app"], "readonly": ["reporting"]},
            "extensions": ["pg_trgm"],
        },
        "audit_log": {"roles": {"admin": ["app"], "readonly": ["reporting", "app"]}},
    },
}


def test_users_roles_and_databases_are_declared() -> None:
    out = compose(USERS)
    roles = {r["name"]: r for r in cluster(out)["managed"]["roles"]}
    assert sorted(roles) == [
        "app",
        "audit_log_admin",
        "audit_log_readonly",
        "orders_admin",
        "orders_readonly",
        "repl",
        "reporting",
    ]
    assert roles["app"]["inRoles"] == ["audit_log_admin", "audit_log_readonly", "orders_admin"]
    assert roles["app"]["passwordSecret"] == {"name": "postgres-db-user-app"}
    assert roles["repl"]["replication"] is True
    assert "inRoles" not in roles["repl"]
    assert roles["orders_admin"] == {
        "name": "orders_admin",
        "ensure": "present",
        "login": False,
        "inherit": False,
    }
    assert roles["orders_readonly"]["inRoles"] == ["pg_read_all_data"]
    db = out.resources["database-audit-log"].body
    assert db["metadata"]["name"] == "postgres-db-audit-log"
    assert db["spec"] == {
        "name": "audit_log",
        "cluster": {"name": "postgres-db"},
        "owner": "audit_log_admin",
        "ensure": "present",
        "databaseReclaimPolicy": "retain",
        "schemas": [{"name": "public", "owner": "audit_log_admin"}],
    }
    assert out.resources["database-orders"].body["spec"]["extensions"] == [
        {"name": "pg_trgm", "ensure": "present"}
    ]


def test_readonly_users_may_only_connect_to_their_databases() -> None:
    hba = cluster(compose(USERS))["postgresql"]["pg_hba"]
    assert hba == [
        "host audit_log,orders app all scram-sha-256",
        "host all app all reject",
        "host audit_log,orders reporting all scram-sha-256",
        "host all reporting all reject",
    ]
    assert (
        "pg_hba"
        not in cluster(
            compose({"users": {"a": {}}, "databases": {"d": {"roles": {"admin": ["a"]}}}})
        )["postgresql"]
    )


def test_connection_secrets() -> None:
    out = compose(USERS)
    app = data(out, "user-app")
    assert app == {
        "username": "app",
        "password": "s3cret",
        "host": "postgres-db-rw.tenant-dev.svc",
        "port": "5432",
        "uri": "postgresql://app:s3cret@postgres-db-rw.tenant-dev.svc:5432",
    }
    assert out.resources["user-app"].body["type"] == "kubernetes.io/basic-auth"
    generated = data(out, "user-reporting")["password"]
    assert len(generated) == 16
    assert data(out, "credentials") == {
        "app": "s3cret",
        "reporting": generated,
        "repl": data(out, "user-repl")["password"],
    }
    assert out.status["secrets"]["users"] == {
        "app": "postgres-db-user-app",
        "reporting": "postgres-db-user-reporting",
        "repl": "postgres-db-user-repl",
    }


def test_passwords_are_reused_from_observed_secrets() -> None:
    first = compose(USERS)
    observed = {k: d.body for k, d in first.resources.items()}
    again = compose(USERS, observed=observed)
    for key in ("user-reporting", "user-repl", "credentials"):
        assert again.resources[key].body == first.resources[key].body
    # The shared credentials Secret alone is enough to recover a password.
    only_shared = compose(USERS, observed={"credentials": observed["credentials"]})
    assert data(only_shared, "user-reporting") == data(first, "user-reporting")


def test_passwords_with_special_characters_are_quoted_in_the_uri() -> None:
    out = compose({"users": {"app": {"password": "p@ss/w:rd"}}})
    assert (
        data(out, "user-app")["uri"]
        == "postgresql://app:p%40ss%2Fw%3Ard@postgres-db-rw.tenant-dev.svc:5432"
    )


def test_removed_users_are_dropped_and_database_roles_left_alone() -> None:
    first = compose(USERS)
    observed = {"cluster": first.resources["cluster"].body}
    out = compose(
        {"users": {"app": {}}, "databases": {"orders": {"roles": {"admin": ["app"]}}}},
        observed=observed,
    )
    roles = {r["name"]: r for r in cluster(out)["managed"]["roles"]}
    assert roles["reporting"] == {"name": "reporting", "ensure": "absent", "login": True}
    assert roles["repl"]["ensure"] == "absent"
    assert "audit_log_admin" not in roles
    assert "database-audit-log" not in out.resources


def test_storage_may_grow_but_never_shrink() -> None:
    observed = {"cluster": {"spec": {"storage": {"size": "20Gi"}}}}
    assert cluster(compose({"size": "30Gi"}, observed=observed))["storage"]["size"] == "30Gi"
    with pytest.raises(ComposeError, match=r"spec\.size: volumes cannot shrink from 20Gi to 10Gi"):
        compose({"size": "10Gi"}, observed=observed)


def test_storage_class_cannot_change() -> None:
    observed = {"cluster": {"spec": {"storage": {"size": "10Gi", "storageClass": "replicated"}}}}
    with pytest.raises(ComposeError, match=r"spec\.storageClass: is immutable"):
        compose({"storageClass": "local"}, observed=observed)
    with pytest.raises(ComposeError, match=r"spec\.storageClass"):
        compose({}, observed=observed)


BACKUP = {
    "enabled": True,
    "schedule": "0 0 3 * * *",
    "retentionPolicy": "7d",
    "destinationPath": "s3://b/p/",
    "endpointURL": "https://s3.example.org",
}


def test_backup_with_a_credentials_secret() -> None:
    out = compose(
        {
            "backup": BACKUP
            | {
                "s3CredentialsSecret": {
                    "name": "s3",
                    "accessKeyIDKey": "id",
                    "secretAccessKeyKey": "key",
                },
                "endpointCA": {"name": "ca"},
            }
        }
    )
    assert "s3-credentials" not in out.resources
    store = out.resources["object-store"].body
    assert store["metadata"]["name"] == "postgres-db"
    assert store["spec"]["retentionPolicy"] == "7d"
    assert store["spec"]["configuration"] == {
        "destinationPath": "s3://b/p/",
        "endpointURL": "https://s3.example.org",
        "endpointCA": {"name": "ca", "key": "ca.crt"},
        "s3Credentials": {
            "accessKeyId": {"name": "s3", "key": "id"},
            "secretAccessKey": {"name": "s3", "key": "key"},
        },
    }
    assert cluster(out)["plugins"] == [
        {
            "name": "barman-cloud.cloudnative-pg.io",
            "isWALArchiver": True,
            "parameters": {"barmanObjectName": "postgres-db", "serverName": "postgres-db"},
        }
    ]
    scheduled = out.resources["scheduled-backup"].body["spec"]
    assert scheduled == {
        "schedule": "0 0 3 * * *",
        "cluster": {"name": "postgres-db"},
        "method": "plugin",
        "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"},
        "backupOwnerReference": "self",
    }


def test_backup_with_inline_keys_and_no_schedule() -> None:
    out = compose({"backup": BACKUP | {"schedule": "", "s3AccessKey": "AK", "s3SecretKey": "SK"}})
    assert data(out, "s3-credentials") == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    assert "scheduled-backup" not in out.resources
    creds = out.resources["object-store"].body["spec"]["configuration"]["s3Credentials"]
    assert creds["accessKeyId"] == {"name": "postgres-db-s3-creds", "key": "AWS_ACCESS_KEY_ID"}


RESTORE = {
    "backup": {"destinationPath": "s3://b/p/", "s3CredentialsSecret": {"name": "s3"}},
    "bootstrap": {"enabled": True, "oldName": "olddb", "recoveryTime": "2026-11-01T10:00:00Z"},
}


def test_point_in_time_restore_of_a_new_cluster() -> None:
    out = compose(RESTORE)
    spec = cluster(out)
    assert spec["bootstrap"] == {
        "recovery": {"source": "olddb", "recoveryTarget": {"targetTime": "2026-11-01T10:00:00Z"}}
    }
    assert spec["externalClusters"] == [
        {
            "name": "olddb",
            "plugin": {
                "name": "barman-cloud.cloudnative-pg.io",
                "parameters": {"barmanObjectName": "postgres-db-recovery", "serverName": "olddb"},
            },
        }
    ]
    assert out.resources["object-store-recovery"].body["metadata"]["name"] == "postgres-db-recovery"
    assert "plugins" not in spec


def test_restore_settings_are_kept_as_created() -> None:
    first = compose(RESTORE)
    observed = {"cluster": first.resources["cluster"].body}
    disabled = compose({**RESTORE, "bootstrap": {"enabled": False}}, observed=observed)
    assert cluster(disabled)["bootstrap"] == cluster(first)["bootstrap"]
    assert "object-store-recovery" not in disabled.resources
    late = compose(RESTORE, observed={"cluster": compose().resources["cluster"].body})
    assert "bootstrap" not in cluster(late)
    assert late.warnings == ["bootstrap.enabled has no effect: the cluster already exists"]


def test_status_and_readiness_from_the_cnpg_cluster() -> None:
    observed: dict[str, Any] = {
        "cluster": {
            "spec": {"storage": {"size": "10Gi"}},
            "status": {
                "phase": "Cluster in healthy state",
                "instances": 2,
                "readyInstances": 2,
                "currentPrimary": "postgres-db-1",
                "image": "ghcr.io/cloudnative-pg/postgresql:18.1",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    }
    out = compose(observed=observed)
    assert out.resources["cluster"].ready
    assert out.waiting == []
    assert out.status == {
        "version": "18.1",
        "instances": 2,
        "readyInstances": 2,
        "phase": "Cluster in healthy state",
        "primary": "postgres-db-1",
        "endpoints": {
            "readWrite": "postgres-db-rw.tenant-dev.svc:5432",
            "readOnly": "postgres-db-ro.tenant-dev.svc:5432",
            "read": "postgres-db-r.tenant-dev.svc:5432",
            "external": "",
        },
        "secrets": {
            "credentials": "",
            "superuser": "postgres-db-superuser",
            "ca": "postgres-db-ca",
            "users": {},
        },
    }
    status: dict[str, Any] = observed["cluster"]["status"]
    status.update(phase="Setting up primary", readyInstances=0, conditions=[])
    waiting = compose(observed=observed)
    assert waiting.waiting == [
        "CloudNativePG Cluster postgres-db: Setting up primary (0/2 instances ready)"
    ]


def test_database_readiness_follows_cnpg() -> None:
    spec = {"users": {"a": {}}, "databases": {"d": {"roles": {"admin": ["a"]}}}}
    first = compose(spec)
    observed = {k: d.body for k, d in first.resources.items()}
    observed["database-d"] = observed["database-d"] | {
        "status": {"applied": False, "message": "role a missing"}
    }
    out = compose(spec, observed=observed)
    assert not out.resources["database-d"].ready
    assert "database d: role a missing" in out.waiting
    observed["database-d"]["status"] = {"applied": True}
    assert compose(spec, observed=observed).resources["database-d"].ready
