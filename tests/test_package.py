"""Package metadata, the Compositions, the Dockerfile and the shipped ClusterRoles."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import yaml

from functions.api.kinds import KINDS
from functions.api.manifests import FUNCTION_NAME
from functions.domain.readiness import COMPOSED, REQUIRED, group_of
from functions.rbac import ALL_VERBS, crossplane_role
from functions.render import kind_of, load, request, to_composite
from functions.runner import FunctionRunner
from tests.conftest import ALL_EXAMPLES, ENVIRONMENT, ROOT, counter_passwords, render_example

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


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        if "resourceNames" not in rule
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _allowed(grants: set[tuple[str, str, str]], group: str, resource: str, verb: str) -> bool:
    return any(g == group and r in (resource, "*") and v in (verb, "*") for g, r, v in grants)


def test_crossplane_role_is_what_the_code_needs_and_no_more() -> None:
    grants = _grants(crossplane_role()["rules"])
    rendered = [o for e in ALL_EXAMPLES for o in render_example(e).resources]
    needed = {(g, f.plural, v) for (g, _), f in COMPOSED.items() for v in ALL_VERBS}
    needed |= {
        (g, plural, v) for (g, _), plural in REQUIRED.items() for v in ("get", "list", "watch")
    }
    # The API server lets nobody grant a permission they lack: Crossplane must hold those
    # of every Role and ClusterRole it composes.
    for role in (o for o in rendered if o["kind"] in ("Role", "ClusterRole")):
        needed |= _grants(role["rules"])
    # CDI checks that whoever writes a cloning DataVolume may create its source.
    if any(o["kind"] == "DataVolume" and "pvc" in o["spec"]["source"] for o in rendered):
        needed.add(("cdi.kubevirt.io", "datavolumes/source", "create"))
    missing = {n for n in needed if not _allowed(grants, *n)}
    assert missing == set()
    assert grants == needed


def test_crossplane_may_bind_only_the_roles_it_refers_to() -> None:
    bindings = [
        o
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
        if o["kind"].endswith("Binding")
    ]
    composed = {
        (o["kind"], o["metadata"]["name"])
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
    }
    referred = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    named = {
        (("ClusterRole" if rule["resources"] == ["clusterroles"] else "Role"), name)
        for rule in crossplane_role()["rules"]
        if rule["verbs"] == ["bind"]
        for name in rule["resourceNames"]
    }
    assert named == referred - composed


def test_the_examples_require_only_readable_kinds() -> None:
    for example in ALL_EXAMPLES:
        kind, _ = kind_of(example.claim())
        xr = to_composite(example.claim(), kind)
        requirements = None
        seen: set[tuple[str, str]] = set()
        for _ in range(6):
            req = request(xr, {}, load(ENVIRONMENT), {}, requirements)
            rsp = asyncio.run(FunctionRunner(counter_passwords()).RunFunction(req, None))
            seen |= {(group_of(s.api_version), s.kind) for s in rsp.requirements.resources.values()}
            if rsp.requirements == requirements:
                break
            requirements = rsp.requirements
        assert seen <= REQUIRED.keys(), example.id


def test_the_examples_compose_every_known_kind_and_no_other() -> None:
    used = {
        (group_of(o["apiVersion"]), o["kind"])
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
    }
    assert used == COMPOSED.keys()
