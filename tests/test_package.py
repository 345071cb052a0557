"""Package metadata, the Compositions, the Dockerfile and the shipped ClusterRoles."""

from __future__ import annotations

import asyncio
import re
from functools import cache

import yaml

from functions.api.kinds import KINDS
from functions.api.manifests import FUNCTION_NAME
from functions.domain.readiness import COMPOSED, REQUIRED, group_of
from functions.rbac import crossplane_role
from functions.render import MAX_ITERATIONS, RESOURCE_NAME, kind_of, load, request, to_composite
from functions.runner import FunctionRunner
from tests.conftest import (
    ALL_EXAMPLES,
    ENVIRONMENT,
    ROOT,
    Example,
    counter_passwords,
    render_example,
)
from tests.support.rbac import READ, Request, allows, grants
from tests.support.schemas import Catalog

PACKAGE = ROOT / "package"


def test_every_composition_is_a_one_step_pipeline_calling_the_function() -> None:
    for kind in KINDS:
        comp = yaml.safe_load((ROOT / "compositions" / f"{kind.plural}.yaml").read_text())
        assert comp["spec"]["compositeTypeRef"] == {
            "apiVersion": "cozyplane.io/v1alpha1",
            "kind": kind.composite,
        }
        assert comp["spec"]["mode"] == "Pipeline"
        (step,) = comp["spec"]["pipeline"]
        assert step["functionRef"] == {"name": FUNCTION_NAME}
        assert step["input"]["apiVersion"] == "fn.cozyplane.io/v1alpha1"


def test_package_metadata() -> None:
    fn = yaml.safe_load((PACKAGE / "function" / "crossplane.yaml").read_text())
    assert (fn["kind"], fn["metadata"]["name"]) == ("Function", FUNCTION_NAME)
    assert fn["spec"]["capabilities"] == ["composition"]
    conf = yaml.safe_load((PACKAGE / "configuration" / "crossplane.yaml").read_text())
    assert conf["kind"] == "Configuration"
    (dep,) = conf["spec"]["dependsOn"]
    assert dep["kind"] == "Function"
    assert dep["package"].endswith("/" + FUNCTION_NAME)
    assert (
        conf["spec"]["crossplane"]["version"] == fn["spec"]["crossplane"]["version"] == ">=v2.2.0"
    )


def test_dockerfile_builds_and_runs_on_one_python() -> None:
    text = (PACKAGE / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=python:3.11-" in text
    assert 'ENTRYPOINT ["/venv/bin/cozyplane", "serve"]' in text
    assert "--frozen" in text


# Crossplane reads and watches composed resources, applies them (create, patch, update) and
# deletes what leaves the desired state; it only reads required resources.
CROSSPLANE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@cache
def _required_kinds(example: Example) -> frozenset[tuple[str, str]]:
    """Every kind the function asks for while rendering an example, day-2 state included."""
    kind, _ = kind_of(example.claim())
    xr = to_composite(example.claim(), kind)
    observed = {
        o["metadata"]["annotations"][RESOURCE_NAME]: o
        for o in (load(example.observed) if example.observed else [])
    }
    requirements = None
    seen: set[tuple[str, str]] = set()
    for _ in range(MAX_ITERATIONS + 1):
        req = request(xr, observed, load(ENVIRONMENT), {}, requirements)
        rsp = asyncio.run(FunctionRunner(counter_passwords()).RunFunction(req, None))
        seen |= {(group_of(s.api_version), s.kind) for s in rsp.requirements.resources.values()}
        if rsp.requirements == requirements:
            break
        requirements = rsp.requirements
    return frozenset(seen)


def test_crossplane_role_is_what_the_code_needs_and_no_more(catalog: Catalog) -> None:
    """Derived from what every example composes and requires (plurals from the upstream
    CRDs), not from the tables the role is generated from: each permission Crossplane needs
    is granted, and each grant is needed."""
    rendered = [o for e in ALL_EXAMPLES for o in render_example(e).resources]
    composed = {(group_of(o["apiVersion"]), o["kind"]) for o in rendered}
    required = set().union(*(_required_kinds(e) for e in ALL_EXAMPLES))
    needed = {
        Request(verb, group, catalog.plurals[(group, kind)])
        for group, kind in composed
        for verb in CROSSPLANE_VERBS
    }
    needed |= {
        Request(verb, group, catalog.plurals[(group, kind)])
        for group, kind in required
        for verb in READ
    }
    # The API server lets nobody grant a permission they lack: Crossplane must hold those
    # of every Role and ClusterRole it composes.
    for role in (o for o in rendered if o["kind"] in ("Role", "ClusterRole")):
        needed |= grants(role["rules"])
    # CDI checks that whoever writes a cloning DataVolume may create its source.
    if any(o["kind"] == "DataVolume" and "pvc" in o["spec"]["source"] for o in rendered):
        needed.add(Request("create", "cdi.kubevirt.io", "datavolumes/source"))
    # Binding a role Crossplane does not compose takes `bind` on that role, by name.
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for binding in (o for o in rendered if o["kind"].endswith("Binding")):
        ref = binding["roleRef"]
        if (ref["kind"], ref["name"]) not in names:
            resource = "clusterroles" if ref["kind"] == "ClusterRole" else "roles"
            needed.add(Request("bind", "rbac.authorization.k8s.io", resource, ref["name"]))

    rules = crossplane_role()["rules"]
    assert {n for n in needed if not allows(rules, n)} == set()
    assert grants(rules) - needed == set()


def test_the_examples_require_exactly_the_readable_kinds() -> None:
    assert set().union(*(_required_kinds(e) for e in ALL_EXAMPLES)) == REQUIRED.keys()


def test_the_examples_compose_every_known_kind_and_no_other() -> None:
    used = {
        (group_of(o["apiVersion"]), o["kind"])
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
    }
    assert used == COMPOSED.keys()
