"""MariaDB on mariadb-operator: server, tuned my.cnf, users, databases, grants, backups (§9)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from functions.api.mariadb import ROOT, MariaDBBackup, MariaDBSpec, MariaDBStatus, MariaDBVersion
from functions.domain import presets, secrets
from functions.domain.addresses import load_balancer_address
from functions.domain.naming import kebab
from functions.domain.quantity import helm_to_float
from functions.domain.storage import guard_volume
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta

IMAGES: dict[MariaDBVersion, str] = {
    "v11.8": "mariadb:11.8.5",
    "v11.4": "mariadb:11.4.9",
    "v10.11": "mariadb:10.11.15",
    "v10.6": "mariadb:10.6.24",
}
API = "k8s.mariadb.com/v1alpha1"
PORT = 3306
EXPORTER_PORT = 9104
EXPORTER: Object = {
    "image": "prom/mysqld-exporter:v0.15.1",
    # The operator probes the exporter over the pod's IPv4 address.
    "args": [f"--web.listen-address=0.0.0.0:{EXPORTER_PORT}"],
    "resources": {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "300m", "memory": "512Mi"},
    },
    "port": EXPORTER_PORT,
}
LOAD_BALANCER: Object = {
    "type": "LoadBalancer",
    "externalTrafficPolicy": "Local",
    "allocateLoadBalancerNodePorts": False,
}
# Without it mariadb-operator ignores later password changes in the Secret.
WATCH_LABEL = "k8s.mariadb.com/watch"
EXTERNAL_SERVICE = "external-service"
# The operator's Grant whose name <release>-<db>-<user> could spell (mariadb_sys, global_priv).
OPERATOR_GRANT = "mariadb-sys-global-priv"

MIB = 1 << 20


# --- my.cnf: Cozystack's sizing from the memory and CPU limits and the volume (§9.2) ---
# Integer arithmetic throughout, truncating as Helm's div does.


def _clamp(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)


def buffer_pool_bytes(memory: int) -> int:
    """Half the memory, rounded down to whole 128 MiB chunks once it reaches one; 8 MiB floor."""
    pool = memory // 2
    chunk = 128 * MIB
    if pool >= chunk:
        pool = pool // chunk * chunk
    return max(pool, 8 * MIB)


def log_file_bytes(pool: int, volume: int) -> int:
    """The smaller of the buffer pool and 5% of the volume, within [96 MiB, 4096 MiB]."""
    return _clamp(min(pool, volume // 20), 96 * MIB, 4096 * MIB)


def key_buffer_bytes(memory: int) -> int:
    return _clamp(memory // 32, 8 * MIB, 128 * MIB)


def max_connections(memory: int) -> int:
    return _clamp(memory // MIB // 4, 151, 4096)


def tmp_table_bytes(memory: int) -> int:
    return _clamp(memory // 32, 16 * MIB, 512 * MIB)


def read_rnd_buffer_bytes(memory: int) -> int:
    return _clamp(memory // 256, 256 * 1024, 16 * MIB)


def table_open_cache(memory: int) -> int:
    return _clamp(memory // MIB * 4, 2000, 40714)


def thread_pool_size(cores: int) -> int:
    return _clamp(cores, 1, 24)


def io_threads(cores: int) -> int:
    return _clamp(cores, 2, 12)


@dataclass(frozen=True)
class Tuning:
    buffer_pool_mi: int
    log_file_mi: int
    key_buffer_mi: int
    tmp_table_mi: int
    read_rnd_buffer_ki: int
    max_connections: int
    table_open_cache: int
    thread_pool_size: int
    io_threads: int


def tuning(memory_limit: str, cpu_limit: str, size: str) -> Tuning:
    """Sizing from the effective limits and the volume size, read as cozy-lib's toFloat."""
    memory = int(helm_to_float(memory_limit))
    cores = math.ceil(helm_to_float(cpu_limit))
    volume = int(helm_to_float(size))
    pool = buffer_pool_bytes(memory)
    return Tuning(
        buffer_pool_mi=pool // MIB,
        log_file_mi=log_file_bytes(pool, volume) // MIB,
        key_buffer_mi=key_buffer_bytes(memory) // MIB,
        tmp_table_mi=tmp_table_bytes(memory) // MIB,
        read_rnd_buffer_ki=read_rnd_buffer_bytes(memory) // 1024,
        max_connections=max_connections(memory),
        table_open_cache=table_open_cache(memory),
        thread_pool_size=thread_pool_size(cores),
        io_threads=io_threads(cores),
    )


def my_cnf(t: Tuning) -> str:
    """The [mysqld] section Cozystack ships, with the derived values filled in."""
    lines = [
        "[mysqld]",
        "sql-mode=NO_ENGINE_SUBSTITUTION",
        f"max_connections={t.max_connections}",
        "default_authentication_plugin=mysql_native_password",
        f"innodb_buffer_pool_size={t.buffer_pool_mi}M",
        "innodb_fast_shutdown=0",
        "innodb_flush_method=O_DIRECT_NO_FSYNC",
        "innodb_flush_log_at_trx_commit=2",
        "innodb_io_capacity=10000",
        "innodb_io_capacity_max=50000",
        f"innodb_log_file_size={t.log_file_mi}M",
        "join_buffer_size=2M",
        f"key_buffer_size={t.key_buffer_mi}M",
        f"read_rnd_buffer_size={t.read_rnd_buffer_ki}K",
        f"table_open_cache={t.table_open_cache}",
        "table_definition_cache=4000",
        f"thread_pool_size={t.thread_pool_size}",
        f"tmp_table_size={t.tmp_table_mi}M",
        "master_info_repository=TABLE",
        "relay_log_info_repository=TABLE",
        f"innodb_read_io_threads={t.io_threads}",
        f"innodb_write_io_threads={t.io_threads}",
    ]
    return "\n".join(lines) + "\n"


# --- compose ---


def compose(spec: MariaDBSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XMariaDB is created through a MariaDB claim")
    release = f"mariadb-{name}"
    observed = ctx.observed.get("mariadb")
    storage = (observed or {}).get("spec", {}).get("storage")
    guard_volume(
        size=spec.size,
        storage_class=spec.storage_class,
        observed_size=(storage or {}).get("size"),
        observed_class=None if storage is None else storage.get("storageClassName", ""),
    )
    # Without replication the operator keeps pod 0 alone, primary or not, with what it has.
    if spec.replicas == 1 and int((observed or {}).get("spec", {}).get("replicas") or 1) > 1:
        raise ComposeError(
            "spec.replicas",
            "cannot go down to 1 once replicated: the single instance left would be pod 0, "
            "which may not hold every commit; keep at least 2",
        )
    grants = _grants(spec, release)
    limits = presets.preset_limits(spec.resources_preset, spec.resources.overrides())
    _require_positive(limits, spec.size)

    out.add(
        "my-cnf",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{release}-my-cnf", ns),
            "data": {"config": my_cnf(tuning(limits["memory"], limits["cpu"], spec.size))},
        },
    )
    credentials = f"{release}-credentials"
    out.add(
        "credentials",
        secrets.secret(credentials, ns, _passwords(spec, ctx), labels={WATCH_LABEL: ""}),
    )
    mariadb = out.add_observed(
        "mariadb",
        {
            "apiVersion": API,
            "kind": "MariaDB",
            "metadata": meta(release, ns),
            "spec": _mariadb_spec(spec, release, presets.sanitize(limits, ctx.config.ratios)),
        },
    )
    server_ready = out.resources["mariadb"].ready

    sql: list[tuple[str, str, Object | None]] = []
    for user, settings in sorted(spec.users.items()):
        if user == ROOT:
            continue
        object_name = f"{release}-{kebab(user)}"
        applied = out.add_observed(
            f"user-{kebab(user)}",
            _sql_object(
                "User",
                object_name,
                ns,
                {
                    "name": user,
                    "mariaDbRef": {"name": release},
                    "passwordSecretKeyRef": {"name": credentials, "key": user},
                    # The XRD requires it for every user but root.
                    "maxUserConnections": settings.max_user_connections,
                    # Dropping the account only revokes access: its data lives in databases.
                    "cleanupPolicy": "Delete",
                },
            ),
        )
        sql.append((f"user-{kebab(user)}", f"User {object_name}", applied))
    for db in sorted(spec.databases):
        object_name = f"{release}-{kebab(db)}"
        applied = out.add_observed(
            f"database-{kebab(db)}",
            _sql_object(
                "Database",
                object_name,
                ns,
                {
                    "name": db,
                    "mariaDbRef": {"name": release},
                    "characterSet": "utf8",
                    "collate": "utf8_general_ci",
                    # A database removed from the claim is forgotten, never dropped.
                    "cleanupPolicy": "Skip",
                },
            ),
        )
        sql.append((f"database-{kebab(db)}", f"Database {object_name}", applied))
    for key, object_name, grant in grants:
        applied = out.add_observed(key, _sql_object("Grant", object_name, ns, grant))
        sql.append((key, f"Grant {object_name}", applied))

    backup_state = _backup(out, spec.backup, release, name, ns)

    status = (mariadb or {}).get("status", {})
    ready_replicas = int(status.get("replicas") or 0)
    if mariadb is None:
        out.wait(f"creating MariaDB {release}")
    elif not server_ready:
        message = _condition(mariadb, "Ready").get("message") or "starting"
        out.wait(f"MariaDB {release}: {message} ({ready_replicas}/{spec.replicas} replicas ready)")
    else:
        # SQL objects wait for the server; their own state matters once it is up.
        for key, label, applied in sql:
            if applied is not None and not out.resources[key].ready:
                out.wait(f"{label}: {_condition(applied, 'Ready').get('message') or 'not ready'}")

    external = _external(out, spec, release, ns)
    replicated = spec.replicas > 1
    image = str((mariadb or {}).get("spec", {}).get("image") or "")
    out.status = MariaDBStatus.model_validate(
        {
            "version": image.rpartition(":")[2] if ":" in image else "",
            "readyReplicas": ready_replicas,
            "primary": str(status.get("currentPrimary", "")),
            "endpoints": {
                "service": f"{release}.{ns}.svc:{PORT}",
                "primary": f"{release}-primary.{ns}.svc:{PORT}" if replicated else "",
                "secondary": f"{release}-secondary.{ns}.svc:{PORT}" if replicated else "",
                "external": f"{external}:{PORT}" if external else "",
            },
            "secrets": {"credentials": credentials},
            "backup": {"name": f"{release}-backup", "state": backup_state}
            if spec.backup.enabled
            else {},
        }
    ).model_dump(by_alias=True)
    return out


def _require_positive(limits: dict[str, str], size: str) -> None:
    for field, value in (
        ("spec.resources.memory", limits["memory"]),
        ("spec.resources.cpu", limits["cpu"]),
        ("spec.size", size),
    ):
        if helm_to_float(value) <= 0:
            raise ComposeError(field, f"must be greater than zero, not {value}")


def _passwords(spec: MariaDBSpec, ctx: Context) -> dict[str, str]:
    """One password per user and root: as given, else as observed, else generated once."""
    previous = secrets.decoded(ctx.observed.data("credentials"))
    passwords = {
        user: secrets.stable(settings.password, previous.get(user), generate=ctx.passwords)
        for user, settings in sorted(spec.users.items())
    }
    if ROOT not in passwords:
        passwords[ROOT] = secrets.stable(None, previous.get(ROOT), generate=ctx.passwords)
    return passwords


def _mariadb_spec(spec: MariaDBSpec, release: str, resources: Object) -> Object:
    replicated = spec.replicas > 1
    service: Object = {"metadata": {"labels": {"app.kubernetes.io/instance": release}}}
    if spec.external and not replicated:
        service |= LOAD_BALANCER
    body: Object = {
        "rootPasswordSecretKeyRef": {"name": f"{release}-credentials", "key": ROOT},
        "image": IMAGES[spec.version],
        "port": PORT,
        # Room for a first bootstrap on a small CPU limit or slow replicated storage.
        "startupProbe": {"failureThreshold": 30},
        "replicas": spec.replicas,
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
                                    "values": [release],
                                },
                            ]
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "podMetadata": {"labels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
        "metrics": {
            "enabled": True,
            "exporter": EXPORTER,
            "serviceMonitor": {"interval": "10s", "scrapeTimeout": "10s"},
        },
        "myCnfConfigMapKeyRef": {"name": f"{release}-my-cnf", "key": "config"},
        "service": service,
        "storage": {
            "size": spec.size,
            "resizeInUseVolumes": True,
            "waitForVolumeResize": True,
        }
        | ({"storageClassName": spec.storage_class} if spec.storage_class else {}),
        "resources": resources,
    }
    if replicated:
        body["replication"] = {"enabled": True}
        if spec.external:
            body["primaryService"] = dict(LOAD_BALANCER)
    return body


def _grants(spec: MariaDBSpec, release: str) -> list[tuple[str, str, Object]]:
    """(key, name, spec) of every Grant; names are checked before anything is composed."""
    grants: list[tuple[str, str, Object]] = []
    owner = {f"{release}-{OPERATOR_GRANT}": "mariadb-operator"}
    for db, database in sorted(spec.databases.items()):
        for role, privileges, users in (
            ("admin", ["ALL"], database.roles.admin),
            ("readonly", ["SELECT"], database.roles.readonly),
        ):
            for user in sorted(set(users)):
                suffix = f"{kebab(db)}-{kebab(user)}"
                name = f"{release}-{suffix}"
                if name in owner:
                    raise ComposeError(
                        f"spec.databases.{db}.roles.{role}",
                        f"{user}: its Grant would be named {name}, like the one of {owner[name]}",
                    )
                owner[name] = f"{user} on {db}"
                grants.append(
                    (
                        f"grant-{suffix}",
                        name,
                        {
                            "mariaDbRef": {"name": release},
                            "privileges": privileges,
                            "database": db,
                            "table": "*",
                            "username": user,
                            "grantOption": True,
                            # Removing a grant from the claim revokes it.
                            "cleanupPolicy": "Delete",
                        },
                    )
                )
    return grants


def _sql_object(kind: str, name: str, ns: str, spec: Object) -> Object:
    return {"apiVersion": API, "kind": kind, "metadata": meta(name, ns), "spec": spec}


def _condition(obj: Object, kind: str) -> Object:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _external(out: Outcome, spec: MariaDBSpec, release: str, ns: str) -> str:
    """The LoadBalancer address of the Service the operator exposes, once it has one."""
    if not spec.external:
        return ""
    service = release if spec.replicas == 1 else f"{release}-primary"
    address = load_balancer_address(
        out.require(EXTERNAL_SERVICE, Requirement("v1", "Service", service, ns))
    )
    if address:
        return address
    out.wait(f"Service {service} has no external address yet")
    out.ready = False
    return ""


# --- backups ---

# Backup.spec.storage is immutable in mariadb-operator: the claim fields behind each key.
S3_FIELDS = {
    "bucket": "s3Bucket",
    "endpoint": "s3Endpoint",
    "region": "s3Region",
    "prefix": "s3Prefix",
    "tls": "s3Endpoint (scheme) and s3CA",
    "accessKeyIdSecretKeyRef": "the S3 credentials",
    "secretAccessKeySecretKeyRef": "the S3 credentials",
}
_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def duration_seconds(text: str) -> int | None:
    """Seconds of an h/m/s Go duration, None for any other form."""
    match = _DURATION.match(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _s3(backup: MariaDBBackup, release: str, name: str, ns: str) -> Object:
    scheme, _, host = backup.s3_endpoint.partition("://")
    prefix = backup.s3_prefix or f"{ns}/{name}"
    if backup.s3_credentials_secret.name:
        ref = backup.s3_credentials_secret
        access = {"name": ref.name, "key": ref.access_key_id_key}
        secret = {"name": ref.name, "key": ref.secret_access_key_key}
    else:
        access = {"name": f"{release}-backup", "key": "s3AccessKey"}
        secret = {"name": f"{release}-backup", "key": "s3SecretKey"}
    tls: Object = {"enabled": scheme == "https"}
    if backup.s3_ca.name:
        tls["caSecretKeyRef"] = {"name": backup.s3_ca.name, "key": backup.s3_ca.key}
    return {
        "bucket": backup.s3_bucket,
        "endpoint": host.rstrip("/"),
        "region": backup.s3_region,
        # The operator adds the trailing slash itself, but only in memory.
        "prefix": prefix.rstrip("/") + "/",
        "accessKeyIdSecretKeyRef": access,
        "secretAccessKeySecretKeyRef": secret,
        "tls": tls,
    }


def _guard_backup(observed: Object | None, s3: Object, retention: str) -> None:
    """Refuse what mariadb-operator's webhook would refuse, naming the claim's fields."""
    if observed is None:
        return
    spec = observed.get("spec", {})
    old = spec.get("storage", {}).get("s3", {})
    changed = sorted({claim for key, claim in S3_FIELDS.items() if old.get(key) != s3.get(key)})
    if changed:
        raise ComposeError(
            "spec.backup",
            f"the S3 target of the existing Backup cannot change ({', '.join(changed)}): "
            "set backup.enabled to false, apply, then enable it again with the new target",
        )
    old_retention = str(spec.get("maxRetention") or "")
    if old_retention and (duration_seconds(old_retention) or old_retention) != (
        duration_seconds(retention) or retention
    ):
        raise ComposeError(
            "spec.backup.maxRetention",
            f"cannot change from {old_retention} on the existing Backup: set backup.enabled "
            "to false, apply, then enable it again with the new retention",
        )


def _backup(out: Outcome, backup: MariaDBBackup, release: str, name: str, ns: str) -> str:
    """Compose the scheduled Backup; returns the state of its last run."""
    if not backup.enabled:
        return ""
    s3 = _s3(backup, release, name, ns)
    _guard_backup(out.ctx.observed.get("backup"), s3, backup.max_retention)
    if not backup.s3_credentials_secret.name:
        out.add(
            "backup-credentials",
            secrets.secret(
                f"{release}-backup",
                ns,
                {"s3AccessKey": backup.s3_access_key, "s3SecretKey": backup.s3_secret_key},
            ),
        )
    applied = out.add_observed(
        "backup",
        _sql_object(
            "Backup",
            f"{release}-backup",
            ns,
            {
                "mariaDbRef": {"name": release},
                "schedule": {"cron": backup.schedule},
                "maxRetention": backup.max_retention,
                "compression": backup.compression,
                "storage": {"s3": s3},
            },
        ),
    )
    complete = _condition(applied or {}, "Complete")
    state = str(complete.get("message") or "")
    # The operator gives a failed run the reason of a scheduled one: only the message tells.
    if state == "Failed":
        out.warn(f"the last backup of {release} failed: see the Jobs of CronJob {release}-backup")
    return state
