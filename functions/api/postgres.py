"""The Postgres claim (Cozystack `packages/apps/postgres`, reference §8.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from functions.api.common import (
    Keys,
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    cel,
    ranks,
    storage_class,
    transition,
    volume_size,
    with_rules,
)

PostgresVersion = Literal["v18", "v17", "v16", "v15", "v14", "v13"]
# Major versions by claim version; CloudNativePG's webhook refuses a major downgrade, and a
# major upgrade (pg_upgrade) to anything older than 16.
MAJORS: dict[str, int] = {v: int(v[1:]) for v in get_args(PostgresVersion)}
MIN_UPGRADE_TARGET = 16
_MAJOR = ranks(MAJORS)

# Parameters CloudNativePG manages itself, or that would load code (reference §8.1).
BLOCKED_PARAMETERS = (
    "archive_command",
    "restore_command",
    "ssl_passphrase_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "dynamic_library_path",
    "local_preload_libraries",
    "session_preload_libraries",
    "shared_preload_libraries",
)
IDENTIFIER = r"^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$"
IDENTIFIER_RULE = (
    "lower-case identifiers: a letter, then letters, digits or _, ending in a letter or digit, "
    "at most 63 long"
)
USER_KEYS = Keys("users", IDENTIFIER, f"users keys must be {IDENTIFIER_RULE}")
DATABASE_KEYS = Keys("databases", IDENTIFIER, f"databases keys must be {IDENTIFIER_RULE}")
RFC3339_OR_EMPTY = (
    r"^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
MAX_USERS = 128
MAX_DATABASES = 64


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string")
    return value


IntOrString = Annotated[
    int | str,
    BeforeValidator(_int_or_string),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]


class PostgresUser(Model):
    """A login role."""

    password: str | None = Field(None, min_length=1, max_length=256)
    """Password; generated (16 letters and digits) and kept stable when unset."""
    replication: bool = False
    """Grant the REPLICATION attribute."""


class DatabaseRoles(Model):
    """Users granted the database's two roles."""

    admin: list[str] = Field(default_factory=list, max_length=MAX_USERS)
    """Users granted <db>_admin, the owner of the database."""
    readonly: list[str] = Field(default_factory=list, max_length=MAX_USERS)
    """Users granted <db>_readonly: they may connect to the database and read its data."""


class PostgresDatabase(Model):
    """A database owned by its <db>_admin role."""

    roles: DatabaseRoles = DatabaseRoles()
    extensions: list[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,62}$")]] = Field(
        default_factory=list, max_length=32
    )
    """Extensions created in the database."""


def _default_parameters() -> dict[str, int | str]:
    return {"max_connections": 100}


class PostgresqlConfig(Model):
    """PostgreSQL server configuration."""

    parameters: dict[str, IntOrString] = Field(default_factory=_default_parameters, max_length=256)
    """postgresql.conf parameters, merged over max_connections=100 and max_wal_senders=30."""


class Quorum(Model):
    """Synchronous replication: commits wait for this many replicas."""

    min_sync_replicas: int = Field(0, ge=0)
    """Minimum number of synchronous replicas that must acknowledge a commit."""
    max_sync_replicas: int = Field(0, ge=0)
    """Maximum number of synchronous replicas."""


class Tls(Model):
    """The server certificate."""

    enabled: bool | None = None
    """Add <release>.<tenant host> to the server certificate; unset follows `external`."""


class S3CredentialsSecret(Model):
    """An existing Secret with the S3 access keys."""

    name: str = ""
    """Existing Secret in the claim's namespace with the S3 keys."""
    access_key_id_key: str = Field("AWS_ACCESS_KEY_ID", alias="accessKeyIDKey")
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"


class EndpointCA(Model):
    """An existing Secret with the CA bundle of the S3 endpoint."""

    name: str = ""
    """Existing Secret holding the CA bundle of the S3 endpoint."""
    key: str = "ca.crt"


class Backup(Model):
    """Continuous backup (WAL archive and base backups) to S3 with the barman-cloud plugin."""

    enabled: bool = False
    """Archive WAL and base backups to S3 with the barman-cloud plugin."""
    schedule: str = Field("", max_length=128)
    """Base backup schedule, CloudNativePG six-field cron (seconds first); empty for none."""
    retention_policy: str = Field("30d", pattern=r"^[1-9][0-9]*[dwm]$")
    """How long backups are kept, e.g. 30d, 4w, 6m."""
    destination_path: str = Field("s3://bucket/path/to/folder/", max_length=1024)
    """S3 path the backups are written to."""
    endpoint_url: str = Field("http://minio-gateway-service:9000", alias="endpointURL")
    """S3 endpoint URL."""
    s3_access_key: str = ""
    """S3 access key, stored in the Secret <release>-s3-creds. Prefer s3CredentialsSecret."""
    s3_secret_key: str = ""
    """S3 secret key, stored in the Secret <release>-s3-creds. Prefer s3CredentialsSecret."""
    s3_credentials_secret: S3CredentialsSecret = S3CredentialsSecret()
    endpoint_ca: EndpointCA = Field(EndpointCA(), alias="endpointCA")


class Bootstrap(Model):
    """Create the cluster from a backup; it applies only when the cluster is first created."""

    enabled: bool = False
    """Create the cluster by restoring a backup (point-in-time recovery)."""
    recovery_time: str = Field("", pattern=RFC3339_OR_EMPTY)
    """RFC 3339 time to recover to; empty recovers to the end of the archive."""
    old_name: str = Field("", max_length=63)
    """Name of the Postgres whose backups are restored."""
    server_name: str = Field("", max_length=63)
    """Server name in the backup path; empty means oldName."""


_CREDENTIALS = (
    "(self.backup.s3CredentialsSecret.name != '' || "
    "(self.backup.s3AccessKey != '' && self.backup.s3SecretKey != ''))"
)


class PostgresSpec(Model):
    """A PostgreSQL cluster managed by CloudNativePG."""

    model_config = with_rules(
        cel("!('postgres' in self.users)", "users.postgres is forbidden: it is the superuser"),
        USER_KEYS.rule(),
        DATABASE_KEYS.rule(),
        cel(
            "self.postgresql.parameters.all(k, !(k in "
            + "["
            + ", ".join(f"'{p}'" for p in BLOCKED_PARAMETERS)
            + "]))",
            "postgresql.parameters may not set " + ", ".join(BLOCKED_PARAMETERS),
        ),
        cel(
            "self.databases.all(d, self.databases[d].roles.admin.all(u, u in self.users) && "
            "self.databases[d].roles.readonly.all(u, u in self.users))",
            "databases.*.roles may only name users defined in users",
        ),
        cel(
            "self.version != 'v13' || "
            "self.databases.all(d, size(self.databases[d].roles.readonly) == 0)",
            "readonly roles need version v14 or later (they use pg_read_all_data)",
        ),
        cel(
            "self.quorum.maxSyncReplicas >= self.quorum.minSyncReplicas",
            "quorum.maxSyncReplicas must be at least quorum.minSyncReplicas",
        ),
        cel(
            "self.quorum.maxSyncReplicas == 0 || self.quorum.maxSyncReplicas < self.replicas",
            "quorum.maxSyncReplicas must be lower than replicas",
        ),
        cel(
            f"!self.backup.enabled || (self.backup.destinationPath != '' && {_CREDENTIALS})",
            "backup.enabled needs backup.destinationPath and either "
            "backup.s3CredentialsSecret.name or both backup.s3AccessKey and backup.s3SecretKey",
        ),
        cel(
            f"!self.bootstrap.enabled || (self.bootstrap.oldName != '' && "
            f"self.backup.destinationPath != '' && {_CREDENTIALS})",
            "bootstrap.enabled needs bootstrap.oldName and the S3 location and credentials "
            "of the backup in backup.destinationPath and backup.s3CredentialsSecret "
            "(or backup.s3AccessKey and backup.s3SecretKey)",
        ),
    )

    replicas: int = Field(2, ge=1, le=32)
    """Number of PostgreSQL instances (one primary, the rest replicas)."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.micro"
    """Resource preset; explicit `resources` keys override it."""
    size: Quantity = volume_size("10Gi")
    """Persistent volume size of each instance; it may grow but never shrink."""
    storage_class: str = storage_class()
    """StorageClass of the volumes; empty means the cluster default. Immutable."""
    external: bool = False
    """Expose the primary through a LoadBalancer Service <release>-external-write."""
    version: PostgresVersion = Field(
        "v18",
        json_schema_extra=transition(
            cel(
                f"!(oldSelf in {_MAJOR}) || {_MAJOR}[self] >= {_MAJOR}[oldSelf]",
                "version cannot go down: CloudNativePG refuses major version downgrades",
            ),
            cel(
                f"!(oldSelf in {_MAJOR}) || {_MAJOR}[self] <= {_MAJOR}[oldSelf] || "
                f"{_MAJOR}[self] >= {MIN_UPGRADE_TARGET}",
                f"version can only be upgraded to v{MIN_UPGRADE_TARGET} or later: "
                "CloudNativePG refuses other major upgrades",
            ),
        ),
    )
    """PostgreSQL major version. It may be upgraded (to v16 or later), never downgraded."""
    tls: Tls = Tls()
    postgresql: PostgresqlConfig = PostgresqlConfig()
    quorum: Quorum = Quorum()
    users: dict[Annotated[str, AfterValidator(USER_KEYS)], PostgresUser] = Field(
        default_factory=dict, max_length=MAX_USERS
    )
    """Login roles; each gets a connection Secret <release>-user-<name>."""
    databases: dict[Annotated[str, AfterValidator(DATABASE_KEYS)], PostgresDatabase] = Field(
        default_factory=dict, max_length=MAX_DATABASES
    )
    """Databases with their <db>_admin and <db>_readonly roles and extensions."""
    backup: Backup = Backup()
    bootstrap: Bootstrap = Bootstrap()


class PostgresEndpoints(Model):
    read_write: str = ""
    """In-cluster address of the primary (<release>-rw)."""
    read_only: str = ""
    """In-cluster address of the replicas (<release>-ro)."""
    read: str = ""
    """In-cluster address of any instance (<release>-r)."""
    external: str = ""
    """Address of the LoadBalancer, once assigned."""


class PostgresSecrets(Model):
    credentials: str = ""
    """Secret with one key per user holding its password."""
    superuser: str = ""
    """CloudNativePG superuser Secret (username, password)."""
    ca: str = ""
    """Secret holding the server CA certificate (ca.crt)."""
    users: dict[str, str] = Field(default_factory=dict)
    """Connection Secret per user: host, port, username, password, uri."""


class PostgresStatus(Model):
    version: str = ""
    """Running PostgreSQL version."""
    instances: int = 0
    ready_instances: int = 0
    phase: str = ""
    """CloudNativePG phase."""
    primary: str = ""
    """Current primary instance."""
    endpoints: PostgresEndpoints = PostgresEndpoints()
    secrets: PostgresSecrets = PostgresSecrets()
