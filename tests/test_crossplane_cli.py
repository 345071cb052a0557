"""The real Crossplane CLI in the loop: `crossplane render`, `beta validate`, `xpkg build`."""

from __future__ import annotations

import base64
import copy
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from functions.api.kinds import KINDS
from functions.api.manifests import FUNCTION_NAME
from functions.render import kind_of, load, render, to_composite
from tests.conftest import ALL_EXAMPLES, ENVIRONMENT, ROOT, Example, crds_dir
from tests.support import crank
from tests.support.schemas import Catalog
from tests.test_grpc import READY_TIMEOUT, free_port

Object = dict[str, Any]
RESULT_KIND = ("render.crossplane.io/v1beta1", "Result")


@pytest.fixture(scope="module")
def functions_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """function-cozyplane served locally, insecure, as `crossplane render` talks to it."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions", "serve", "--insecure", "--address", address],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=READY_TIMEOUT)
        path = tmp_path_factory.mktemp("functions") / "functions.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "pkg.crossplane.io/v1",
                    "kind": "Function",
                    "metadata": {
                        "name": FUNCTION_NAME,
                        "annotations": {
                            "render.crossplane.io/runtime": "Development",
                            "render.crossplane.io/runtime-development-target": address,
                        },
                    },
                    "spec": {"package": f"ghcr.io/cozyplane/{FUNCTION_NAME}:v0.1.0"},
                }
            )
        )
        yield path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def crank_render(example: Example, functions: Path, tmp: Path) -> list[Object]:
    kind, _ = kind_of(example.claim())
    xr = tmp / f"{example.id}.xr.yaml"
    xr.write_text(yaml.safe_dump(to_composite(example.claim(), kind)))
    args: list[str | Path] = [
        "render",
        xr,
        ROOT / "compositions" / f"{kind.plural}.yaml",
        functions,
        "--include-full-xr",
        "--include-function-results",
        "--required-resources",
        ENVIRONMENT,
    ]
    if example.observed:
        args += ["--observed-resources", example.observed]
    result = crank.run(*args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def crank_outputs(
    functions_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Object]]:
    tmp = tmp_path_factory.mktemp("render")
    return {e.id: crank_render(e, functions_file, tmp) for e in ALL_EXAMPLES}


def _align_generated(ours: list[Object], theirs: list[Object]) -> list[Object]:
    """Their objects with each generated value replaced by ours.

    Passwords and tokens are random in each process. Where a composed Secret's value
    differs between the two renders, the value is generated: map theirs to ours and
    substitute it everywhere (in Secrets and in objects embedding it, such as Talos
    configurations). Everything else must then be equal.
    """
    our_secrets = {(o["metadata"]["name"]): o for o in ours if o.get("kind") == "Secret"}
    swap: dict[str, str] = {}
    for theirs_secret in (t for t in theirs if t.get("kind") == "Secret"):
        mine = our_secrets.get(theirs_secret["metadata"]["name"], {}).get("data", {})
        for key, value in theirs_secret.get("data", {}).items():
            if key in mine and mine[key] != value:
                swap[base64.b64decode(value).decode()] = base64.b64decode(mine[key]).decode()

    def text(value: str) -> str:
        for old, new in sorted(swap.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(old, new)
        return value

    def replace(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [replace(v) for v in value]
        return text(value) if isinstance(value, str) else value

    aligned = []
    for obj in theirs:
        if obj.get("kind") == "Secret" and "data" in obj:
            data = {
                k: base64.b64encode(text(base64.b64decode(v).decode()).encode()).decode()
                for k, v in obj["data"].items()
            }
            aligned.append(replace({k: v for k, v in obj.items() if k != "data"}) | {"data": data})
        else:
            aligned.append(replace(obj))
    return aligned


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda e: e.id)
@pytest.mark.parametrize("form", ["claim", "composite"])
def test_render_parity(example: Example, form: str, crank_outputs: dict[str, list[Object]]) -> None:
    theirs = crank_outputs[example.id]
    kind, _ = kind_of(example.claim())
    document = example.claim() if form == "claim" else to_composite(example.claim(), kind)
    ours = render(
        document,
        observed=load(example.observed) if example.observed else (),
        required=load(ENVIRONMENT),
    )
    their_results = [
        (d["severity"], d["message"]) for d in theirs if (d["apiVersion"], d["kind"]) == RESULT_KIND
    ]
    their_objects = [d for d in theirs if (d["apiVersion"], d["kind"]) != RESULT_KIND]
    our_objects = [ours.composite, *ours.resources]
    assert [(s, m) for s, m in ours.results] == their_results
    if example.observed:
        # Every password is read back from the observed Secrets: the outputs are identical.
        assert our_objects == their_objects
    else:
        assert our_objects == _align_generated(our_objects, their_objects)


def test_parity_covers_every_kind() -> None:
    assert {kind_of(e.claim())[0] for e in ALL_EXAMPLES} == set(KINDS)


@pytest.fixture(scope="module")
def validate_env(
    tmp_path_factory: pytest.TempPathFactory,
    crank_outputs: dict[str, list[Object]],
    catalog: Catalog,
) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("validate")
    # Kinds of the rendered objects that no CRD describes: the Kubernetes built-ins.
    core = {
        (group, version, d["kind"])
        for out in crank_outputs.values()
        for d in out
        for group, _, version in [d["apiVersion"].rpartition("/")]
        if (group, version, d["kind"]) not in catalog.schemas
    }
    extensions = crank.extensions(tmp, crds_dir(), core)
    return f"{ROOT / 'xrds'},{extensions}", crank.offline_cache(tmp)


def beta_validate(
    docs: list[Object], validate_env: tuple[str, Path]
) -> subprocess.CompletedProcess[str]:
    extensions, cache = validate_env
    return crank.run(
        "beta",
        "validate",
        extensions,
        "-",
        "--cache-dir",
        cache,
        "--error-on-missing-schemas",
        stdin=yaml.safe_dump_all(docs),
    )


def test_beta_validate_passes_every_rendered_object(
    crank_outputs: dict[str, list[Object]], validate_env: tuple[str, Path]
) -> None:
    docs = [
        d
        for out in crank_outputs.values()
        for d in out
        if (d["apiVersion"], d["kind"]) != RESULT_KIND
    ]
    docs += [e.claim() for e in ALL_EXAMPLES]
    result = beta_validate(docs, validate_env)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout + result.stderr
    total = len(docs)
    assert (
        summary
        == f"Total {total} resources: 0 missing schemas, {total} success cases, 0 failure cases"
    )


def test_beta_validate_catches_unknown_fields_and_cel(
    crank_outputs: dict[str, list[Object]], validate_env: tuple[str, Path]
) -> None:
    """The validator is not a rubber stamp: an unknown field and a broken rule both fail."""
    cluster = next(d for d in crank_outputs["postgres-minimal"] if d["kind"] == "Cluster")
    cluster = copy.deepcopy(cluster)
    cluster["spec"]["instancez"] = 3
    claim = {
        "apiVersion": "cozyplane.io/v1alpha1",
        "kind": "Postgres",
        "metadata": {"name": "db", "namespace": "tenant-dev"},
        "spec": {"users": {"postgres": {}}},
    }
    result = beta_validate([cluster, claim], validate_env)
    assert result.returncode != 0
    assert "instancez" in result.stdout
    assert "users.postgres is forbidden" in result.stdout


def _member(tar: tarfile.TarFile, name: str | tarfile.TarInfo) -> bytes:
    file = tar.extractfile(name)
    assert file is not None, name
    return file.read()


def _package_yaml(path: Path) -> tuple[list[Object], list[Object]]:
    """The objects of an .xpkg's base layer and of its examples layer."""
    with tarfile.open(path) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))[0]
        config = json.loads(_member(tar, manifest["Config"]))
        layers: dict[str, list[Object]] = {}
        for digest, role in config["config"]["Labels"].items():
            blob = digest.removeprefix("io.crossplane.xpkg:sha256:") + ".tar.gz"
            with tarfile.open(fileobj=io.BytesIO(_member(tar, blob))) as layer:
                for member in layer.getmembers():
                    text = _member(layer, member).decode()
                    layers.setdefault(role, []).extend(d for d in yaml.safe_load_all(text) if d)
    return layers.get("base", []), layers.get("upbound", [])


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packages")
    result = subprocess.run(
        [ROOT / "package" / "build.sh", crank.crank(), crank.tool("helm"), out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_configuration_package(packages: Path) -> None:
    base, examples = _package_yaml(packages / "configuration-cozyplane.xpkg")
    meta, *objects = base
    assert (meta["apiVersion"], meta["kind"]) == ("meta.pkg.crossplane.io/v1", "Configuration")
    assert meta["spec"]["crossplane"]["version"] == ">=v2.2.0"
    assert meta["spec"]["dependsOn"] == [
        {
            "apiVersion": "pkg.crossplane.io/v1",
            "kind": "Function",
            "package": f"ghcr.io/cozyplane/{FUNCTION_NAME}",
            "version": ">=v0.1.0",
        }
    ]
    listed = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    expected = sorted(
        [("CompositeResourceDefinition", k.xrd_name) for k in KINDS]
        + [("Composition", k.xrd_name) for k in KINDS]
    )
    assert listed == expected
    for obj in objects:
        name = obj["metadata"]["name"]
        folder = "xrds" if obj["kind"] == "CompositeResourceDefinition" else "compositions"
        source = next(d for d in load(ROOT / folder) if d["metadata"]["name"] == name)
        # xpkg build re-serialises objects (adding an empty status); the content is ours.
        assert {k: obj[k] for k in source} == source
    assert {(e["kind"], e["metadata"]["name"]) for e in examples} >= {
        ("Postgres", "orders"),
        ("Tenant", "root"),
    }


def test_function_package(packages: Path) -> None:
    base, _ = _package_yaml(packages / "function-cozyplane.xpkg")
    meta, *objects = base
    assert (meta["kind"], meta["metadata"]["name"]) == ("Function", FUNCTION_NAME)
    assert meta["spec"]["capabilities"] == ["composition"]
    assert meta["spec"]["crossplane"]["version"] == ">=v2.2.0"
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("CustomResourceDefinition", "inputs.fn.cozyplane.io")
    ]


def test_crank_is_the_pinned_version() -> None:
    result = crank.run("version", "--client")
    assert result.stdout.strip() == f"Client Version: {crank.crank_version()}"
