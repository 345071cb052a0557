"""The RabbitMQ claim (Cozystack `packages/apps/rabbitmq`, reference §11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from functions.api.common import (
    Keys,
    Model,
    Quantity,
    Resources,
    ResourcesPreset,
    cel,
    storage_class,
    transition,
    volume_size,
    with_rules,
)

RabbitMQVersion = Literal["v4.2", "v4.1", "v4.0", "v3.13"]

# Words joined by single - or _, each word letters then digits or starting with a digit:
# the names Helm's kebabcase derives from such keys are the keys with _ turned into -.
_WORD = "([0-9][a-z0-9]*|[a-z]+[0-9]*)"
NAME = f"^{_WORD}([-_]{_WORD})*$"
NAME_RULE = (
    "lower-case words such as app, user2 or 2fa joined by single - or _ "
    "(a word's letters come before its digits unless it starts with a digit)"
)
MAX_USER_LENGTH = 40
MAX_VHOST_LENGTH = 50
MAX_USERS = 64
MAX_VHOSTS = 64

USER_KEYS = Keys(
    "users",
    NAME,
    f"users keys must be {NAME_RULE}, at most {MAX_USER_LENGTH} long",
    MAX_USER_LENGTH,
)
VHOST_KEYS = Keys(
    "vhosts",
    NAME,
    f"vhosts keys must be {NAME_RULE}, at most {MAX_VHOST_LENGTH} long",
    MAX_VHOST_LENGTH,
)

UserName = Annotated[str, Field(max_length=MAX_USER_LENGTH)]


class RabbitMQUser(Model):
    """A RabbitMQ user."""

    password: str | None = Field(None, min_length=1, max_length=256)
    """Password; generated (16 letters and digits) and kept stable when unset. RabbitMQ
    takes it when the user is created; it cannot be changed afterwards."""


class VhostRoles(Model):
    """Users granted permissions on the virtual host."""

    admin: list[UserName] = Field(default_factory=list, max_length=MAX_USERS)
    """Users that may configure, write and read every resource of the virtual host."""
    readonly: list[UserName] = Field(default_factory=list, max_length=MAX_USERS)
    """Users that may only read (consume from) the virtual host's resources."""


class RabbitMQVhost(Model):
    """A virtual host."""

    roles: VhostRoles


class RabbitMQSpec(Model):
    """A RabbitMQ cluster with users, virtual hosts and permissions declared."""

    model_config = with_rules(
        USER_KEYS.rule(),
        VHOST_KEYS.rule(),
        cel(
            "self.vhosts.all(v, self.vhosts[v].roles.admin.all(u, u in self.users) && "
            "self.vhosts[v].roles.readonly.all(u, u in self.users))",
            "vhosts.*.roles may only name users defined in users",
        ),
        cel(
            "self.vhosts.all(v, self.vhosts[v].roles.admin.all(u, "
            "!(u in self.vhosts[v].roles.readonly)))",
            "a user may be admin or readonly on a vhost, not both",
        ),
    )

    replicas: int = Field(
        3,
        ge=1,
        le=32,
        json_schema_extra=transition(
            cel(
                "self >= oldSelf",
                "replicas cannot decrease: the RabbitMQ cluster operator does not scale a "
                "cluster down",
            )
        ),
    )
    """Number of RabbitMQ nodes; it may grow but never shrink (the operator does not scale
    a cluster down)."""
    resources: Resources = Resources()
    resources_preset: ResourcesPreset = "t1.nano"
    """Resource preset of each node; explicit `resources` keys override it."""
    size: Quantity = volume_size("10Gi")
    """Persistent volume size of each node; it may grow but never shrink."""
    storage_class: str = storage_class()
    """StorageClass of the volumes; empty means the cluster default. Immutable."""
    external: bool = False
    """Expose the cluster's Service <release> as a LoadBalancer."""
    version: RabbitMQVersion = "v4.2"
    """RabbitMQ major.minor version."""
    users: dict[Annotated[str, AfterValidator(USER_KEYS)], RabbitMQUser] = Field(
        default_factory=dict, max_length=MAX_USERS
    )
    """Users; each gets the Secret <release>-<user>-credentials (username, password)."""
    vhosts: dict[Annotated[str, AfterValidator(VHOST_KEYS)], RabbitMQVhost] = Field(
        default_factory=dict, max_length=MAX_VHOSTS
    )
    """Virtual hosts with the users granted admin or readonly permissions on them."""


class RabbitMQEndpoints(Model):
    amqp: str = ""
    """In-cluster AMQP address (Service <release>, port 5672)."""
    management: str = ""
    """In-cluster management UI and HTTP API address (port 15672)."""
    external_amqp: str = Field("", alias="externalAMQP")
    """AMQP address of the LoadBalancer, once assigned."""
    external_management: str = ""
    """Management address of the LoadBalancer, once assigned."""


class RabbitMQSecrets(Model):
    default_user: str = ""
    """Secret of the operator's administrator (username, password, host, port, ...)."""
    users: dict[str, str] = Field(default_factory=dict)
    """Secret per user: username, password."""


class RabbitMQStatus(Model):
    service: str = ""
    """Service of the cluster (AMQP 5672, management 15672)."""
    endpoints: RabbitMQEndpoints = RabbitMQEndpoints()
    secrets: RabbitMQSecrets = RabbitMQSecrets()
    retained_vhosts: list[str] = Field(default_factory=list)
    """Virtual hosts removed from the claim but kept, with their queues."""
