"""Postgres on CloudNativePG, with users, roles and databases declared (reference §8)."""

from __future__ import annotations

from urllib.parse import quote

from functions.api.postgres import (
    MAJORS,
    MIN_UPGRADE_TARGET,
    PostgresSpec,
    PostgresStatus,
    PostgresVersion,
)
from functions.domain import presets, secrets
from functions.domain.addresses import load_balancer_address
from functions.domain.naming import kebab
from functions.domain.storage import guard_volume
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta

IMAGES: dict[PostgresVersion, str] = {
    "v18": "ghcr.io/cloudnative-pg/postgresql:18.1",
    "v17": "ghcr.io/cloudnative-pg/postgresql:17.7",
    "v16": "ghcr.io/cloudnative-pg/postgresql:16.11",
    "v15": "ghcr.io/cloudnative-pg/postgresql:15.15",
    "v14": "ghcr.io/cloudnative-pg/postgresql:14.20",
    "v13": "ghcr.io/cloudnative-pg/postgresql:13.22",
}
CNPG = "postgresql.cnpg.io/v1"
BARMAN = "barmancloud.cnpg.io/v1"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
PORT = 5432
# Helm deep-merges values, so Cozystack keeps these unless the claim overrides each one.
DEFAULT_PARAMETERS = {"max_connections": "100", "max_wal_senders": "30"}
NAMESPACE = "namespace"
HOST_LABEL = "namespace.cozystack.io/host"


def compose(spec: PostgresSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XPostgres is created through a Postgres claim")
    release = f"postgres-{name}"
    host = f"{release}-rw.{ns}.svc"
    observed_cluster = ctx.observed.get("cluster")
    storage = (observed_cluster or {}).get("spec", {}).get("storage")
    guard_volume(
        size=spec.size,
        storage_class=spec.storage_class,
        observed_size=(storage or {}).get("size"),
        observed_class=None if storage is None else storage.get("storageClass", ""),
    )
    _guard_version(spec, observed_cluster)

    cluster_spec: Object = {
        "instances": spec.replicas,
        "imageName": IMAGES[spec.version],
        "enableSuperuserAccess": True,
        "resources": presets.resources(
            spec.resources_preset, spec.resources.overrides(), ctx.config.ratios
        ),
        "postgresql": {
            "parameters": DEFAULT_PARAMETERS
            | {k: str(v) for k, v in sorted(spec.postgresql.parameters.items())},
        },
        "minSyncReplicas": spec.quorum.min_sync_replicas,
        "maxSyncReplicas": spec.quorum.max_sync_replicas,
        "monitoring": {"enablePodMonitor": True},
        "storage": {"size": spec.size}
        | ({"storageClass": spec.storage_class} if spec.storage_class else {}),
        "inheritedMetadata": {
            "labels": {
                "app.kubernetes.io/instance": release,
                "app.kubernetes.io/name": "postgres.apps.cozystack.io",
                "policy.cozystack.io/allow-to-apiserver": "true",
            }
        },
    }
    hba = _readonly_hba(spec)
    if hba:
        cluster_spec["postgresql"]["pg_hba"] = hba
    roles = _roles(spec, release, observed_cluster)
    if roles:
        cluster_spec["managed"] = {"roles": roles}
    if spec.external and spec.tls.enabled is not False:
        tenant = out.require(NAMESPACE, Requirement("v1", "Namespace", ns))
        tenant_host = (tenant or {}).get("metadata", {}).get("labels", {}).get(HOST_LABEL, "")
        if tenant_host:
            cluster_spec["certificates"] = {"serverAltDNSNames": [f"{release}.{tenant_host}"]}
    _backup(out, spec, release, ns)
    if spec.backup.enabled:
        cluster_spec["plugins"] = [
            {
                "name": BARMAN_PLUGIN,
                "isWALArchiver": True,
                "parameters": {"barmanObjectName": release, "serverName": release},
            }
        ]
    _bootstrap(out, spec, release, ns, cluster_spec, observed_cluster)

    cluster = out.add_observed(
        "cluster",
        {
            "apiVersion": CNPG,
            "kind": "Cluster",
            "metadata": meta(release, ns),
            "spec": cluster_spec,
        },
    )
    user_secrets = _users(out, spec, release, ns, host)
    for db, database in sorted(spec.databases.items()):
        db_spec: Object = {
            "name": db,
            "cluster": {"name": release},
            "owner": f"{db}_admin",
            "ensure": "present",
            # Removing a database from the claim never drops its data.
            "databaseReclaimPolicy": "retain",
            "schemas": [{"name": "public", "owner": f"{db}_admin"}],
        }
        if database.extensions:
            db_spec["extensions"] = [{"name": e, "ensure": "present"} for e in database.extensions]
        applied = out.add_observed(
            f"database-{kebab(db)}",
            {
                "apiVersion": CNPG,
                "kind": "Database",
                "metadata": meta(f"{release}-{kebab(db)}", ns),
                "spec": db_spec,
            },
        )
        message = (applied or {}).get("status", {}).get("message")
        if message:
            out.wait(f"database {db}: {message}")

    external = ""
    if spec.external:
        svc = out.add_observed(
            "external-service",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta(f"{release}-external-write", ns),
                "spec": {
                    "type": "LoadBalancer",
                    "externalTrafficPolicy": "Local",
                    "allocateLoadBalancerNodePorts": False,
                    "ports": [
                        {"name": "postgres", "port": PORT, "targetPort": PORT, "protocol": "TCP"}
                    ],
                    "selector": {"cnpg.io/cluster": release, "cnpg.io/instanceRole": "primary"},
                },
            },
        )
        external = load_balancer_address(svc)
        if not external:
            out.wait(f"Service {release}-external-write has no external address yet")

    status = (cluster or {}).get("status", {})
    if cluster is None:
        out.wait(f"creating CloudNativePG Cluster {release}")
    elif not out.resources["cluster"].ready:
        out.wait(
            f"CloudNativePG Cluster {release}: {status.get('phase') or 'starting'} "
            f"({int(status.get('readyInstances', 0))}/{spec.replicas} instances ready)"
        )
    image = str(status.get("image") or "")
    out.status = PostgresStatus.model_validate(
        {
            "version": image.rpartition(":")[2] if ":" in image else "",
            "instances": int(status.get("instances", 0)),
            "readyInstances": int(status.get("readyInstances", 0)),
            "phase": str(status.get("phase", "")),
            "primary": str(status.get("currentPrimary", "")),
            "endpoints": {
                "readWrite": f"{host}:{PORT}",
                "readOnly": f"{release}-ro.{ns}.svc:{PORT}",
                "read": f"{release}-r.{ns}.svc:{PORT}",
                "external": f"{external}:{PORT}" if external else "",
            },
            "secrets": {
                "credentials": f"{release}-credentials" if spec.users else "",
                "superuser": f"{release}-superuser",
                "ca": f"{release}-ca",
                "users": user_secrets,
            },
        }
    ).model_dump(by_alias=True)
    return out


def _data_major(observed: Object | None) -> int | None:
    """The major version of the data directory: CloudNativePG's record, else the image tag."""
    info = (observed or {}).get("status", {}).get("pgDataImageInfo") or {}
    if info.get("majorVersion"):
        return int(info["majorVersion"])
    image = str((observed or {}).get("spec", {}).get("imageName") or "")
    major = image.rpartition(":")[2].partition(".")[0]
    # isdecimal, not isdigit: int() refuses digits such as "²".
    return int(major) if ":" in image and major.isdecimal() else None


def _guard_version(spec: PostgresSpec, observed: Object | None) -> None:
    """Refuse the version changes CloudNativePG's webhook refuses, naming the claim's field."""
    running, wanted = _data_major(observed), MAJORS[spec.version]
    if running is None or wanted == running:
        return
    if wanted < running:
        raise ComposeError(
            "spec.version",
            f"cannot go down from v{running} to {spec.version}: CloudNativePG refuses major "
            "version downgrades; dump the data and restore it into a new Postgres instead",
        )
    if wanted < MIN_UPGRADE_TARGET:
        raise ComposeError(
            "spec.version",
            f"cannot upgrade from v{running} to {spec.version}: CloudNativePG upgrades a major "
            f"version only to v{MIN_UPGRADE_TARGET} or later",
        )


def _memberships(spec: PostgresSpec) -> dict[str, list[str]]:
    """User -> the database roles it is granted."""
    grants: dict[str, list[str]] = {u: [] for u in spec.users}
    for db, database in sorted(spec.databases.items()):
        for user in database.roles.admin:
            grants[user].append(f"{db}_admin")
        for user in database.roles.readonly:
            grants[user].append(f"{db}_readonly")
    return grants


def _roles(spec: PostgresSpec, release: str, observed: Object | None) -> list[Object]:
    grants = _memberships(spec)
    roles: list[Object] = []
    for user, settings in sorted(spec.users.items()):
        role: Object = {
            "name": user,
            "ensure": "present",
            "login": True,
            "inherit": True,
            "replication": settings.replication,
            "comment": "user managed by cozyplane",
            "passwordSecret": {"name": f"{release}-user-{kebab(user)}"},
        }
        if grants[user]:
            role["inRoles"] = sorted(set(grants[user]))
        roles.append(role)
    for db in sorted(spec.databases):
        roles.append({"name": f"{db}_admin", "ensure": "present", "login": False, "inherit": False})
        roles.append(
            {
                "name": f"{db}_readonly",
                "ensure": "present",
                "login": False,
                "inherit": True,
                "inRoles": ["pg_read_all_data"],
            }
        )
    # A user removed from the claim is dropped (ensure: absent), as Cozystack drops it.
    declared = {r["name"] for r in roles}
    previous = (observed or {}).get("spec", {}).get("managed", {}).get("roles", [])
    for role in previous:
        name = role.get("name")
        # CloudNativePG requires a name: a role without one is nobody's to drop.
        if name is not None and name not in declared and role.get("login"):
            roles.append({"name": name, "ensure": "absent", "login": True})
    return sorted(roles, key=lambda r: str(r["name"]))


def _readonly_hba(spec: PostgresSpec) -> list[str]:
    """pg_read_all_data reads every database, so readonly users may only connect to theirs."""
    allowed: dict[str, set[str]] = {}
    for db, database in spec.databases.items():
        for user in database.roles.readonly:
            allowed.setdefault(user, set()).add(db)
    for db, database in spec.databases.items():
        for user in database.roles.admin:
            if user in allowed:
                allowed[user].add(db)
    rules: list[str] = []
    for user, dbs in sorted(allowed.items()):
        rules.append(f"host {','.join(sorted(dbs))} {user} all scram-sha-256")
        rules.append(f"host all {user} all reject")
    return rules


def _users(out: Outcome, spec: PostgresSpec, release: str, ns: str, host: str) -> dict[str, str]:
    if not spec.users:
        return {}
    previous = secrets.decoded(out.ctx.observed.data("credentials"))
    passwords: dict[str, str] = {}
    names: dict[str, str] = {}
    for user, settings in sorted(spec.users.items()):
        key = f"user-{kebab(user)}"
        own = secrets.decoded_value(out.ctx.observed.data(key), "password")
        password = secrets.stable(
            settings.password, own, previous.get(user), generate=out.ctx.passwords
        )
        passwords[user] = password
        names[user] = f"{release}-{key}"
        uri = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{PORT}"
        out.add(
            key,
            secrets.secret(
                names[user],
                ns,
                {
                    "username": user,
                    "password": password,
                    "host": host,
                    "port": str(PORT),
                    "uri": uri,
                },
                type_="kubernetes.io/basic-auth",
            ),
        )
    out.add("credentials", secrets.secret(f"{release}-credentials", ns, passwords))
    return names


def _credentials(spec: PostgresSpec, release: str) -> Object:
    """The s3Credentials block: a user-named Secret, else <release>-s3-creds."""
    ref = spec.backup.s3_credentials_secret
    if ref.name:
        return {
            "accessKeyId": {"name": ref.name, "key": ref.access_key_id_key},
            "secretAccessKey": {"name": ref.name, "key": ref.secret_access_key_key},
        }
    return {
        "accessKeyId": {"name": f"{release}-s3-creds", "key": "AWS_ACCESS_KEY_ID"},
        "secretAccessKey": {"name": f"{release}-s3-creds", "key": "AWS_SECRET_ACCESS_KEY"},
    }


def _object_store(spec: PostgresSpec, name: str, release: str, ns: str) -> Object:
    configuration: Object = {
        "destinationPath": spec.backup.destination_path,
        "endpointURL": spec.backup.endpoint_url,
        "s3Credentials": _credentials(spec, release),
    }
    if spec.backup.endpoint_ca.name:
        configuration["endpointCA"] = {
            "name": spec.backup.endpoint_ca.name,
            "key": spec.backup.endpoint_ca.key,
        }
    return {
        "apiVersion": BARMAN,
        "kind": "ObjectStore",
        "metadata": meta(name, ns),
        "spec": {
            "retentionPolicy": spec.backup.retention_policy,
            "instanceSidecarConfiguration": {
                "env": [{"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"}]
            },
            "configuration": configuration,
        },
    }


def _backup(out: Outcome, spec: PostgresSpec, release: str, ns: str) -> None:
    backup = spec.backup
    if (backup.enabled or spec.bootstrap.enabled) and not backup.s3_credentials_secret.name:
        out.add(
            "s3-credentials",
            secrets.secret(
                f"{release}-s3-creds",
                ns,
                {
                    "AWS_ACCESS_KEY_ID": backup.s3_access_key,
                    "AWS_SECRET_ACCESS_KEY": backup.s3_secret_key,
                },
            ),
        )
    if not backup.enabled:
        return
    out.add("object-store", _object_store(spec, release, release, ns))
    if backup.schedule:
        out.add(
            "scheduled-backup",
            {
                "apiVersion": CNPG,
                "kind": "ScheduledBackup",
                "metadata": meta(release, ns),
                "spec": {
                    "schedule": backup.schedule,
                    "cluster": {"name": release},
                    "method": "plugin",
                    "pluginConfiguration": {"name": BARMAN_PLUGIN},
                    "backupOwnerReference": "self",
                },
            },
        )


def _bootstrap(
    out: Outcome,
    spec: PostgresSpec,
    release: str,
    ns: str,
    cluster_spec: Object,
    observed: Object | None,
) -> None:
    """Recovery happens when the cluster is created; afterwards its bootstrap is kept as is."""
    boot = spec.bootstrap
    if observed is None:
        if not boot.enabled:
            return
        recovery: Object = {"source": boot.old_name}
        if boot.recovery_time:
            recovery["recoveryTarget"] = {"targetTime": boot.recovery_time}
        cluster_spec["bootstrap"] = {"recovery": recovery}
        cluster_spec["externalClusters"] = [
            {
                "name": boot.old_name,
                "plugin": {
                    "name": BARMAN_PLUGIN,
                    "parameters": {
                        "barmanObjectName": f"{release}-recovery",
                        "serverName": boot.server_name or boot.old_name,
                    },
                },
            }
        ]
    else:
        existing = observed.get("spec", {})
        recovery = existing.get("bootstrap", {}).get("recovery")
        if recovery is None:
            if boot.enabled:
                out.warn("bootstrap.enabled has no effect: the cluster already exists")
            return
        cluster_spec["bootstrap"] = {"recovery": recovery}
        cluster_spec["externalClusters"] = [
            c
            for c in existing.get("externalClusters", [])
            if c.get("name") == recovery.get("source")
        ]
    if boot.enabled:
        out.add("object-store-recovery", _object_store(spec, f"{release}-recovery", release, ns))
