"""Shared fixtures: the upstream CRDs, the schema catalog and deterministic renders."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.domain.secrets import PasswordSource
from functions.render import Rendered, load, render
from tests.support.schemas import Catalog

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENVIRONMENT = EXAMPLES / "environment"
CLAIMS = sorted(p for p in EXAMPLES.glob("*.yaml"))


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


RenderFn = Callable[..., Rendered]


@pytest.fixture
def render_example() -> RenderFn:
    def run(path: Path, **kwargs: Any) -> Rendered:
        kwargs.setdefault("required", load(ENVIRONMENT))
        kwargs.setdefault("passwords", counter_passwords())
        return render(load(path)[0], **kwargs)

    return run
