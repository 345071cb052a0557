"""Shared fixtures: the upstream CRDs, the schema catalog and deterministic renders."""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.domain.secrets import PasswordSource
from functions.render import Rendered, load, render
from tests.support.schemas import Catalog

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENVIRONMENT = EXAMPLES / "environment"
OBSERVED = EXAMPLES / "observed"
GITOPS = EXAMPLES / "gitops"
CLAIMS = sorted(p for p in EXAMPLES.glob("*.yaml"))


@dataclass(frozen=True)
class Example:
    """An example claim, with the namespace GitOps gives it and the observed state it may have."""

    path: Path
    namespace: str | None = None
    observed: Path | None = None

    @property
    def id(self) -> str:
        name = self.path.relative_to(EXAMPLES).as_posix().removesuffix(".yaml").replace("/", "-")
        return f"{name}.day2" if self.observed else name

    def claim(self) -> dict[str, Any]:
        (doc,) = load(self.path)
        if self.namespace:
            doc.setdefault("metadata", {})["namespace"] = self.namespace
        return doc


def _examples() -> list[Example]:
    found = []
    for path in CLAIMS:
        found.append(Example(path))
        if (OBSERVED / path.stem).is_dir():
            found.append(Example(path, observed=OBSERVED / path.stem))
    for folder in sorted((GITOPS / "tenants").iterdir()):
        found += [
            Example(p, namespace=f"tenant-{folder.name}") for p in sorted(folder.glob("*.yaml"))
        ]
    return found


ALL_EXAMPLES = _examples()


def crds_dir() -> Path:
    """Upstream CRDs: $COZYPLANE_CRDS_DIR, else ../shared/crds beside the checkout."""
    path = Path(os.environ.get("COZYPLANE_CRDS_DIR", ROOT.parent / "shared" / "crds"))
    if not (path / "kubernetes-openapi" / "swagger.json").is_file():
        pytest.fail(
            f"upstream CRDs not found at {path}: set COZYPLANE_CRDS_DIR to the folder holding "
            "the operators' CRDs and kubernetes-openapi/swagger.json",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog(crds_dir(), ROOT / "xrds")


def counter_passwords() -> PasswordSource:
    """Reproducible stand-in for the CSPRNG: p0000..., p0001..., one per generated password."""
    counter = itertools.count()

    def generate(length: int) -> str:
        seed = hashlib.sha256(str(next(counter)).encode()).hexdigest()
        return ("p" + seed)[:length]

    return generate


@pytest.fixture
def passwords() -> PasswordSource:
    return counter_passwords()


def render_example(example: Example | Path, **kwargs: Any) -> Rendered:
    """Render an example through the real function, deterministically."""
    if isinstance(example, Path):
        example = Example(example)
    kwargs.setdefault("required", load(ENVIRONMENT))
    kwargs.setdefault("passwords", counter_passwords())
    if example.observed:
        kwargs.setdefault("observed", load(example.observed))
    return render(example.claim(), **kwargs)
