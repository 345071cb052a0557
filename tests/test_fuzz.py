"""Fuzzing RunFunction: bad input never crashes it, and the same input gives the same bytes.

Quick by default (2,600 derandomized cases); COZYPLANE_FUZZ_LONG=1 runs the same
properties on 40 times as many random ones (docs/reliability.md).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from crossplane.function import logging, resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api.config import PlatformConfig
from functions.api.kinds import KINDS, Kind
from functions.api.manifests import composition
from functions.api.schema import openapi_schema
from functions.domain.secrets import random_password
from functions.render import load, matches
from tests.conftest import ENVIRONMENT
from tests.support import fuzz
from tests.support.fuzz import STATS, Harness, Json, World

logging.configure(logging.Level.DISABLED)

LONG = os.environ.get("COZYPLANE_FUZZ_LONG") == "1"
SCALE = 40 if LONG else 1
ENVIRONMENT_DOCS = load(ENVIRONMENT)
INPUTS = {k: composition(k)["spec"]["pipeline"][0].get("input", {}) for k in KINDS}
input_overrides = fuzz.from_schema(openapi_schema(PlatformConfig))


def budget(quick: int) -> settings:
    # Derandomized in the default run so CI sees the same cases every time; random in
    # long mode, where Hypothesis prints the seed of any failure to reproduce it.
    return settings(
        max_examples=quick * SCALE,
        derandomize=not LONG,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


class Report:
    """Prints the module's figures in pytest's terminal summary."""

    def __init__(self, line: str) -> None:
        self.line = line

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(self.line)


@pytest.fixture(scope="module")
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()
    report = (
        f"fuzz ({'long' if LONG else 'quick'}): {STATS.cases} cases, "
        f"{STATS.calls} RunFunction calls, {STATS.crashes} crashes; "
        f"{STATS.refused} Fatals naming a malformed observed/required object"
    )
    request.config.pluginmanager.register(Report(report))
    assert STATS.crashes == 0, report


def assert_fatal_names_a_field(
    rsp: fnv1.RunFunctionResponse,
    *roots: str,
    malformed: fnv1.RunFunctionRequest | None = None,
) -> None:
    """A Fatal result says which field is wrong and why: `<root>...: <rule>`, or, given the
    request with `malformed` observed and required objects, `observed resource "<key>":
    <path> must be ...` where <path> is in that object."""
    message = fuzz.fatal(rsp)
    if message is None:
        return
    assert fuzz.INTERNAL not in message
    if malformed is not None and fuzz.REFUSED.search(message):
        fuzz.refused_field(malformed, message)
        return
    assert any(
        f"{root}{sep}" in message
        for root in roots or ("spec", "metadata", "input")
        for sep in ".:["
    ), message
    assert message.rstrip().rsplit(": ", 1)[-1].strip(), message


def assert_keeps_something(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse) -> None:
    """An existing claim never gets an empty desired state without a Fatal result: that
    response would make Crossplane delete every composed resource.

    The one exception is by design: a VirtualMachine whose VM does not exist yet and whose
    Service must change type leaves the Service out so that Crossplane deletes it.
    """
    if req.observed.resources and fuzz.fatal(rsp) is None and fuzz.resolved(req, rsp):
        replacing = any("replacing Service" in c.message for c in rsp.conditions)
        assert rsp.desired.resources or replacing, "an existing claim composed nothing"


def environment(_: str, selector: fnv1.ResourceSelector) -> list[dict[str, Any]]:
    return [d for d in ENVIRONMENT_DOCS if matches(d, selector)]


def drawn_world(data: st.DataObject, *, corrupt: bool = False) -> World:
    """Required resources: the examples' environment, nothing, or a drawn object; the
    same answer every time Crossplane asks again."""
    answers: dict[str, list[dict[str, Any]]] = {}

    def world(name: str, selector: fnv1.ResourceSelector) -> list[dict[str, Any]]:
        key = f"{name}/{selector.SerializeToString(deterministic=True)!r}"
        if key not in answers:
            choice = data.draw(st.sampled_from(("environment", "nothing", "drawn")))
            found = environment(name, selector)
            if choice == "nothing":
                found = []
            elif choice == "drawn":
                obj = data.draw(fuzz.api_shaped(fuzz.synthetic(selector)))
                found = [data.draw(fuzz.corrupted(obj)) if corrupt else obj]
            answers[key] = found
        return answers[key]

    return world


def step_input(data: st.DataObject, kind: Kind) -> Json:
    return data.draw(
        st.just(INPUTS[kind]) | input_overrides.map(lambda extra: INPUTS[kind] | extra)
    )


def composite_of(data: st.DataObject, kind: Kind, spec: Json | None = None) -> Json:
    name = data.draw(fuzz.claim_names(kind), label="name")
    namespace = data.draw(fuzz.namespaces, label="namespace")
    spec = data.draw(fuzz.specs(kind), label="spec") if spec is None else spec
    return fuzz.composite(kind, name, namespace, spec)


def first_call(
    harness: Harness, data: st.DataObject, kind: Kind, world: World, config: Json
) -> tuple[Json, fnv1.RunFunctionResponse]:
    xr = composite_of(data, kind)
    _, rsp = fuzz.converge(harness, xr, {}, world, config)
    assert_fatal_names_a_field(rsp)
    return xr, rsp


BY_CLAIM = {k.claim: k for k in KINDS}
# By claim name, so a failure prints a short parameter.
claims = pytest.mark.parametrize("claim", list(BY_CLAIM))


@claims
@budget(40)
@given(data=st.data())
def test_specs_within_the_schema_compose_or_fail_naming_the_field(
    harness: Harness, claim: str, data: st.DataObject
) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[claim]
    first_call(harness, data, kind, drawn_world(data), step_input(data, kind))


@claims
@budget(80)
@given(data=st.data())
def test_specs_outside_the_schema_fail_naming_the_field(
    harness: Harness, claim: str, data: st.DataObject
) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[claim]
    spec, mutations = data.draw(fuzz.mutated(kind, data.draw(fuzz.specs(kind))))
    xr = composite_of(data, kind, spec)
    world = drawn_world(data)
    _, rsp = fuzz.converge(harness, xr, {}, world, INPUTS[kind])
    assert_fatal_names_a_field(rsp)
    for mutation in mutations:
        if mutation.invalid and fuzz.still_there(spec, mutation):
            message = fuzz.fatal(rsp)
            assert message is not None, f"{mutation.what} at {fuzz.dotted(mutation.path)}"
            # The field itself, or an enclosing one refused first (a map over its size).
            path = mutation.path
            named = [f"{fuzz.dotted(path[:i])}:" for i in range(1, len(path))]
            assert fuzz.dotted(path) in message or any(n in message for n in named), message


@claims
@budget(30)
@given(data=st.data())
def test_existing_claims_never_lose_everything(
    harness: Harness, claim: str, data: st.DataObject
) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[claim]
    world = drawn_world(data)
    xr, first = first_call(harness, data, kind, world, INPUTS[kind])
    # Day two: the spec may change, operators report status, objects may be gone.
    if data.draw(st.booleans(), label="new spec"):
        xr = fuzz.composite(
            kind,
            xr["spec"]["claimRef"]["name"],
            xr["spec"]["claimRef"]["namespace"],
            data.draw(fuzz.specs(kind)),
        )
    observed = {
        key: data.draw(fuzz.api_shaped(obj))
        for key, obj in fuzz.as_observed(first).items()
        if data.draw(st.integers(0, 9)) > 0
    }
    req, rsp = fuzz.converge(harness, xr, observed, world, INPUTS[kind])
    assert_fatal_names_a_field(rsp)
    assert_keeps_something(req, rsp)


@claims
@budget(30)
@given(data=st.data())
def test_malformed_observed_and_required_resources_never_crash(
    harness: Harness, claim: str, data: st.DataObject
) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[claim]
    world = drawn_world(data, corrupt=True)
    xr, first = first_call(harness, data, kind, drawn_world(data), INPUTS[kind])
    observed = {
        key: data.draw(fuzz.corrupted(obj) | st.just(obj))
        for key, obj in fuzz.as_observed(first).items()
    }
    observed |= data.draw(st.dictionaries(fuzz.words, fuzz.objects, max_size=3))
    req, rsp = fuzz.converge(harness, xr, observed, world, INPUTS[kind])
    assert_fatal_names_a_field(rsp, malformed=req)
    assert_keeps_something(req, rsp)


composite_kinds = st.sampled_from([k.composite for k in KINDS] + [k.claim for k in KINDS])
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(("cozyplane.io/v1alpha1", "v1")) | fuzz.garbage,
        "kind": composite_kinds | fuzz.garbage,
        "metadata": st.fixed_dictionaries(
            {}, optional={"name": fuzz.text | fuzz.garbage, "uid": fuzz.garbage}
        )
        | fuzz.garbage,
        "spec": st.fixed_dictionaries(
            {}, optional={"claimRef": fuzz.garbage, "compositionRef": fuzz.garbage}
        )
        | fuzz.garbage,
        "status": fuzz.garbage,
    },
)


@budget(600)
@given(data=st.data())
def test_raw_requests_always_get_a_response(harness: Harness, data: st.DataObject) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[data.draw(st.sampled_from(list(BY_CLAIM)))]
    req = fnv1.RunFunctionRequest()
    req.meta.tag = data.draw(fuzz.text)
    shape = data.draw(st.sampled_from(("missing", "garbage", "claim", "mutated claim")))
    if shape == "garbage":
        req.observed.composite.resource.update(data.draw(envelopes))
    elif shape != "missing":
        xr = composite_of(data, kind)
        if shape == "mutated claim":
            xr = data.draw(fuzz.corrupted(xr))
        req.observed.composite.resource.update(xr)
    for key, obj in data.draw(st.dictionaries(fuzz.text, fuzz.objects, max_size=2)).items():
        req.desired.resources[key].resource.update(obj)
    req.context.update(data.draw(fuzz.objects))
    req.input.update(data.draw(st.just(INPUTS[kind]) | fuzz.objects | input_overrides))
    state = data.draw(st.booleans(), label="malformed observed and required objects")
    if state:
        for key, obj in data.draw(st.dictionaries(fuzz.text, fuzz.objects, max_size=3)).items():
            req.observed.resources[key].resource.update(obj)
        lists = st.dictionaries(fuzz.text, st.lists(fuzz.objects, max_size=2), max_size=3)
        for name, items in data.draw(lists).items():
            found = req.required_resources[name]
            for item in items:
                found.items.add().resource.update(item)
        for name, items in data.draw(lists).items():
            for item in items:
                req.extra_resources[name].items.add().resource.update(item)
    rsp = harness.call(req)
    assert_fatal_names_a_field(
        rsp, "spec", "metadata", "input", "kind", malformed=req if state else None
    )
    sent = resource.struct_to_dict(req.observed.composite.resource).get("kind")
    if not (isinstance(sent, str) and sent in {k.composite for k in KINDS}):
        assert fuzz.fatal(rsp) is not None


@claims
@budget(20)
@given(data=st.data())
def test_the_same_request_gives_the_same_bytes_whatever_the_map_order(
    harness: Harness, claim: str, data: st.DataObject
) -> None:
    STATS.cases += 1
    kind = BY_CLAIM[claim]
    world = drawn_world(data)
    xr, rsp = first_call(harness, data, kind, world, INPUTS[kind])
    # Twice applied: some claims compose in steps (a Tenant's namespace first).
    for _ in range(2):
        # Secret data stays as composed: passwords are read back from it, not made anew.
        observed = {
            key: obj if obj["kind"] == "Secret" else data.draw(fuzz.api_shaped(obj))
            for key, obj in fuzz.as_observed(rsp).items()
        }
        req, rsp = fuzz.converge(harness, xr, observed, world, INPUTS[kind])
    expected = rsp.SerializeToString(deterministic=True)
    assert harness.call(req).SerializeToString(deterministic=True) == expected
    if set(rsp.desired.resources) <= set(observed):  # Everything exists: no new password.
        again = harness.call(req, passwords=random_password)
        assert again.SerializeToString(deterministic=True) == expected

    rng = random.Random(data.draw(st.integers(0, 2**32), label="shuffle seed"))
    reordered = harness.call(fuzz.reordered(req, rng))
    assert reordered.SerializeToString(deterministic=True) == expected
