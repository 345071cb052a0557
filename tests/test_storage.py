"""The shared volume guard: classes are fixed, sizes only grow."""

from __future__ import annotations

import pytest

from functions.domain.errors import ComposeError
from functions.domain.storage import guard_volume


@pytest.mark.parametrize(
    ("size", "cls", "observed_size", "observed_class"),
    [
        ("10Gi", "", None, None),
        ("10Gi", "replicated", "10Gi", "replicated"),
        ("11Gi", "", "10Gi", ""),
        ("10240Mi", "local", "10Gi", "local"),
        ("1Ti", "", "500Gi", ""),
    ],
)
def test_allowed(
    size: str, cls: str, observed_size: str | None, observed_class: str | None
) -> None:
    guard_volume(
        size=size, storage_class=cls, observed_size=observed_size, observed_class=observed_class
    )


@pytest.mark.parametrize(
    ("size", "cls", "observed_size", "observed_class", "message"),
    [
        ("9Gi", "", "10Gi", "", r"spec\.size: volumes cannot shrink from 10Gi to 9Gi"),
        ("10000Mi", "", "10Gi", "", r"spec\.size"),
        (
            "10Gi",
            "local",
            "10Gi",
            "replicated",
            r"spec\.storageClass: is immutable: the volumes use 'replicated'",
        ),
        ("10Gi", "local", "10Gi", "", r"use 'the default class'"),
        ("10Gi", "", "10Gi", "replicated", r"spec\.storageClass"),
    ],
)
def test_refused(
    size: str, cls: str, observed_size: str, observed_class: str, message: str
) -> None:
    with pytest.raises(ComposeError, match=message):
        guard_volume(
            size=size, storage_class=cls, observed_size=observed_size, observed_class=observed_class
        )
