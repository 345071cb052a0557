"""RabbitMQ on the cluster operator, users and vhosts on the topology operator (§11)."""

from __future__ import annotations

from functions.api.rabbitmq import RabbitMQSpec, RabbitMQStatus, RabbitMQVersion
from functions.domain import presets, secrets
from functions.domain.addresses import load_balancer_address
from functions.domain.naming import kebab
from functions.domain.storage import guard_volume
from functions.services.base import ComposeError, Context, Object, Outcome, Requirement, meta

IMAGES: dict[RabbitMQVersion, str] = {
    "v4.2": "rabbitmq:4.2.4-management",
    "v4.1": "rabbitmq:4.1.8-management",
    "v4.0": "rabbitmq:4.0.9-management",
    "v3.13": "rabbitmq:3.13.7-management",
}
API = "rabbitmq.com/v1beta1"
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PASSWORD_LENGTH = 16
USER_SECRET_LABEL = {"apps.cozystack.io/user-secret": "true"}
ADMIN = {"configure": ".*", "write": ".*", "read": ".*"}
READONLY = {"read": ".*"}
SERVICE = "service"
MAX_NAME = 63


def compose(spec: RabbitMQSpec, ctx: Context) -> Outcome:
    out = Outcome(ctx)
    name, ns = ctx.composite.claim("an XRabbitMQ is created through a RabbitMQ claim")
    release = f"rabbitmq-{name}"
    _check_names(spec, release)
    observed_spec = (ctx.observed.get("cluster") or {}).get("spec", {})
    persistence = observed_spec.get("persistence")
    guard_volume(
        size=spec.size,
        storage_class=spec.storage_class,
        observed_size=(persistence or {}).get("storage"),
        observed_class=None if persistence is None else persistence.get("storageClassName", ""),
    )
    nodes = observed_spec.get("replicas")
    if nodes is not None and spec.replicas < int(nodes):
        raise ComposeError(
            "spec.replicas",
            f"cannot go down from {int(nodes)} to {spec.replicas}: the RabbitMQ cluster "
            "operator does not scale a cluster down",
        )

    cluster_spec: Object = {
        "replicas": spec.replicas,
        "image": IMAGES[spec.version],
        "resources": presets.resources(
            spec.resources_preset, spec.resources.overrides(), ctx.config.ratios
        ),
        "override": {
            "statefulSet": {
                "spec": {
                    "template": {
                        "metadata": {"labels": {"policy.cozystack.io/allow-to-apiserver": "true"}},
                        "spec": {"enableServiceLinks": False, "containers": []},
                    }
                }
            }
        },
        "persistence": {"storage": spec.size}
        | ({"storageClassName": spec.storage_class} if spec.storage_class else {}),
    }
    if spec.external:
        cluster_spec["service"] = {"type": "LoadBalancer"}
        # As every external Service of the platform: keep client addresses, no node ports.
        cluster_spec["override"]["service"] = {
            "spec": {"externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": False}
        }
    cluster = out.add_observed(
        "cluster",
        {
            "apiVersion": API,
            "kind": "RabbitmqCluster",
            "metadata": meta(release, ns, {"app.kubernetes.io/instance": release}),
            "spec": cluster_spec,
        },
    )
    if cluster is None:
        out.wait(f"creating RabbitmqCluster {release}")
    elif not out.resources["cluster"].ready:
        out.wait(f"RabbitmqCluster {release}: {_conditions(cluster)}")

    user_secrets = _users(out, spec, release, ns)
    retained = _vhosts(out, spec, release, ns)

    external = ""
    if spec.external:
        service = out.require(SERVICE, Requirement("v1", "Service", release, ns))
        external = load_balancer_address(service)
        if not external:
            out.wait(f"Service {release} has no external address yet")
    host = f"{release}.{ns}.svc"
    out.status = RabbitMQStatus.model_validate(
        {
            "service": release,
            "endpoints": {
                "amqp": f"{host}:{AMQP_PORT}",
                "management": f"{host}:{MANAGEMENT_PORT}",
                "externalAMQP": f"{external}:{AMQP_PORT}" if external else "",
                "externalManagement": f"{external}:{MANAGEMENT_PORT}" if external else "",
            },
            "secrets": {"defaultUser": f"{release}-default-user", "users": user_secrets},
            "retainedVhosts": retained,
        }
    ).model_dump(by_alias=True)
    # The LoadBalancer is the operator's Service, not a composed one: its address counts too.
    out.ready = not out.waiting and all(d.ready for d in out.resources.values())
    return out


def _check_names(spec: RabbitMQSpec, release: str) -> None:
    """Derived names must be distinct and fit in 63 characters.

    Helm's kebabcase maps `_` and `-` alike, so `a_b` and `a-b` would share objects; the
    topology operator writes its own Secret <User name>-user-credentials next to ours."""
    users: dict[str, str] = {}
    for user in sorted(spec.users):
        key = kebab(user)
        if key in users:
            raise ComposeError(
                f"spec.users.{user}", f"names the same objects as user {users[key]!r}"
            )
        users[key] = user
        secret = f"{release}-{key}-credentials"
        if len(secret) > MAX_NAME:
            raise ComposeError(f"spec.users.{user}", f"{secret} is longer than 63 characters")
    for key, user in users.items():
        stem = key.removesuffix("-user")
        if stem != key and stem in users:
            raise ComposeError(
                f"spec.users.{user}",
                f"its Secret {release}-{key}-credentials is the one the topology operator "
                f"writes for user {users[stem]!r}",
            )
    vhosts: dict[str, str] = {}
    permissions: dict[str, tuple[str, str]] = {}
    for vhost, settings in sorted(spec.vhosts.items()):
        key = kebab(vhost)
        if key in vhosts:
            raise ComposeError(
                f"spec.vhosts.{vhost}", f"names the same objects as vhost {vhosts[key]!r}"
            )
        vhosts[key] = vhost
        if len(f"{release}-{key}") > MAX_NAME:
            raise ComposeError(
                f"spec.vhosts.{vhost}", f"the Vhost {release}-{key} is longer than 63 characters"
            )
        for user in sorted({*settings.roles.admin, *settings.roles.readonly}):
            permission = f"{release}-{key}-{kebab(user)}"
            if len(permission) > MAX_NAME:
                raise ComposeError(
                    f"spec.vhosts.{vhost}",
                    f"the Permission {permission} is longer than 63 characters",
                )
            if permission in permissions:
                other = permissions[permission]
                raise ComposeError(
                    f"spec.vhosts.{vhost}",
                    f"the Permission of user {user!r} is named {permission}, as the one of "
                    f"user {other[1]!r} on vhost {other[0]!r}",
                )
            permissions[permission] = (vhost, user)


def _users(out: Outcome, spec: RabbitMQSpec, release: str, ns: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for user, settings in sorted(spec.users.items()):
        k = kebab(user)
        secret_key, user_key = f"credentials-{k}", f"user-{k}"
        previous = secrets.decoded(out.ctx.observed.data(secret_key))
        if previous.get("username", user) != user:
            raise ComposeError(
                f"spec.users.{user}",
                f"the Secret {release}-{k}-credentials still holds user "
                f"{previous['username']!r}: remove that user, let the claim settle, then add "
                f"{user!r}",
            )
        password = secrets.stable(
            settings.password,
            previous.get("password"),
            generate=out.ctx.passwords,
            length=PASSWORD_LENGTH,
        )
        applied = out.ctx.observed.get(user_key)
        imported = bool((applied or {}).get("status", {}).get("username"))
        if imported and previous.get("password") and password != previous["password"]:
            raise ComposeError(
                f"spec.users.{user}.password",
                "RabbitMQ keeps the password it imported when the user was created, so the "
                "Secret would lie; to change it, remove the user, let the claim settle, then "
                "add it again",
            )
        names[user] = f"{release}-{k}-credentials"
        out.add(
            secret_key,
            secrets.secret(
                names[user],
                ns,
                {"username": user, "password": password},
                labels=USER_SECRET_LABEL,
            ),
        )
        # No `config` annotation (Cozystack's sha256 of user and password): it would expose
        # short passwords to offline guessing, and no topology operator release needs it
        # (up to v1.19 the import happens once; from v1.20 the operator watches the Secret).
        body: Object = {
            "apiVersion": API,
            "kind": "User",
            "metadata": meta(f"{release}-{k}", ns),
            "spec": {
                "importCredentialsSecret": {"name": names[user]},
                "rabbitmqClusterReference": {"name": release},
            },
        }
        _topology(out, user_key, body)
    return names


def _vhosts(out: Outcome, spec: RabbitMQSpec, release: str, ns: str) -> list[str]:
    """Declared vhosts with their permissions; removed ones are kept (see docs/rabbitmq.md)."""
    for vhost, settings in sorted(spec.vhosts.items()):
        k = kebab(vhost)
        _vhost(out, f"vhost-{k}", f"{release}-{k}", vhost, release, ns)
        roles = settings.roles
        for users, grants in ((roles.admin, ADMIN), (roles.readonly, READONLY)):
            for user in sorted(set(users)):
                name = f"{release}-{k}-{kebab(user)}"
                key = f"permission-{k}-{kebab(user)}"
                previous = (out.ctx.observed.get(key) or {}).get("spec", {})
                if previous and (previous.get("vhost"), previous.get("user")) != (vhost, user):
                    raise ComposeError(
                        f"spec.vhosts.{vhost}",
                        f"the Permission {name} still grants user {previous.get('user')!r} "
                        f"on vhost {previous.get('vhost')!r}: remove that grant first",
                    )
                body: Object = {
                    "apiVersion": API,
                    "kind": "Permission",
                    "metadata": meta(name, ns),
                    "spec": {
                        "vhost": vhost,
                        "user": user,
                        "permissions": grants,
                        "rabbitmqClusterReference": {"name": release},
                    },
                }
                _topology(out, key, body)
    # Deleting a Vhost object deletes the vhost with its queues and messages, and the
    # topology operator Cozystack ships (v1.14) has no deletion policy: keep what the claim
    # dropped.
    retained: list[str] = []
    for key in sorted(out.ctx.observed.keys()):
        if not key.startswith("vhost-") or key in out.resources:
            continue
        previous = out.ctx.observed.get(key) or {}
        vhost = str(previous.get("spec", {}).get("name", ""))
        name = str(previous.get("metadata", {}).get("name", ""))
        if not vhost or not name:
            continue
        _vhost(out, key, name, vhost, release, ns)
        retained.append(vhost)
        out.warn(
            f"vhost {vhost} was removed from the claim and is kept with its queues; "
            "it goes away with the RabbitMQ claim"
        )
    return retained


def _vhost(out: Outcome, key: str, name: str, vhost: str, release: str, ns: str) -> None:
    previous = (out.ctx.observed.get(key) or {}).get("spec", {}).get("name")
    if previous is not None and previous != vhost:
        raise ComposeError(
            f"spec.vhosts.{vhost}",
            f"the Vhost {name} holds vhost {previous!r}, whose queues would be lost",
        )
    body: Object = {
        "apiVersion": API,
        "kind": "Vhost",
        "metadata": meta(name, ns),
        "spec": {"name": vhost, "rabbitmqClusterReference": {"name": release}},
    }
    _topology(out, key, body)


def _topology(out: Outcome, key: str, body: Object) -> None:
    """Compose a topology object; until its Ready condition holds, say why."""
    applied = out.add_observed(key, body)
    if applied is not None and not out.resources[key].ready:
        out.wait(f"{body['kind']} {body['metadata']['name']}: {_conditions(applied)}")


def _conditions(obj: Object) -> str:
    """What an operator's conditions say, for a wait message."""
    said = [
        f"{c.get('type')}={c.get('status')}" + (f" ({c['message']})" if c.get("message") else "")
        for c in obj.get("status", {}).get("conditions", [])
        if c.get("status") != "True"
    ]
    return ", ".join(said) or "not ready yet"
