"""Drive the real Crossplane CLI (crank, built from Go modules by `make`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.schemas import KUBEVIRT_KINDS, crd_files

Object = dict[str, Any]
SPECIAL: dict[str, Object] = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    # Metadata is checked by the API server's own code, not by a schema.
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
}


def tool(name: str) -> Path:
    """A Go tool `make tools` builds into .tools/bin (or $COZYPLANE_TOOLS); fails if missing."""
    path = Path(os.environ.get("COZYPLANE_TOOLS", ROOT / ".tools" / "bin")) / name
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} not found at {path}: `make test` builds it from pinned Go modules "
            f"(tools/build.sh {name}), or set COZYPLANE_TOOLS to a folder holding it",
            pytrace=False,
        )
    return path


def crank() -> Path:
    return tool("crank")


def crank_version() -> str:
    """The Crossplane version pinned in tools/crossplane/go.mod."""
    text = (ROOT / "tools" / "crossplane" / "go.mod").read_text()
    match = re.search(r"github\.com/crossplane/crossplane/v2 (v\S+)", text)
    assert match, "tools/crossplane/go.mod does not pin github.com/crossplane/crossplane/v2"
    return match.group(1)


def run(
    *args: str | Path, stdin: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(crank()), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _structural(swagger: Object, ref: str, seen: tuple[str, ...]) -> Object:
    name = ref.rsplit("/", 1)[-1]
    if name in SPECIAL:
        return dict(SPECIAL[name])
    if name in seen:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return _node(swagger, swagger["definitions"][name], (*seen, name))


def _node(swagger: Object, node: Object, seen: tuple[str, ...]) -> Object:
    if "$ref" in node:
        return _structural(swagger, node["$ref"], seen)
    out: Object = {k: node[k] for k in ("type", "format", "enum", "required") if k in node}
    if "items" in node:
        out["items"] = _node(swagger, node["items"], seen)
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _node(swagger, v, seen) for k, v in node["properties"].items()}
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _node(swagger, node["additionalProperties"], seen)
    elif out.get("type") == "object":
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def core_crds(crds_dir: Path, kinds: set[tuple[str, str, str]]) -> list[Object]:
    """CRD-shaped schemas for core kinds, which `beta validate` has no schema for (core#6681)."""
    swagger = json.loads((crds_dir / "kubernetes-openapi" / "swagger.json").read_text())
    crds = []
    for name, definition in swagger["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            key = (gvk["group"], gvk["version"], gvk["kind"])
            if key not in kinds:
                continue
            schema = _node(swagger, definition, (name,))
            plural = gvk["kind"].lower() + "s"
            crds.append(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": f"{plural}.{gvk['group'] or 'core'}"},
                    "spec": {
                        "group": gvk["group"],
                        "names": {"kind": gvk["kind"], "plural": plural},
                        "scope": "Namespaced",
                        "versions": [
                            {
                                "name": gvk["version"],
                                "served": True,
                                "storage": True,
                                "schema": {"openAPIV3Schema": schema},
                            }
                        ],
                    },
                }
            )
    return crds


def extensions(tmp: Path, crds_dir: Path, core_kinds: set[tuple[str, str, str]]) -> Path:
    """A folder `beta validate` can read: the upstream CRD files and core-kind CRDs.

    KubeVirt ships bare schemas rather than CRDs; those are wrapped into CRDs here.
    """
    folder = tmp / "extensions"
    folder.mkdir(parents=True, exist_ok=True)
    for path in crd_files(crds_dir):
        target = folder / "-".join(path.relative_to(crds_dir).parts)
        if path.name.endswith(".openAPIV3Schema.yaml"):
            target.write_text(yaml.safe_dump(bare_crd(path)))
        else:
            target.symlink_to(path)
    (folder / "core-kinds.yaml").write_text(yaml.safe_dump_all(core_crds(crds_dir, core_kinds)))
    return folder


def bare_crd(path: Path) -> Object:
    """A CRD around one of KubeVirt's bare schemas (<plural>.<group>.openAPIV3Schema.yaml)."""
    plural, _, group = path.name.removesuffix(".openAPIV3Schema.yaml").partition(".")
    kind, version, scope = KUBEVIRT_KINDS[plural]
    schema = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)["openAPIV3Schema"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural},
            "scope": scope,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    # As KubeVirt's own CRDs: writers of spec never overwrite status.
                    **(
                        {"subresources": {"status": {}}}
                        if "status" in schema.get("properties", {})
                        else {}
                    ),
                }
            ],
        },
    }


def offline_cache(tmp: Path) -> Path:
    """A cache folder in which `beta validate` finds its Crossplane image "downloaded"."""
    cache = tmp / "cache"
    (cache / "xpkg.crossplane.io" / "crossplane" / f"crossplane@{crank_version()}").mkdir(
        parents=True, exist_ok=True
    )
    return cache
