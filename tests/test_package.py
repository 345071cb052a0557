"""Package metadata, the Compositions, the Dockerfile and the shipped ClusterRoles."""

from __future__ import annotations

import re

import yaml

from functions.api.kinds import KINDS
from functions.api.manifests import FUNCTION_NAME, crossplane_role
from functions.domain.readiness import COMPOSED, group_of
from tests.conftest import ALL_EXAMPLES, ROOT, render_example

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


def test_crossplane_role_covers_exactly_the_composed_kinds() -> None:
    granted = {
        (group, res)
        for rule in crossplane_role()["rules"]
        if "resourceNames" not in rule
        for group in rule["apiGroups"]
        for res in rule["resources"]
    }
    assert granted == {(g, facts.plural) for (g, _), facts in COMPOSED.items()}


def test_the_examples_compose_every_known_kind_and_no_other() -> None:
    used = {
        (group_of(o["apiVersion"]), o["kind"])
        for e in ALL_EXAMPLES
        for o in render_example(e).resources
    }
    assert used == COMPOSED.keys()
