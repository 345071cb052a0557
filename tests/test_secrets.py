"""Secrets never leak: no secret value the function composes appears in anything else it
says, in process or served over gRPC with debug logging: its logs, its results (which
Crossplane turns into events), its conditions, the composite status or any other field of
its responses. Only the composed Secrets carry them."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import logging as stdlib_logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from crossplane.function import logging, resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from functions.api.manifests import composition
from functions.domain.secrets import PasswordSource
from functions.render import (
    MAX_ITERATIONS,
    RESOURCE_NAME,
    kind_of,
    load,
    render,
    request,
    to_composite,
)
from functions.runner import FunctionRunner
from tests.conftest import ALL_EXAMPLES, ENVIRONMENT, EXAMPLES, ROOT, counter_passwords
from tests.test_grpc import READY_TIMEOUT, free_port, stub

Call = Callable[[fnv1.RunFunctionRequest], fnv1.RunFunctionResponse]
# Connection coordinates that Secrets carry beside the credentials; they are published in
# claims and statuses on purpose, so they are not secrets.
PUBLIC_KEYS = {"username", "user", "host", "port"}
CREDENTIAL_KEYS = ("password", "secret", "token")


def _claim_exchanges(
    claim: dict[str, Any], observed: list[dict[str, Any]], call: Call
) -> list[fnv1.RunFunctionResponse]:
    """Every response of one render: each round trip Crossplane would make for a claim."""
    kind, _ = kind_of(claim)
    xr = to_composite(claim, kind)
    by_key = {o["metadata"]["annotations"][RESOURCE_NAME]: o for o in observed}
    step_input = composition(kind)["spec"]["pipeline"][0].get("input", {})
    requirements = None
    responses = []
    for _ in range(MAX_ITERATIONS + 1):
        rsp = call(request(xr, by_key, load(ENVIRONMENT), step_input, requirements))
        responses.append(rsp)
        if not rsp.requirements.resources or rsp.requirements == requirements:
            break
        requirements = rsp.requirements
    return responses


def _example_exchanges(call: Call) -> list[fnv1.RunFunctionResponse]:
    return [
        rsp
        for e in ALL_EXAMPLES
        for rsp in _claim_exchanges(e.claim(), load(e.observed) if e.observed else [], call)
    ]


def _credentials_in(document: str) -> set[str]:
    """The credentials inside a JSON value (the VPN's config holds its users' passwords)."""
    try:
        pending = [json.loads(document)]
    except ValueError:
        return set()
    found: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending += node
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and any(w in key.lower() for w in CREDENTIAL_KEYS):
                    found.add(value)
                pending.append(value)
    return found


def secret_values(responses: list[fnv1.RunFunctionResponse]) -> set[str]:
    """Every credential in the composed Secrets, as stored (base64) and decoded."""
    values: set[str] = set()
    for rsp in responses:
        for desired in rsp.desired.resources.values():
            obj = resource.struct_to_dict(desired.resource)
            if obj.get("kind") != "Secret":
                continue
            decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            decoded |= obj.get("stringData") or {}
            for key, value in decoded.items():
                if key not in PUBLIC_KEYS:
                    values |= {value, base64.b64encode(value.encode()).decode()}
                    values |= _credentials_in(value)
    return values


def said(responses: list[fnv1.RunFunctionResponse]) -> str:
    """Everything in the responses but the composed resources themselves."""
    parts = []
    for rsp in responses:
        rest = copy.deepcopy(rsp)
        rest.desired.ClearField("resources")
        parts.append(json_format.MessageToJson(rest))
    return "\n".join(parts)


def leaks(values: set[str], *texts: str) -> list[str]:
    return sorted(v for v in values if any(v in text for text in texts))


class Recorder:
    """The tests' password source, remembering every password it makes."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self._source = counter_passwords()

    def __call__(self, length: int) -> str:
        self.made.append(self._source(length))
        return self.made[-1]


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The SDK's debug logging (what `serve --debug` configures), written to a buffer."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    logging.configure(logging.Level.DEBUG)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    yield buffer
    structlog.configure(**saved)


def _in_process(passwords: PasswordSource) -> Call:
    runner = FunctionRunner(passwords)
    return lambda req: asyncio.run(runner.RunFunction(req, None))


def test_no_secret_reaches_logs_results_events_or_status(
    debug_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(stdlib_logging.DEBUG)
    passwords = Recorder()
    responses = _example_exchanges(_in_process(passwords))
    values = secret_values(responses)
    # Every password made goes into a composed Secret (whole, or as part of a token).
    assert passwords.made
    assert [p for p in passwords.made if not any(p in v for v in values)] == []
    assert debug_log.getvalue().count("composed") >= len(ALL_EXAMPLES)
    said_and_logged = (said(responses), debug_log.getvalue(), caplog.text)
    assert leaks(values | set(passwords.made), *said_and_logged) == []


def _refusal(claim: dict[str, Any], observed: list[dict[str, Any]], call: Call) -> str:
    """Everything said when a claim is refused, which must be with a Fatal result."""
    (rsp,) = _claim_exchanges(claim, observed, call)
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]
    return said([rsp])


def test_refusals_do_not_repeat_the_secrets_of_the_claim(debug_log: io.StringIO) -> None:
    """Fatal results name the field at fault, never the value it holds."""
    call = _in_process(counter_passwords())
    secret = "s3cret-that-must-stay-put"
    (postgres,) = load(EXAMPLES / "postgres-minimal.yaml")
    texts = {
        # A rule of the function (Cozystack's): the superuser is not a claim's to set.
        "users.postgres is forbidden": _refusal(
            {**postgres, "spec": {"users": {"postgres": {"password": secret}}}}, [], call
        ),
        # The schema: too long, and not a string.
        "spec.users.app.password: String should have at most 256": _refusal(
            {**postgres, "spec": {"users": {"app": {"password": secret * 20}}}}, [], call
        ),
        "spec.users.app.password: Input should be a valid string": _refusal(
            {**postgres, "spec": {"users": {"app": {"password": [secret]}}}}, [], call
        ),
    }
    # A compose rule on observed state: RabbitMQ keeps the password it imported, so a new
    # one is refused; neither the old nor the new one may be repeated.
    (claim,) = load(EXAMPLES / "rabbitmq-full.yaml")
    rendered = render(claim, required=load(ENVIRONMENT), passwords=counter_passwords())
    observed = copy.deepcopy(rendered.resources)
    for obj in observed:
        if obj["kind"] == "User":
            obj["status"] = {"username": obj["metadata"]["name"]}
    changed = copy.deepcopy(claim)
    changed["spec"]["users"]["orders_app"]["password"] = secret
    texts["spec.users.orders_app.password: RabbitMQ keeps"] = _refusal(changed, observed, call)

    for reason, text in texts.items():
        assert reason in text
    values = {secret, secret * 20, claim["spec"]["users"]["orders_app"]["password"]}
    values |= {base64.b64encode(v.encode()).decode() for v in values}
    assert leaks(values, *texts.values(), debug_log.getvalue()) == []


def test_served_with_debug_logging_no_secret_reaches_the_output(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    output = tmp_path / "serve.log"
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "functions", "serve"),
                *("--insecure", "--debug", "--address", address),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            channel = grpc.insecure_channel(address)
            grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
            runner = stub(channel)
            responses = _example_exchanges(lambda req: runner.RunFunction(req, timeout=30))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    served = output.read_text()
    values = secret_values(responses)
    assert values
    assert served.count("composed") >= len(ALL_EXAMPLES)
    assert leaks(values, said(responses), served) == []
