"""The MariaDB claim (Cozystack `packages/apps/mariadb`, reference §9.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from functions.api.common import (
    Keys,
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    SecretKey,
    cel,
    storage_class,
    transition,
    volume_size,
    with_rules,
)

MariaDBVersion = Literal["v11.8", "v11.4", "v10.11", "v10.6"]
Compression = Literal["none", "bzip2", "gzip"]

# Object names are <release>-<user>, <release>-<db> and <release>-<db>-<user>, with the
# release at most 32 characters (see MARIADB in kinds.py): identifiers are bounded so all
# of them stay 63-character names.
MAX_IDENTIFIER = 30
MAX_GRANT_PAIR = 29
IDENTIFIER = rf"^[a-z]([a-z0-9_]{{0,{MAX_IDENTIFIER - 2}}}[a-z0-9])?$"
IDENTIFIER_RULE = (
    f"lower-case identifiers: a letter, then letters, digits or _, ending in a letter or digit, "
    f"at most {MAX_IDENTIFIER} long"
)
USER_KEYS = Keys("users", IDENTIFIER, f"users keys must be {IDENTIFIER_RULE}")
DATABASE_KEYS = Keys("databases", IDENTIFIER, f"databases keys must be {IDENTIFIER_RULE}")
ROOT = "root"
# SQL users mariadb-operator creates itself (`repl` for replication) or whose User object
# name (<release>-metrics, <release>-mariadb-sys) it takes for its own.
RESERVED_USERS = ("repl", "metrics", "mariadb_sys")
MAX_USERS = 64
MAX_DATABASES = 64
# Five cron fields, as mariadb-operator parses them (no seconds, no @descriptors).
CRON = r"^[^\s]+( +[^\s]+){4}$"
# A Go duration in hours, minutes and seconds, as Backup.spec.maxRetention takes it.
RETENTION = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
S3_ENDPOINT = r"^$|^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$"
S3_BUCKET = r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_PREFIX = r"^([A-Za-z0-9._-]+/)*[A-Za-z0-9._-]*$"

UserName = Annotated[str, Field(max_length=MAX_IDENTIFIER)]


class MariaDBUser(Model):
    """A MariaDB account; `root` sets the root password and takes nothing else."""

    password: str | None = Field(None, min_length=1, max_length=256)
    """Password; generated (16 letters and digits) and kept stable when unset."""
    max_user_connections: int | None = Field(None, ge=0, le=2147483647)
    """Maximum simultaneous connections of the user (0: the server-wide limit). Required
    for every user but root."""


class DatabaseRoles(Model):
    """Users granted privileges on the database."""

    admin: list[UserName] = Field(default_factory=list, max_length=MAX_USERS)
    """Users granted ALL PRIVILEGES (with GRANT OPTION) on the database."""
    readonly: list[UserName] = Field(default_factory=list, max_length=MAX_USERS)
    """Users granted SELECT (with GRANT OPTION) on the database."""


class MariaDBDatabase(Model):
    """A database (character set utf8, collation utf8_general_ci)."""

    roles: DatabaseRoles = DatabaseRoles()


class S3CredentialsSecret(Model):
    """An existing Secret in the claim's namespace with the S3 keys."""

    name: str = Field("", max_length=253)
    """Name of the Secret; empty to give s3AccessKey and s3SecretKey instead."""
    access_key_id_key: SecretKey = "AWS_ACCESS_KEY_ID"
    """Key holding the access key id."""
    secret_access_key_key: SecretKey = "AWS_SECRET_ACCESS_KEY"
    """Key holding the secret access key."""


class S3CA(Model):
    """An existing Secret with the CA bundle (PEM) that signed the S3 endpoint's certificate."""

    name: str = Field("", max_length=253)
    """Name of the Secret; empty trusts the system CAs."""
    key: SecretKey = "ca.crt"
    """Key holding the CA bundle."""


_CREDENTIALS = (
    "self.s3CredentialsSecret.name != '' || (self.s3AccessKey != '' && self.s3SecretKey != '')"
)


class MariaDBBackup(Model):
    """Logical backups (mariadb-dump) to S3, scheduled by mariadb-operator's Backup."""

    model_config = with_rules(
        cel(
            f"!self.enabled || (self.s3Endpoint != '' && self.s3Bucket != '' && ({_CREDENTIALS}))",
            "backup.enabled needs s3Endpoint, s3Bucket and either s3CredentialsSecret.name "
            "or both s3AccessKey and s3SecretKey",
        ),
        cel(
            "self.s3CredentialsSecret.name == '' || "
            "(self.s3AccessKey == '' && self.s3SecretKey == '')",
            "give either s3CredentialsSecret or s3AccessKey and s3SecretKey, not both",
        ),
        cel(
            "!self.s3Bucket.contains('/')",
            "s3Bucket is the bucket name alone: write Cozystack's <host>/<bucket>/<path> as "
            "s3Endpoint https://<host>, s3Bucket <bucket> and s3Prefix <path>",
        ),
        cel(
            "self.maxRetention.matches('[1-9]')",
            "maxRetention must be longer than zero, e.g. 720h",
        ),
        cel(
            "!has(self.cleanupStrategy)",
            "cleanupStrategy (restic flags) has no meaning here: mariadb-operator removes "
            "backups older than maxRetention",
        ),
        cel(
            "!has(self.resticPassword)",
            "resticPassword has no meaning here: backups are not restic repositories; "
            "encrypt them at rest in the bucket",
        ),
    )

    enabled: bool = False
    """Take scheduled backups of every database."""
    schedule: str = Field("0 2 * * *", max_length=128, pattern=CRON)
    """When to back up: five cron fields (minute hour day-of-month month day-of-week)."""
    max_retention: str = Field("720h", max_length=32, pattern=RETENTION)
    """Backups older than this are deleted after each backup (Go duration, e.g. 720h)."""
    compression: Compression = "gzip"
    """Compression of the dump files."""
    s3_endpoint: str = Field("", max_length=256, pattern=S3_ENDPOINT)
    """S3 endpoint URL, e.g. https://s3.example.org; https uses TLS, http does not."""
    s3_bucket: str = Field("", max_length=63, pattern=S3_BUCKET)
    """Bucket name."""
    s3_prefix: str = Field("", max_length=512, pattern=S3_PREFIX)
    """Folder in the bucket; empty means <namespace>/<claim name>/."""
    s3_region: str = Field("us-east-1", max_length=64)
    """S3 region."""
    s3_access_key: str = Field("", max_length=256)
    """S3 access key, stored in the Secret <release>-backup. Prefer s3CredentialsSecret."""
    s3_secret_key: str = Field("", max_length=256)
    """S3 secret key, stored in the Secret <release>-backup. Prefer s3CredentialsSecret."""
    s3_credentials_secret: S3CredentialsSecret = S3CredentialsSecret()
    s3_ca: S3CA = Field(S3CA(), alias="s3CA")
    cleanup_strategy: str | None = Field(None, max_length=1024)
    """Cozystack's restic retention flags; refused, use maxRetention."""
    restic_password: str | None = Field(None, max_length=1024)
    """Cozystack's restic repository password; refused, backups are not restic repositories."""


def _roles(check: str) -> str:
    """A rule over every user named in every database's admin and readonly roles."""
    return (
        f"self.databases.all(d, self.databases[d].roles.admin.all(u, {check}) && "
        f"self.databases[d].roles.readonly.all(u, {check}))"
    )


class MariaDBSpec(Model):
    """A MariaDB server, with replicas when more than one, managed by mariadb-operator."""

    model_config = with_rules(
        USER_KEYS.rule(),
        DATABASE_KEYS.rule(),
        cel(
            " && ".join(f"!('{u}' in self.users)" for u in RESERVED_USERS),
            "users " + ", ".join(RESERVED_USERS) + " are reserved by mariadb-operator",
        ),
        cel(
            f"self.users.all(u, u == '{ROOT}' || has(self.users[u].maxUserConnections))",
            "users.*.maxUserConnections is required (for every user but root)",
        ),
        cel(
            f"!('{ROOT}' in self.users) || !has(self.users.{ROOT}.maxUserConnections)",
            "users.root sets the root password only: it takes no maxUserConnections",
        ),
        cel(
            _roles(f"u in self.users && u != '{ROOT}'"),
            "databases.*.roles may only name users defined in users, other than root",
        ),
        cel(
            "self.databases.all(d, self.databases[d].roles.admin.all(u, "
            "!(u in self.databases[d].roles.readonly)))",
            "a user may be admin or readonly on a database, not both",
        ),
        cel(
            _roles(f"size(d) + size(u) <= {MAX_GRANT_PAIR}"),
            f"a database and a user granted on it may have at most {MAX_GRANT_PAIR} characters "
            "together, so the Grant <release>-<database>-<user> has a valid name",
        ),
    )

    replicas: int = Field(
        2,
        ge=1,
        le=32,
        json_schema_extra=transition(
            cel(
                "oldSelf == 1 || self > 1",
                "replicas cannot go down to 1 once replicated: the single instance left would "
                "be pod 0, which may not hold every commit",
            )
        ),
    )
    """Number of MariaDB instances; more than one runs a primary with asynchronous replicas.
    A replicated MariaDB keeps at least two."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset; explicit `resources` keys override it. The limits also size my.cnf."""
    size: Quantity = volume_size("10Gi")
    """Persistent volume size of each instance; it may grow but never shrink."""
    storage_class: str = storage_class()
    """StorageClass of the volumes; empty means the cluster default. Immutable."""
    external: bool = False
    """Expose MariaDB through a LoadBalancer: the primary when there are replicas."""
    version: MariaDBVersion = "v11.8"
    """MariaDB major.minor version."""
    users: dict[Annotated[str, AfterValidator(USER_KEYS)], MariaDBUser] = Field(
        default_factory=dict, max_length=MAX_USERS
    )
    """Accounts, with their password in the Secret <release>-credentials."""
    databases: dict[Annotated[str, AfterValidator(DATABASE_KEYS)], MariaDBDatabase] = Field(
        default_factory=dict, max_length=MAX_DATABASES
    )
    """Databases and the users granted on them."""
    backup: MariaDBBackup = MariaDBBackup()


class MariaDBEndpoints(Model):
    service: str = ""
    """In-cluster address of every instance (<release>)."""
    primary: str = ""
    """In-cluster address of the primary (<release>-primary), with replicas."""
    secondary: str = ""
    """In-cluster address of the replicas (<release>-secondary), with replicas."""
    external: str = ""
    """Address of the LoadBalancer, once assigned."""


class MariaDBSecrets(Model):
    credentials: str = ""
    """Secret with one key per user, and root, holding its password."""


class MariaDBBackupStatus(Model):
    name: str = ""
    """The mariadb-operator Backup."""
    state: str = ""
    """State of the last scheduled backup: Scheduled, Running, Success or Failed."""


class MariaDBStatus(Model):
    version: str = ""
    """MariaDB image tag the operator runs."""
    ready_replicas: int = 0
    primary: str = ""
    """Current primary pod."""
    endpoints: MariaDBEndpoints = MariaDBEndpoints()
    secrets: MariaDBSecrets = MariaDBSecrets()
    backup: MariaDBBackupStatus = MariaDBBackupStatus()
